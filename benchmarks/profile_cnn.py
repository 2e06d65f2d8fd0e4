"""Where does a bench_cnn.py epoch spend its time? Wall time per op (forward and backward), per helper kernel.

Wraps every op's ``forward``/``backward`` and the im2col/col2im helpers with a timer, runs ``--epochs`` neuronkit
epochs of the benchmark CNN (op by op, or ``--fused``), and prints milliseconds per training step for each. Timers
nest (an op's time includes its helpers'). Run single-threaded for a less noise-sensitive picture:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 NEURONKIT_THREADS=1 \\
        .venv/bin/python benchmarks/profile_cnn.py [--fused]
"""

from __future__ import annotations

import argparse
import collections
import functools
import time

import bench_cnn as bc
from bench_engine import _load
from threadpoolctl import threadpool_info

import neuronkit as nk
from neuronkit import backend
from neuronkit.autograd.function import Function
from neuronkit.ops import conv, conv_fused, im2col

TIMES = collections.defaultdict(float)
CPU = collections.defaultdict(float)


def _timed(label, fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            TIMES[label] += time.perf_counter() - t0
            CPU[label] += time.thread_time() - c0

    return wrapper


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def instrument():
    for cls in set(_subclasses(Function)):
        for meth in ("forward", "backward"):
            if meth in vars(cls):
                setattr(cls, meth, _timed(f"{cls.name}.{meth} ({cls.__name__})", vars(cls)[meth]))
    for name in ("im2col", "col2im", "conv_gemm", "planes_patches", "im2col_planes", "add_bias_rows", "pad"):
        if not hasattr(im2col, name):  # (names differ between versions: A/B runs against older code)
            continue
        wrapped = _timed(f"  helper {name}", getattr(im2col, name))
        for mod in (im2col, conv, conv_fused):
            if hasattr(mod, name):
                setattr(mod, name, wrapped)


def main(argv=None):
    nk.tune_allocator()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--fused", action="store_true")
    args = ap.parse_args(argv)
    blas = [f"{i['internal_api']} {i.get('architecture')} x{i['num_threads']}" for i in threadpool_info()]
    print(f"BLAS: {blas}; pool threads {getattr(backend, 'num_threads', lambda: 1)()}; load {_load()}")
    X, Y = bc.make_data(bc.N)
    init = bc.init_params()
    run = bc.epoch_neuronkit_fused if args.fused else bc.epoch_neuronkit
    run(init, X[:1280], Y[:1280])  # warm-up (allocator, caches)
    instrument()
    total, cpu = 0.0, time.thread_time()
    for _ in range(args.epochs):
        total += run(init, X, Y)[0]
    cpu = time.thread_time() - cpu
    steps = args.epochs * -(-bc.N // bc.BATCH)
    print(
        f"{'fused' if args.fused else 'op by op'}: {1e3 * total / steps:.2f} ms per step wall, "
        f"{1e3 * cpu / steps:.2f} ms CPU of the main thread ({steps} steps); per op, wall / main-thread CPU:"
    )
    for label, t in sorted(TIMES.items(), key=lambda kv: -kv[1]):
        print(f"  {1e3 * t / steps:7.2f} / {1e3 * CPU[label] / steps:6.2f} ms  {label}")
    print(f"load at end {_load()}")


if __name__ == "__main__":
    main()
