"""ONNX exporters of the sequence encoders (``nn/layers/encoders.py``): each takes ``(x (B, T, E), lengths (B,))``.

- ``ConvEncoder``: padding set to zero (Where), ``width - 1`` zero steps appended (so a short text has a window of each
  width, as neuronkit pads it), Transpose to (B, E, T), one Conv + Relu per width, and the masked maximum over each
  text's ``max(n - k + 1, 1)`` windows.
- ``RecurrentEncoder``: the recurrent layer's nodes (``onnx_recurrent``), then masked max/mean over the outputs or
  the last layer's final states (Gather on h_n, Concat of the directions).
- ``TransformerTextEncoder``: Mul by sqrt(E), the positional layer, the encoder with the key-padding mask (Not of the
  step mask), then masked mean/max (``SequencePool``'s nodes).
The time axis stays dynamic.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np

from . import onnx_layers as L
from .onnx import Value, register_onnx


def _step_mask_data(x: Value, lengths: Value) -> np.ndarray:
    n = np.asarray(lengths.data)
    return np.arange(x.data.shape[1])[None, :] < n[:, None]


def _pool(g, mode: str, path: str, h: Value, lengths: Value) -> str:
    return L.sequence_pool(g, SimpleNamespace(mode=mode), path, h, lengths)


@register_onnx("ConvEncoder", axes=L.sequence_axes)
def conv_encoder(g, m, path, x, lengths):
    mask, n = L.step_mask(g, x, lengths)
    width = max(m.kernel_sizes)
    xm = g.op("Where", g.unsqueeze(mask, [2]), x.name, g.scalar(0.0))
    xp = g.op("Pad", xm, g.ints([0, 0, 0, 0, width - 1, 0]))  # (B, T + width - 1, E)
    data = np.pad(x.data * _step_mask_data(x, lengths)[:, :, None], [(0, 0), (0, width - 1), (0, 0)])
    xt = Value(g.op("Transpose", xp, perm=[0, 2, 1]), np.ascontiguousarray(data.transpose(0, 2, 1)))  # (B, E, T')
    pooled = []
    for i, (conv, k) in enumerate(zip(m.convs, m.kernel_sizes)):
        y = g.export(conv, [xt], L.child(path, f"convs.{i}")).name
        h = g.op("Transpose", g.op("Relu", y), perm=[0, 2, 1])  # (B, windows, F)
        windows = g.op("Max", g.op("Sub", n, g.const(np.array(k - 1, np.int64), "k")), g.const(np.array(1, np.int64)))
        t = g.squeeze(g.op("Shape", h, start=1, end=2), [0])
        steps = g.op("Range", g.const(np.array(0, np.int64), "zero"), t, g.const(np.array(1, np.int64), "one"))
        valid = g.op("Less", g.unsqueeze(steps, [0]), g.unsqueeze(windows, [1]))
        pooled.append(g.reduce("ReduceMax", g.op("Where", g.unsqueeze(valid, [2]), h, g.scalar(-np.inf)), [1]))
    return pooled[0] if len(pooled) == 1 else g.op("Concat", *pooled, axis=-1)


@register_onnx("RecurrentEncoder", axes=L.sequence_axes)
def recurrent_encoder(g, m, path, x, lengths):
    outs = g.export(m.rnn, [x, lengths], L.child(path, "rnn"))  # output, h_n (, c_n)
    if m.pool != "last":
        return _pool(g, m.pool, path, outs[0], lengths)
    h_n = outs[1].name  # (layers x directions, B, H)
    d = m.rnn.directions
    total = m.rnn.num_layers * d
    last = [g.op("Gather", h_n, g.const(np.array(total - d + i, np.int64), "index"), axis=0) for i in range(d)]
    return last[0] if d == 1 else g.op("Concat", *last, axis=-1)


@register_onnx("TransformerTextEncoder", axes=L.sequence_axes)
def transformer_text_encoder(g, m, path, x, lengths):
    h = x
    if m.scale:
        s = math.sqrt(m.out_features)
        h = Value(g.op("Mul", x.name, g.scalar(s)), (x.data * s).astype(x.data.dtype))
    if m.positional is not None:
        h = g.export(m.positional, [h], L.child(path, "positional"))
    mask, _ = L.step_mask(g, x, lengths)
    padding = Value(g.op("Not", mask), ~_step_mask_data(x, lengths))
    h = g.export(m.encoder, [h, None, padding], L.child(path, "encoder"))
    return _pool(g, m.pool, path, h, lengths)
