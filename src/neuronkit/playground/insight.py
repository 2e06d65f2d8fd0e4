"""What the page asks about one neuron or the whole run, answered by the library's own code (no second copy of it):

- ``revive``: fresh incoming weights and bias for a unit, drawn by the layer's own initialiser (``nn.Dense``), and its
  optimizer state cleared, so a dead unit starts over while the rest of the network keeps what it learned;
- ``explain``: the terms of one neuron on one input, from ``nn.Neuron.explain`` (as ``layer.neuron(i).explain(x)``);
- ``top_inputs``: the inputs that excite a unit most, from ``inspect.unit.view_unit`` (as ``neuronkit inspect --top``);
- ``diagnosis``: the ranked plain-language findings of ``inspect.diagnose`` (as ``neuronkit diagnose``).

Each runs in the session's worker between two steps, on bounded data (``EXPLAIN``/``TOP_SEARCH``/``DIAGNOSE_SAMPLES``).
"""

from __future__ import annotations

import base64

import numpy as np

from ..inspect import diagnose
from ..inspect.diagnosis import render
from ..inspect.unit import view_unit
from ..nn.layers.dense import Dense
from .data import PlayData
from .frames import dense_layers, layer_outputs

TOP_SEARCH = 2000  # test samples searched for the inputs that excite a unit most
TOP_K = 6  # thumbnails shown
TEXT_CHARS = 300  # of a text shown
DIAGNOSE_SAMPLES = 1000  # test samples the live diagnosis looks at (the whole test split of the 2-D sets)
FINDINGS_SHOWN = 10


def revive(model, optimizer, layer: int, unit: int, generator) -> None:
    """Re-draw unit ``unit`` of dense layer ``layer``: its weight row and bias from the layer's initialiser (a fresh
    layer of the same shape, init and bias init, from ``generator``), and zero the optimizer's per-parameter buffers
    (momentum, Adam's moments) for that row, which a long-dead unit has decayed towards nothing."""
    m = dense_layers(model)[layer][1]
    fresh = Dense(
        m.in_features,
        m.out_features,
        init=m.init,
        bias_init=m.bias_init,
        generator=generator,
        bias=m.bias is not None,
        dtype=m.weight.data.dtype.name,
    )
    m.weight.data[unit] = fresh.weight.data[unit]
    if m.bias is not None:
        m.bias.data[unit] = fresh.bias.data[unit]
    for p in (m.weight, m.bias):
        state = optimizer.state.get(p) if p is not None else None
        for v in (state or {}).values():
            if isinstance(v, np.ndarray) and v.shape == p.data.shape:
                v[unit] = 0


def explain(model, data: PlayData, layer: int, unit: int, sample: int) -> dict:
    """Every term of the neuron on test sample ``sample``: its inputs (the data for the first layer, the previous
    layer's outputs, with any ablation, otherwise), ``w_i x_i``, their sum, the bias, ``z`` and the activation, from
    ``Neuron.explain``; plus the value the model's forward pass gives for it (0 when the unit is ablated)."""
    m = dense_layers(model)[layer][1]
    x = data.x_test[sample : sample + 1]
    outs = layer_outputs(model, x)
    inputs = x[0] if layer == 0 else outs[layer - 1][0]
    e = m.neuron(unit).explain(np.asarray(inputs, dtype=m.weight.data.dtype))
    return {
        "type": "explain",
        "layer": layer,
        "unit": unit,
        "sample": sample,
        "label": data.classes[int(data.y_test[sample])],
        "names": data.input_names if layer == 0 else None,
        "inputs": e.inputs.astype(np.float64).tolist(),
        "weights": e.weights.astype(np.float64).tolist(),
        "products": e.products.astype(np.float64).tolist(),
        "weighted_sum": e.weighted_sum,
        "bias": e.bias,
        "pre_activation": e.pre_activation,
        "activation": e.activation,
        "output": e.output,
        "in_model": float(outs[layer][0, unit]),
    }


def _thumb(x: np.ndarray) -> str:
    """One image as base64 bytes 0..255 (its own min to max: the page's data are standardised)."""
    lo, hi = float(x.min()), float(x.max())
    q = np.round((x - lo) / max(hi - lo, 1e-12) * 255).astype(np.uint8)
    return base64.b64encode(q.tobytes()).decode("ascii")


def top_inputs(model, data: PlayData, layer: int, unit: int, k: int = TOP_K) -> dict | None:
    """The ``k`` test inputs (of the first ``TOP_SEARCH``) that excite a first-layer unit of an image or text set most,
    found by ``view_unit`` as ``neuronkit inspect --top`` finds them, each with its response, label and thumbnail (or
    its text, at most ``TEXT_CHARS`` characters); None for other layers or data."""
    if layer != 0 or (data.image_shape is None and data.test_texts is None):
        return None
    name = dense_layers(model)[0][0]
    n = min(TOP_SEARCH, len(data.y_test))
    view = view_unit(model, name, unit, inputs=data.x_test[:n], labels=data.y_test[:n], top=k)
    items = [{"sample": i, "response": r, "label": data.classes[int(y)]} for i, r, y in view.top]
    for it in items:
        if data.image_shape is not None:
            it["image"] = _thumb(data.x_test[it["sample"]])
        else:
            it["text"] = data.test_texts[it["sample"]][:TEXT_CHARS]
    shape = list(data.image_shape) if data.image_shape is not None else None
    return {"searched": view.samples, "shape": shape, "items": items}


def finding_dict(f) -> dict:
    return {
        "kind": f.kind,
        "severity": f.severity,
        "text": str(f),
        "remedy": f.remedy,
        "fix": f.fix,
    }


def diagnosis(model, data: PlayData, history, probe, initial, lr=None) -> tuple:
    """``(findings, message)``: ``inspect.diagnose`` of the live model on at most ``DIAGNOSE_SAMPLES`` test samples
    (units silent on all of them are dead only when that is the whole split), its initial model, its epoch history
    and probe; the message carries the ``FINDINGS_SHOWN`` first findings and the text ``neuronkit diagnose`` prints."""
    n = min(DIAGNOSE_SAMPLES, len(data.y_test))
    batch = (data.x_test[:n], data.y_test[:n])
    with np.errstate(all="ignore"):
        findings = diagnose(
            model, batch, history=history, probe=probe, initial=initial, lr=lr, whole_split=n == len(data.y_test)
        )
    message = {
        "type": "diagnosis",
        "samples": n,
        "findings": [finding_dict(f) for f in findings[:FINDINGS_SHOWN]],
        "more": max(0, len(findings) - FINDINGS_SHOWN),
        "fixable": any(f.fix for f in findings),
        "text": render(findings, limit=FINDINGS_SHOWN),
    }
    return findings, message
