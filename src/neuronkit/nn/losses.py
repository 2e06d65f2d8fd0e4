"""Loss functions: a functional form per loss, composed from differentiable ops, and a ``Module`` wrapper for each.

Every function takes ``reduction`` in ``{"mean", "sum", "none"}`` (``kl_div`` also ``"batchmean"``) and follows the
semantics of its ``torch.nn.functional`` namesake, so a model trained here and there gives the same numbers.
Gradients come from the ops the losses are built from (principle 1: compose by default); classification without
class weights or ignored targets goes through the fused ``ops.softmax_cross_entropy``, the hot path.

``LOSSES`` maps short names (``"mse"``, ``"cross_entropy"``, ...) to the module classes and ``get_loss`` builds one
from a name (principle 9).
"""

from __future__ import annotations

from .. import backend as B
from .. import ops
from ..ops.nn import CrossEntropy
from ..tensor import Tensor
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


# -- helpers ----------------------------------------------------------------------------------------------------------
def _check_reduction(name: str, reduction, allowed=_REDUCTIONS) -> None:
    if reduction not in allowed:
        choices = ", ".join(repr(r) for r in allowed)
        raise ValueError(f"{name}: reduction must be one of {choices}, got {reduction!r}")


def _input(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _target_like(name: str, x: Tensor, target) -> Tensor:
    """``target`` as a tensor of ``x``'s shape and dtype (a differentiable cast if it is a float tensor of another
    dtype); a different shape raises ``ValueError`` naming both shapes."""
    if not isinstance(target, Tensor):
        target = Tensor(B.asarray(target, dtype=x.dtype))
    if tuple(target.shape) != tuple(x.shape):
        raise ValueError(f"{name}: input shape {tuple(x.shape)} and target shape {tuple(target.shape)} differ")
    if target.dtype != x.dtype:
        target = ops.astype(target, x.dtype)
    return target


def _weight(name: str, weight, x: Tensor, shape=None):
    """Optional weight as a tensor of ``x``'s dtype; with ``shape`` given it must equal it exactly."""
    if weight is None:
        return None
    w = weight if isinstance(weight, Tensor) else Tensor(B.asarray(weight, dtype=x.dtype))
    if shape is not None and tuple(w.shape) != tuple(shape):
        raise ValueError(f"{name}: weight must have shape {tuple(shape)}, got {tuple(w.shape)}")
    if w.dtype != x.dtype:
        w = ops.astype(w, x.dtype)
    return w


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def _class_targets(name: str, x: Tensor, target, ignore_index=None):
    """Integer class targets as an array of shape (N,) for (N, C) scores, checked against the class range."""
    t = target.data if isinstance(target, Tensor) else B.asarray(target)
    if x.ndim != 2:
        raise ValueError(f"{name}: input must have shape (N, C), got {tuple(x.shape)}")
    n, c = x.shape
    if t.dtype.kind not in "iu":
        raise TypeError(f"{name}: target must hold integer class indices, got dtype {t.dtype}")
    if t.shape != (n,):
        raise ValueError(
            f"{name}: input shape {tuple(x.shape)} and target shape {tuple(t.shape)} differ: expected ({n},)"
        )
    bad = (t < 0) | (t >= c)
    if ignore_index is not None:
        bad &= t != ignore_index
    if bad.any():
        raise ValueError(f"{name}: target class {int(t[bad][0])} is out of range for {c} classes (expected 0..{c - 1})")
    return t


# -- regression -------------------------------------------------------------------------------------------------------
def mse_loss(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002 - PyTorch's keyword
    """Mean squared error: ``l = (x - y)^2`` elementwise, then reduced.

    Shapes: ``input`` and ``target`` any identical shape; output a scalar, or the input's shape with ``"none"``.
    """
    _check_reduction("mse_loss", reduction)
    x = _input(input)
    d = x - _target_like("mse_loss", x, target)
    return _reduce(d * d, reduction)


def l1_loss(input, target, reduction: str = "mean") -> Tensor:  # noqa: A002 - PyTorch's keyword
    """Mean absolute error: ``l = |x - y|`` elementwise (gradient ``sign(x - y)``, 0 at a tie), then reduced."""
    _check_reduction("l1_loss", reduction)
    x = _input(input)
    return _reduce(ops.abs(x - _target_like("l1_loss", x, target)), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:  # noqa: A002 - PyTorch's keyword
    """Huber loss: quadratic near 0, linear beyond ``delta`` (default 1.0), with ``d = x - y``:

    ``l = 0.5 d^2`` if ``|d| < delta``, else ``delta (|d| - 0.5 delta)``. Equals ``delta * smooth_l1_loss(beta=delta)``.
    """
    _check_reduction("huber_loss", reduction)
    if not delta > 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    x = _input(input)
    d = x - _target_like("huber_loss", x, target)
    a = ops.abs(d)
    loss = ops.where((a < delta).data, 0.5 * d * d, delta * (a - 0.5 * delta))
    return _reduce(loss, reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:  # noqa: A002 - PyTorch's keyword
    """Smooth L1 loss, with ``d = x - y``: ``l = 0.5 d^2 / beta`` if ``|d| < beta``, else ``|d| - 0.5 beta``.

    ``beta`` (default 1.0) must be >= 0; ``beta = 0`` is exactly ``l1_loss``.
    """
    _check_reduction("smooth_l1_loss", reduction)
    if not beta >= 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta}")
    x = _input(input)
    d = x - _target_like("smooth_l1_loss", x, target)
    a = ops.abs(d)
    if beta == 0:
        return _reduce(a, reduction)
    loss = ops.where((a < beta).data, (0.5 / beta) * d * d, a - 0.5 * beta)
    return _reduce(loss, reduction)


# -- binary classification --------------------------------------------------------------------------------------------
def binary_cross_entropy(probs, target, weight=None, reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities: ``l = -w (y log p + (1 - y) log(1 - p))`` elementwise.

    Each log is clamped to >= -100 (as PyTorch does), so ``p = 0`` or ``1`` gives a finite loss.
    Shapes: ``probs`` and ``target`` identical, values in [0, 1]; ``weight`` (optional) broadcasts against them.
    Prefer :func:`binary_cross_entropy_with_logits` on raw scores: it is exact where ``sigmoid`` saturates.
    """
    name = "binary_cross_entropy"
    _check_reduction(name, reduction)
    p = _input(probs)
    y = _target_like(name, p, target)
    pd = p.data
    if pd.size and ((pd < 0) | (pd > 1)).any():
        raise ValueError(f"{name}: input values must lie in [0, 1], got values in [{pd.min()}, {pd.max()}]")

    def clamped_log(q: Tensor) -> Tensor:
        pos = q.data > 0
        safe = ops.where(pos, q, 1.0)  # log(1) = 0 where q == 0: no -inf, no 0 * inf in the gradient
        return ops.where(pos, ops.clip(ops.log(safe), min=-100.0), -100.0)

    loss = -(y * clamped_log(p) + (1 - y) * clamped_log(1 - p))
    w = _weight(name, weight, p)
    if w is not None:
        loss = loss * w
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(logits, target, weight=None, pos_weight=None, reduction: str = "mean") -> Tensor:
    """Sigmoid and binary cross-entropy in one numerically stable formula, for logits ``x`` and targets ``y``:

    ``l = w ((1 - y) x + (1 + (pw - 1) y) softplus(-x))``, where ``softplus(-x) = max(-x, 0) + log1p(exp(-|x|))``
    is ``-log sigmoid(x)`` without overflow. ``pos_weight`` ``pw`` (default 1; shape (C,) broadcasting over the last
    axis) weighs the positive class; ``weight`` (default 1) broadcasts against the input.
    """
    name = "binary_cross_entropy_with_logits"
    _check_reduction(name, reduction)
    x = _input(logits)
    y = _target_like(name, x, target)
    sp = ops.softplus(-x)  # -log sigmoid(x)
    pw = _weight(name, pos_weight, x)
    if pw is None:
        loss = (1 - y) * x + sp
    else:
        loss = (1 - y) * x + (1 + (pw - 1) * y) * sp
    w = _weight(name, weight, x)
    if w is not None:
        loss = loss * w
    return _reduce(loss, reduction)


# -- multi-class classification ---------------------------------------------------------------------------------------
def nll_loss(log_probs, target, weight=None, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of class indices: ``l_n = -w[y_n] log_probs[n, y_n]`` (0 where ``y_n == ignore_index``).

    Shapes: ``log_probs`` (N, C); ``target`` (N,) integers in [0, C) or ``ignore_index``; ``weight`` (C,) optional.
    ``"mean"`` divides the sum by ``sum_n w[y_n]`` over the non-ignored targets (the count when unweighted), as
    PyTorch does; with every target ignored that is 0 / 0 = nan.
    """
    name = "nll_loss"
    _check_reduction(name, reduction)
    lp = _input(log_probs)
    t = _class_targets(name, lp, target, ignore_index)
    n, c = lp.shape
    w = _weight(name, weight, lp, (c,))
    valid = t != ignore_index  # (N,)
    safe = B.xp.where(valid, t, 0)  # ignored rows pick class 0, then get weight 0
    picked = lp[B.xp.arange(n), safe]  # (N,)
    mask = Tensor(valid.astype(lp.dtype))
    wn = mask if w is None else w[safe] * mask  # (N,) per-row weights
    loss = -(picked * wn)
    if reduction == "mean":
        return ops.sum(loss) / ops.sum(wn)
    return _reduce(loss, reduction)


def cross_entropy(
    logits, target, weight=None, ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean"
) -> Tensor:
    """Softmax cross-entropy of (N, C) logits, as ``torch.nn.functional.cross_entropy``.

    With class-index targets ``y`` (N,) and ``logp = log_softmax(logits)``, smoothing ``e`` (default 0):
    ``l_n = (1 - e) * (-w[y_n] logp[n, y_n]) + (e / C) * (-sum_c w[c] logp[n, c])``, 0 where ``y_n == ignore_index``.
    ``"mean"`` divides the sum of both terms by ``sum_n w[y_n]`` over the non-ignored rows (by their count when
    ``weight`` is None). With probability targets ``q`` (N, C) (smoothed to ``(1 - e) q + e / C``):
    ``l_n = -sum_c w[c] q[n, c] logp[n, c]`` and ``"mean"`` divides by N; ``ignore_index`` does not apply.

    Without ``weight`` and with no target equal to ``ignore_index`` this is the fused
    :func:`neuronkit.ops.softmax_cross_entropy` (one op with a hand-written backward); otherwise it is composed from
    ``log_softmax`` and indexing.
    Shapes: ``logits`` (N, C); ``weight`` (C,) optional; output scalar, or (N,) with ``"none"``.
    """
    name = "cross_entropy"
    if reduction not in _REDUCTIONS:
        _check_reduction(name, reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{name}: label_smoothing must be in [0, 1], got {label_smoothing}")
    x = logits if isinstance(logits, Tensor) else Tensor(logits)
    if x.data.ndim != 2:
        raise ValueError(f"{name}: logits must have shape (N, C), got {tuple(x.shape)}")
    n, c = x.data.shape
    w = None if weight is None else _weight(name, weight, x, (c,))
    t = target.data if isinstance(target, Tensor) else B.asarray(target)
    if t.dtype.kind == "f":  # class probabilities
        if t.shape != (n, c):
            raise ValueError(
                f"{name}: input shape {tuple(x.shape)} and target shape {tuple(t.shape)} differ: "
                f"probability targets must have the logits' shape"
            )
        if w is None:
            return ops.softmax_cross_entropy(x, target, label_smoothing=label_smoothing, reduction=reduction)
        q = _target_like(name, x, target)
        if label_smoothing:
            q = q * (1 - label_smoothing) + label_smoothing / c
        loss = -ops.sum(ops.log_softmax(x, axis=1) * q * w, axis=1)  # (N,)
        return _reduce(loss, reduction)

    if w is None and t.dtype.kind in "iu" and t.shape == (n,) and n and not 0 <= ignore_index < c:
        # The hot path (plain class targets): one range check here, none again in the fused op.
        if B.xp.minimum.reduce(t) >= 0 and B.xp.maximum.reduce(t) < c:
            return CrossEntropy.apply(x, Tensor.from_array(t), smoothing=float(label_smoothing), reduction=reduction)
    t = _class_targets(name, x, t, ignore_index)
    ignored = t == ignore_index
    if w is None and not ignored.any():
        return ops.softmax_cross_entropy(x, t, label_smoothing=label_smoothing, reduction=reduction)
    logp = ops.log_softmax(x, axis=1)  # (N, C)
    nll = nll_loss(logp, t, weight=w, ignore_index=ignore_index, reduction=reduction)
    if not label_smoothing:
        return nll
    mask = Tensor((~ignored).astype(x.dtype))
    smooth = -ops.sum(logp if w is None else logp * w, axis=1) * mask  # (N,), 0 on ignored rows
    if reduction == "mean":
        if w is None:
            denom = float((~ignored).sum())
            smooth = ops.sum(smooth) / denom  # 0 / 0 = nan when every target is ignored, as in PyTorch
        else:
            smooth = ops.sum(smooth) / ops.sum(w[B.xp.where(ignored, 0, t)] * mask)
    elif reduction == "sum":
        smooth = ops.sum(smooth)
    return (1 - label_smoothing) * nll + (label_smoothing / c) * smooth


def kl_div(input_log_probs, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Kullback-Leibler divergence ``KL(target || input)`` with the input given as log-probabilities ``x``:

    ``l = y (log y - x)`` elementwise (0 where ``y = 0``), or with ``log_target=True`` (target given as ``log y``)
    ``l = exp(log y) (log y - x)``. Reductions: ``"mean"`` over all elements (as PyTorch's default, which is not the
    KL divergence), ``"batchmean"`` = sum / N (the true KL per sample), ``"sum"``, ``"none"``.
    Shapes: ``input_log_probs`` and ``target`` identical, first axis the batch.
    """
    name = "kl_div"
    _check_reduction(name, reduction, _REDUCTIONS + ("batchmean",))
    x = _input(input_log_probs)
    y = _target_like(name, x, target)
    if log_target:
        loss = ops.exp(y) * (y - x)
    else:
        pos = y.data > 0
        ylogy = ops.where(pos, y * ops.log(ops.where(pos, y, 1.0)), 0.0)  # xlogy(y, y): 0 log 0 = 0
        loss = ylogy - y * x
    if reduction == "batchmean":
        return ops.sum(loss) / float(x.shape[0] if x.ndim else 1)
    return _reduce(loss, reduction)


def hinge_loss(scores, target, reduction: str = "mean", margin: float = 1.0, weight=None) -> Tensor:
    """Multi-class hinge (margin) loss, as ``torch.nn.MultiMarginLoss`` with ``p=1``:

    ``l_n = w[y_n] * sum_{c != y_n} max(0, margin - s[n, y_n] + s[n, c]) / C``: every wrong class whose score comes
    within ``margin`` (default 1.0) of the true class's score is penalised linearly (the Crammer-Singer/Weston-Watkins
    SVM loss, averaged over classes). Shapes: ``scores`` (N, C); ``target`` (N,) integers in [0, C); ``weight`` (C,).
    """
    name = "hinge_loss"
    _check_reduction(name, reduction)
    s = _input(scores)
    t = _class_targets(name, s, target)
    n, c = s.shape
    w = _weight(name, weight, s, (c,))
    rows = B.xp.arange(n)
    true = ops.unsqueeze(s[rows, t], 1)  # (N, 1)
    other = B.xp.ones((n, c), dtype=s.dtype)
    other[rows, t] = 0  # the true class contributes nothing
    loss = ops.sum(ops.relu(margin - true + s) * Tensor(other), axis=1) / float(c)  # (N,)
    if w is not None:
        loss = loss * w[t]
    return _reduce(loss, reduction)


# -- modules ----------------------------------------------------------------------------------------------------------
class _Loss(Module):
    """Base of the loss modules: stores ``reduction`` (validated) and the options; ``forward`` calls the function."""

    _fn = None
    _reductions = _REDUCTIONS

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        _check_reduction(type(self).__name__, reduction, self._reductions)
        self.reduction = reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class MSELoss(_Loss):
    """Mean squared error ``(x - y)^2``, reduced (default ``"mean"``). See :func:`mse_loss`.

    Shape: input (*), target (*) the same shape; output scalar, or (*) with ``reduction="none"``.
    """

    def forward(self, x, target):
        return mse_loss(x, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ``|x - y|``, reduced (default ``"mean"``). See :func:`l1_loss`. Shapes as MSELoss."""

    def forward(self, x, target):
        return l1_loss(x, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Huber loss with threshold ``delta`` (default 1.0): ``0.5 d^2`` if ``|d| < delta`` else
    ``delta (|d| - 0.5 delta)``. See :func:`huber_loss`. Shapes as MSELoss."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        if not delta > 0:
            raise ValueError(f"HuberLoss: delta must be positive, got {delta}")
        self.delta = delta

    def forward(self, x, target):
        return huber_loss(x, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """Smooth L1 with ``beta`` (default 1.0): ``0.5 d^2 / beta`` if ``|d| < beta`` else ``|d| - 0.5 beta``.
    See :func:`smooth_l1_loss`. Shapes as MSELoss."""

    def __init__(self, reduction: str = "mean", beta: float = 1.0):
        super().__init__(reduction)
        if not beta >= 0:
            raise ValueError(f"SmoothL1Loss: beta must be non-negative, got {beta}")
        self.beta = beta

    def forward(self, x, target):
        return smooth_l1_loss(x, target, reduction=self.reduction, beta=self.beta)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities, ``-w (y log p + (1 - y) log(1 - p))`` with logs clamped to >= -100.
    ``weight`` (default None) broadcasts against the input. See :func:`binary_cross_entropy`.

    Shape: input (*) in [0, 1], target (*) the same shape; output scalar, or (*) with ``"none"``.
    """

    def __init__(self, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight = weight

    def forward(self, x, target):
        return binary_cross_entropy(x, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy on logits, stable for any logit:
    ``w ((1 - y) x + (1 + (pw - 1) y) softplus(-x))``. ``weight`` and ``pos_weight`` default to None (1).
    See :func:`binary_cross_entropy_with_logits`. Shapes as BCELoss, input unbounded.
    """

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, x, target):
        return binary_cross_entropy_with_logits(
            x, target, weight=self.weight, pos_weight=self.pos_weight, reduction=self.reduction
        )


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits against class indices or probabilities. Defaults: ``weight=None``,
    ``ignore_index=-100``, ``reduction="mean"``, ``label_smoothing=0.0``. See :func:`cross_entropy` for the maths.

    Shape: input (N, C); target (N,) integers in [0, C) or (N, C) probabilities; output scalar, or (N,) with
    ``"none"``.
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing

    def forward(self, x, target):
        return cross_entropy(
            x,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            reduction=self.reduction,
        )


class NLLLoss(_Loss):
    """Negative log-likelihood ``-w[y_n] logp[n, y_n]`` of log-probabilities (e.g. from ``log_softmax``).
    Defaults: ``weight=None``, ``ignore_index=-100``, ``reduction="mean"``. See :func:`nll_loss`.

    Shape: input (N, C); target (N,) integers; output scalar, or (N,) with ``"none"``.
    """

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.weight, self.ignore_index = weight, ignore_index

    def forward(self, x, target):
        return nll_loss(x, target, weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class KLDivLoss(_Loss):
    """KL divergence ``y (log y - x)`` with input log-probabilities ``x``. Defaults: ``reduction="mean"`` (use
    ``"batchmean"`` for the true KL per sample), ``log_target=False``. See :func:`kl_div`.

    Shape: input (N, *), target the same shape; output scalar, or (N, *) with ``"none"``.
    """

    _reductions = _REDUCTIONS + ("batchmean",)

    def __init__(self, reduction: str = "mean", log_target: bool = False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, x, target):
        return kl_div(x, target, reduction=self.reduction, log_target=self.log_target)


class HingeLoss(_Loss):
    """Multi-class hinge loss (``torch.nn.MultiMarginLoss``, p=1):
    ``w[y_n] sum_{c != y_n} max(0, margin - s[n, y_n] + s[n, c]) / C``. Defaults: ``margin=1.0``, ``weight=None``,
    ``reduction="mean"``. See :func:`hinge_loss`.

    Shape: input (N, C) scores; target (N,) integers; output scalar, or (N,) with ``"none"``.
    """

    def __init__(self, margin: float = 1.0, weight=None, reduction: str = "mean"):
        super().__init__(reduction)
        self.margin, self.weight = margin, weight

    def forward(self, x, target):
        return hinge_loss(x, target, reduction=self.reduction, margin=self.margin, weight=self.weight)


# -- registry ---------------------------------------------------------------------------------------------------------
LOSSES = {
    "mse": MSELoss,
    "l1": L1Loss,
    "huber": HuberLoss,
    "smooth_l1": SmoothL1Loss,
    "bce": BCELoss,
    "bce_with_logits": BCEWithLogitsLoss,
    "cross_entropy": CrossEntropyLoss,
    "nll": NLLLoss,
    "kl_div": KLDivLoss,
    "hinge": HingeLoss,
}
"""Short names for the loss modules: ``get_loss("cross_entropy")`` and saved configurations use these keys."""


def get_loss(name_or_module, **kwargs) -> Module:
    """A loss module from a registered name (a new instance built with ``kwargs``), or ``name_or_module`` itself when
    it already is a ``Module``. An unknown name raises ``ValueError`` listing the known ones."""
    if isinstance(name_or_module, Module):
        if kwargs:
            raise ValueError("get_loss: keyword options apply only when the loss is given by name")
        return name_or_module
    if isinstance(name_or_module, str):
        key = name_or_module.lower()
        if key in LOSSES:
            return LOSSES[key](**kwargs)
    known = ", ".join(sorted(LOSSES))
    raise ValueError(f"get_loss: unknown loss {name_or_module!r}; known names: {known}")
