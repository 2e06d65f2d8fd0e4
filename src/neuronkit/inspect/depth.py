"""How the signal changes with depth at one forward and backward pass: the checks of ``check_before_training`` that
judge a whole stack of layers against an absolute expectation rather than against each other.

- ``vanishing_signal``: the forward signal fades with depth (a layer's output std below ``ACT_RATIO_LOW`` of the
  input's, falling layer after layer) so that the output hardly depends on the input. It is the root cause of
  several symptoms, which it names: units that never fire on the near-constant inputs, tiny weight gradients in
  every layer (the gradient of a weight is the activation below it times the signal from above), logits that do not
  vary. He et al. (2015) Fig. 3: 30 ReLU layers with Xavier initialisation halve the signal's variance at each layer.
- ``exploding_gradient``: the weight gradients grow from the last hidden layer back to the first by more than
  ``GRAD_GROWTH`` with a gradient larger than its weights somewhere, or are above ``GRAD_RATIO_HIGH`` times their
  weights anywhere, or one plain step at ``lr`` would move the weights by more than their norm.
"""

from __future__ import annotations

import math

import numpy as np

from .findings import (
    ACT_RATIO_LOW,
    DEAD_CAPABLE,
    GRAD_GROWTH,
    GRAD_RATIO_HIGH,
    OUTPUT_STD_LOW,
    Finding,
    act_name_of,
    layers_text,
)

MIN_DEPTH = 3  # weighted layers a depth trend needs


def check_depth(records, rows, in_std: float, when: str, lr=None) -> list:
    """``records``: (name, module, output array) in forward order; ``rows``: (name, weight norm, gradient norm,
    ratio) per weighted layer in forward order (see ``diagnostics``)."""
    out = []
    weighted = [(n, m, a) for n, m, a in records if getattr(m, "weight", None) is not None]
    base = in_std if in_std > 0 and math.isfinite(in_std) else 1.0
    if len(weighted) >= MIN_DEPTH:
        out += _vanishing_signal(weighted, rows, base, when, lr)
    out += _exploding(rows, when, lr)
    return out


def _vanishing_signal(weighted, rows, base, when, lr) -> list:
    stds = [float(np.std(a)) for _, _, a in weighted]
    if not all(math.isfinite(s) for s in stds):
        return []
    names = [n for n, _, _ in weighted]
    hidden = stds[:-1]  # the output layer's std is output_scale's
    faded = [n for n, s in zip(names[:-1], hidden) if s < ACT_RATIO_LOW * base]
    if not faded or hidden[-1] >= hidden[0] * ACT_RATIO_LOW:  # not a fall with depth
        return []
    per_layer = (max(hidden[-1], 1e-300) / hidden[0]) ** (1 / max(len(hidden) - 1, 1))
    ratios = [r[3] for r in rows if math.isfinite(r[3])]
    med = float(np.median(ratios)) if ratios else math.nan
    acts = {act_name_of(m) for _, m, _ in weighted[:-1]}
    relu = bool(acts & set(DEAD_CAPABLE)) or "leaky_relu" in acts
    init = "he_uniform" if relu else "xavier_uniform"
    scheme = "He initialisation" if relu else "Xavier initialisation"
    step = "" if lr is None else f"; one step at learning rate {lr:g} moves them by {lr * med:.2g} of their norm"
    severe = stds[-1] < OUTPUT_STD_LOW or len(faded) >= len(hidden) / 2
    return [
        Finding(
            "vanishing_signal",
            "error" if severe else "warning",
            {"layers": faded, "decay_per_layer": per_layer, "grad_ratio": med},
            f"{when}, the signal fades with depth: the activations' standard deviation falls by a factor of "
            f"{per_layer:.2g} per layer, from {hidden[0]:.3g} after layer {names[0]} to {hidden[-1]:.3g} after layer "
            f"{names[-2]} ({layers_text(faded)} under {ACT_RATIO_LOW:.0%} of the input's), the outputs vary by only "
            f"{stds[-1]:.2g}, and the weight gradients are {med:.2g} of the weights (median over layers{step}): the "
            "output hardly depends on the input, so the network cannot learn.",
            f"initialise for the depth: {scheme} keeps the signal's scale from layer to layer (--init {init}); or "
            "use fewer layers (--hidden), normalisation layers, or residual connections.",
            {"init": init},
        )
    ]


def _exploding(rows, when, lr) -> list:
    fin = [r for r in rows if math.isfinite(r[3])]
    if not fin:
        return []
    worst = max(fin, key=lambda r: r[3])
    name, _, _, ratio = worst
    hidden = fin[:-1]
    growth = hidden[0][2] / hidden[-1][2] if len(hidden) >= MIN_DEPTH - 1 and hidden[-1][2] > 0 else 1.0
    step = None if lr is None else lr * ratio
    grows = growth > GRAD_GROWTH and ratio > 1
    if not (grows or ratio > GRAD_RATIO_HIGH or (step is not None and step > 1)):
        return []
    what = (
        f"the weight gradients grow {growth:.3g}x from layer {hidden[-1][0]} back to layer {hidden[0][0]}, "
        if grows
        else ""
    )
    moves = "" if step is None else f"; one step at learning rate {lr:g} would move them by {step:.3g} of their norm"
    return [
        Finding(
            "exploding_gradient",
            "error" if ratio > GRAD_RATIO_HIGH or (step is not None and step > 1) else "warning",
            {"layer": name, "ratio": ratio, "growth": growth},
            f"{when}, {what}and the weight gradient of layer {name} is {ratio:.3g} times its weights{moves}: the "
            "updates overshoot, the weights swing further each step, and training heads for divergence.",
            "use smaller initial weights (--init he_uniform for ReLU, --init xavier_uniform for tanh/sigmoid), "
            "gradient clipping (--clip-grad-norm 1), a smaller learning rate (--lr), or normalisation layers.",
            {"init": "xavier_uniform", "clip_grad_norm": 1.0},
        )
    ]
