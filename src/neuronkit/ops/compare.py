"""Comparisons and arg-reductions: their results are boolean or integer tensors and never carry a gradient."""

from __future__ import annotations

from .. import backend as B
from ..tensor import Tensor
from ._util import as_tensor, norm_axes
from .registry import register


def _cmp(name, ufunc):
    def op(a, b) -> Tensor:
        a = as_tensor(a, b if isinstance(b, Tensor) else None)
        b = as_tensor(b, a)
        try:
            return Tensor.from_array(B.asarray(ufunc(a.data, b.data)), False)
        except ValueError:
            raise ValueError(f"{name}: cannot broadcast shapes {tuple(a.shape)} and {tuple(b.shape)}") from None

    op.__name__ = name
    op.__doc__ = f"Elementwise ``{name}`` comparison with broadcasting; a boolean tensor, no gradient."
    return register(name, differentiable=False)(op)


eq = _cmp("eq", lambda a, b: a == b)
ne = _cmp("ne", lambda a, b: a != b)
lt = _cmp("lt", lambda a, b: a < b)
le = _cmp("le", lambda a, b: a <= b)
gt = _cmp("gt", lambda a, b: a > b)
ge = _cmp("ge", lambda a, b: a >= b)


@register("argmax", differentiable=False)
def argmax(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the largest value (over the flattened tensor when ``axis`` is None)."""
    x = as_tensor(x)
    ax = None if axis is None else norm_axes(axis, x.ndim, "argmax")[0]
    return Tensor.from_array(B.asarray(x.data.argmax(axis=ax, keepdims=keepdims)), False)


@register("argmin", differentiable=False)
def argmin(x, axis=None, keepdims: bool = False) -> Tensor:
    """Index of the smallest value (over the flattened tensor when ``axis`` is None)."""
    x = as_tensor(x)
    ax = None if axis is None else norm_axes(axis, x.ndim, "argmin")[0]
    return Tensor.from_array(B.asarray(x.data.argmin(axis=ax, keepdims=keepdims)), False)
