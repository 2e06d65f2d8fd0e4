"""Attention, fused with its backward: ``scaled_dot_product_attention`` and ``packed_attention`` (multi-head
self-attention on packed query/key/value projections).

Forward, for queries ``q`` (L, D), keys ``k`` (S, D) and values ``v`` (S, Dv) of one batch item and head::

    A = q k^T * scale + mask           (L, S)   scale = 1 / sqrt(D) by default; mask additive (0 or -inf)
    P = softmax(A) along S             each row sums to 1, or is all 0 when every key of the row is masked
    Pd = P * M / (1 - p)               dropout on P (training only): M ~ Bernoulli(1 - p), elementwise (``dropout``)
    O = Pd v                           (L, Dv)

Backward, given dO: ``dv = Pd^T dO``; ``dPd = dO v^T``; ``dP = dPd * M / (1 - p)``; the softmax backward
``dA = P * (dP - r)`` with the row sums ``r_i = sum_j P_ij dP_ij``, computed as ``r_i = dO_i . O_i`` (the two are equal,
and the second reads (L, Dv) values instead of (L, S)); then ``dq = dA k * scale`` and ``dk = dA^T (q * scale)``.

Every batched product is one ``matmul`` call over all batch items and heads, reading the inputs in place: the heads
of ``packed_attention`` are strided views of the (B, L, 3E) projection, and its output and input gradient are
written through such views into (B, L, E) and (B, L, 3E) arrays, so the heads are never split or merged by copies.
The softmax, masking and dropout run in place on the one (..., L, S) score array, which backward reuses as dA.

A row whose keys are all masked has no distribution to attend with: its weights are defined as all zero, so its
output is zero (not NaN) and no gradient flows through it. PyTorch's ``scaled_dot_product_attention`` does the same.
"""

from __future__ import annotations

import math

from .. import backend as B
from ..autograd.function import Function
from ..creation import get_generator
from ..tensor import Tensor
from ._util import as_tensor
from .dropout import dropout_mask
from .registry import register

# -- the kernel shared by both ops ------------------------------------------------------------------------------------


def _softmax_rows_(s, masked: bool) -> None:
    """Softmax along the last axis of ``s``, in place; all-(-inf) rows (every key masked) become all zero."""
    xp = B.xp
    m = s.max(axis=-1, keepdims=True)
    if masked:
        m[m == -xp.inf] = 0  # exp(-inf - 0) = 0: the row sums to 0 instead of NaN
    s -= m
    xp.exp(s, out=s)
    z = s.sum(axis=-1, keepdims=True)
    if masked:
        z[z == 0] = xp.inf  # 1 / inf = 0: the empty row stays 0
    xp.reciprocal(z, out=z)
    s *= z


class _Attend(Function):
    """Shared forward and backward of the attention ops (subclasses lay out the inputs and outputs)."""

    def attend(self, q, k, v, out, mask, scale, dropout_p, rng) -> None:
        """Write ``softmax(q k^T scale + mask) v`` (with dropout on the weights) into ``out``; keep what backward
        needs. q (..., L, D), k (..., S, D), v (..., S, Dv), out (..., L, Dv): arrays or strided views."""
        xp = B.xp
        dt = q.dtype
        qs = xp.multiply(q, dt.type(scale))  # (..., L, D): scaling q costs L*D, scaling the scores L*S
        s = xp.matmul(qs, k.swapaxes(-1, -2))  # (..., L, S)
        if mask is not None:
            s += mask
        _softmax_rows_(s, mask is not None)
        pd, keep = s, None
        if dropout_p > 0.0:
            keep = dropout_mask(s.shape, dt, dropout_p, rng)
            pd = xp.multiply(s, keep)
        xp.matmul(pd, v, out=out)
        self.qs, self.k, self.v, self.p, self.pd, self.keep, self.out, self.scale = qs, k, v, s, pd, keep, out, scale

    def attend_backward(self, g, dq, dk, dv) -> None:
        """Given ``g`` = dO (..., L, Dv), write the gradients into ``dq``, ``dk``, ``dv`` (each an array or view of
        its input's shape, or None when not wanted)."""
        xp = B.xp
        if dv is not None:
            xp.matmul(self.pd.swapaxes(-1, -2), g, out=dv)
        if dq is None and dk is None:
            return
        dp = xp.matmul(g, self.v.swapaxes(-1, -2))  # (..., L, S): dPd
        if self.keep is not None:
            dp *= self.keep  # dP = dPd * M / (1 - p)
        r = xp.multiply(g, self.out)  # r_i = dO_i . O_i = sum_j P_ij dP_ij
        dp -= r.sum(axis=-1, keepdims=True)
        dp *= self.p  # dA = P (dP - r): zero wherever P is (masked keys, empty rows)
        if dq is not None:
            xp.matmul(dp, self.k, out=dq)
            dq *= dq.dtype.type(self.scale)
        if dk is not None:
            xp.matmul(dp.swapaxes(-1, -2), self.qs, out=dk)


# -- masks ------------------------------------------------------------------------------------------------------------


def additive_mask(mask, dtype, who: str, attend_value: bool = True):
    """``mask`` as an additive float array of ``dtype`` (0 where a key may be attended, -inf where not), or None.

    A boolean mask is True where attending is allowed when ``attend_value`` is True (``scaled_dot_product_attention``'s
    convention) and True where it is forbidden otherwise (``MultiHeadAttention``'s ``key_padding_mask`` and
    ``attn_mask``, as in PyTorch). A float mask is added as it is (cast to ``dtype``)."""
    if mask is None:
        return None
    m = mask.data if isinstance(mask, Tensor) else B.asarray(mask)
    xp = B.xp
    if m.dtype.kind == "b":
        out = xp.zeros(m.shape, dtype=dtype)
        out[~m if attend_value else m] = -xp.inf
        return out
    if m.dtype.kind != "f":
        raise TypeError(f"{who}: a mask must be boolean or floating (additive), got dtype {m.dtype}")
    return m.astype(dtype, copy=False)


def causal_mask(length: int, source_length: int, dtype):
    """(L, S) additive mask: 0 where key j <= query i, -inf above the diagonal (a position sees only the past)."""
    xp = B.xp
    out = xp.zeros((length, source_length), dtype=dtype)
    out[xp.triu_indices(length, 1, source_length)] = -xp.inf
    return out


def _combine(mask, causal, who, shape, dtype):
    """The additive mask of ``mask`` (sdpa convention) and the causal mask, checked to broadcast to ``shape``."""
    m = additive_mask(mask, dtype, who)
    if m is not None:
        try:
            full = B.xp.broadcast_shapes(m.shape, shape)
        except ValueError:
            full = None
        if full != tuple(shape):
            raise ValueError(f"{who}: attn_mask of shape {tuple(m.shape)} does not broadcast to the scores' {shape}")
    if causal:
        c = causal_mask(shape[-2], shape[-1], dtype)
        m = c if m is None else m + c
    return m


def _check_dropout(p, who):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{who}: dropout_p must be a number in [0, 1), got {p!r}")
    return float(p)


# -- scaled_dot_product_attention --------------------------------------------------------------------------------------


class ScaledDotProductAttention(_Attend):
    name = "scaled_dot_product_attention"

    def forward(self, q, k, v, mask, scale, dropout_p, rng):
        out = B.xp.empty(q.shape[:-1] + v.shape[-1:], dtype=q.dtype)
        self.attend(q, k, v, out, mask, scale, dropout_p, rng)
        return out

    def backward(self, g):
        xp = B.xp
        want_q, want_k, want_v = (e is not None for e in self.next)
        dq = xp.empty(self.qs.shape, dtype=g.dtype) if want_q else None
        dk = xp.empty(self.k.shape, dtype=g.dtype) if want_k else None
        dv = xp.empty(self.v.shape, dtype=g.dtype) if want_v else None
        self.attend_backward(g, dq, dk, dv)
        return dq, dk, dv


@register("scaled_dot_product_attention")
def scaled_dot_product_attention(
    q, k, v, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None, generator=None
) -> Tensor:
    """``softmax(q k^T * scale + mask) v``, fused with its hand-written backward (see the module docstring).

    Args:
        q: (..., L, D) queries; k: (..., S, D) keys; v: (..., S, Dv) values; the leading axes (batch, heads) equal.
        attn_mask: None, a boolean array broadcastable to (..., L, S), True where a query may attend to a key (as in
            PyTorch's ``scaled_dot_product_attention``), or a float array added to the scores (0 or -inf, usually).
            It is a constant: no gradient flows into it.
        dropout_p: probability of zeroing each attention weight (the rest scaled by 1 / (1 - p)); default 0.
        is_causal: also mask every key after the query's position (top-left aligned when L != S); default False.
        scale: multiplies q k^T; default 1 / sqrt(D).
        generator: seed or ``numpy.random.Generator`` for the dropout draws (default: neuronkit's default generator).

    Returns (..., L, Dv). A query row whose keys are all masked gets all-zero weights, hence a zero output.
    """
    who = "scaled_dot_product_attention"
    q, k, v = as_tensor(q), as_tensor(k), as_tensor(v)
    _check_qkv(q, k, v, who)
    shape = q.shape[:-1] + (k.shape[-2],)
    mask = _combine(attn_mask, bool(is_causal), who, shape, q.dtype)
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    p = _check_dropout(dropout_p, who)
    rng = get_generator(generator) if p > 0 else None
    return ScaledDotProductAttention.apply(q, k, v, mask=mask, scale=scale, dropout_p=p, rng=rng)


def _check_qkv(q, k, v, who):
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.ndim < 2 or t.dtype.kind != "f":
            raise ValueError(
                f"{who}: {name} must be a floating tensor of shape (..., length, dim), got {t.dtype} {tuple(t.shape)}"
            )
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{who}: q, k and v must have one dtype, got {q.dtype}, {k.dtype} and {v.dtype}")
    if q.shape[:-2] != k.shape[:-2] or k.shape[:-2] != v.shape[:-2]:
        raise ValueError(
            f"{who}: q {tuple(q.shape)}, k {tuple(k.shape)} and v {tuple(v.shape)} must share their leading "
            "(batch, head) axes"
        )
    if q.shape[-1] != k.shape[-1] or k.shape[-2] != v.shape[-2]:
        raise ValueError(
            f"{who}: q {tuple(q.shape)} and k {tuple(k.shape)} need the same last axis, and k and v "
            f"{tuple(v.shape)} the same length (axis -2)"
        )


# -- packed_attention ---------------------------------------------------------------------------------------------


def _heads(a, num_heads: int, parts: int):
    """Strided (B, H, L, D) views of the ``parts`` blocks of a (B, L, parts * H * D) array: no copy."""
    b, length, width = a.shape
    d = width // (parts * num_heads)
    a5 = a.reshape(b, length, parts, num_heads, d)
    return [a5[:, :, i].transpose(0, 2, 1, 3) for i in range(parts)]


class PackedAttention(_Attend):
    name = "packed_attention"

    def forward(self, qkv, num_heads, mask, scale, dropout_p, rng):
        b, length, width = qkv.shape
        q, k, v = _heads(qkv, num_heads, 3)
        out = B.xp.empty((b, length, width // 3), dtype=qkv.dtype)  # (B, L, E): the heads side by side
        self.attend(q, k, v, _heads(out, num_heads, 1)[0], mask, scale, dropout_p, rng)
        self.num_heads, self.shape_in = num_heads, qkv.shape
        return out

    def backward(self, g):
        dqkv = B.xp.empty(self.shape_in, dtype=g.dtype)  # (B, L, 3E), written through the heads' views
        dq, dk, dv = _heads(dqkv, self.num_heads, 3)
        self.attend_backward(_heads(B.xp.ascontiguousarray(g), self.num_heads, 1)[0], dq, dk, dv)
        return (dqkv,)


@register("packed_attention")
def packed_attention(
    qkv, num_heads: int, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False, generator=None
) -> Tensor:
    """Multi-head self-attention on packed projections, fused: the core of ``nn.MultiHeadAttention``.

    ``qkv`` (B, L, 3E) holds the queries, keys and values side by side (``x @ in_proj_weight.T + in_proj_bias`` in
    PyTorch's layout: columns [0, E) queries, [E, 2E) keys, [2E, 3E) values; within each, head h owns the columns
    [h D, (h + 1) D), D = E / num_heads). Each head attends with ``scaled_dot_product_attention`` (scale 1 / sqrt(D));
    the result is (B, L, E), the heads side by side, ready for the output projection.

    Args:
        attn_mask: None, or a boolean (True = may attend) or additive float array broadcastable to (B, H, L, L).
        dropout_p, is_causal, generator: as in ``scaled_dot_product_attention``.
    """
    who = "packed_attention"
    qkv = as_tensor(qkv)
    if isinstance(num_heads, bool) or not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"{who}: num_heads must be a positive int, got {num_heads!r}")
    if qkv.ndim != 3 or qkv.dtype.kind != "f" or qkv.shape[2] % (3 * num_heads):
        raise ValueError(
            f"{who}: qkv must be a floating (batch, length, 3 * num_heads * head_dim) tensor for {num_heads} heads, "
            f"got {qkv.dtype} {tuple(qkv.shape)}"
        )
    b, length, width = qkv.shape
    mask = _combine(attn_mask, bool(is_causal), who, (b, num_heads, length, length), qkv.dtype)
    p = _check_dropout(dropout_p, who)
    rng = get_generator(generator) if p > 0 else None
    scale = 1.0 / math.sqrt(width // (3 * num_heads))
    return PackedAttention.apply(qkv, num_heads=num_heads, mask=mask, scale=scale, dropout_p=p, rng=rng)
