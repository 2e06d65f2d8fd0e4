"""What is a neuron? It computes ``activation(w . x + b)``: one weight per input, a bias, and a function.

A ``Dense`` layer of sigmoid neurons in float64 gets a random input; for the unit this input excites most,
``layer.neuron(unit).explain(x)`` lists every term ``x_j * w_j``, their sum, the bias and the activation. The terms are
added up and passed through the sigmoid again here, by hand with NumPy (``1 / (1 + exp(-z))``), and compared with the
layer's own output for that unit.
"""

from __future__ import annotations

import numpy as np

from .. import nn
from ..tensor import Tensor
from .result import Result

IN_FEATURES, UNITS = 6, 4
TOLERANCE = 1e-12  # float64: summing 6 products in another order changes the result by ~1e-16


def run(seed: int = 0) -> Result:
    rng = np.random.default_rng(seed)
    layer = nn.Dense(IN_FEATURES, UNITS, activation="sigmoid", generator=rng, dtype="float64")
    x = rng.normal(0.0, 1.0, IN_FEATURES)
    layer_out = layer(Tensor(x)).data  # (UNITS,): what the layer computes, all units at once
    unit = int(layer_out.argmax())
    e = layer.neuron(unit).explain(x)

    by_hand_z = float(np.sum(e.inputs * e.weights)) + e.bias
    by_hand = float(1.0 / (1.0 + np.exp(-by_hand_z)))
    fig = {
        "unit": unit,
        "inputs": e.inputs.tolist(),
        "weights": e.weights.tolist(),
        "products": e.products.tolist(),
        "weighted_sum": e.weighted_sum,
        "bias": e.bias,
        "pre_activation": e.pre_activation,
        "output": e.output,
        "layer_output": float(layer_out[unit]),
        # the three checks: the explanation against the layer; the terms, summed and squashed by hand, against both
        "explained_vs_layer": abs(e.output - float(layer_out[unit])),
        "by_hand_vs_layer": abs(by_hand - float(layer_out[unit])),
        "sum_plus_bias_vs_pre_activation": abs(e.weighted_sum + e.bias - e.pre_activation),
        "tolerance": TOLERANCE,
    }
    holds = max(fig["explained_vs_layer"], fig["by_hand_vs_layer"], fig["sum_plus_bias_vs_pre_activation"]) <= TOLERANCE
    terms = ", ".join(f"{a:+.3f}*{w:+.3f}" for a, w in zip(e.inputs, e.weights))
    explanation = (
        f"Unit {unit} of a Dense({IN_FEATURES} -> {UNITS}, sigmoid) layer has one weight per input and a bias. "
        f"For the input x it multiplies each input by its weight ({terms}), adds the six products "
        f"(w . x = {e.weighted_sum:.6f}), adds its bias ({e.bias:+.6f}) to get z = {e.pre_activation:.6f}, and "
        f"squashes z with the sigmoid 1 / (1 + exp(-z)) = {e.output:.6f}.\n"
        f"The layer's own output for unit {unit} is {layer_out[unit]:.6f}: the explanation differs from it by "
        f"{fig['explained_vs_layer']:.1e}, the same sum done by hand by {fig['by_hand_vs_layer']:.1e} (float64; "
        f"allowed {TOLERANCE:.0e}). A neuron is nothing more than this: a weighted vote of its inputs, shifted by "
        f"a bias, passed through a fixed function. Learning means changing w and b."
    )
    return Result(
        name="neuron",
        title="What does one neuron compute?",
        claim="a neuron computes activation(w . x + b): its terms, summed by hand, reproduce the layer's output "
        f"to within {TOLERANCE:.0e}",
        figures=fig,
        holds=bool(holds),
        explanation=explanation,
        plot=lambda f: _plot(f, fig),
    )


def _plot(figure, d) -> None:
    ax, ax2 = figure.subplots(1, 2, width_ratios=[3, 2])
    products = d["products"]
    labels = [f"x{j + 1}*w{j + 1}" for j in range(len(products))] + ["bias", "z = sum + b"]
    values = products + [d["bias"], d["pre_activation"]]
    colors = ["tab:blue" if v >= 0 else "tab:red" for v in products] + ["tab:gray", "tab:purple"]
    ax.bar(range(len(values)), values, color=colors)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(values)), labels, rotation=30, ha="right")
    ax.set_ylabel("contribution to z")
    ax.set_title(f"unit {d['unit']}: the terms of z = w . x + b")

    z = np.linspace(min(-6.0, d["pre_activation"] - 1), max(6.0, d["pre_activation"] + 1), 200)
    ax2.plot(z, 1 / (1 + np.exp(-z)), color="tab:purple")
    ax2.plot([d["pre_activation"]], [d["output"]], "o", color="black")
    ax2.annotate(
        f"z = {d['pre_activation']:.3f}\noutput = {d['output']:.3f}\nlayer says {d['layer_output']:.3f}",
        (d["pre_activation"], d["output"]),
        textcoords="offset points",
        xytext=(10, -40),
    )
    ax2.set_xlabel("z")
    ax2.set_ylabel("sigmoid(z)")
    ax2.set_title("the activation squashes z")
