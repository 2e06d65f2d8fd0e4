"""Matrix products: ``matmul`` (NumPy semantics: 1-D, 2-D and broadcast batches) and the fused ``linear`` (with its
activation, ReLU, tanh or sigmoid, fused too where asked)."""

from __future__ import annotations

from operator import matmul as matmul_

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor, unbroadcast
from .activation import Sigmoid, Tanh, relu_grad, relu_values
from .registry import register


class MatMul(Function):
    name = "matmul"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a @ b

    def backward(self, g):
        a, b = self.a, self.b
        if a.ndim == 1 and b.ndim == 1:  # dot product: g is 0-d
            return (None if self.next[0] is None else g * b), (None if self.next[1] is None else g * a)
        # Promote 1-D operands to matrices (as matmul does), then drop the added axis from each gradient.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        if a.ndim == 1:
            g = B.xp.expand_dims(g, -2)
        if b.ndim == 1:
            g = B.xp.expand_dims(g, -1)
        ga = gb = None
        if self.next[0] is not None:
            ga = g @ b2.swapaxes(-1, -2)
            ga = unbroadcast(ga, a2.shape).reshape(a.shape)
        if self.next[1] is not None:
            gb = a2.swapaxes(-1, -2) @ g
            gb = unbroadcast(gb, b2.shape).reshape(b.shape)
        return ga, gb


@register("matmul")
def matmul(a, b) -> Tensor:
    """Matrix product ``a @ b`` with NumPy's rules: 1-D vectors, 2-D matrices, broadcast batches ``(..., n, k) @
    (..., k, m) -> (..., n, m)``."""
    a, b = as_tensor(a), as_tensor(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both operands need at least 1 dimension, got shapes {a.shape} and {b.shape}")
    ka = a.shape[-1]
    kb = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if ka != kb:
        raise ValueError(
            f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} do not align: "
            f"the first's last axis ({ka}) must equal the second's {'only' if b.ndim == 1 else 'second-to-last'} "
            f"axis ({kb})"
        )
    return MatMul.apply(a, b)


class Linear(Function):
    name = "linear"

    def forward(self, x, w, b=None):
        self.x, self.w = x, w
        # One (rows, in) @ (in, out) GEMM: ``x @ w.T`` on a 3-D x would be a loop of per-item GEMMs (10-25 % slower
        # for a (64, 36, 128) batch of token vectors).
        mm = B.matmul if B.POOL_ON else matmul_  # (large GEMMs on the one pool of threads once it started)
        if x.ndim == 2:  # the common case: no reshapes (each costs a call on the hot path)
            out = mm(x, w.T)
        else:
            out = mm(x.reshape(-1, x.shape[-1]), w.T).reshape(*x.shape[:-1], w.shape[0])  # (..., out)
        if b is not None:
            if b.dtype == out.dtype:
                out += b  # in place: no second (batch, out) temporary
            else:
                out = out + b
        return out

    def backward(self, g):
        x, w = self.x, self.w
        gx = gw = gb = None
        flat = g.ndim == 2
        g2 = g if flat else g.reshape(-1, g.shape[-1])  # (batch, out)
        mm = B.matmul if B.POOL_ON else matmul_
        if self.next[0] is not None:
            gx = mm(g2, w) if flat else mm(g2, w).reshape(x.shape)  # (..., in)
        if self.next[1] is not None:
            gw = mm(g2.T, x if flat else x.reshape(-1, x.shape[-1]))  # (out, in)
        if len(self.next) > 2 and self.next[2] is not None:
            gb = g2.sum(axis=0)
        return gx, gw, gb


class LinearAct(Linear):
    """``act(x @ w.T + b)`` as one node, for ``act`` ReLU, tanh or sigmoid: one graph node fewer to record and walk
    than the two ops, and the pre-activation is not kept (the activation's gradient needs its output alone). ReLU and
    tanh are written over the affine map's fresh output, so no second (batch, out) array is made. The values and
    gradients are those of the two ops bit for bit: the same functions run in the same order."""

    name = "linear_act"

    def forward(self, x, w, b=None, act="relu"):
        z = Linear.forward(self, x, w, b)  # a new array (or a view of one) that nothing else holds
        if act == "relu":
            y = relu_values(z, out=z)
        elif act == "tanh":
            y = B.xp.tanh(z, out=z) if z.dtype.kind == "f" else Tanh.f(z)  # (integer inputs: a float output)
        else:
            y = Sigmoid.f(z)
        self.y, self.act = y, act
        return y

    def backward(self, g):
        y, act = self.y, self.act
        if act == "relu":
            dz = relu_grad(g, y)
        else:  # (the expressions of Tanh's and Sigmoid's backward: g * df(x, y))
            dz = g * (Tanh.df(None, y) if act == "tanh" else Sigmoid.df(None, y))
        return Linear.backward(self, dz)


FUSED_ACTIVATIONS = ("relu", "tanh", "sigmoid")
"""The activations ``linear(..., activation=...)`` fuses into its op (and ``Dense`` with them runs it)."""


@register("linear")
def linear(x, weight, bias=None, activation: str | None = None) -> Tensor:
    """The affine map of a dense layer, fused: ``x @ weight.T + bias``.

    Shapes: ``x`` (..., in), ``weight`` (out, in) as in PyTorch (row ``i`` holds neuron ``i``'s weights),
    ``bias`` (out,) or None; returns (..., out). ``activation`` ``"relu"``, ``"tanh"`` or ``"sigmoid"`` applies it in
    the same op (what ``Dense(..., activation=...)`` runs): ``relu(linear(x, weight, bias))`` and so on, with the same
    values and gradients, one graph node fewer, and the pre-activation not kept.
    """
    if activation is not None and activation not in FUSED_ACTIVATIONS:
        raise ValueError(f"linear: activation must be None, 'relu', 'tanh' or 'sigmoid', got {activation!r}")
    x, weight = as_tensor(x), as_tensor(weight)
    if weight.ndim != 2:
        raise ValueError(f"linear: weight must be 2-D (out, in), got shape {tuple(weight.shape)}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"linear({weight.shape[1]} -> {weight.shape[0]}) got input of shape {tuple(x.shape)}: "
            f"expected last axis {weight.shape[1]}"
        )
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"linear: bias must have shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    if activation is not None:
        return LinearAct.apply(*((x, weight) if bias is None else (x, weight, bias)), act=activation)
    return Linear.apply(x, weight) if bias is None else Linear.apply(x, weight, bias)
