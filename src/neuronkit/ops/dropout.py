"""Dropout, fused with its backward: ``dropout(x, p)`` zeroes each value with probability p and scales the rest.

``y = x * m`` with ``m = 1 / (1 - p)`` where a uniform 32-bit draw is at least ``round(p * 2^32)`` (probability
1 - p, to within 2^-32) and 0 elsewhere; backward ``dx = g * m``. The mask is drawn as raw 32-bit words and
compared in one pass (``dropout_mask``), instead of drawing floats, comparing, converting and dividing: the draw is
the costly part of dropout, and this halves it. ``E[y] = x`` exactly.

Data-parallel training (``train.distributed``) sets ``batch_rows(lo, hi, total)`` while a rank runs its shard (rows
lo..hi-1 of a global batch of ``total``): a mask whose first axis has ``hi - lo`` rows is then drawn for the whole
global batch and cut to the shard's rows, so every rank draws exactly the masks one process would draw for the same
rows, and all ranks' generators stay in step.
"""

from __future__ import annotations

import contextlib

from .. import backend as B
from ..autograd.function import Function
from ..creation import get_generator
from ..tensor import Tensor
from ._util import as_tensor
from .registry import register

_ROWS = None  # (lo, hi, total) while a data-parallel rank runs rows lo..hi-1 of a global batch; see batch_rows


@contextlib.contextmanager
def batch_rows(lo: int, hi: int, total: int):
    """Within this context, masks whose first axis has ``hi - lo`` rows are drawn for ``total`` rows and cut to
    rows ``lo:hi`` (see the module docstring). Not thread-safe: one training loop per process."""
    global _ROWS
    previous, _ROWS = _ROWS, (int(lo), int(hi), int(total))
    try:
        yield
    finally:
        _ROWS = previous


def dropout_mask(shape, dtype, p: float, rng):
    """A (shape) array of float ``dtype``: ``1 / (1 - p)`` with probability 1 - p, else 0 (drawn from ``rng``)."""
    rows = _ROWS
    if rows is not None and len(shape) >= 1 and shape[0] == rows[1] - rows[0] and rows[2] != shape[0]:
        full = dropout_mask((rows[2], *shape[1:]), dtype, p, rng)  # (total, ...): the global batch's mask
        return full[rows[0] : rows[1]]
    xp = B.xp
    threshold = xp.uint32(min(round(p * 2.0**32), 2**32 - 1))
    m = xp.empty(shape, dtype=dtype)
    xp.greater_equal(B.random_uint32(rng, shape), threshold, out=m)
    m *= dtype.type(1.0 / (1.0 - p))
    return m


class Dropout(Function):
    name = "dropout"

    def forward(self, x, p, rng):
        self.m = dropout_mask(x.shape, x.dtype, p, rng)
        return x * self.m

    def backward(self, g):
        return (g * self.m,)


def check_p(p, who: str = "dropout") -> float:
    """``p`` as a float in [0, 1), else a ``ValueError`` naming it."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{who}: p must be a number in [0, 1), got {p!r}")
    return float(p)


@register("dropout")
def dropout(x, p: float = 0.5, training: bool = True, generator=None) -> Tensor:
    """Zero each value of ``x`` with probability ``p`` and scale the others by 1 / (1 - p); the identity (``x``
    itself) when not ``training`` or when p is 0.

    Args:
        x: a floating tensor of any shape.
        p: drop probability in [0, 1) (default 0.5).
        training: apply dropout (default True); False returns ``x``.
        generator: seed or ``numpy.random.Generator`` for the mask (default: neuronkit's default generator).
    """
    x = as_tensor(x)
    p = check_p(p)
    if not training or p == 0.0:
        return x
    if x.dtype.kind != "f":
        raise TypeError(f"dropout: expected a floating tensor, got dtype {x.dtype}")
    return Dropout.apply(x, p=p, rng=get_generator(generator))
