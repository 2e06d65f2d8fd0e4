"""ONNX exporters of the attention layers (``nn/layers/attention.py``, ``transformer.py``, ``positional.py``).

``MultiHeadAttention`` is composed from MatMul, Reshape/Transpose (heads), Softmax and the masks, as neuronkit
computes it: ``softmax(q_h k_h^T / sqrt(D) + mask) v_h`` per head, then ``out_proj``. The masks become additive
(True in a boolean ``key_padding_mask``/``attn_mask`` = -inf); a query whose keys are all masked gets zero weights, as
in neuronkit (ONNX's Softmax alone would give NaN). ``TransformerEncoderLayer``/``TransformerEncoder`` reuse that,
``LayerNorm`` and ``Dense`` (dropout is the identity in evaluation). The positional layers add the first L rows of
their table, L read from the input's shape at run time. The time axis stays dynamic throughout.
"""

from __future__ import annotations

import math

import numpy as np

from .onnx import ExportError, Value, register_onnx


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def attention_axes(module, n_inputs: int, n_outputs: int) -> tuple:
    """Sequence inputs and outputs: batch and time symbolic, in the layer's layout; masks (B, S) and (L, S).

    onnxruntime holds every dimension of one symbolic name to one size, so keys get their own (``"source"``)."""
    first = getattr(module, "batch_first", True)
    seq = {0: "batch", 1: "time"} if first else {0: "time", 1: "batch"}
    name = type(module).__name__
    if name == "MultiHeadAttention":  # (query, key, value, key_padding_mask); keys may be longer or shorter
        src = {0: "batch", 1: "source"} if first else {0: "source", 1: "batch"}
        ins = [seq, src, src, {0: "batch", 1: "source"}][:n_inputs]
    elif name in ("TransformerEncoderLayer", "TransformerEncoder"):  # (src, src_mask, src_key_padding_mask)
        ins = [seq, {0: "time", 1: "time"}, {0: "batch", 1: "time"}][:n_inputs]
    else:
        ins = [seq] * n_inputs
    return ins, [seq] * n_outputs


def _additive(g, mask: Value, dt) -> str:
    """A mask as an additive float: booleans True -> -inf (ignored key), False -> 0; floats as they are."""
    if mask.data.dtype == np.bool_:
        return g.op("Where", mask.name, g.scalar(-np.inf), g.scalar(0.0))
    if mask.data.dtype.kind != "f":
        raise ExportError(f"export_onnx: a mask must be boolean or floating, got {mask.data.dtype}")
    return mask.name if mask.data.dtype == dt else g.cast(mask.name, dt)


def _heads(g, x: str, h: int, d: int, perm) -> str:
    """(B, L, E) -> (B, H, L, D) (perm 0, 2, 1, 3) or (B, H, D, L) (perm 0, 2, 3, 1)."""
    return g.op("Transpose", g.op("Reshape", x, g.ints([0, 0, h, d])), perm=perm)


def _project(g, m, x: str, i: int) -> str:
    e = m.embed_dim
    w = m.in_proj_weight.data[i * e : (i + 1) * e]
    y = g.op("MatMul", x, g.const(np.ascontiguousarray(w.T), "in_proj_weight_t"))
    if m.in_proj_bias is not None:
        y = g.op("Add", y, g.const(m.in_proj_bias.data[i * e : (i + 1) * e], "in_proj_bias"))
    return y


@register_onnx("MultiHeadAttention", axes=attention_axes)
def multi_head_attention(g, m, path, query, key=None, value=None, key_padding_mask=None, need=None, attn_mask=None):
    if query.data.ndim != 3:
        raise ExportError(f"export_onnx: MultiHeadAttention at {path!r}: only batched (3-D) inputs are exported")
    key = query if key is None else key
    value = key if value is None else value
    dt, h, d, e = query.data.dtype, m.num_heads, m.head_dim, m.embed_dim
    q, k, v = query.name, key.name, value.name
    if not m.batch_first:
        q, k, v = (g.op("Transpose", t, perm=[1, 0, 2]) for t in (q, k, v))
    q = _heads(g, _project(g, m, q, 0), h, d, [0, 2, 1, 3])  # (B, H, L, D)
    kt = _heads(g, _project(g, m, k, 1), h, d, [0, 2, 3, 1])  # (B, H, D, S)
    v = _heads(g, _project(g, m, v, 2), h, d, [0, 2, 1, 3])  # (B, H, S, D)
    scores = g.op("Mul", g.op("MatMul", q, kt), g.scalar(1.0 / math.sqrt(d)))  # (B, H, L, S)
    if key_padding_mask is not None:
        scores = g.op("Add", scores, g.unsqueeze(_additive(g, key_padding_mask, dt), [1, 2]))
    if attn_mask is not None:
        am = _additive(g, attn_mask, dt)
        if attn_mask.data.ndim == 3:  # (B * H, L, S)
            am = g.op("Reshape", am, g.ints([-1, h, *attn_mask.data.shape[1:]]))
        scores = g.op("Add", scores, am)
    weights = g.op("Softmax", scores, axis=-1)
    if key_padding_mask is not None or attn_mask is not None:
        blocked = g.op("IsInf", g.reduce("ReduceMax", scores, [-1], keepdims=True), detect_positive=0)
        weights = g.op("Where", blocked, g.scalar(0.0), weights)
    out = g.op("Transpose", g.op("MatMul", weights, v), perm=[0, 2, 1, 3])  # (B, L, H, D)
    out = g.op("Reshape", out, g.ints([0, 0, e]))
    b, length = query.data.shape[:2] if m.batch_first else query.data.shape[1::-1]
    # the projection's exporter reads only the shape and dtype of its input
    y = g.export(m.out_proj, [Value(out, np.zeros((b, length, e), dt))], _child(path, "out_proj")).name
    return y if m.batch_first else g.op("Transpose", y, perm=[1, 0, 2])


def _encoder_layer(g, m, path, x: Value, src_mask, key_padding_mask) -> Value:
    """One post- or pre-norm layer on batch-first ``x``; returns the batch-first output Value."""

    def attend(h: Value) -> Value:
        return g.export(m.self_attn, [h, None, None, key_padding_mask, None, src_mask], _child(path, "self_attn"))

    def feed_forward(h: Value) -> Value:
        return g.export(m.linear2, [g.export(m.linear1, [h], _child(path, "linear1"))], _child(path, "linear2"))

    def add(a: Value, b: Value) -> Value:
        return Value(g.op("Add", a.name, b.name), a.data + b.data)

    def norm(i: int, h: Value) -> Value:
        return g.export(getattr(m, f"norm{i}"), [h], _child(path, f"norm{i}"))

    if m.norm_first:
        x = add(x, attend(norm(1, x)))
        return add(x, feed_forward(norm(2, x)))
    x = norm(1, add(x, attend(x)))
    return norm(2, add(x, feed_forward(x)))


def _batch_first(g, m, x: Value) -> Value:
    if m.batch_first or x.data.ndim != 3:
        return x
    return Value(g.op("Transpose", x.name, perm=[1, 0, 2]), x.data.swapaxes(0, 1))


@register_onnx("TransformerEncoderLayer", axes=attention_axes)
def transformer_encoder_layer(g, m, path, src, src_mask=None, src_key_padding_mask=None):
    y = _encoder_layer(g, m, path, _batch_first(g, m, src), src_mask, src_key_padding_mask)
    return _batch_first(g, m, y).name


@register_onnx("TransformerEncoder", axes=attention_axes)
def transformer_encoder(g, m, path, src, mask=None, src_key_padding_mask=None):
    x = src
    for i, layer in enumerate(m.layers):
        lp = _child(path, f"layers.{i}")
        x = _batch_first(g, layer, _encoder_layer(g, layer, lp, _batch_first(g, layer, x), mask, src_key_padding_mask))
    if m.norm is not None:
        x = g.export(m.norm, [x], _child(path, "norm"))
    return x.name


def _add_positions(g, x: Value, table: str) -> str:
    """``x + table[:L]`` with L = x.shape[-2] at run time."""
    rank = x.data.ndim
    length = g.op("Shape", x.name, start=rank - 2, end=rank - 1)
    rows = g.op("Slice", table, g.ints([0]), length, g.ints([0]))
    return g.op("Add", x.name, rows)


@register_onnx("SinusoidalPositionalEncoding", axes=attention_axes)
def sinusoidal_positions(g, m, path, x):
    """The table up to ``max_len`` rows is stored in the graph (the layer computes it on use)."""
    return _add_positions(g, x, g.const(m.table(m.max_len, x.data.dtype), "table"))


@register_onnx("LearnedPositionalEmbedding", axes=attention_axes)
def learned_positions(g, m, path, x):
    return _add_positions(g, x, g.const(m.weight.data, "weight"))
