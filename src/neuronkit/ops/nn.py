"""Probability ops: softmax, log_softmax and the fused softmax cross-entropy (the hot path of classification)."""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor, norm_axes
from .registry import register


class Softmax(Function):
    name = "softmax"

    def forward(self, x, axis):
        xp = B.xp
        e = xp.exp(x - x.max(axis=axis, keepdims=True))  # shifted: no overflow for large inputs
        e /= e.sum(axis=axis, keepdims=True)
        self.y, self.axis = e, axis
        return e

    def backward(self, g):
        y = self.y
        return (y * (g - (g * y).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    name = "log_softmax"

    def forward(self, x, axis):
        xp = B.xp
        z = x - x.max(axis=axis, keepdims=True)
        z -= xp.log(xp.exp(z).sum(axis=axis, keepdims=True))
        self.y, self.axis = z, axis
        return z

    def backward(self, g):
        return (g - B.xp.exp(self.y) * g.sum(axis=self.axis, keepdims=True),)


@register("softmax")
def softmax(x, axis: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``axis`` (default last), shifted by the maximum so it never overflows."""
    x = as_tensor(x)
    return Softmax.apply(x, axis=norm_axes(axis, x.ndim, "softmax")[0] if x.ndim else None)


@register("log_softmax")
def log_softmax(x, axis: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``: log-probabilities, exact even where softmax underflows to 0."""
    x = as_tensor(x)
    return LogSoftmax.apply(x, axis=norm_axes(axis, x.ndim, "log_softmax")[0] if x.ndim else None)


class CrossEntropy(Function):
    """The fused op of ``softmax_cross_entropy``: arguments already checked (``logits`` (N, C); ``target`` in-range
    class indices (N,) or probabilities (N, C) of the logits' dtype, as a Tensor)."""

    name = "softmax_cross_entropy"

    def forward(self, logits, target, smoothing, reduction):
        xp = B.xp
        n, c = logits.shape
        z = logits - logits.max(axis=1, keepdims=True)  # (N, C)
        e = xp.exp(z)
        s = e.sum(axis=1, keepdims=True)  # (N, 1)
        lse = xp.log(s)[:, 0]  # (N,)
        if target.dtype.kind in "iu":  # class indices
            rows = xp.arange(n)
            loss = lse - z[rows, target]  # -log p[target]
            if smoothing:
                loss = (1 - smoothing) * loss + smoothing * (lse - z.mean(axis=1))
            self.rows = rows
        else:  # class probabilities
            q = target if not smoothing else target * (1 - smoothing) + smoothing / c
            loss = (q * (lse[:, None] - z)).sum(axis=1)
            self.q = q
        self.e, self.s, self.target = e, s, target
        self.smoothing, self.reduction, self.n, self.c = smoothing, reduction, n, c
        if reduction == "mean":  # add.reduce: a few microseconds cheaper than .mean() per call
            return xp.add.reduce(loss) / loss.dtype.type(n) if n else xp.asarray(xp.nan, dtype=logits.dtype)
        if reduction == "sum":
            return xp.add.reduce(loss)
        return loss

    def backward(self, g):
        # d loss_i / d logits_i = softmax(logits_i) * sum(q_i) - q_i, with q_i the (smoothed) target distribution.
        if self.reduction == "none":
            scale = g[:, None]  # (N, 1)
        else:
            scale = g / self.n if self.reduction == "mean" else g
        grad = self.e * (scale / self.s)  # softmax * scale, (N, C)
        if self.target.dtype.kind in "iu":
            sm, rows = self.smoothing, self.rows
            hit = scale[:, 0] if self.reduction == "none" else scale
            if sm:
                grad -= (sm / self.c) * scale
            grad[rows, self.target] -= (1 - sm) * hit
        else:
            q = self.q
            grad = grad * q.sum(axis=1, keepdims=True) - q * scale
        return grad, None


@register("softmax_cross_entropy")
def softmax_cross_entropy(logits, target, label_smoothing: float = 0.0, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy as one fused op with its own backward: ``-sum_c q_c log softmax(logits)_c`` per row.

    The hot path of classification. ``neuronkit.cross_entropy`` (``nn.losses.cross_entropy``, with class weights and
    ``ignore_index`` as in PyTorch) computes the same function and uses this op whenever it can.

    Args:
        logits: (N, C) unnormalised scores.
        target: (N,) integer class indices in ``[0, C)``, or (N, C) class probabilities.
        label_smoothing: in [0, 1]; mixes the target with the uniform distribution: ``q = (1 - e) q + e / C``.
        reduction: ``"mean"`` (default) over the N rows, ``"sum"``, or ``"none"`` for the (N,) per-row losses.
    """
    logits = as_tensor(logits)
    t = target.data if isinstance(target, Tensor) else B.asarray(target)
    if logits.ndim != 2:
        raise ValueError(f"softmax_cross_entropy: logits must have shape (N, C), got {tuple(logits.shape)}")
    n, c = logits.shape
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"softmax_cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"softmax_cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if t.dtype.kind in "iu":
        if t.shape != (n,):
            raise ValueError(
                f"softmax_cross_entropy: integer targets must have shape ({n},) for logits {logits.shape}, "
                f"got {t.shape}"
            )
        if n and (B.xp.minimum.reduce(t) < 0 or B.xp.maximum.reduce(t) >= c):
            bad = t[(t < 0) | (t >= c)][0]
            raise ValueError(
                f"softmax_cross_entropy: target class {int(bad)} is out of range for {c} classes (expected 0..{c - 1})"
            )
    elif t.dtype.kind == "f":
        if t.shape != (n, c):
            raise ValueError(
                f"softmax_cross_entropy: probability targets must have the logits' shape {logits.shape}, got {t.shape}"
            )
        t = t.astype(logits.dtype, copy=False)
    else:
        raise TypeError(
            f"softmax_cross_entropy: target must be integer class indices or float probabilities, got dtype {t.dtype}"
        )
    return CrossEntropy.apply(logits, Tensor.from_array(t), smoothing=float(label_smoothing), reduction=reduction)
