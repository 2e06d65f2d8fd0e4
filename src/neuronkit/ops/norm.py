"""Normalisation and lookup ops, each fused with a hand-written backward: ``batch_norm``, ``layer_norm``, ``embedding``.

Composing these from mean/var/sub/div would cost a dozen full passes over the activations and as many saved
temporaries; the fused forms save one normalised array and do the backward in about three passes.

Synchronised batch norm: data-parallel training (``train.distributed``) sets ``batch_stats_sum(fn)``, where
``fn(a)`` returns the elementwise sum of the float64 array ``a`` over all ranks. Batch norm in training then uses the
statistics of the global batch: the per-channel sums and counts of the forward, and the sums of ``g`` and ``g xhat``
of the backward, are summed over the ranks (three small reductions per layer and step), so N ranks normalise exactly
as one process does on the whole batch, up to float rounding.
"""

from __future__ import annotations

import contextlib
import math

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor
from .registry import register


def _data(t):
    return t.data if isinstance(t, Tensor) else t


_SUM = None  # while set (batch_stats_sum), batch norm statistics are summed over all data-parallel ranks


@contextlib.contextmanager
def batch_stats_sum(fn):
    """Within this context, training-mode batch norm uses global-batch statistics; ``fn(a)`` sums a float64 array
    over all ranks (every rank must run the same layers in the same order). Not thread-safe."""
    global _SUM
    previous, _SUM = _SUM, fn
    try:
        yield
    finally:
        _SUM = previous


def batch_stats_synchronised() -> bool:
    """True while training-mode batch norm uses the global batch's statistics (inside ``batch_stats_sum``)."""
    return _SUM is not None


def _summed(fn, *arrays):
    """``arrays`` (same dtype) summed over the ranks by one call of ``fn`` in float64, split back in their dtype."""
    flat = B.xp.concatenate([B.xp.asarray(a, dtype=B.xp.float64).reshape(-1) for a in arrays])
    total = fn(flat)
    out, at = [], 0
    for a in arrays:
        k = B.xp.size(a)
        out.append(total[at : at + k].astype(B.xp.asarray(a).dtype).reshape(B.xp.shape(a)))
        at += k
    return out


# -- batch norm ---------------------------------------------------------------------------------------------------


class BatchNorm(Function):
    name = "batch_norm"

    def forward(self, x, *params, has_w, has_b, running_mean, running_var, training, momentum, eps):
        xp = B.xp
        n, c = x.shape[0], x.shape[1]
        x3 = x.reshape(n, c, math.prod(x.shape[2:]))  # (N, C, L): one layout for (N, C), (N, C, L) and (N, C, H, W)
        m = x3.shape[0] * x3.shape[2]  # values per channel
        w = params[0] if has_w else None
        b = params[has_w] if has_b else None
        self.has_w, self.training, self.sync = has_w, training, _SUM if training else None
        if training:
            if self.sync is None:
                mean = x3.mean(axis=(0, 2))  # (C,)
            else:  # the global batch's count and mean
                total, count = _summed(self.sync, x3.sum(axis=(0, 2)), xp.asarray([m], dtype=xp.float64))
                m = int(round(float(count[0])))
                if m <= 1:
                    raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got {m}")
                mean = total / x.dtype.type(m)
            xc = x3 - mean[:, None]  # (N, C, L)
            y = xp.multiply(xc, xc)
            sq = y.sum(axis=(0, 2))
            if self.sync is not None:
                (sq,) = _summed(self.sync, sq)
            var = sq / x.dtype.type(m)  # biased: the variance used to normalise
            self.m = m
            invstd = 1.0 / xp.sqrt(var + eps)
            xhat = xp.multiply(xc, invstd[:, None], out=xc)
            if running_mean is not None:
                # PyTorch's rule: running = (1 - momentum) running + momentum batch, with the UNBIASED variance.
                running_mean *= 1.0 - momentum
                running_mean += momentum * mean
                running_var *= 1.0 - momentum
                running_var += (momentum * m / (m - 1)) * var
            xp.multiply(xhat, w[:, None], out=y) if w is not None else xp.copyto(y, xhat)
            self.xhat = xhat
        else:
            rm = running_mean.astype(x.dtype, copy=False)
            invstd = 1.0 / xp.sqrt(running_var.astype(x.dtype, copy=False) + eps)
            scale = invstd if w is None else w * invstd  # y = x * scale + shift: one pass
            shift = -rm * scale
            y = xp.multiply(x3, scale[:, None])
            if b is not None:
                shift = shift + b
            y += shift[:, None]
            self.x3, self.rm = x3, rm
            b = None
        if b is not None:
            y += b[:, None]
        self.invstd, self.w = invstd, w
        return y.reshape(x.shape)

    def backward(self, g):
        xp = B.xp
        n, c = g.shape[0], g.shape[1]
        g3 = g.reshape(n, c, math.prod(g.shape[2:]))  # explicit: an empty shard has n = 0
        w, invstd = self.w, self.invstd
        want_x = self.next[0] is not None
        want_w = self.has_w and self.next[1] is not None
        gb = g3.sum(axis=(0, 2))  # (C,)
        gx = gw = None
        if self.training:
            # d x = (w invstd) (g - mean(g) - xhat mean(g xhat)), with the means per channel (over the global batch
            # when synchronised; the parameters' gradients stay this rank's part, summed later with the others').
            xhat = self.xhat
            tmp = xp.multiply(g3, xhat)
            gw = tmp.sum(axis=(0, 2))  # (C,)
            gws, gbs = (gw, gb) if self.sync is None else _summed(self.sync, gw, gb)
            if want_x:
                m = g.dtype.type(self.m)
                xp.multiply(xhat, (gws / m)[:, None], out=tmp)
                xp.subtract(g3, tmp, out=tmp)
                tmp -= (gbs / m)[:, None]
                tmp *= (invstd if w is None else w * invstd)[:, None]
                gx = tmp.reshape(g.shape)
        else:
            if want_x:
                gx = xp.multiply(g3, (invstd if w is None else w * invstd)[:, None]).reshape(g.shape)
            if want_w:
                xhat = self.x3 - self.rm[:, None]
                xhat *= g3
                gw = xhat.sum(axis=(0, 2)) * invstd
        grads = [gx]
        if self.has_w:
            grads.append(gw if want_w else None)
        if len(self.next) > len(grads):
            grads.append(gb if self.next[-1] is not None else None)
        return tuple(grads)


@register("batch_norm")
def batch_norm(
    x,
    weight=None,
    bias=None,
    running_mean=None,
    running_var=None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalisation over axis 1 (the channels), fused with its backward.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, with ``mean`` and ``var`` per channel over every axis but 1.

    Args:
        x: (N, C), (N, C, L) or (N, C, H, W) (any (N, C, ...) works).
        weight, bias: (C,) tensors or None (no scale / no shift).
        running_mean, running_var: (C,) arrays or tensors, or None. In training they are updated in place
            (``r = (1 - momentum) r + momentum * batch``; the variance stored is the unbiased one, ``var * m / (m-1)``
            with ``m`` values per channel, as in PyTorch). In evaluation they replace the batch statistics.
        training: True: normalise with the batch's mean and biased variance. False: use the running statistics.
        momentum: weight of the new batch in the running averages (default 0.1).
        eps: added to the variance before the square root (default 1e-5).
    """
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input of shape (N, C, ...), got {tuple(x.shape)}")
    c = x.shape[1]
    rm, rv = _data(running_mean), _data(running_var)
    if (rm is None) != (rv is None):
        raise ValueError("batch_norm: give both running_mean and running_var, or neither")
    for what, v in (("running_mean", rm), ("running_var", rv)):
        if v is not None and tuple(v.shape) != (c,):
            raise ValueError(f"batch_norm: {what} must have shape ({c},) for input {tuple(x.shape)}, got {v.shape}")
    if not training and rm is None:
        raise ValueError("batch_norm: evaluation mode (training=False) needs running_mean and running_var")
    if training and x.size // c <= 1 and _SUM is None:  # synchronised: the global count is checked in forward
        raise ValueError(
            f"batch_norm: expected more than 1 value per channel when training, got input of shape {tuple(x.shape)}"
        )
    if training and not 0.0 <= momentum <= 1.0:
        raise ValueError(f"batch_norm: momentum must be in [0, 1], got {momentum}")
    ins = [x]
    for what, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            p = as_tensor(p)
            if p.shape != (c,):
                raise ValueError(
                    f"batch_norm: {what} must have shape ({c},) for input {tuple(x.shape)}, got {tuple(p.shape)}"
                )
            ins.append(p)
    return BatchNorm.apply(
        *ins,
        has_w=weight is not None,
        has_b=bias is not None,
        running_mean=rm,
        running_var=rv,
        training=bool(training),
        momentum=float(momentum),
        eps=float(eps),
    )


# -- layer norm ---------------------------------------------------------------------------------------------------


class LayerNorm(Function):
    name = "layer_norm"

    def forward(self, x, *params, d, has_w, has_b, eps):
        xp = B.xp
        x2 = x.reshape(-1, d)  # (rows, D): every trailing block of size D is one row
        mean = x2.mean(axis=1, keepdims=True)  # (rows, 1)
        xc = x2 - mean
        y = xp.multiply(xc, xc)
        var = y.mean(axis=1, keepdims=True)
        invstd = 1.0 / xp.sqrt(var + eps)
        xhat = xp.multiply(xc, invstd, out=xc)
        w = params[0].reshape(-1) if has_w else None
        if w is not None:
            xp.multiply(xhat, w, out=y)
        else:
            xp.copyto(y, xhat)
        if has_b:
            y += params[has_w].reshape(-1)
        self.xhat, self.invstd, self.w, self.has_w = xhat, invstd, w, has_w
        self.pshape = x.shape[x.ndim - len(params[0].shape) :] if params else None
        return y.reshape(x.shape)

    def backward(self, g):
        xp = B.xp
        xhat, invstd, w = self.xhat, self.invstd, self.w
        g2 = g.reshape(xhat.shape)
        want_x = self.next[0] is not None
        want_w = self.has_w and self.next[1] is not None
        has_b = len(self.next) > 1 + self.has_w
        gx = gw = gb = None
        tmp = xp.multiply(g2, xhat)  # (rows, D)
        if want_w:
            gw = tmp.sum(axis=0).reshape(self.pshape)
        if has_b and self.next[-1] is not None:
            gb = g2.sum(axis=0).reshape(self.pshape)
        if want_x:
            # d x = invstd (gh - mean(gh) - xhat mean(gh xhat)) per row, with gh = g * w. The row means are
            # matrix-vector products with w (BLAS, no temporaries) when there is a weight.
            d = g2.dtype.type(xhat.shape[1])
            if w is None:
                c1, c2 = g2.mean(axis=1), tmp.mean(axis=1)
                gx = g2 - xp.multiply(xhat, c2[:, None], out=tmp)
            else:
                c1, c2 = (g2 @ w) / d, (tmp @ w) / d
                xp.multiply(xhat, c2[:, None], out=tmp)
                gx = xp.multiply(g2, w)
                gx -= tmp
            gx -= c1[:, None]
            gx *= invstd
            gx = gx.reshape(g.shape)
        return (gx,) + ((gw,) if self.has_w else ()) + ((gb,) if has_b else ())


@register("layer_norm")
def layer_norm(x, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` dims, fused with its backward.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, with ``mean`` and the biased ``var`` of each sample over
    the last ``len(normalized_shape)`` axes.

    Args:
        x: (..., *normalized_shape).
        normalized_shape: an int or a tuple of ints: the trailing shape to normalise over.
        weight, bias: tensors of shape ``normalized_shape``, or None.
        eps: added to the variance before the square root (default 1e-5).
    """
    x = as_tensor(x)
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    if k == 0 or x.ndim < k or tuple(x.shape[x.ndim - k :]) != ns:
        raise ValueError(f"layer_norm: input of shape {tuple(x.shape)} does not end in normalized_shape {ns}")
    ins = [x]
    for what, p in (("weight", weight), ("bias", bias)):
        if p is not None:
            p = as_tensor(p)
            if tuple(p.shape) != ns:
                raise ValueError(f"layer_norm: {what} must have shape {ns}, got {tuple(p.shape)}")
            ins.append(p)
    return LayerNorm.apply(*ins, d=math.prod(ns), has_w=weight is not None, has_b=bias is not None, eps=float(eps))


# -- embedding ----------------------------------------------------------------------------------------------------


class Embedding(Function):
    name = "embedding"

    def forward(self, weight, indices, padding_idx):
        self.indices, self.padding_idx, self.wshape = indices, padding_idx, weight.shape
        return weight[indices]  # (*indices.shape, D): a gather, one pass

    def backward(self, g):
        xp = B.xp
        idx = self.indices.reshape(-1)
        g2 = g.reshape(idx.size, self.wshape[1])  # (K, D)
        gw = xp.zeros(self.wshape, dtype=g.dtype)
        if idx.size:
            # Scatter-add: sort once, sum each run of equal indices with one reduceat, write each row once.
            # (ufunc.at on rows is several times slower.)
            order = xp.argsort(idx, kind="stable")
            s = idx[order]
            starts = xp.flatnonzero(xp.concatenate(([True], s[1:] != s[:-1])))
            gw[s[starts]] = xp.add.reduceat(g2[order], starts, axis=0)
        if self.padding_idx is not None:
            gw[self.padding_idx] = 0
        return (gw,)


def check_indices(idx, n: int, who: str):
    """Raise ``IndexError`` naming the first index of ``idx`` outside ``[0, n)`` (``who`` starts the message)."""
    if idx.size and (B.xp.minimum.reduce(idx, axis=None) < 0 or B.xp.maximum.reduce(idx, axis=None) >= n):
        bad = idx[(idx < 0) | (idx >= n)][0]
        raise IndexError(f"{who}: index {int(bad)} is out of range for a table of {n} rows (expected 0..{n - 1})")


@register("embedding")
def embedding(indices, weight, padding_idx: int | None = None) -> Tensor:
    """Look up rows of ``weight``: ``out[..., :] = weight[indices[...], :]``.

    Args:
        indices: integer array or tensor of any shape, values in ``[0, num_embeddings)``.
        weight: (num_embeddings, embedding_dim).
        padding_idx: optional row (negative counts from the end) whose gradient is always zero; its value is still
            looked up.

    Returns: (*indices.shape, embedding_dim). Backward scatter-adds the upstream rows into ``weight``'s gradient, so
    an index that appears several times accumulates every one of its rows.
    """
    weight = as_tensor(weight)
    idx = indices.data if isinstance(indices, Tensor) else B.asarray(indices)
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {tuple(weight.shape)}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    n = weight.shape[0]
    if padding_idx is not None:
        if isinstance(padding_idx, bool) or not isinstance(padding_idx, int) or not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx must be an int in [-{n}, {n}), got {padding_idx!r}")
        padding_idx %= n
    check_indices(idx, n, "embedding")
    return Embedding.apply(weight, indices=idx, padding_idx=padding_idx)
