"""Shape ops: reshape, transpose/permute, broadcast_to, squeeze, unsqueeze, flatten, concatenate, stack, split, pad.

None of these changes a value; each backward moves the gradient back to where the value came from.
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor, norm_axes, unbroadcast
from .registry import register


class Reshape(Function):
    name = "reshape"

    def forward(self, x, shape):
        self.shape_in = x.shape
        return x.reshape(shape)

    def backward(self, g):
        return (g.reshape(self.shape_in),)


def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(s) for s in shape)


@register("reshape")
def reshape(x, *shape) -> Tensor:
    """The same values in a new shape (one axis may be -1). ``reshape(x, 2, 3)`` or ``reshape(x, (2, 3))``."""
    x = as_tensor(x)
    return Reshape.apply(x, shape=_shape_arg(shape))


class Transpose(Function):
    name = "transpose"

    def forward(self, x, axes):
        self.axes = axes
        return x.transpose(axes)

    def backward(self, g):
        inv = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inv[a] = i
        return (g.transpose(inv),)


@register("transpose")
def transpose(x, *axes) -> Tensor:
    """Permute axes: with no ``axes`` reverse them (matrix transpose); else ``axes`` is the new order (``permute``)."""
    x = as_tensor(x)
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    if not axes:
        axes = tuple(range(x.ndim))[::-1]
    elif sorted(a % max(x.ndim, 1) for a in axes) != list(range(x.ndim)) or len(axes) != x.ndim:
        raise ValueError(
            f"transpose: axes {tuple(axes)} are not a permutation of the {x.ndim} axes of {tuple(x.shape)}"
        )
    return Transpose.apply(x, axes=tuple(a % x.ndim for a in axes))


def permute(x, *axes) -> Tensor:
    """Reorder the axes: ``permute(x, 0, 2, 1)``. Same op as ``transpose`` with explicit axes."""
    return transpose(x, *axes)


def swapaxes(x, a: int, b: int) -> Tensor:
    """Exchange two axes."""
    x = as_tensor(x)
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return transpose(x, order)


class BroadcastTo(Function):
    name = "broadcast_to"

    def forward(self, x, shape):
        self.shape_in = x.shape
        return B.xp.broadcast_to(x, shape)

    def backward(self, g):
        return (unbroadcast(g, self.shape_in),)


@register("broadcast_to")
def broadcast_to(x, *shape) -> Tensor:
    """A read-only broadcast view of ``x`` with ``shape``; backward sums over the broadcast axes."""
    x = as_tensor(x)
    shape = _shape_arg(shape)
    try:
        B.xp.broadcast_shapes(x.shape, shape)
    except ValueError:
        raise ValueError(f"broadcast_to: cannot broadcast shape {tuple(x.shape)} to {shape}") from None
    if B.xp.broadcast_shapes(x.shape, shape) != shape:
        raise ValueError(f"broadcast_to: cannot broadcast shape {tuple(x.shape)} to {shape}")
    return BroadcastTo.apply(x, shape=shape)


@register("squeeze")
def squeeze(x, axis=None) -> Tensor:
    """Remove axes of length 1 (all of them, or those in ``axis``; naming an axis longer than 1 is an error)."""
    x = as_tensor(x)
    axes = norm_axes(axis, x.ndim, "squeeze")
    if axes is None:
        new = tuple(s for s in x.shape if s != 1)
    else:
        bad = [a for a in axes if x.shape[a] != 1]
        if bad:
            raise ValueError(f"squeeze: axis {bad[0]} of shape {tuple(x.shape)} has length {x.shape[bad[0]]}, not 1")
        new = tuple(s for i, s in enumerate(x.shape) if i not in axes)
    return Reshape.apply(x, shape=new)


@register("unsqueeze")
def unsqueeze(x, axis: int) -> Tensor:
    """Insert an axis of length 1 at ``axis`` (counted in the result, so -1 appends)."""
    x = as_tensor(x)
    nd = x.ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"unsqueeze: axis {axis} is out of range for a result with {nd} dimensions")
    axis %= nd
    return Reshape.apply(x, shape=x.shape[:axis] + (1,) + x.shape[axis:])


@register("flatten")
def flatten(x, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes ``start_axis..end_axis`` (inclusive) into one.

    ``flatten(x, 1)`` turns (N, C, H, W) into (N, C*H*W).
    """
    x = as_tensor(x)
    if x.ndim == 0:
        return Reshape.apply(x, shape=(1,))
    s, e = norm_axes(start_axis, x.ndim, "flatten")[0], norm_axes(end_axis, x.ndim, "flatten")[0]
    if s > e:
        raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} for shape {x.shape}")
    n = 1
    for d in x.shape[s : e + 1]:
        n *= d
    return Reshape.apply(x, shape=x.shape[:s] + (n,) + x.shape[e + 1 :])


class Concatenate(Function):
    name = "concatenate"

    def forward(self, *arrays, axis):
        self.axis = axis
        self.bounds = B.xp.cumsum([a.shape[axis] for a in arrays])[:-1].tolist()
        return B.xp.concatenate(arrays, axis=axis)

    def backward(self, g):
        return tuple(B.xp.split(g, self.bounds, axis=self.axis))


def _tensors(tensors, op):
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError(f"{op}: expected a non-empty sequence of tensors")
    return ts


@register("concatenate")
def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis``; all other axes must match."""
    ts = _tensors(tensors, "concatenate")
    nd = ts[0].ndim
    if nd == 0:
        raise ValueError("concatenate: 0-d tensors cannot be concatenated; use stack")
    ax = norm_axes(axis, nd, "concatenate")[0]
    for t in ts:
        if t.ndim != nd or t.shape[:ax] + t.shape[ax + 1 :] != ts[0].shape[:ax] + ts[0].shape[ax + 1 :]:
            raise ValueError(
                f"concatenate: shapes {[tuple(t.shape) for t in ts]} differ outside axis {axis}: "
                "all other axes must match"
            )
    return Concatenate.apply(*ts, axis=ax)


class Stack(Function):
    name = "stack"

    def forward(self, *arrays, axis):
        self.axis = axis
        return B.xp.stack(arrays, axis=axis)

    def backward(self, g):
        return tuple(B.xp.moveaxis(g, self.axis, 0))


@register("stack")
def stack(tensors, axis: int = 0) -> Tensor:
    """Join tensors of the same shape along a new ``axis``."""
    ts = _tensors(tensors, "stack")
    if any(t.shape != ts[0].shape for t in ts):
        raise ValueError(f"stack: all tensors must have the same shape, got {[tuple(t.shape) for t in ts]}")
    nd = ts[0].ndim + 1
    if not -nd <= axis < nd:
        raise ValueError(f"stack: axis {axis} is out of range for a result with {nd} dimensions")
    return Stack.apply(*ts, axis=axis % nd)


@register("split")
def split(x, sections, axis: int = 0) -> list:
    """Split into pieces along ``axis``: ``sections`` is a piece size (the last may be smaller, as ``torch.split``)
    or a list of piece sizes that add up to the axis length. Each piece is a differentiable slice of ``x``."""
    from .index import getitem

    x = as_tensor(x)
    ax = norm_axes(axis, x.ndim, "split")[0]
    n = x.shape[ax]
    if isinstance(sections, int):
        if sections <= 0:
            raise ValueError(f"split: piece size must be positive, got {sections}")
        sizes = [min(sections, n - i) for i in range(0, n, sections)]
    else:
        sizes = [int(s) for s in sections]
        if sum(sizes) != n or any(s < 0 for s in sizes):
            raise ValueError(f"split: sizes {sizes} must be non-negative and add up to axis {axis}'s length {n}")
    out, start = [], 0
    for s in sizes:
        idx = (slice(None),) * ax + (slice(start, start + s),)
        out.append(getitem(x, idx))
        start += s
    return out


class Pad(Function):
    name = "pad"

    def forward(self, x, widths, value):
        self.slices = tuple(slice(lo, lo + n) for (lo, _), n in zip(widths, x.shape))
        return B.xp.pad(x, widths, mode="constant", constant_values=value)

    def backward(self, g):
        return (g[self.slices],)


@register("pad")
def pad(x, widths, value=0.0) -> Tensor:
    """Pad with a constant. ``widths`` is one ``(before, after)`` pair per axis (NumPy's order), or a single pair for
    every axis."""
    x = as_tensor(x)
    w = B.xp.asarray(widths, dtype=int)
    if w.shape == (2,):
        w = B.xp.tile(w, (x.ndim, 1))
    if w.shape != (x.ndim, 2) or (w < 0).any():
        raise ValueError(
            f"pad: widths must be {x.ndim} non-negative (before, after) pairs for shape {tuple(x.shape)}, "
            f"got {widths!r}"
        )
    return Pad.apply(x, widths=tuple(map(tuple, w.tolist())), value=value)
