"""Gradient clipping: rescale all gradients to a maximum total norm, or clamp each entry to a range."""

from __future__ import annotations

import math

from .. import backend as B
from ..tensor import Tensor


def _grads(params, fn_name):
    if isinstance(params, Tensor):
        params = [params]
    out = []
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise TypeError(f"{fn_name}: parameter {i} is a {type(p).__name__}, expected a Tensor")
        if p.grad is not None:
            out.append(p.grad.data)
    return out


def clip_grad_norm(params, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False) -> float:
    r"""Scale the gradients of ``params`` in place so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients together, as if concatenated into one vector
    (``float("inf")`` gives the largest absolute entry). Every gradient is multiplied by
    :math:`\min(1, \text{max\_norm} / (\text{total} + 10^{-6}))`, as ``torch.nn.utils.clip_grad_norm_`` does.
    Parameters without a gradient are skipped.

    Args:
        params: a Tensor or an iterable of Tensors.
        max_norm: the largest total norm allowed.
        norm_type: the p of the p-norm; may be ``inf``. Defaults to 2.0.
        error_if_nonfinite: raise ``RuntimeError`` when the total norm is nan or inf (the gradients are then left
            as they were). Defaults to False.

    Returns:
        The total norm of the gradients before clipping, as a float.
    """
    check_max = isinstance(max_norm, (int, float)) and not math.isnan(max_norm) and max_norm >= 0
    if not check_max:
        raise ValueError(f"clip_grad_norm: max_norm must be a number >= 0, got {max_norm!r}")
    norm_type = float(norm_type)
    grads = _grads(params, "clip_grad_norm")
    if not grads:
        return 0.0
    xp = B.xp
    # the norm of the per-tensor norms equals the norm of everything concatenated, without building that vector
    norms = xp.array([xp.linalg.norm(g.reshape(-1), ord=norm_type) for g in grads])
    total = float(xp.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"clip_grad_norm: the total {norm_type}-norm of the gradients is {total}, so they cannot be clipped; "
            "pass error_if_nonfinite=False to clip anyway"
        )
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= coef
    return total


def clip_grad_value(params, clip_value: float) -> None:
    """Clamp every gradient entry of ``params`` to ``[-clip_value, clip_value]`` in place.

    Args:
        params: a Tensor or an iterable of Tensors; those without a gradient are skipped.
        clip_value: the largest absolute value allowed (>= 0).
    """
    if not (isinstance(clip_value, (int, float)) and not math.isnan(clip_value) and clip_value >= 0):
        raise ValueError(f"clip_grad_value: clip_value must be a number >= 0, got {clip_value!r}")
    for g in _grads(params, "clip_grad_value"):
        B.xp.clip(g, -clip_value, clip_value, out=g)
