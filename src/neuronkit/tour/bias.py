"""Why does a neuron need a bias? Without one, its decision threshold is pinned to the origin.

One sigmoid neuron ``sigmoid(w x + b)`` says "class 1" where ``w x + b > 0``, i.e. on one side of the threshold
``x = -b / w``. The data are numbers in [0, 4], class 1 where ``x > 2`` (points within 0.1 of 2 left out, so the
classes are cleanly separable). With a bias the neuron can move its threshold to 2; without one (``bias=False``)
the threshold is ``x = 0``, below every point, so it gives all of them the same class and can do no better than the
majority rate, however long it trains.
"""

from __future__ import annotations

import numpy as np

from .. import nn, optim
from ..autograd import no_grad
from ..nn.losses import binary_cross_entropy
from ..tensor import Tensor
from .result import Result, accuracy, train_full_batch

BOUNDARY, MARGIN, STEPS, LR = 2.0, 0.1, 300, 0.1
WITH_BIAS_MIN = 0.99


def run(seed: int = 0) -> Result:
    rng = np.random.default_rng([seed, 0])
    x = rng.uniform(0.0, 4.0, 240)
    x = x[np.abs(x - BOUNDARY) > MARGIN][:, None]  # (N, 1)
    y = (x[:, 0] > BOUNDARY).astype(np.int64)
    target = Tensor(y[:, None].astype(np.float64))
    rng = np.random.default_rng([seed, 1])
    neurons = {b: nn.Dense(1, 1, bias=b, activation="sigmoid", generator=rng, dtype="float64") for b in (True, False)}
    losses = {}
    for b, neuron in neurons.items():
        opt = optim.Adam(neuron.parameters(), lr=LR)
        losses[b] = train_full_batch(neuron, x, target, binary_cross_entropy, opt, STEPS)

    def threshold(neuron) -> float:
        w = float(neuron.weight.data[0, 0])
        b = 0.0 if neuron.bias is None else float(neuron.bias.data[0])
        return -b / w + 0.0 if w != 0 else float("nan")  # + 0.0: no "-0.0" when there is no bias

    fig = {
        "samples": len(y),
        "class1_fraction": float(y.mean()),
        "majority_rate": float(np.bincount(y).max() / len(y)),  # counts, so it compares exactly
        "with_bias_accuracy": accuracy(neurons[True], x, y),
        "without_bias_accuracy": accuracy(neurons[False], x, y),
        "with_bias_threshold": threshold(neurons[True]),
        "without_bias_threshold": threshold(neurons[False]),
        "with_bias_weight": float(neurons[True].weight.data[0, 0]),
        "with_bias_bias": float(neurons[True].bias.data[0]),
        "without_bias_weight": float(neurons[False].weight.data[0, 0]),
        "with_bias_final_loss": losses[True][-1],
        "without_bias_final_loss": losses[False][-1],
        "steps": STEPS,
        "true_boundary": BOUNDARY,
    }
    holds = fig["with_bias_accuracy"] >= WITH_BIAS_MIN and fig["without_bias_accuracy"] <= fig["majority_rate"]
    f = fig
    explanation = (
        f"{f['samples']} numbers between 0 and 4, class 1 where x > {BOUNDARY:g} ({f['class1_fraction']:.0%} of "
        f"them). A sigmoid neuron with a bias learns w = {f['with_bias_weight']:.2f}, b = {f['with_bias_bias']:.2f}: "
        f"its threshold -b/w = {f['with_bias_threshold']:.3f} sits near the true boundary {BOUNDARY:g}, and it "
        f"classifies {f['with_bias_accuracy']:.1%} correctly (final loss {f['with_bias_final_loss']:.3f}).\n"
        f"The same neuron without a bias computes sigmoid(w x): it says class 1 exactly where w x > 0, so its "
        f"threshold is x = 0 whatever w it learns (here w = {f['without_bias_weight']:.2f}). Every point lies on the "
        f"same side of 0, so all get one class: {f['without_bias_accuracy']:.1%} correct, no better than always "
        f"answering the majority class ({f['majority_rate']:.1%}); its loss stays at "
        f"{f['without_bias_final_loss']:.3f}. The bias is what lets a neuron put its threshold where the data need "
        f"it."
    )
    return Result(
        name="bias",
        title="Why does a neuron need a bias?",
        claim=f"a sigmoid neuron with a bias learns the threshold x > {BOUNDARY:g} (accuracy >= {WITH_BIAS_MIN:.0%}); "
        "without a bias its threshold stays at 0 and it does no better than the majority rate",
        figures=fig,
        holds=bool(holds),
        explanation=explanation,
        plot=lambda figure: _plot(figure, x[:, 0], y, neurons, fig),
        size=(9.0, 4.0),
    )


def _plot(figure, x, y, neurons, d) -> None:
    ax = figure.subplots()
    jitter = np.random.default_rng(0).uniform(-0.03, 0.03, len(y))  # only to separate overlapping dots
    ax.scatter(
        x,
        y + jitter,
        c=np.where(y == 1, "tab:orange", "tab:blue"),
        s=12,
        edgecolors="none",
        label="data (class 0 / class 1)",
    )
    grid = np.linspace(-1.0, 5.0, 300)[:, None]
    for b, color, label in ((True, "tab:green", "with bias"), (False, "tab:red", "without bias")):
        with no_grad():
            p = neurons[b](Tensor(grid)).data[:, 0]
        t = d["with_bias_threshold"] if b else 0.0
        ax.plot(grid[:, 0], p, color=color, label=f"{label}: sigmoid output, threshold x = {t:.2f}")
        ax.axvline(t, color=color, linestyle="--", linewidth=1)
    ax.axvline(d["true_boundary"], color="black", linestyle=":", linewidth=1, label="true boundary x = 2")
    ax.set_xlabel("x")
    ax.set_ylabel("class / predicted probability of class 1")
    ax.set_title(
        f"with bias {d['with_bias_accuracy']:.0%} correct, without {d['without_bias_accuracy']:.0%} "
        f"(majority rate {d['majority_rate']:.0%})"
    )
    ax.legend(loc="center right", fontsize=8)
