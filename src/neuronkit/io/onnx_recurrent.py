"""ONNX exporters of the recurrent layers ``RNN``, ``LSTM`` and ``GRU`` (``nn/layers/recurrent.py``).

Each layer becomes one ONNX ``RNN``/``LSTM``/``GRU`` node per stacked layer (both directions in one node), fed
time-major. The weights are reordered from PyTorch's gate order, which neuronkit keeps, to ONNX's:

- LSTM: PyTorch stacks (i, f, g, o), ONNX (i, o, f, c): blocks [0, 3, 1, 2];
- GRU: PyTorch (r, z, n), ONNX (z, r, h): blocks [1, 0, 2], with ``linear_before_reset=1`` (PyTorch applies the reset
  gate to ``h W_hn^T + b_hn``, not to h before the product);
- RNN: one block; ``activations`` Tanh or Relu.

``lengths`` becomes ``sequence_lens`` (int32): steps past a sequence's length are skipped, their outputs zero, and the
reverse direction starts at each sequence's last valid step, as neuronkit does. Dropout between layers is the
identity (evaluation). An initial state ``h0`` is not exported (the graph starts from zeros).
"""

from __future__ import annotations

import numpy as np

from .onnx import ExportError, register_onnx

GATE_ORDER = {"LSTM": [0, 3, 1, 2], "GRU": [1, 0, 2], "RNN": [0]}
"""ONNX gate block k is PyTorch's block GATE_ORDER[op][k]."""


def recurrent_axes(module, n_inputs: int, n_outputs: int) -> tuple:
    """Input x and output: (batch, time) or (time, batch) as the layer's layout; lengths (batch,); h_n/c_n (L*D, batch,
    H)."""
    seq = {0: "batch", 1: "time"} if module.batch_first else {0: "time", 1: "batch"}
    return [seq] + [{0: "batch"}] * (n_inputs - 1), [seq] + [{1: "batch"}] * (n_outputs - 1)


def _reorder(w: np.ndarray, op: str, h: int) -> np.ndarray:
    return np.concatenate([w[k * h : (k + 1) * h] for k in GATE_ORDER[op]], axis=0)


def _layer_weights(g, m, op: str, layer: int) -> list:
    """W (D, G*H, in), R (D, G*H, H) and B (D, 2*G*H) (or "" without bias) of one stacked layer, in ONNX gate order."""
    h, p = m.hidden_size, m._parameters
    sfx = ("", "_reverse") if m.bidirectional else ("",)
    w = np.stack([_reorder(p[f"weight_ih_l{layer}{s}"].data, op, h) for s in sfx])
    r = np.stack([_reorder(p[f"weight_hh_l{layer}{s}"].data, op, h) for s in sfx])
    ins = [g.const(w, f"W_l{layer}"), g.const(r, f"R_l{layer}")]
    if m.bias:
        b = [np.concatenate([_reorder(p[f"{k}_l{layer}{s}"].data, op, h) for k in ("bias_ih", "bias_hh")]) for s in sfx]
        ins.append(g.const(np.stack(b), f"B_l{layer}"))
    else:
        ins.append("")
    return ins


@register_onnx("RNN", "LSTM", "GRU", axes=recurrent_axes)
def recurrent(g, m, path, x, lengths=None, h0=None):
    op = type(m).__name__
    if h0 is not None:
        raise ExportError(f"export_onnx: {op} at {path!r}: an initial state h0 is not exported (call it without h0)")
    h, d = m.hidden_size, 2 if m.bidirectional else 1
    attrs = {"hidden_size": h, "direction": "bidirectional" if m.bidirectional else "forward"}
    if op == "RNN":
        attrs["activations"] = ["Relu" if m.nonlinearity == "relu" else "Tanh"] * d
    elif op == "GRU":
        attrs["linear_before_reset"] = 1
    seq = g.op("Transpose", x.name, perm=[1, 0, 2]) if m.batch_first else x.name  # (T, B, in)
    lens = "" if lengths is None else g.cast(lengths.name, np.int32)
    finals = [[] for _ in range(2 if op == "LSTM" else 1)]  # Y_h (and Y_c) of each layer
    for layer in range(m.num_layers):
        outs = g.op(op, seq, *_layer_weights(g, m, op, layer), lens, outputs=len(finals) + 1, **attrs)
        # Y (T, D, B, H) -> (T, B, D*H): the directions side by side, as the next layer and the output take them
        seq = g.op("Reshape", g.op("Transpose", outs[0], perm=[0, 2, 1, 3]), g.ints([0, 0, -1]))
        for k, state in enumerate(outs[1:]):
            finals[k].append(state)
    output = g.op("Transpose", seq, perm=[1, 0, 2]) if m.batch_first else seq
    return [output, *(s[0] if len(s) == 1 else g.op("Concat", *s, axis=0) for s in finals)]  # h_n (L*D, B, H)
