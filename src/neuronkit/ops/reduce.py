"""Reductions over any axes, with ``keepdims``: sum, mean, max, min, var, std, logsumexp.

``axis`` is None (all axes), an int, or a tuple of ints. Backward broadcasts the gradient back over the reduced axes.
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor, expand_reduced, norm_axes
from .registry import register


class _Reduce(Function):
    def forward(self, x, axes, keepdims):
        self.shape_in, self.axes, self.keepdims = x.shape, axes, keepdims
        return self.reduce(x, axes, keepdims)

    def expand(self, g):
        return expand_reduced(g, self.shape_in, self.axes, self.keepdims)

    def count(self):
        if self.axes is None:
            n = 1
            for s in self.shape_in:
                n *= s
            return n
        n = 1
        for a in self.axes:
            n *= self.shape_in[a]
        return n


class Sum(_Reduce):
    name = "sum"
    reduce = staticmethod(lambda x, axes, k: x.sum(axis=axes, keepdims=k))

    def backward(self, g):
        return (B.xp.broadcast_to(self.expand(g), self.shape_in),)


class Mean(_Reduce):
    name = "mean"
    reduce = staticmethod(lambda x, axes, k: x.mean(axis=axes, keepdims=k))

    def backward(self, g):
        n = self.count()
        return (B.xp.broadcast_to(self.expand(g) / n if n else self.expand(g), self.shape_in),)


class Max(_Reduce):
    name = "max"
    reduce = staticmethod(lambda x, axes, k: x.max(axis=axes, keepdims=k))

    def forward(self, x, axes, keepdims):
        out = super().forward(x, axes, keepdims)
        self.x, self.out = x, out
        return out

    def backward(self, g):
        # Ties share the gradient evenly (PyTorch's amax/amin convention).
        mask = self.x == expand_reduced(self.out, self.shape_in, self.axes, self.keepdims)
        count = mask.sum(axis=self.axes, keepdims=True)
        return (mask * (self.expand(g) / count),)


class Min(Max):
    name = "min"
    reduce = staticmethod(lambda x, axes, k: x.min(axis=axes, keepdims=k))


class Var(_Reduce):
    name = "var"

    def forward(self, x, axes, keepdims, correction, sqrt):
        self.shape_in, self.axes, self.keepdims, self.sqrt = x.shape, axes, keepdims, sqrt
        self.dof = self.count() - correction
        mean = x.mean(axis=axes, keepdims=True)
        self.centered = x - mean
        var = (self.centered * self.centered).sum(axis=axes, keepdims=keepdims) / self.dof
        self.out = B.xp.sqrt(var) if sqrt else var
        return self.out

    def backward(self, g):
        g = self.expand(g)
        if self.sqrt:  # d std = d var / (2 std)
            g = g / (2 * self.expand(self.out))
        return (g * self.centered * (2.0 / self.dof),)


class LogSumExp(_Reduce):
    name = "logsumexp"

    def forward(self, x, axes, keepdims):
        self.shape_in, self.axes, self.keepdims, self.x = x.shape, axes, keepdims, x
        xp = B.xp
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or inf) rows: shift by 0, the result is then exact
        s = xp.exp(x - m).sum(axis=axes, keepdims=True)
        out = xp.log(s) + m
        self.out_k = out
        return out if keepdims else (out.reshape(()) if axes is None else out.squeeze(axis=axes))

    def backward(self, g):
        return (self.expand(g) * B.xp.exp(self.x - self.out_k),)


class Std(Var):
    name = "std"


def _reduce(cls, x, axis, keepdims, name, **kw):
    x = as_tensor(x)
    axes = norm_axes(axis, x.ndim, name)
    if x.ndim == 0 and axes is not None:
        axes = None  # axis 0 / -1 of a 0-d tensor reduces nothing, as in PyTorch
    return cls.apply(x, axes=axes, keepdims=bool(keepdims), **kw)


@register("sum")
def sum(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (None: all)."""
    return _reduce(Sum, x, axis, keepdims, "sum")


@register("mean")
def mean(x, axis=None, keepdims: bool = False) -> Tensor:
    """Arithmetic mean over ``axis`` (None: all)."""
    return _reduce(Mean, x, axis, keepdims, "mean")


def _nonempty(x, axis, name):
    x = as_tensor(x)
    axes = norm_axes(axis, x.ndim, name)
    sizes = x.shape if axes is None or x.ndim == 0 else [x.shape[a] for a in axes]
    if any(s == 0 for s in sizes):
        raise ValueError(f"{name}: cannot reduce over an empty axis (input shape {tuple(x.shape)})")
    return x


@register("max")
def max(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Largest value over ``axis``; tied maxima share the gradient evenly."""
    return _reduce(Max, _nonempty(x, axis, "max"), axis, keepdims, "max")


@register("min")
def min(x, axis=None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Smallest value over ``axis``; tied minima share the gradient evenly."""
    return _reduce(Min, _nonempty(x, axis, "min"), axis, keepdims, "min")


@register("var")
def var(x, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Variance ``sum((x - mean)^2) / (N - correction)`` over ``axis``.

    Defaults to ``correction=1`` (the unbiased estimate, as PyTorch); pass 0 for the population variance.
    """
    return _reduce(Var, x, axis, keepdims, "var", correction=correction, sqrt=False)


@register("std")
def std(x, axis=None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Standard deviation ``sqrt(var(x, axis, correction))``; defaults to ``correction=1`` as PyTorch."""
    return _reduce(Std, x, axis, keepdims, "std", correction=correction, sqrt=True)


@register("logsumexp")
def logsumexp(x, axis=None, keepdims: bool = False) -> Tensor:
    """``log(sum(exp(x)))`` over ``axis``, computed stably (shifted by the maximum): no overflow for large inputs."""
    return _reduce(LogSumExp, x, axis, keepdims, "logsumexp")
