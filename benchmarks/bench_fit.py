"""Does the training loop eat the engine's lead? ``fit`` vs the engine-only loop, one MNIST-MLP epoch each.

Both train the MLP 784-256-128-10 (ReLU, softmax cross-entropy, plain SGD lr 0.1, batch 128, float32) from the same
initial weights on the same 60,000 random samples. The engine-only loop is ``bench_engine.epoch_neuronkit`` (bare
tensors, no shuffling). ``fit`` uses ``nn.Dense`` layers, a shuffling ``DataLoader``, accuracy on every batch, the
``History``, and a validation pass over 10,000 samples after the epoch. Epochs are interleaved; medians reported.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_fit.py [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from bench_engine import BLAS_VARS, SIZES, _load, epoch_neuronkit, init_params, make_data, print_env

import neuronkit as nk
from neuronkit import nn
from neuronkit.train import fit


def epoch_fit(init, X, Y, Xv, Yv):
    model = nn.Sequential(nn.Dense(784, 256, activation="relu"), nn.Dense(256, 128, activation="relu"),
                          nn.Dense(128, 10))  # fmt: skip
    for p, v in zip(model.parameters(), init):
        p.data[...] = v
    t0 = time.perf_counter()
    h = fit(model, (X, Y), optimizer=nk.optim.SGD(model.parameters(), lr=0.1), epochs=1, batch_size=128,
            validation=(Xv, Yv), seed=0, progress=False)  # fmt: skip
    return time.perf_counter() - t0, h.epochs[-1]["loss"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    print_env({k: None for k in BLAS_VARS})
    print(f"load average at start: {_load()}")
    X, Y = make_data(60_000)
    rng = np.random.default_rng(1)
    Xv, Yv = rng.random((10_000, SIZES[0]), dtype=np.float32), rng.integers(0, 10, 10_000)
    init = init_params()
    times = {"engine loop": [], "fit": []}
    for r in range(args.repeats + 1):
        t_engine = epoch_neuronkit(init, X, Y)[0]
        t_fit, loss = epoch_fit(init, X, Y, Xv, Yv)
        if r:
            times["engine loop"].append(t_engine)
            times["fit"].append(t_fit)
            print(f"  round {r}: engine loop {t_engine:.3f}s, fit {t_fit:.3f}s (epoch loss {loss:.4f})", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nMNIST-MLP epoch: engine loop {med['engine loop']:.3f} s, fit {med['fit']:.3f} s, "
          f"ratio {med['fit'] / med['engine loop']:.2f}x (target <= 1.10x)")  # fmt: skip
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
