"""ONNX exporters of the activation layers (``nn.activations``), one per registered activation.

Where ONNX has the function as one operator with the same definition it is used (Relu, LeakyRelu, Elu, Selu, Sigmoid,
Tanh, Softsign, HardSigmoid, Softmax, LogSoftmax, Clip); the others are composed exactly as neuronkit computes them
(GELU through Erf or its tanh formula, SiLU, Mish, Softplus with beta and threshold), so the graph runs on opset 17.
"""

from __future__ import annotations

import math

from ..ops.activation import SELU_ALPHA, SELU_SCALE
from .onnx import register_onnx


def _unary(op_type: str):
    def export(g, m, path, x):
        return g.op(op_type, x.name)

    return export


for _name, _op in (("ReLU", "Relu"), ("Sigmoid", "Sigmoid"), ("Tanh", "Tanh"), ("Softsign", "Softsign")):
    register_onnx(_name)(_unary(_op))


@register_onnx("Identity")
def identity(g, m, path, x):
    return g.op("Identity", x.name)


@register_onnx("LeakyReLU")
def leaky_relu(g, m, path, x):
    return g.op("LeakyRelu", x.name, alpha=float(m.kwargs["negative_slope"]))


@register_onnx("ELU")
def elu(g, m, path, x):
    return g.op("Elu", x.name, alpha=float(m.kwargs["alpha"]))


@register_onnx("SELU")
def selu(g, m, path, x):
    return g.op("Selu", x.name, alpha=SELU_ALPHA, gamma=SELU_SCALE)


@register_onnx("HardSigmoid")
def hard_sigmoid(g, m, path, x):
    return g.op("HardSigmoid", x.name, alpha=1.0 / 6.0, beta=0.5)  # PyTorch's hardsigmoid: clip(x / 6 + 1/2, 0, 1)


@register_onnx("HardTanh")
def hard_tanh(g, m, path, x):
    return g.op("Clip", x.name, g.scalar(m.kwargs["min_val"]), g.scalar(m.kwargs["max_val"]))


@register_onnx("ReLU6")
def relu6(g, m, path, x):
    return g.op("Clip", x.name, g.scalar(0.0), g.scalar(6.0))


@register_onnx("Softmax")
def softmax(g, m, path, x):
    return g.op("Softmax", x.name, axis=int(m.kwargs["axis"]))


@register_onnx("LogSoftmax")
def log_softmax(g, m, path, x):
    return g.op("LogSoftmax", x.name, axis=int(m.kwargs["axis"]))


@register_onnx("GELU")
def gelu(g, m, path, x):
    """``x Phi(x) = 0.5 x (1 + erf(x / sqrt 2))``; ``approximate="tanh"``:
    ``0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))``."""
    if m.kwargs["approximate"] == "tanh":
        cube = g.op("Mul", g.op("Mul", x.name, x.name), x.name)
        inner = g.op("Add", x.name, g.op("Mul", cube, g.scalar(0.044715)))
        t = g.op("Tanh", g.op("Mul", inner, g.scalar(math.sqrt(2.0 / math.pi))))
    else:
        t = g.op("Erf", g.op("Mul", x.name, g.scalar(1.0 / math.sqrt(2.0))))
    half_x = g.op("Mul", x.name, g.scalar(0.5))
    return g.op("Mul", half_x, g.op("Add", t, g.scalar(1.0)))


@register_onnx("SiLU")
def silu(g, m, path, x):
    return g.op("Mul", x.name, g.op("Sigmoid", x.name))


@register_onnx("Mish")
def mish(g, m, path, x):
    return g.op("Mul", x.name, g.op("Tanh", g.op("Softplus", x.name)))


@register_onnx("Softplus")
def softplus(g, m, path, x):
    """``log(1 + exp(beta x)) / beta``, and ``x`` itself where ``beta x > threshold`` (PyTorch's definition)."""
    beta, threshold = float(m.kwargs["beta"]), float(m.kwargs["threshold"])
    bx = x.name if beta == 1.0 else g.op("Mul", x.name, g.scalar(beta))
    soft = g.op("Softplus", bx)
    if beta != 1.0:
        soft = g.op("Div", soft, g.scalar(beta))
    return g.op("Where", g.op("Greater", bx, g.scalar(threshold)), x.name, soft)
