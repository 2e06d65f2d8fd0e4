"""Is backpropagation right? It gives the same gradients as nudging each weight and watching the loss.

Backpropagation computes every ``dLoss/dw`` in one backward pass, by the chain rule. The slow, obvious way is to
nudge one weight by ``+-eps`` and measure how the loss moves: ``(L(w + eps) - L(w - eps)) / (2 eps)``. On a small
tanh network in float64, every entry of every parameter is checked both ways with
``neuronkit.inspect.check_gradients``. ``eps = 1e-5`` balances the two errors of central differences: the
rounding of the loss (about ``1e-16 * L / eps``) and the curvature term (about ``eps**2``).
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..inspect.gradcheck import check_gradients
from .result import Result

SIZES = (4, 6, 5, 3)  # inputs, two tanh hidden layers, classes
BATCH, EPS, MAX_REL = 10, 1e-5, 1e-6


def build(rng) -> nn.Sequential:
    """4 -> 6 (tanh) -> 5 (tanh) -> 3, float64: smooth everywhere, so central differences have no kink to trip on."""
    a, b, c, d = SIZES
    return nn.Sequential(
        nn.Dense(a, b, activation="tanh", generator=rng, dtype="float64"),
        nn.Dense(b, c, activation="tanh", generator=rng, dtype="float64"),
        nn.Dense(c, d, generator=rng, dtype="float64"),
    )


def compare(model, batch) -> dict:
    """Every entry of every parameter of ``model``: backprop vs central differences on ``batch`` (cross-entropy)."""
    total = model.num_parameters()
    report = check_gradients(model, batch, eps=EPS, max_per_param=total)
    worst = max(report.rows, key=lambda r: r.max_rel_error)
    return {
        "loss": report.loss,
        "parameters": total,
        "entries_checked": sum(r.checked for r in report.rows),
        "max_rel_error": max(r.max_rel_error for r in report.rows),
        "max_abs_error": max(r.max_abs_error for r in report.rows),
        "worst_parameter": worst.name,
        "worst_backprop": worst.analytical,
        "worst_finite_difference": worst.numerical,
        "per_parameter_max_rel_error": {r.name: r.max_rel_error for r in report.rows},
        "eps": EPS,
    }


def run(seed: int = 0) -> Result:
    rng = np.random.default_rng(seed)
    model = build(rng)
    x = rng.normal(0.0, 1.0, (BATCH, SIZES[0]))
    y = rng.integers(0, SIZES[-1], BATCH)
    fig = compare(model, (x, y))
    holds = fig["entries_checked"] == fig["parameters"] and fig["max_rel_error"] < MAX_REL
    explanation = (
        f"A {' -> '.join(map(str, SIZES))} tanh network in float64, cross-entropy on a batch of {BATCH} "
        f"(loss {fig['loss']:.4f}). Backpropagation gave all {fig['parameters']} gradients in one backward pass; "
        f"nudging each of the {fig['entries_checked']} weights and biases by +-{EPS:g} and measuring the loss took "
        f"{2 * fig['entries_checked']} more forward passes. The two agree to a relative error of at most "
        f"{fig['max_rel_error']:.1e} (worst: {fig['worst_parameter']}, backprop {fig['worst_backprop']:.8g} vs "
        f"finite differences {fig['worst_finite_difference']:.8g}; largest absolute difference "
        f"{fig['max_abs_error']:.1e}).\n"
        f"So backpropagation is not an approximation: it is the chain rule applied exactly, layer by layer from the "
        f"loss back to the inputs, and its cost is that of a few forward passes however many weights there are, "
        f"instead of two forward passes per weight. A bug in any backward formula would show here as an error of "
        f"percents, not of {MAX_REL:.0e}."
    )
    return Result(
        name="backprop",
        title="Does backpropagation compute the right gradients?",
        claim="backpropagation gives the same gradient as central finite differences for every parameter entry "
        f"(max relative error < {MAX_REL:.0e}, float64)",
        figures=fig,
        holds=bool(holds),
        explanation=explanation,
        plot=lambda f: _plot(f, fig),
        size=(8.0, 4.0),
    )


def _plot(figure, d) -> None:
    ax = figure.subplots()
    names = list(d["per_parameter_max_rel_error"])
    errs = [max(v, 1e-18) for v in d["per_parameter_max_rel_error"].values()]  # log axis: no zeros
    ax.barh(range(len(names)), errs, color="tab:blue")
    ax.axvline(MAX_REL, color="tab:red", linestyle="--", label=f"claim: < {MAX_REL:.0e}")
    ax.axvline(1e-2, color="tab:gray", linestyle=":", label="a wrong formula: ~1e-2 or more")
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel("max relative error, backprop vs finite differences")
    ax.set_title(f"all {d['entries_checked']} gradient entries agree to {d['max_rel_error']:.1e}")
    ax.legend(loc="lower right", fontsize=8)
