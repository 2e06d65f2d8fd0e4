"""The step bookkeeping shared by the recurrent ops: which packed rows each step reads and writes.

Packed rows (``ops.packing``): step t is the block ``offsets[t] : offsets[t] + batch_sizes[t]`` of the sequences
longer than t, longest first. A forward direction runs t = 0, 1, ...; its state for the n rows of step t comes from
the first n rows of step t - 1 (there are at least n of them). A reverse direction runs t = T-1, ..., 0; step t has at
least as many rows as step t + 1, and the rows that step t + 1 lacks start a sequence here, from the initial state.
"""

from __future__ import annotations

from functools import lru_cache

from .. import backend as B


@lru_cache(maxsize=512)
def schedule(batch_sizes: tuple, reverse: bool) -> tuple:
    """The steps in processing order, each ``(lo, n, plo, pn)``: its rows are ``lo : lo + n``; the previous state of
    its first ``pn`` rows is packed rows ``plo : plo + pn`` (the step processed just before), of rows ``pn : n`` the
    initial state's rows ``pn : n``."""
    offsets = [0]
    for n in batch_sizes:
        offsets.append(offsets[-1] + n)
    order = range(len(batch_sizes) - 1, -1, -1) if reverse else range(len(batch_sizes))
    steps, prev = [], None
    for t in order:
        n = batch_sizes[t]
        plo, pn = (0, 0) if prev is None else (offsets[prev], min(n, batch_sizes[prev]))
        steps.append((offsets[t], n, plo, pn))
        prev = t
    return tuple(steps)


def prev_state(rows, init, plo: int, pn: int, n: int, buf):
    """The (n, H) previous state of a step: a view of ``rows`` or ``init`` when one of them holds all of it, else
    assembled in ``buf`` (a (B, H) scratch array)."""
    if pn == n:
        return rows[plo : plo + n]
    if pn == 0:
        return init[:n]
    buf[:pn] = rows[plo : plo + pn]
    buf[pn:n] = init[pn:n]
    return buf[:n]


def prev_into(rows, init, steps, out) -> None:
    """Fill ``out`` (N, H) with the previous state of every packed row (for the hidden weights' gradient GEMM)."""
    for lo, n, plo, pn in steps:
        if pn:
            out[lo : lo + pn] = rows[plo : plo + pn]
        if pn < n:
            out[lo + pn : lo + n] = init[pn:n]


@lru_cache(maxsize=512)
def last_rows(batch_sizes: tuple):
    """(B,) packed row of each sequence's last step, in packed order (read-only, cached)."""
    xp = B.xp
    sizes = xp.asarray(batch_sizes)
    offsets = xp.concatenate(([0], xp.cumsum(sizes)[:-1]))
    lengths = (sizes[None, :] > xp.arange(batch_sizes[0])[:, None]).sum(axis=1)  # (B,) steps of each sequence
    rows = offsets[lengths - 1] + xp.arange(batch_sizes[0])
    rows.setflags(write=False)
    return rows


def weight_grads(fn, d_ih, d_hh, states, dh0) -> list:
    """The gradients of the inputs in ``fn.next`` order (x, w_ih, w_hh, [b_ih, b_hh], [h0], ...), from the gradients
    of every row's input-side (``d_ih``, (N, G*H)) and hidden-side (``d_hh``) pre-activations: one GEMM each.

    ``fn`` holds ``x``, ``w_ih`` (the weights its forward used), ``h0``, ``sched``, ``has_bias``, ``has_h0``;
    ``states`` (N, H) are the outputs, whose previous-step rows are the hidden weights' other factor."""
    xp = B.xp
    want = [e is not None for e in fn.next]
    grads = [None] * len(want)
    if want[0]:
        grads[0] = xp.matmul(d_ih, fn.w_ih)
    if want[1]:
        grads[1] = xp.matmul(d_ih.T, fn.x)
    if want[2]:
        hprev = xp.empty_like(states)
        prev_into(states, fn.h0, fn.sched, hprev)
        grads[2] = xp.matmul(d_hh.T, hprev)
    k = 3
    if fn.has_bias:
        if want[3]:
            grads[3] = d_ih.sum(axis=0)
        if want[4]:
            grads[4] = d_hh.sum(axis=0)
        k = 5
    if fn.has_h0 and want[k]:
        grads[k] = dh0
    return grads
