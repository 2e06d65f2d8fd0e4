"""Helpers shared by the op families: lifting constants to tensors, undoing broadcasting, normalising axes."""

from __future__ import annotations

from .. import backend as B
from ..tensor import Tensor


def as_tensor(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a Tensor. A Python number takes the dtype of ``like`` (a float with an integer ``like`` becomes
    float32), so ``float32_tensor * 2.0`` stays float32."""
    if isinstance(x, Tensor):
        return x
    if like is not None and isinstance(x, (int, float, bool)):
        dt = like.data.dtype
        if isinstance(x, float) and dt.kind != "f":
            dt = B.DEFAULT_FLOAT
        elif isinstance(x, bool) is False and isinstance(x, int) and dt.kind == "b":
            dt = B.xp.dtype(B.xp.int64)
        return Tensor.from_array(B.xp.asarray(x, dtype=dt), False)
    return Tensor(x)


def unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched, so it gets exactly ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def norm_axes(axis, ndim: int, op: str):
    """``axis`` (None, int or sequence) as a sorted tuple of non-negative axes, or None for all axes."""
    if axis is None:
        return None
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, int) or isinstance(a, bool):
            raise TypeError(f"{op}: axis must be an int or a sequence of ints, got {axis!r}")
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis!r}")
    return tuple(sorted(out))


def expand_reduced(g, shape, axes, keepdims):
    """Reshape a reduction's gradient ``g`` so it broadcasts back against the input of ``shape``."""
    if keepdims:
        return g
    if axes is None:
        return g.reshape((1,) * len(shape))
    return B.xp.expand_dims(g, axes)
