"""How fast is a small CNN? One training epoch, neuronkit vs PyTorch (CPU), in one process.

Model (issue 3): conv 1->16 3x3, ReLU, maxpool 2, conv 16->32 3x3, ReLU, maxpool 2, flatten, dense 800->10; softmax
cross-entropy, plain SGD lr 0.05, batch 128, float32, 10,000 random 28x28 images (seeded), identical initial weights.
Epochs are interleaved between the implementations (order rotated); the figure is the median of ``--repeats`` epochs.

Two neuronkit variants of the same model (three where the compiled kernels of ``pip install neuronkit[fast]`` are
on: then also ``neuronkit numpy``, op by op with them off): ``neuronkit`` writes it op by op like the PyTorch version
(``max_pool2d(relu(conv2d(x, w, b)), 2)``); ``neuronkit fused`` uses the fused convolution
``conv2d(x, w, b, activation="relu", max_pool=2)``, which computes the same function with the same gradients
(as ``relu(max_pool(conv) + b)``: bias and ReLU on the 4x smaller pooled output). The PyTorch side is op by op.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_cnn.py [--repeats N] [--threads T]

``--threads T`` limits both sides to T threads: OpenBLAS (threadpoolctl), neuronkit's kernel pool
(``backend.set_num_threads``) and PyTorch (``torch.set_num_threads``). ``--threads 1`` is far less sensitive to other
work on a small shared machine.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from bench_engine import BLAS_VARS, _load, limit_threads, print_env, sgd_step

import neuronkit as nk

LR, BATCH, SEED, N = 0.05, 128, 0, 10_000
SHAPES = [(16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,), (10, 800), (10,)]


def make_data(n):
    rng = np.random.default_rng(SEED)
    return rng.random((n, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, n, dtype=np.int64)


def init_params():
    rng = np.random.default_rng(SEED + 1)
    out = []
    for shape in SHAPES:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else out[-1].shape[1] * int(np.prod(out[-1].shape[2:]))
        bound = 1.0 / np.sqrt(fan_in)
        out.append(rng.uniform(-bound, bound, shape).astype(np.float32))
    return out


def _epoch(init, X, Y, block):
    """One neuronkit epoch of the benchmark CNN; ``block(h, w, b)`` is one conv + ReLU + 2x2 max-pool stage."""
    ps = [nk.Tensor(p.copy(), requires_grad=True) for p in init]
    c1, b1, c2, b2, w3, b3 = ps
    total, t0 = 0.0, time.perf_counter()
    for i in range(0, len(X), BATCH):
        h = block(block(nk.Tensor(X[i : i + BATCH]), c1, b1), c2, b2)
        loss = nk.softmax_cross_entropy(nk.linear(nk.flatten(h, 1), w3, b3), Y[i : i + BATCH])
        loss.backward()
        sgd_step(ps, LR)
        total += loss.item()
    return time.perf_counter() - t0, total


def epoch_neuronkit(init, X, Y):
    """The model op by op, as PyTorch runs it."""
    return _epoch(init, X, Y, lambda h, w, b: nk.max_pool2d(nk.relu(nk.conv2d(h, w, b)), 2))


def epoch_neuronkit_fused(init, X, Y):
    """The same model with ReLU and max pooling fused into each convolution."""
    return _epoch(init, X, Y, lambda h, w, b: nk.conv2d(h, w, b, activation="relu", max_pool=2))


def epoch_neuronkit_numpy(init, X, Y):
    """The model op by op with the compiled kernels off (``backend.JIT = False``): NumPy code only."""
    nk.backend.JIT = False
    try:
        return epoch_neuronkit(init, X, Y)
    finally:
        nk.backend.JIT = None


def epoch_torch(init, X, Y):
    ps = [torch.tensor(p, requires_grad=True) for p in init]
    c1, b1, c2, b2, w3, b3 = ps
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    total, t0 = 0.0, time.perf_counter()
    for i in range(0, len(X), BATCH):
        h = F.max_pool2d(F.relu(F.conv2d(Xt[i : i + BATCH], c1, b1)), 2)
        h = F.max_pool2d(F.relu(F.conv2d(h, c2, b2)), 2)
        loss = F.cross_entropy(F.linear(h.flatten(1), w3, b3), Yt[i : i + BATCH])
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p.add_(p.grad, alpha=-LR)
                p.grad = None
        total += loss.item()
    return time.perf_counter() - t0, total


def main(argv=None):
    tuned = nk.tune_allocator()  # what the command line does first: freed array memory is reused
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="threads for BLAS, neuronkit's kernels and torch (default: all)")
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    print_env({k: None for k in BLAS_VARS}, tuned)
    print(f"load average at start: {_load()}")
    X, Y = make_data(N)
    init = init_params()
    impls = {"neuronkit": epoch_neuronkit, "pytorch": epoch_torch, "neuronkit fused": epoch_neuronkit_fused}
    jit = getattr(nk.backend, "jit", lambda: None)()  # (absent before the compiled kernels: A/B runs)
    print(f"compiled kernels (backend.jit(), Numba): {'on' if jit is not None else 'off'}")
    if jit is not None:  # the same model on NumPy code alone, in the same rounds
        impls["neuronkit numpy"] = epoch_neuronkit_numpy
    times, cpu, totals = {k: [] for k in impls}, {k: [] for k in impls}, {}
    for r in range(args.repeats + 1):
        for k in list(impls)[r % len(impls) :] + list(impls)[: r % len(impls)]:
            c0 = time.process_time()
            dt, totals[k] = impls[k](init, X, Y)
            if r:
                times[k].append(dt)
                cpu[k].append(time.process_time() - c0)
        if r:
            print(f"  round {r}: " + ", ".join(f"{k} {times[k][-1]:.3f}s" for k in impls), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    steps = -(-N // BATCH)
    print(f"\nCNN epoch ({N} images, {steps} steps), pytorch {med['pytorch']:.3f} s (median of {args.repeats})")
    for k in [k for k in impls if k != "pytorch"]:
        best = min(times[k]) / min(times["pytorch"])
        print(
            f"  {k:16} {med[k]:.3f} s, ratio to pytorch {med[k] / med['pytorch']:.2f}x (min-based {best:.2f}x); "
            f"summed epoch loss {totals[k]:.4f} vs pytorch {totals['pytorch']:.4f} "
            f"(difference {abs(totals[k] - totals['pytorch']):.1e})"
        )
    cmed = {k: statistics.median(v) for k, v in cpu.items()}
    print(
        "CPU time of the process per epoch (all its threads; with one thread each, less sensitive to other work): "
        + ", ".join(f"{k} {cmed[k]:.3f} s ({cmed[k] / cmed['pytorch']:.2f}x)" for k in impls)
    )
    if getattr(nk.backend, "POOL_ON", False):
        import numba

        threads = nk.backend._one["module"].THREADS
        print(f"one pool of threads: {threads} threads, Numba's {numba.threading_layer()} layer")
    else:
        print("one pool of threads: not used")
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
