"""One neuron of a trained network, seen whole: its weights, bias and activation, its history over training, its
events, and the inputs from the data that excite it most.

``view_unit(model, layer, unit, probes=..., inputs=..., labels=...)`` gathers a ``UnitView``; ``format_unit(view)``
renders it as text (the weights as a small signed map when the inputs are images). A dense layer's unit is one
output neuron; a convolution's unit is one output channel (a filter), excited by an input where its feature map peaks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn.layers.conv import ConvNd
from ..nn.layers.dense import Dense
from ..tensor import Tensor
from .probes import activation_name

HISTORY_STATS = (
    "pre_mean",
    "pre_std",
    "out_mean",
    "active_frac",
    "saturated_frac",
    "weight_norm",
    "bias",
    "grad_norm",
    "update_ratio",
)
SHADES = (("#", 0.6), ("+", 0.2), (".", -0.2), ("-", -0.6), ("=", -np.inf))  # signed weight map, strongest first


@dataclass
class UnitView:
    layer: str
    unit: int
    kind: str  # "dense" or "conv"
    type: str
    activation: str
    weight: np.ndarray  # (fan_in,) for dense, (C, kh, kw) for a 2-D convolution
    bias: float
    history: dict | None = None  # step (n,) and each of HISTORY_STATS (n,) for this unit
    events: list = field(default_factory=list)
    top: list = field(default_factory=list)  # [(data index, response, label)], strongest first
    samples: int = 0  # how many inputs were searched for ``top``
    max_pool: int | None = None  # a convolution with max pooling fused in


def probed_layers(model) -> dict:
    """``{name: module}`` of the layers that have units: every Dense and convolution layer."""
    return {name or type(m).__name__: m for name, m in model.named_modules() if isinstance(m, (Dense, ConvNd))}


def _responses(model, module, unit: int, inputs, batch: int = 512) -> np.ndarray:
    """The unit's output for each input: a dense unit's activation, a conv channel's largest activation."""
    out = []

    def hook(mod, args, output):
        a = np.asarray(output.data)
        out.append(
            a[..., unit].reshape(len(a), -1).max(1) if isinstance(mod, Dense) else a[:, unit].reshape(len(a), -1).max(1)
        )

    handle = module.register_forward_hook(hook)
    was = model.training
    model.eval()
    try:
        with no_grad():
            for s in range(0, len(inputs), batch):
                model(Tensor(np.asarray(inputs[s : s + batch])))
    finally:
        handle.remove()
        model.train(was)
    return np.concatenate(out) if out else np.zeros(0)


def view_unit(model, layer: str, unit: int, probes=None, inputs=None, labels=None, top: int = 8) -> UnitView:
    """Everything about unit ``unit`` of layer ``layer`` (a module name from ``named_modules``).

    ``probes``: a ``Probe`` or saved ``ProbeHistory`` for the unit's history and events; ``inputs``/``labels``: data
    searched for the ``top`` inputs that excite the unit most."""
    layers = probed_layers(model)
    if layer not in layers:
        raise KeyError(f"no layer {layer!r} with units; layers: {', '.join(layers)}")
    m = layers[layer]
    units = m.out_channels if isinstance(m, ConvNd) else m.out_features
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < units:
        raise ValueError(f"layer {layer} has units 0 to {units - 1}; got unit {unit!r}")
    view = UnitView(
        layer=layer,
        unit=int(unit),
        kind="conv" if isinstance(m, ConvNd) else "dense",
        type=type(m).__name__,
        activation=activation_name(m),
        max_pool=getattr(m, "max_pool", None),
        weight=np.asarray(m.weight.data[unit], dtype=np.float64).copy(),
        bias=0.0 if m.bias is None else float(m.bias.data[unit]),
    )
    probes = getattr(probes, "probe", probes)  # a ProbeCallback holds its Probe
    if probes is not None and layer in probes.layers:
        h = probes.history(layer)
        view.history = {"step": np.asarray(h["step"]), **{s: np.asarray(h[s])[:, unit] for s in HISTORY_STATS}}
        view.events = [e for e in probes.events if e.get("layer") == layer and e.get("unit") == unit]
    if inputs is not None and len(inputs):
        r = _responses(model, m, unit, inputs)
        order = np.argsort(-r, kind="stable")[:top]
        view.top = [(int(i), float(r[i]), None if labels is None else labels[i]) for i in order]
        view.samples = len(r)
    return view


def weight_map(w: np.ndarray) -> list:
    """Rows of text drawing a 2-D weight array by sign and strength (``#`` strongly positive ... ``=`` strongly
    negative, each relative to the largest magnitude)."""
    m = np.abs(w).max() or 1.0
    rows = []
    for row in w / m:
        rows.append("".join(next(c for c, lo in SHADES if v >= lo) * 2 for v in row))
    return rows


def _f(v) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.4g}"


def format_unit(view: UnitView, image_shape: tuple | None = None, classes=None, rows: int = 10, source=None) -> str:
    """The view as text: the unit, its weights (a signed map when they have an image's shape), its history
    (``rows`` records evenly spread over training), its events and its top inputs (``source``: a function of a data
    index naming where that input comes from, such as ``data.csv row 1234``; default ``sample INDEX``)."""
    w = view.weight
    pool = f", max-pooled over {view.max_pool}x{view.max_pool} windows" if view.max_pool else ""
    lines = [
        f"layer {view.layer} ({view.type}), unit {view.unit}: output = {view.activation}(w . x + b){pool}",
        f"  bias b = {view.bias:.6g}; {w.size} weights: norm {np.sqrt((w**2).sum()):.4g}, mean {w.mean():.4g}, "
        f"min {w.min():.4g}, max {w.max():.4g}",
    ]
    shape = tuple(w.shape[1:]) if view.kind == "conv" and w.ndim == 3 else image_shape
    if shape is not None and int(np.prod(shape)) == w.size:
        img = w.reshape(shape)
        img = img if img.ndim == 2 else img.mean(0)
        lines.append(
            "  weights drawn as the input image (# strongly positive, + positive, . near 0, - negative, "
            "= strongly negative):"
        )
        lines += ["    " + r for r in weight_map(img)]
    elif view.kind == "dense":
        order = np.argsort(-np.abs(w), kind="stable")[:5]
        lines.append("  strongest inputs: " + ", ".join(f"x[{i}] * {w[i]:+.4g}" for i in order))
    h = view.history
    if h is None:
        lines.append("  history: none (the run was trained without probes)")
    else:
        n = len(h["step"])
        lines.append(
            f"  history: {n} probe records from step {int(h['step'][0])} to {int(h['step'][-1])}"
            if n
            else "  history: no records"
        )
        if n:
            pick = np.unique(np.linspace(0, n - 1, min(rows, n)).round().astype(int))
            head = ("step", "pre mean", "pre std", "active", "weight norm", "bias", "grad norm", "update/weight")
            table = [head] + [
                (
                    str(int(h["step"][i])),
                    _f(h["pre_mean"][i]),
                    _f(h["pre_std"][i]),
                    f"{h['active_frac'][i]:.0%}",
                    _f(h["weight_norm"][i]),
                    _f(h["bias"][i]),
                    _f(h["grad_norm"][i]),
                    _f(h["update_ratio"][i]),
                )
                for i in pick
            ]
            widths = [max(len(r[j]) for r in table) for j in range(len(head))]
            lines += ["    " + "  ".join(c.rjust(wd) for c, wd in zip(r, widths)) for r in table]
    if view.events:
        lines.append(f"  events ({len(view.events)}):")
        lines += [f"    {e['message']}" for e in view.events]
    elif h is not None:
        lines.append("  events: none (it never died, saturated, exploded or went silent while watched)")
    if view.top:
        lines.append(f"  the {len(view.top)} inputs (of {view.samples}) that excite it most:")
        for i, r, y in view.top:
            label = "" if y is None else f", label {classes[int(y)] if classes else y}"
            lines.append(f"    {f'sample {i}' if source is None else source(i)}: output {r:.4g}{label}")
    return "\n".join(lines)
