"""Activation functions, each ``y = f(x)`` elementwise with its derivative written beside it.

relu, leaky_relu, elu, selu, gelu (exact and tanh), silu, mish, sigmoid, tanh, softplus, softsign, hard_sigmoid,
hard_tanh, relu6. Subgradients at kinks follow PyTorch (relu'(0) = 0, leaky_relu'(0) = slope). sigmoid, tanh,
softplus, silu, mish and elu are computed so that inputs of +-1e4 neither overflow nor produce NaN.
"""

from __future__ import annotations

import math

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._special import erf
from ._util import as_tensor
from .elementwise import Unary
from .registry import register

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def stable_sigmoid(x):
    """``1 / (1 + exp(-x))`` without overflow: exp is only taken of ``-|x|``."""
    xp = B.xp
    e = xp.exp(-xp.abs(x))
    r = 1 / (1 + e)
    return xp.where(x >= 0, r, e * r)


JIT_MIN = 1 << 17
"""Elements below which ReLU keeps its NumPy code: a kernel call costs a few microseconds of argument checks, what
the pass it saves takes on an MLP's 128x256 activations (bench_engine.py's MLP: 1.13x the NumPy floor with the
kernels from 4,096 elements on, 1.09x without)."""


def _jit_elementwise(name, *arrays):
    """The compiled kernel ``name`` (``backend.jit()``) over the memory of ``arrays`` and of a new array like the
    first, or None where it does not apply: no kernels, a dtype other than float32/float64, or arrays whose
    shapes, strides and dtypes differ or whose memory is not in one order. (Callers call it from ``JIT_MIN``
    elements on.)"""
    a = arrays[0]
    if a.dtype.name not in ("float32", "float64"):
        return None
    k = B.jit()
    if k is None:
        return None
    out = B.xp.empty_like(a)
    if len({(b.shape, b.strides, b.dtype) for b in (*arrays, out)}) > 1:
        return None
    flats = [B.flat(b) for b in (*arrays, out)]
    if any(f is None for f in flats):
        return None
    mod = B.pool(a.size)  # (the same kernel on slices, over the one pool of threads, where it is on)
    if mod is None or not getattr(mod, name)(*flats):
        getattr(k, name)(*flats)
    return out


def relu_values(x, out=None):
    """``maximum(x, 0)`` into ``out``: a new array when None, or ``x`` itself (an array the caller owns) to write in
    place. ``ReLU`` and the fused ``linear(..., activation="relu")`` both run it, so their outputs have the same bits.

    A new array: the compiled kernel where it applies. In place, or without it: maximum, which also propagates NaN and
    turns -0.0 into 0.0. (Compiled over memory that is also its output, the loop is not vectorised: 50 us against
    NumPy's 29 for 512x256 floats.) Large arrays: split over the leading axis (``parallel_for``), against a
    one-element zero array (a zeros_like output would cost a pass). Small ones (an MLP's) take no further checks."""
    if out is None and x.size >= JIT_MIN and (y := _jit_elementwise("relu_forward", x)) is not None:
        return y
    xp = B.xp
    if x.size < 4096 or x.ndim == 0:
        return xp.maximum(x, 0, out=out)
    y, zero = xp.empty_like(x) if out is None else out, xp.zeros(1, dtype=x.dtype)
    if 2 * x.size < B.PARALLEL_MIN:  # (one piece anyway: no call through parallel_for, a few us per step)
        xp.maximum(x, zero, out=y)
    else:
        B.parallel_for(x.shape[0], lambda lo, hi: xp.maximum(x[lo:hi], zero, out=y[lo:hi]), 2 * x.size)
    return y


def relu_grad(g, y):
    """ReLU's backward, ``g * (y > 0)`` as a new array, from its output ``y`` (for ``ReLU`` and the fused linear)."""
    if g.size >= JIT_MIN and (out := _jit_elementwise("relu_backward", g, y)) is not None:
        return out
    if 3 * g.size < B.PARALLEL_MIN or g.ndim == 0 or g.shape != y.shape:
        return g * (y > 0)
    xp = B.xp
    out = xp.empty_like(g)
    B.parallel_for(g.shape[0], lambda lo, hi: xp.multiply(g[lo:hi], y[lo:hi] > 0, out=out[lo:hi]), 3 * g.size)
    return out


class ReLU(Function):
    name = "relu"

    def forward(self, x):
        self.y = y = relu_values(x)
        return y

    def backward(self, g):
        return (relu_grad(g, self.y),)


class Sigmoid(Unary):
    name = "sigmoid"
    f = staticmethod(stable_sigmoid)
    df = staticmethod(lambda x, y: y * (1 - y))


class Tanh(Unary):
    name = "tanh"
    f = staticmethod(lambda x: B.xp.tanh(x))
    df = staticmethod(lambda x, y: 1 - y * y)


class LeakyReLU(Unary):
    name = "leaky_relu"
    f = staticmethod(lambda x, slope: B.xp.where(x > 0, x, x * slope))
    df = staticmethod(lambda x, y, slope: B.xp.where(x > 0, 1, slope).astype(x.dtype))


class ELU(Unary):
    name = "elu"
    f = staticmethod(lambda x, alpha: B.xp.where(x > 0, x, alpha * B.xp.expm1(B.xp.minimum(x, 0))))
    df = staticmethod(lambda x, y, alpha: B.xp.where(x > 0, 1, y + alpha).astype(x.dtype))


class SELU(Unary):
    name = "selu"
    f = staticmethod(
        lambda x: SELU_SCALE * B.xp.where(x > 0, x, SELU_ALPHA * B.xp.expm1(B.xp.minimum(x, 0))).astype(x.dtype)
    )
    df = staticmethod(lambda x, y: B.xp.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA).astype(x.dtype))


class GELU(Unary):
    name = "gelu"

    @staticmethod
    def f(x, approximate):
        if approximate == "tanh":
            return 0.5 * x * (1 + B.xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))
        return 0.5 * x * (1 + erf(x * _INV_SQRT_2))

    @staticmethod
    def df(x, y, approximate):
        xp = B.xp
        if approximate == "tanh":
            t = xp.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
        cdf = 0.5 * (1 + erf(x * _INV_SQRT_2))
        return cdf + x * _INV_SQRT_2PI * xp.exp(-0.5 * x * x)


class SiLU(Unary):
    name = "silu"

    def forward(self, x):
        self.x, self.s = x, stable_sigmoid(x)
        return x * self.s

    def backward(self, g):
        s = self.s
        return (g * (s * (1 + self.x * (1 - s))),)


class Mish(Unary):
    name = "mish"

    def forward(self, x):
        self.x = x
        self.t = B.xp.tanh(B.xp.logaddexp(0, x))
        return x * self.t

    def backward(self, g):
        t = self.t
        return (g * (t + self.x * stable_sigmoid(self.x) * (1 - t * t)),)


class Softplus(Unary):
    name = "softplus"

    @staticmethod
    def f(x, beta, threshold):
        bx = x * beta
        return B.xp.where(bx > threshold, x, B.xp.logaddexp(0, bx) / beta).astype(x.dtype)

    @staticmethod
    def df(x, y, beta, threshold):
        bx = x * beta
        return B.xp.where(bx > threshold, 1, stable_sigmoid(bx)).astype(x.dtype)


class Softsign(Unary):
    name = "softsign"
    f = staticmethod(lambda x: x / (1 + B.xp.abs(x)))
    df = staticmethod(lambda x, y: 1 / ((1 + B.xp.abs(x)) ** 2))


class HardSigmoid(Unary):
    name = "hard_sigmoid"
    f = staticmethod(lambda x: B.xp.clip(x / 6 + 0.5, 0, 1))
    df = staticmethod(lambda x, y: ((x > -3) & (x < 3)) / x.dtype.type(6))


class HardTanh(Unary):
    name = "hard_tanh"
    f = staticmethod(lambda x, lo, hi: B.xp.clip(x, lo, hi))
    df = staticmethod(lambda x, y, lo, hi: (x > lo) & (x < hi))


class ReLU6(HardTanh):
    name = "relu6"


@register("relu")
def relu(x) -> Tensor:
    """``max(x, 0)``: passes positive inputs, blocks the rest. relu'(0) = 0."""
    return ReLU.apply(as_tensor(x))


@register("leaky_relu")
def leaky_relu(x, negative_slope: float = 0.01) -> Tensor:
    """``x`` for x > 0, else ``negative_slope * x`` (default 0.01): negative inputs still pass a small gradient."""
    return LeakyReLU.apply(as_tensor(x), slope=float(negative_slope))


@register("elu")
def elu(x, alpha: float = 1.0) -> Tensor:
    """``x`` for x > 0, else ``alpha * (exp(x) - 1)`` (default alpha 1.0)."""
    return ELU.apply(as_tensor(x), alpha=float(alpha))


@register("selu")
def selu(x) -> Tensor:
    """Scaled ELU with the self-normalising constants (scale 1.0507, alpha 1.6733; Klambauer et al. 2017)."""
    return SELU.apply(as_tensor(x))


@register("gelu")
def gelu(x, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)``; ``approximate="tanh"`` uses the tanh formula (Hendrycks & Gimpel)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(as_tensor(x), approximate=approximate)


@register("silu")
def silu(x) -> Tensor:
    """``x * sigmoid(x)`` (also called swish)."""
    return SiLU.apply(as_tensor(x))


@register("mish")
def mish(x) -> Tensor:
    """``x * tanh(softplus(x))`` (Misra 2019)."""
    return Mish.apply(as_tensor(x))


@register("sigmoid")
def sigmoid(x) -> Tensor:
    """Logistic function ``1 / (1 + exp(-x))``, squashing to (0, 1); stable for any input."""
    return Sigmoid.apply(as_tensor(x))


@register("tanh")
def tanh(x) -> Tensor:
    """Hyperbolic tangent, squashing to (-1, 1)."""
    return Tanh.apply(as_tensor(x))


@register("softplus")
def softplus(x, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """``log(1 + exp(beta * x)) / beta``, a smooth relu; linear where ``beta * x > threshold`` (PyTorch's defaults)."""
    if beta <= 0:
        raise ValueError(f"softplus: beta must be positive, got {beta}")
    return Softplus.apply(as_tensor(x), beta=float(beta), threshold=float(threshold))


@register("softsign")
def softsign(x) -> Tensor:
    """``x / (1 + |x|)``."""
    return Softsign.apply(as_tensor(x))


@register("hard_sigmoid")
def hard_sigmoid(x) -> Tensor:
    """Piecewise-linear sigmoid ``clip(x / 6 + 1/2, 0, 1)`` (PyTorch's hardsigmoid)."""
    return HardSigmoid.apply(as_tensor(x))


@register("hard_tanh")
def hard_tanh(x, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """``clip(x, min_val, max_val)``; gradient 1 strictly inside, 0 outside."""
    if min_val >= max_val:
        raise ValueError(f"hard_tanh: min_val must be below max_val, got {min_val} and {max_val}")
    return HardTanh.apply(as_tensor(x), lo=min_val, hi=max_val)


@register("relu6")
def relu6(x) -> Tensor:
    """``min(max(x, 0), 6)``."""
    return ReLU6.apply(as_tensor(x), lo=0.0, hi=6.0)
