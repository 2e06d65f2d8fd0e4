"""Peak memory of one training epoch: the benchmark CNN (and the MNIST MLP), neuronkit vs PyTorch.

Each implementation runs in its own fresh process (so one's freed memory cannot hide the other's): the process sets
up (imports, data, weights), resets the kernel's peak-RSS mark (``/proc/self/clear_refs``), notes its resident set,
runs one epoch of ``bench_cnn.py``'s CNN or ``bench_engine.py``'s MLP, and reports the peak resident set during the
epoch (``VmHWM``) minus the set before it: the memory the epoch itself needed at its peak, allocator caches included
(both sides run with neuronkit's malloc tuning, as in the benchmarks). Before that, each side runs one step of 32
samples (``WARM``), so what a process loads once is not counted as the epoch's. Linux only.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_memory.py [--threads T]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WARM = 32
"""Samples of the one warm-up step each side runs before the measured epoch: it loads what is loaded once per process
(Numba's compiled kernels from their cache, some 100 MiB with their LLVM runtime; PyTorch's lazy setup), with
temporaries a quarter of the epoch's (batch 128)."""

IMPLS = {
    "cnn": ("epoch_neuronkit", "epoch_neuronkit_fused", "epoch_torch"),
    "mlp": ("epoch_neuronkit", "epoch_torch"),
}


def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def child(model: str, impl: str, threads: int | None) -> dict:
    """One epoch of ``impl`` in this process; peak and before-epoch memory in MiB."""
    import bench_cnn
    import bench_engine

    import neuronkit as nk

    nk.tune_allocator()
    bench_engine.limit_threads(threads)
    mod = bench_cnn if model == "cnn" else bench_engine
    X, Y = mod.make_data(bench_cnn.N if model == "cnn" else 60_000)
    init = mod.init_params()
    getattr(mod, impl)(init, X[:WARM], Y[:WARM])  # (loads compiled code: Numba's kernels are ~100 MiB once)
    with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
        f.write("5")  # reset VmHWM, the peak resident set, to the current one
    before = _status_kb("VmRSS")
    getattr(mod, impl)(init, X, Y)
    peak = _status_kb("VmHWM")
    return {"before_mib": before / 1024, "peak_mib": peak / 1024, "epoch_mib": (peak - before) / 1024}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int)
    ap.add_argument("--child", nargs=2, metavar=("MODEL", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.threads)))
        return
    here = os.path.dirname(os.path.abspath(__file__))
    print(f"{'model':5} {'implementation':22} {'RSS before (MiB)':>17} {'peak (MiB)':>11} {'epoch peak (MiB)':>17}")
    for model, impls in IMPLS.items():
        for impl in impls:
            cmd = [sys.executable, os.path.join(here, "bench_memory.py"), "--child", model, impl]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=here)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            name = impl.replace("epoch_", "").replace("_", " ")
            print(f"{model:5} {name:22} {r['before_mib']:>17.1f} {r['peak_mib']:>11.1f} {r['epoch_mib']:>17.1f}")


if __name__ == "__main__":
    main()
