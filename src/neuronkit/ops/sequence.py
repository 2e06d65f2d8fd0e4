"""Pooling over time with a length mask: ``masked_mean_pool`` and ``masked_max_pool``, each fused with its backward.

A padded batch ``x`` of shape (B, T, D) holds ``lengths[b]`` real steps in row ``b`` and padding after them; these ops
reduce each row over its real steps only, so padding never changes a result or receives a gradient. A row of length
0 pools to zeros.
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor
from .registry import register


def _step_mask(lengths, t: int):
    return B.xp.arange(t) < lengths[:, None]  # (B, T): True on real steps


class MaskedMeanPool(Function):
    name = "masked_mean_pool"

    def forward(self, x, lengths):
        xp = B.xp
        # (B, T) weights 1/length on real steps, 0 on padding: the mean is one batched product with x
        w = _step_mask(lengths, x.shape[1]).astype(x.dtype)
        w /= xp.maximum(lengths, 1).astype(x.dtype)[:, None]
        self.w = w
        return xp.matmul(w[:, None, :], x)[:, 0, :]  # (B, 1, T) @ (B, T, D) -> (B, D)

    def backward(self, g):
        return (self.w[:, :, None] * g[:, None, :],)  # (B, T, D): each real step gets g / length


class MaskedMaxPool(Function):
    name = "masked_max_pool"

    def forward(self, x, lengths):
        xp = B.xp
        n, t, d = x.shape
        self.xshape = x.shape
        if t == 0:
            self.idx = None
            return xp.zeros((n, d), dtype=x.dtype)
        mask = _step_mask(lengths, t)
        masked = xp.where(mask[:, :, None], x, xp.asarray(-xp.inf, dtype=x.dtype))
        idx = masked.argmax(axis=1)  # (B, D): the step of each maximum (the first, on ties)
        out = xp.take_along_axis(x, idx[:, None, :], axis=1)[:, 0, :]
        empty = lengths == 0
        if empty.any():
            out[empty] = 0
        self.idx, self.empty = idx, empty
        return out

    def backward(self, g):
        xp = B.xp
        gx = xp.zeros(self.xshape, dtype=g.dtype)
        if self.idx is not None:
            xp.put_along_axis(gx, self.idx[:, None, :], g[:, None, :], axis=1)
            gx[self.empty] = 0
        return (gx,)


def _check(x: Tensor, lengths, who: str):
    if x.ndim != 3:
        raise ValueError(f"{who}: expected x of shape (batch, time, features), got {tuple(x.shape)}")
    n = lengths.data if isinstance(lengths, Tensor) else B.asarray(lengths)
    if n.ndim != 1 or n.shape[0] != x.shape[0]:
        raise ValueError(f"{who}: expected lengths of shape ({x.shape[0]},), one per row of x, got {tuple(n.shape)}")
    if n.size and n.dtype.kind not in "iu":
        raise TypeError(f"{who}: lengths must be integers, got dtype {n.dtype}")
    if n.size and (n.min() < 0 or n.max() > x.shape[1]):
        bad = n[(n < 0) | (n > x.shape[1])][0]
        raise ValueError(f"{who}: length {int(bad)} is outside 0..{x.shape[1]} (the time axis of x {tuple(x.shape)})")
    return n.astype(B.xp.int64, copy=False)


@register("masked_mean_pool")
def masked_mean_pool(x, lengths) -> Tensor:
    """The mean of ``x`` over each row's first ``lengths[b]`` time steps.

    ``out[b] = sum_{t < lengths[b]} x[b, t] / lengths[b]`` (zeros where ``lengths[b] == 0``).

    Shape: x (B, T, D), lengths (B,) integers in 0..T (array or tensor; not differentiated) -> (B, D).
    """
    x = as_tensor(x)
    return MaskedMeanPool.apply(x, lengths=_check(x, lengths, "masked_mean_pool"))


@register("masked_max_pool")
def masked_max_pool(x, lengths) -> Tensor:
    """The maximum of ``x`` over each row's first ``lengths[b]`` time steps, per feature.

    ``out[b, d] = max_{t < lengths[b]} x[b, t, d]`` (zeros where ``lengths[b] == 0``); the gradient goes to the step
    that holds the maximum (the first one on ties, as ``torch.max(dim=...)`` does).

    Shape: x (B, T, D), lengths (B,) integers in 0..T (array or tensor; not differentiated) -> (B, D).
    """
    x = as_tensor(x)
    return MaskedMaxPool.apply(x, lengths=_check(x, lengths, "masked_max_pool"))
