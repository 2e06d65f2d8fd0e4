"""Inference throughput: ``predict`` on the MNIST MLP and LeNet, samples per second, beside PyTorch, in one process.

Models as ``neuronkit train`` builds them for MNIST: the MLP 784-256-128-10 (ReLU) and LeNet (conv 1->16 3x3 pad 1,
ReLU, max-pool 2; conv 16->32 3x3 pad 1, ReLU, max-pool 2; dense 1568->128 ReLU; dense 128->10), float32, with the
same weights on both sides (their outputs are compared). neuronkit runs ``neuronkit.train.predict(model, x,
batch_size)`` (eval mode, no graph); PyTorch the same model in eval mode under ``torch.no_grad()``, batch by batch.
Batch 1 (one sample at a time, a latency-bound server) and batch 256. Rounds are interleaved; medians are printed.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_predict.py [--threads T]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from bench_engine import BLAS_VARS, _load, limit_threads, print_env

import neuronkit as nk
from neuronkit import nn

SAMPLES = {1: 500, 256: 10_240}  # samples predicted per timing, by batch size


def models():
    """{name: (neuronkit model, torch model)} with identical weights."""
    mlp = nn.Sequential(
        nn.Flatten(), nn.Dense(784, 256, activation="relu"), nn.Dense(256, 128, activation="relu"), nn.Dense(128, 10)
    )
    lenet = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, activation="relu", max_pool=2),
        nn.Conv2d(16, 32, 3, padding=1, activation="relu", max_pool=2),
        nn.Flatten(),
        nn.Dense(32 * 7 * 7, 128, activation="relu"),
        nn.Dense(128, 10),
    )
    T = torch.nn
    t_mlp = T.Sequential(T.Flatten(), T.Linear(784, 256), T.ReLU(), T.Linear(256, 128), T.ReLU(), T.Linear(128, 10))
    t_lenet = T.Sequential(
        T.Conv2d(1, 16, 3, padding=1), T.ReLU(), T.MaxPool2d(2),
        T.Conv2d(16, 32, 3, padding=1), T.ReLU(), T.MaxPool2d(2),
        T.Flatten(), T.Linear(32 * 7 * 7, 128), T.ReLU(), T.Linear(128, 10),
    )  # fmt: skip
    for ours, theirs in ((mlp, t_mlp), (lenet, t_lenet)):
        with torch.no_grad():
            for (_, p), q in zip(ours.named_parameters(), theirs.parameters(), strict=True):
                q.copy_(torch.from_numpy(np.ascontiguousarray(p.data)))
        theirs.eval()
    return {"mlp": (mlp, t_mlp), "lenet": (lenet, t_lenet)}


def run_nk(model, x, batch):
    t0 = time.perf_counter()
    out = nk.train.predict(model, x, batch_size=batch)
    return time.perf_counter() - t0, np.asarray(out.data if hasattr(out, "data") else out)


def run_torch(model, x, batch):
    xt = torch.from_numpy(x)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = torch.cat([model(xt[i : i + batch]) for i in range(0, len(xt), batch)])
    return time.perf_counter() - t0, out.numpy()


def main(argv=None):
    tuned = nk.tune_allocator()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, help="threads for BLAS, neuronkit's kernels and torch (default: all)")
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    print_env({k: None for k in BLAS_VARS}, tuned)
    rng = np.random.default_rng(0)
    print(f"\n{'model':6} {'batch':>5} {'neuronkit (samples/s)':>22} {'pytorch (samples/s)':>20} {'nk / torch':>11}")
    for name, (ours, theirs) in models().items():
        for batch, n in SAMPLES.items():
            x = rng.random((n, 1, 28, 28), dtype=np.float32)
            times = {"neuronkit": [], "pytorch": []}
            outs = {}
            for r in range(args.repeats + 1):
                order = [("neuronkit", run_nk, ours), ("pytorch", run_torch, theirs)]
                for key, fn, model in order if r % 2 else order[::-1]:
                    dt, outs[key] = fn(model, x, batch)
                    if r:
                        times[key].append(dt)
            rate = {k: n / statistics.median(v) for k, v in times.items()}
            diff = float(np.max(np.abs(outs["neuronkit"] - outs["pytorch"])))
            print(
                f"{name:6} {batch:>5} {rate['neuronkit']:>22,.0f} {rate['pytorch']:>20,.0f} "
                f"{rate['neuronkit'] / rate['pytorch']:>10.2f}x   (outputs differ by at most {diff:.1e})",
                flush=True,
            )
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
