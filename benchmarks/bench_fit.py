"""Does the training loop eat the engine's lead? ``fit`` vs the engine-only loop, one MNIST-MLP epoch each.

Both train the MLP 784-256-128-10 (ReLU, softmax cross-entropy, plain SGD lr 0.1, batch 128, float32) from the same
initial weights on the same 60,000 random samples. The engine-only loop is ``bench_engine.epoch_neuronkit`` (bare
tensors, no shuffling). ``fit`` uses ``nn.Dense`` layers, a shuffling ``DataLoader``, accuracy on every batch, the
``History``, and a validation pass over 10,000 samples after the epoch. Epochs are interleaved, their order reversed
every round; the ratio of the medians and the median of the per-round ratios are printed (on a noisy machine the
second pairs epochs run seconds apart, so it follows the machine's drift less).

It also runs the engine doing ``fit``'s whole job by hand (the same shuffled batches, accuracy per batch, the
validation forward pass), so that the loop's own overhead can be told from the work it adds to the engine loop.
``--parts`` also times ``fit`` without validation, without shuffling and without the metric (one at a time, and all
three off), to show what each costs. ``--split cli`` trains on 54,000 samples and validates on 6,000, the split that
``neuronkit train --data mnist`` makes by default (``val_fraction`` 0.1), against an engine loop on the same 54,000.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_fit.py [--repeats N] [--parts]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from bench_engine import (
    BATCH,
    BLAS_VARS,
    LR,
    SIZES,
    _load,
    epoch_neuronkit,
    init_params,
    make_data,
    print_env,
    sgd_step,
)
from threadpoolctl import threadpool_limits

import neuronkit as nk
from neuronkit import nn
from neuronkit.train import fit


def epoch_fit(init, X, Y, Xv, Yv, shuffle=True, metrics=None):
    model = nn.Sequential(
        nn.Dense(784, 256, activation="relu"), nn.Dense(256, 128, activation="relu"), nn.Dense(128, 10)
    )
    for p, v in zip(model.parameters(), init):
        p.data[...] = v
    t0 = time.perf_counter()
    h = fit(
        model,
        (X, Y),
        optimizer=nk.optim.SGD(model.parameters(), lr=0.1),
        epochs=1,
        batch_size=128,
        validation=None if Xv is None else (Xv, Yv),
        seed=0,
        progress=False,
        shuffle=shuffle,
        metrics=metrics,
    )
    return time.perf_counter() - t0, h.epochs[-1]["loss"]


def epoch_engine_same_work(init, X, Y, Xv, Yv):
    """The engine loop doing ``fit``'s whole job by hand: the same shuffled batches (the DataLoader's permutation for
    seed 0), accuracy counted on every batch, and a validation forward pass (loss and accuracy, 1,024 per batch)."""
    ps = [nk.Tensor(p.copy(), requires_grad=True) for p in init]
    W1, b1, W2, b2, W3, b3 = ps
    total, steps, correct = 0.0, 0, 0
    t0 = time.perf_counter()
    order = np.random.default_rng(0).permutation(len(X))
    for i in range(0, len(X), BATCH):
        idx = order[i : i + BATCH]
        xb, yb = X.take(idx, axis=0), Y.take(idx, axis=0)
        h = nk.relu(nk.linear(nk.Tensor(xb), W1, b1))
        h = nk.relu(nk.linear(h, W2, b2))
        z = nk.linear(h, W3, b3)
        loss = nk.softmax_cross_entropy(z, yb)
        loss.backward()
        sgd_step(ps, LR)
        correct += int(np.count_nonzero(z.data.argmax(axis=1) == yb))
        total, steps = total + loss.item(), steps + 1
    val_loss, val_correct = 0.0, 0
    with nk.no_grad():
        for i in range(0, len(Xv), 1024):
            h = nk.relu(nk.linear(nk.Tensor(Xv[i : i + 1024]), W1, b1))
            z = nk.linear(nk.relu(nk.linear(h, W2, b2)), W3, b3)
            val_loss += nk.softmax_cross_entropy(z, Yv[i : i + 1024]).item() * len(z.data)
            val_correct += int(np.count_nonzero(z.data.argmax(axis=1) == Yv[i : i + 1024]))
    return time.perf_counter() - t0, total / steps


def main(argv=None):
    tuned = nk.tune_allocator()  # what the command line does first: freed array memory is reused
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--parts", action="store_true", help="also time fit without validation, shuffling, metric")
    ap.add_argument(
        "--split",
        choices=("bench", "cli"),
        default="bench",
        help="bench: 60,000 + 10,000 validation (default); cli: 54,000 + 6,000",
    )
    ap.add_argument("--threads", type=int, help="limit BLAS threads (default: the library's default)")
    args = ap.parse_args(argv)
    if args.threads:
        threadpool_limits(args.threads)
    print_env({k: None for k in BLAS_VARS}, tuned)
    print(f"load average at start: {_load()}")
    n_train, n_val = (60_000, 10_000) if args.split == "bench" else (54_000, 6_000)
    X, Y = make_data(n_train)
    rng = np.random.default_rng(1)
    Xv, Yv = rng.random((n_val, SIZES[0]), dtype=np.float32), rng.integers(0, 10, n_val)
    init = init_params()
    runs = {
        "engine loop": lambda: epoch_neuronkit(init, X, Y)[0],
        "fit": lambda: epoch_fit(init, X, Y, Xv, Yv)[0],
        "engine, fit's work": lambda: epoch_engine_same_work(init, X, Y, Xv, Yv)[0],
    }
    if args.parts:
        runs.update(
            {
                "fit, no validation": lambda: epoch_fit(init, X, Y, None, None)[0],
                "fit, no shuffling": lambda: epoch_fit(init, X, Y, Xv, Yv, shuffle=False)[0],
                "fit, no metric": lambda: epoch_fit(init, X, Y, Xv, Yv, metrics=[])[0],
                "fit, none of them": lambda: epoch_fit(init, X, Y, None, None, shuffle=False, metrics=[])[0],
            }
        )
    times = {k: [] for k in runs}
    for r in range(args.repeats + 1):
        order = list(runs) if r % 2 else list(runs)[::-1]
        t = {k: runs[k]() for k in order}
        if r:
            for k in runs:
                times[k].append(t[k])
            print(f"  round {r}: " + ", ".join(f"{k} {t[k]:.3f}s" for k in runs), flush=True)
    base = times["engine loop"]
    print(f"\nMNIST-MLP epoch ({n_train:,} samples, {n_val:,} validation), median of {args.repeats} rounds:")
    for k, v in times.items():
        ratios, med = [a / b for a, b in zip(v, base)], statistics.median(v)
        print(
            f"  {k:19s} {med:.3f} s   ratio of medians {med / statistics.median(base):.3f}x"
            f"   median of per-round ratios {statistics.median(ratios):.3f}x"
        )
    same = times["engine, fit's work"]
    ratios = [a / b for a, b in zip(times["fit"], same)]
    print(
        f"fit / the engine doing fit's work by hand: ratio of medians "
        f"{statistics.median(times['fit']) / statistics.median(same):.3f}x, median of per-round ratios "
        f"{statistics.median(ratios):.3f}x (the loop's own overhead)"
    )
    print("target (issue 10): fit <= 1.05x the engine doing fit's work by hand; fit / the bare engine loop is above")
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
