"""Why activation functions? Without them a deep network collapses to one linear map, and can only draw a straight line.

A 4-layer ``Dense`` network with no activation computes ``W4 (W3 (W2 (W1 x + b1) + b2) + b3) + b4``, which is
``W x + b`` with ``W = W4 W3 W2 W1`` and ``b = W4 W3 W2 b1 + W4 W3 b2 + W4 b3 + b4``: the product of the weight
matrices is computed here and compared with the network's output, before and after training. Then that network and
one of the same size with ReLU between the layers are trained on two interleaved spirals: the linear one cannot do
better than the best straight line (found here exactly, over every line), the ReLU one fits the spirals.
"""

from __future__ import annotations

import numpy as np

from .. import nn, ops, optim
from ..autograd import no_grad
from ..data import make_spirals
from ..tensor import Tensor
from .result import Result, accuracy, train_full_batch

HIDDEN, STEPS, LR = 32, 300, 0.01
LINEAR_MAX, RELU_MIN = 0.65, 0.95  # the claim: linear accuracy <= 0.65 (chance 0.5), ReLU >= 0.95
COLLAPSE_TOL = 1e-10  # float64: the two ways of computing W x + b differ only by rounding (~1e-15)


def build(activation, rng) -> nn.Sequential:
    """2 -> HIDDEN -> HIDDEN -> HIDDEN -> 2, ``activation`` between the layers (None: none), float64."""
    sizes = [2, HIDDEN, HIDDEN, HIDDEN, 2]
    layers = [
        nn.Dense(a, b, activation=activation if i < 3 else None, generator=rng, dtype="float64")
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    return nn.Sequential(*layers)


def collapse(model) -> tuple:
    """The single map ``(W, b)`` that a stack of activation-free ``Dense`` layers computes: ``y = x @ W.T + b``."""
    w = np.eye(model[0].in_features)
    b = np.zeros(model[0].in_features)
    for layer in model:
        wl = layer.weight.data
        w = wl @ w  # (out, in): the layers' matrices multiplied, last one leftmost
        b = wl @ b + (layer.bias.data if layer.bias is not None else 0.0)
    return w, b


def collapse_error(model, x) -> float:
    """max |network(x) - (x @ W.T + b)| over the rows of ``x``."""
    w, b = collapse(model)
    with no_grad():
        out = model(Tensor(x)).data
    return float(np.abs(out - (x @ w.T + b)).max())


def best_line_accuracy(x, y) -> float:
    """The best training accuracy any straight line ``u . x = t`` reaches on 2-class 2-D ``(x, y)``, exactly.

    The order of the points projected on ``u`` changes only where ``u`` is perpendicular to the difference of two
    points; one direction inside each arc between those critical angles, every threshold between neighbouring
    projections and both labellings cover every split a line can make (points in general position)."""
    n = len(y)
    i, j = np.triu_indices(n, 1)
    d = x[i] - x[j]
    crit = np.unique(np.mod(np.arctan2(d[:, 0], -d[:, 1]), np.pi))  # u = (cos a, sin a) perpendicular to d
    mids = (crit + np.append(crit[1:], crit[0] + np.pi)) / 2
    best = 0.0
    for chunk in np.array_split(mids, max(1, len(mids) // 2000)):
        proj = x @ np.stack([np.cos(chunk), np.sin(chunk)])  # (n, directions)
        ys = y[np.argsort(proj, axis=0)]  # labels in projected order, one column per direction
        # k points below the threshold called class 0: correct = zeros among them + ones above them
        zeros_below = np.vstack([np.zeros((1, ys.shape[1])), np.cumsum(ys == 0, axis=0)])
        ones_above = np.vstack([np.cumsum((ys == 1)[::-1], axis=0)[::-1], np.zeros((1, ys.shape[1]))])
        correct = (zeros_below + ones_above) / n
        best = max(best, float(correct.max()), float((1 - correct).max()))
    return best


def run(seed: int = 0) -> Result:
    x, y = make_spirals(200, n_classes=2, noise=0.05, turns=1.0, seed=np.random.default_rng([seed, 0]))
    x = x.astype(np.float64)
    rng = np.random.default_rng([seed, 1])
    linear, relu = build(None, rng), build("relu", rng)

    err_init = collapse_error(linear, x)
    probe = np.random.default_rng([seed, 2]).normal(0, 10, (1000, 2))  # inputs far outside the data, too
    err_probe_init = collapse_error(linear, probe)
    for model in (linear, relu):
        train_full_batch(model, x, y, ops.softmax_cross_entropy, optim.Adam(model.parameters(), lr=LR), STEPS)
    err_trained = max(collapse_error(linear, x), collapse_error(linear, probe))
    w, b = collapse(linear)

    fig = {
        "collapse_error_initial": err_init,
        "collapse_error_initial_far_inputs": err_probe_init,
        "collapse_error_trained": err_trained,
        "collapsed_weight": w.tolist(),
        "collapsed_bias": b.tolist(),
        "linear_accuracy": accuracy(linear, x, y),
        "relu_accuracy": accuracy(relu, x, y),
        "best_straight_line_accuracy": best_line_accuracy(x, y),
        "majority_rate": float(np.bincount(y).max() / len(y)),
        "samples": len(y),
        "steps": STEPS,
        "parameters_each": linear.num_parameters(),
    }
    holds = (
        max(err_init, err_probe_init, err_trained) <= COLLAPSE_TOL
        and fig["linear_accuracy"] <= LINEAR_MAX
        and fig["linear_accuracy"] <= fig["best_straight_line_accuracy"] < RELU_MIN
        and fig["relu_accuracy"] >= RELU_MIN
    )
    explanation = (
        f"Four Dense layers without activation functions (2 -> {HIDDEN} -> {HIDDEN} -> {HIDDEN} -> 2, "
        f"{fig['parameters_each']} parameters) compute exactly what one 2 -> 2 layer computes: multiplying the four "
        f"weight matrices gives one 2x2 matrix W and one bias b, and x @ W.T + b differs from the network's output by "
        f"at most {err_init:.1e} on the data, {err_probe_init:.1e} on inputs far from it, and still "
        f"{err_trained:.1e} after training (float64 rounding). Depth adds nothing: a line stays a line.\n"
        f"On {len(y)} points of two interleaved spirals, {STEPS} full-batch Adam steps take the linear network to "
        f"{fig['linear_accuracy']:.1%} training accuracy (chance {fig['majority_rate']:.0%}). Its boundary is one "
        f"straight line, and no straight line does better than {fig['best_straight_line_accuracy']:.1%} on these "
        f"points (every possible line checked; cross-entropy training does not even look for the most accurate "
        f"one). The same network with ReLU between the layers reaches {fig['relu_accuracy']:.1%}: the bend in each "
        f"ReLU is what lets layers build curved boundaries."
    )
    grid = _regions(x, (linear, relu))
    return Result(
        name="linear_collapse",
        title="Why do networks need activation functions?",
        claim=f"without activations a 4-layer network is one linear map (max deviation <= {COLLAPSE_TOL:.0e}) and "
        f"cannot fit spirals (accuracy <= {LINEAR_MAX:.0%}, and no straight line reaches {RELU_MIN:.0%}); "
        f"with ReLU the same network can "
        f"(accuracy >= {RELU_MIN:.0%})",
        figures=fig,
        holds=bool(holds),
        explanation=explanation,
        plot=lambda f: _plot(f, x, y, grid, fig),
    )


def _regions(x, models, n: int = 150):
    """Each model's predicted class on an ``n`` x ``n`` grid covering ``x``: ``(xx, yy, [classes (n, n), ...])``."""
    lo, hi = x.min(axis=0) - 0.2, x.max(axis=0) + 0.2
    xx, yy = np.meshgrid(np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n))
    pts = np.stack([xx.ravel(), yy.ravel()], axis=1)
    with no_grad():
        return xx, yy, [m(Tensor(pts)).data.argmax(axis=1).reshape(n, n) for m in models]


def _plot(figure, x, y, grid, d) -> None:
    xx, yy, classes = grid
    titles = [f"no activation: {d['linear_accuracy']:.0%} (one straight line)", f"ReLU: {d['relu_accuracy']:.0%}"]
    for ax, c, title in zip(figure.subplots(1, 2), classes, titles):
        ax.contourf(xx, yy, c, levels=[-0.5, 0.5, 1.5], colors=["#c6dbef", "#fdd0a2"])
        ax.scatter(x[:, 0], x[:, 1], c=np.where(y == 0, "tab:blue", "tab:orange"), s=10, edgecolors="none")
        ax.set_title(title)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
