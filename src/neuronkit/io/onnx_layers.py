"""The ONNX exporters of the registered layers: one entry per layer class (``register_onnx("Name")``).

Each exporter gets the ``Graph`` being built, the module, its path in the model and its input ``Value``s, adds the
ONNX nodes that compute the layer in evaluation mode, and returns its output name. Parameters become initializers
under their ``state_dict`` names. Activations are in ``onnx_activations.py``.
"""

from __future__ import annotations

import numpy as np

from . import onnx_activations, onnx_attention, onnx_recurrent  # noqa: F401  (their exporters register themselves)
from .onnx import ExportError, Value, layer_name, register_onnx


def child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _pair(v, n: int) -> list:
    return [int(v)] * n if isinstance(v, int) else [int(i) for i in v]


# -- containers -----------------------------------------------------------------------------------------------------
@register_onnx("Sequential")
def sequential(g, m, path, x):
    for name, layer in m._modules.items():
        x = g.export(layer, [x], child(path, name))
    return x.name


def sequence_axes(module, n_inputs: int, n_outputs: int) -> tuple:
    """A model taking (B, T) tokens and (B,) lengths: batch and time symbolic in the inputs, batch in the outputs."""
    return [{0: "batch", 1: "time"}] + [{0: "batch"}] * (n_inputs - 1), [{0: "batch"}] * n_outputs


@register_onnx("TextClassifier", axes=sequence_axes)
def text_classifier(g, m, path, tokens, lengths):
    x = g.export(m.embedding, [tokens], child(path, "embedding"))
    h = g.export(m.encoder, [x, lengths], child(path, "encoder"))
    return g.export(m.head, [h], child(path, "head")).name


# -- dense and convolution --------------------------------------------------------------------------------------------
@register_onnx("Dense", "Linear")
def dense(g, m, path, x):
    """``activation(x @ W.T + b)``: Gemm for (N, in) input, MatMul (+ Add) for (..., in)."""
    w = m.weight.data
    b = None if m.bias is None else m.bias.data
    if x.data.ndim == 2:
        ins = [x.name, g.const(w, "weight")] + ([g.const(b, "bias")] if b is not None else [])
        z = g.op("Gemm", *ins, transB=1)
    else:
        z = g.op("MatMul", x.name, g.const(np.ascontiguousarray(w.T), "weight_t"))
        if b is not None:
            z = g.op("Add", z, g.const(b, "bias"))
    act = getattr(m, "activation", None)
    if act is None or layer_name(act) == "Identity":
        return z
    zdata = x.data @ w.T + (0 if b is None else b)
    return g.export(act, [Value(z, zdata.astype(w.dtype))], child(path, "activation")).name


def _conv(g, m, x, n: int) -> str:
    k = list(m.kernel_size)
    pads = _pair(m.padding, n)
    ins = [x.name, g.const(m.weight.data, "weight")] + ([g.const(m.bias.data, "bias")] if m.bias is not None else [])
    return g.op(
        "Conv",
        *ins,
        kernel_shape=k,
        strides=_pair(m.stride, n),
        pads=pads + pads,
        dilations=_pair(m.dilation, n),
        group=int(m.groups),
    )


@register_onnx("Conv1d")
def conv1d(g, m, path, x):
    return _conv(g, m, x, 1)


@register_onnx("Conv2d")
def conv2d(g, m, path, x):
    """Conv, then the fused ReLU and ``k x k`` max pooling (stride k, floor) when the layer has them."""
    y = _conv(g, m, x, 2)
    if layer_name(m.activation) == "ReLU":  # the fused activation is a ReLU module (Identity when there is none)
        y = g.op("Relu", y)
    if m.max_pool is not None:
        k = int(m.max_pool)
        y = g.op("MaxPool", y, kernel_shape=[k, k], strides=[k, k])
    return y


# -- pooling, shape, regularisation ---------------------------------------------------------------------------------
def _pool_attrs(m) -> dict:
    k = _pair(m.kernel_size, 2)
    s = k if m.stride is None else _pair(m.stride, 2)
    p = _pair(m.padding, 2)
    return {"kernel_shape": k, "strides": s, "pads": p + p}


@register_onnx("MaxPool2d")
def max_pool2d(g, m, path, x):
    return g.op("MaxPool", x.name, **_pool_attrs(m))  # padding never wins a max, as neuronkit's -inf padding


@register_onnx("AvgPool2d")
def avg_pool2d(g, m, path, x):
    return g.op("AveragePool", x.name, count_include_pad=1, **_pool_attrs(m))  # zero padding counts in the mean


@register_onnx("GlobalAvgPool2d")
def global_avg_pool2d(g, m, path, x):
    return g.reduce("ReduceMean", x.name, [2, 3])  # (N, C, H, W) -> (N, C)


@register_onnx("Flatten")
def flatten(g, m, path, x):
    """Reshape to ``x.shape[:s] + (-1,) + x.shape[e + 1:]``; the batch axis is copied (0), never baked in."""
    shape = x.data.shape
    nd = max(len(shape), 1)
    s, e = m.start_axis % nd, m.end_axis % nd
    if s == 1 and e == nd - 1 and len(shape) >= 2:
        return g.op("Flatten", x.name, axis=1)
    target = [0] + list(shape[1:s]) if s > 0 else []
    target += [-1] + list(shape[e + 1 :])
    return g.op("Reshape", x.name, g.ints(target))


@register_onnx("Dropout")
def dropout(g, m, path, x):
    return g.op("Identity", x.name)  # evaluation mode


# -- normalisation --------------------------------------------------------------------------------------------------
@register_onnx("BatchNorm1d", "BatchNorm2d")
def batch_norm(g, m, path, x):
    """BatchNormalization with the running statistics; without them (``track_running_stats=False``) the batch's own
    mean and biased variance over every axis but 1, as neuronkit computes in evaluation then."""
    c = m.num_features
    scale = m.weight.data if m.weight is not None else np.ones(c, np.float32)
    shift = m.bias.data if m.bias is not None else np.zeros(c, np.float32)
    if m.running_mean is not None:
        mean, var = g.const(m.running_mean.data, "running_mean"), g.const(m.running_var.data, "running_var")
        return g.op(
            "BatchNormalization", x.name, g.const(scale, "weight"), g.const(shift, "bias"), mean, var, epsilon=m.eps
        )
    axes = [0] + list(range(2, x.data.ndim))
    mean = g.reduce("ReduceMean", x.name, axes, keepdims=True)
    d = g.op("Sub", x.name, mean)
    var = g.reduce("ReduceMean", g.op("Mul", d, d), axes, keepdims=True)
    y = g.op("Div", d, g.op("Sqrt", g.op("Add", var, g.scalar(m.eps))))
    bshape = [c] + [1] * (x.data.ndim - 2)
    y = g.op("Mul", y, g.const(scale.reshape(bshape), "weight"))
    return g.op("Add", y, g.const(shift.reshape(bshape), "bias"))


@register_onnx("LayerNorm")
def layer_norm(g, m, path, x):
    ns = m.normalized_shape
    scale = m.weight.data if m.weight is not None else np.ones(ns, np.float32)
    ins = [x.name, g.const(scale, "weight")] + ([g.const(m.bias.data, "bias")] if m.bias is not None else [])
    return g.op("LayerNormalization", *ins, axis=-len(ns), epsilon=m.eps)


# -- embeddings and sequences ---------------------------------------------------------------------------------------
@register_onnx("Embedding")
def embedding(g, m, path, ids):
    return g.op("Gather", g.const(m.weight.data, "weight"), ids.name, axis=0)  # (...) ids -> (..., E)


def step_mask(g, x: Value, lengths: Value) -> tuple:
    """``(mask (B, T) bool, lengths as int64)``: True on the real steps of each row; T read from x's shape at run
    time, so the time axis may vary between calls."""
    t = g.squeeze(g.op("Shape", x.name, start=1, end=2), [0])
    steps = g.op("Range", g.const(np.array(0, np.int64), "zero"), t, g.const(np.array(1, np.int64), "one"))
    n = lengths.name if lengths.data.dtype == np.int64 else g.cast(lengths.name, np.int64)
    mask = g.op("Less", g.unsqueeze(steps, [0]), g.unsqueeze(n, [1]))
    return mask, n


@register_onnx("SequencePool")
def sequence_pool(g, m, path, x, lengths):
    """Masked mean: weights ``1 / max(length, 1)`` on real steps, one batched MatMul (B, 1, T) @ (B, T, D); masked max:
    padding set to -inf before ReduceMax, and rows of length 0 set to 0."""
    if lengths is None:
        raise ExportError(f"export_onnx: SequencePool at {path!r} needs lengths")
    mask, n = step_mask(g, x, lengths)
    dt = x.data.dtype
    if m.mode == "mean":
        denom = g.cast(g.op("Max", n, g.const(np.array(1, np.int64), "one")), dt)
        w = g.op("Div", g.cast(mask, dt), g.unsqueeze(denom, [1]))
        return g.squeeze(g.op("MatMul", g.unsqueeze(w, [1]), x.name), [1])
    masked = g.op("Where", g.unsqueeze(mask, [2]), x.name, g.scalar(-np.inf))
    top = g.reduce("ReduceMax", masked, [1])
    empty = g.unsqueeze(g.op("Equal", n, g.const(np.array(0, np.int64), "zero")), [1])
    return g.op("Where", empty, g.scalar(0.0), top)


from . import onnx_encoders  # noqa: E402, F401  (registers itself; it uses step_mask and sequence_pool above)
