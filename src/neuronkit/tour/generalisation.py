"""Does fitting the training data mean the network has learned? Only unseen data can tell.

A 64 -> 128 -> 128 -> 10 ReLU network (about 26,000 weights) is trained on 40 of scikit-learn's 8x8 handwritten
digits (4 per class) until it classifies every one of them correctly, then tested on the 359 digits of the test split
that it never saw. The same network, from the same kind of start, is then trained on more and more of the 1,438
training digits, each time until it gets all of them right, and tested on the same 359.
"""

from __future__ import annotations

import numpy as np

from .. import nn, ops, optim
from ..data import load_dataset
from ..tensor import Tensor
from .result import Result, accuracy

HIDDEN, LR, BATCH, MAX_EPOCHS = 128, 2e-3, 64, 200
SIZES = (40, 100, 300, None)  # training samples (stratified); None: the whole training split
MIN_GAP, MIN_RISE = 0.10, 0.08  # the claim: test >= 10 points below train at 40 samples; >= 8 points higher with all


def subset(y, n, rng) -> np.ndarray:
    """Indices of ``n`` samples, ``n // classes`` of each class (all indices when ``n`` is None)."""
    if n is None:
        return np.arange(len(y))
    classes = np.unique(y)
    return np.concatenate([rng.permutation(np.flatnonzero(y == c))[: n // len(classes)] for c in classes])


def fit_until_perfect(x, y, rng) -> tuple:
    """Train a fresh network with Adam on minibatches of ``BATCH`` until it classifies all of ``(x, y)`` correctly
    (checked after each epoch; at most ``MAX_EPOCHS``). Returns (model, epochs)."""
    model = nn.Sequential(
        nn.Dense(x.shape[1], HIDDEN, activation="relu", generator=rng),
        nn.Dense(HIDDEN, HIDDEN, activation="relu", generator=rng),
        nn.Dense(HIDDEN, int(y.max()) + 1, generator=rng),
    )
    opt = optim.Adam(model.parameters(), lr=LR)
    epoch = 0
    while epoch < MAX_EPOCHS:
        epoch += 1
        order = rng.permutation(len(y))
        for i in range(0, len(y), BATCH):
            b = order[i : i + BATCH]
            loss = ops.softmax_cross_entropy(model(Tensor(x[b])), y[b])
            loss.backward()
            opt.step()
            opt.zero_grad()
        if accuracy(model, x, y) == 1.0:
            break
    return model, epoch


def run(seed: int = 0) -> Result:
    (x_train, y_train), (x_test, y_test) = load_dataset("digits")
    x_train, x_test = x_train / np.float32(16), x_test / np.float32(16)  # pixels 0..16 -> 0..1
    rng = np.random.default_rng(seed)
    rows = []
    for n in SIZES:
        idx = subset(y_train, n, rng)
        model, epochs = fit_until_perfect(x_train[idx], y_train[idx], rng)
        rows.append(
            {
                "train_samples": len(idx),
                "epochs": epochs,
                "train_accuracy": accuracy(model, x_train[idx], y_train[idx]),
                "test_accuracy": accuracy(model, x_test, y_test),
            }
        )
    small, full = rows[0], rows[-1]
    fig = {
        "test_samples": len(y_test),
        "parameters": model.num_parameters(),
        "runs": rows,
        "small_train_accuracy": small["train_accuracy"],
        "small_test_accuracy": small["test_accuracy"],
        "small_gap": small["train_accuracy"] - small["test_accuracy"],
        "full_train_samples": full["train_samples"],
        "full_test_accuracy": full["test_accuracy"],
        "rise_with_more_data": full["test_accuracy"] - small["test_accuracy"],
    }
    holds = small["train_accuracy"] == 1.0 and fig["small_gap"] >= MIN_GAP and fig["rise_with_more_data"] >= MIN_RISE
    lowest_fit = min(r["train_accuracy"] for r in rows)
    fit_words = "perfectly every time" if lowest_fit == 1.0 else f"to at least {lowest_fit:.1%}"
    table = "; ".join(
        f"{r['train_samples']} samples: train {r['train_accuracy']:.1%}, test {r['test_accuracy']:.1%}"
        f" ({r['epochs']} epochs)"
        for r in rows
    )
    explanation = (
        f"A network with {fig['parameters']:,} weights has far more freedom than {small['train_samples']} "
        f"training digits can pin down. It learned to classify all {small['train_samples']} of them correctly "
        f"({small['train_accuracy']:.0%}) in {small['epochs']} epochs, yet on {len(y_test)} digits it never saw it "
        f"got {small['test_accuracy']:.1%}: {fig['small_gap'] * 100:.1f} points lower. Part of what it learned fits "
        f"those particular {small['train_samples']} images, not digits in general.\n"
        f"Trained the same way on more data, it fits its training set {fit_words}, and the test accuracy rises: "
        f"{table}. With all {full['train_samples']} training digits it reaches {full['test_accuracy']:.1%} on the "
        f"unseen ones, {fig['rise_with_more_data'] * 100:.1f} points more. Training accuracy says how well a network "
        f"memorised; only held-out data says how well it will do."
    )
    return Result(
        name="generalisation",
        title="Does a network that fits its training data work on new data?",
        claim=f"a network that fits {SIZES[0]} training digits perfectly is >= {MIN_GAP * 100:.0f} points less "
        f"accurate on unseen digits; trained on all the training digits its unseen accuracy is >= "
        f"{MIN_RISE * 100:.0f} points higher",
        figures=fig,
        holds=bool(holds),
        explanation=explanation,
        size=(8.0, 4.0),
        plot=lambda f: _plot(f, rows, len(y_test)),
    )


def _plot(figure, rows, test_samples) -> None:
    ax = figure.subplots()
    n = [r["train_samples"] for r in rows]
    ax.plot(n, [r["train_accuracy"] for r in rows], "o-", color="tab:blue", label="training accuracy")
    ax.plot(n, [r["test_accuracy"] for r in rows], "o-", color="tab:orange", label="accuracy on unseen test digits")
    ax.fill_between(
        n,
        [r["test_accuracy"] for r in rows],
        [r["train_accuracy"] for r in rows],
        color="tab:orange",
        alpha=0.15,
        label="generalisation gap",
    )
    for r in rows:
        ax.annotate(
            f"{r['test_accuracy']:.1%}",
            (r["train_samples"], r["test_accuracy"]),
            textcoords="offset points",
            xytext=(0, -14),
            ha="center",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_xticks(n, [str(v) for v in n])
    ax.set_xlabel("training samples (log scale)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(min(0.6, min(r["test_accuracy"] for r in rows) - 0.05), 1.03)
    ax.set_title(f"accuracy on the training digits and on {test_samples} unseen ones")
    ax.legend(loc="lower right")
