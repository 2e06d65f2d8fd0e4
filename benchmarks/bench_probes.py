"""What do probes cost? ``fit`` on the MNIST-sized MLP with and without ``ProbeCallback(every=100)``.

MLP 784-256-128-10 (ReLU, softmax cross-entropy, SGD lr 0.1, batch 128, float32), one epoch over 60,000 random
samples, same initial weights and seed for both. Runs are interleaved (with, without, ...) after one untimed warm-up
round; medians reported. Target: probes on cost at most 1.10x.

    .venv/bin/python benchmarks/bench_probes.py [--repeats 3] [--every 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import neuronkit as nk
from neuronkit import nn
from neuronkit.inspect import ProbeCallback
from neuronkit.train import fit


def make_model(init=None):
    model = nn.Sequential(
        nn.Dense(784, 256, activation="relu", generator=0),
        nn.Dense(256, 128, activation="relu", generator=1),
        nn.Dense(128, 10, generator=2),
    )
    if init is not None:
        for p, v in zip(model.parameters(), init):
            p.data[...] = v
    return model


def epoch(init, X, Y, every):
    model = make_model(init)
    callbacks = [] if every is None else [ProbeCallback(every=every)]
    t0 = time.perf_counter()
    h = fit(
        model, (X, Y), optimizer="sgd", lr=0.1, epochs=1, batch_size=128, callbacks=callbacks, seed=0, progress=False
    )
    dt = time.perf_counter() - t0
    records = callbacks[0].probe.layers["0"].count if callbacks else 0
    return dt, h.epochs[-1]["loss"], records


def main(argv=None):
    tuned = nk.tune_allocator()  # what the command line does first: freed array memory is reused
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args(argv)
    print(f"glibc malloc tuned (neuronkit.tune_allocator): {tuned}")
    rng = np.random.default_rng(0)
    X = rng.random((60_000, 784), dtype=np.float32)
    Y = rng.integers(0, 10, 60_000)
    init = [p.data.copy() for p in make_model().parameters()]
    times = {"without": [], "with": []}
    for r in range(args.repeats + 1):
        t_off, loss_off, _ = epoch(init, X, Y, None)
        t_on, loss_on, records = epoch(init, X, Y, args.every)
        if r:
            times["without"].append(t_off)
            times["with"].append(t_on)
            print(
                f"  round {r}: without probes {t_off:.3f}s, with ProbeCallback(every={args.every}) {t_on:.3f}s "
                f"({records} records/layer; epoch loss {loss_off:.4f} vs {loss_on:.4f})",
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"\nMNIST-MLP epoch: without probes {med['without']:.3f} s, with probes {med['with']:.3f} s, "
        f"ratio {med['with'] / med['without']:.3f}x (target <= 1.10x)"
    )


if __name__ == "__main__":
    main()
