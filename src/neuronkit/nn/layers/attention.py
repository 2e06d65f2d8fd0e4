"""``MultiHeadAttention`` (Vaswani et al. 2017) with PyTorch's parameter layout, and ``padding_mask``.

Each head h attends with ``softmax(q_h k_h^T / sqrt(D) + mask) v_h``, where ``q = query W_q^T + b_q`` and so on, and
the heads' outputs side by side go through the output projection. The self-attention case (one input) runs on the
fused ``packed_attention`` op; other cases, and calls that ask for the attention weights, are composed from ops.
"""

from __future__ import annotations

import math

from ... import backend as B
from ... import ops
from ...creation import get_generator
from ...ops.attention import additive_mask, causal_mask
from ...tensor import Tensor
from .. import init as I
from ..module import Module
from ..parameter import Parameter
from ..registry import register_layer
from .dense import Linear


def padding_mask(lengths, max_len: int | None = None) -> Tensor:
    """The key-padding mask of a padded batch: (B, T) booleans, True at the padding positions (``t >= lengths[b]``).

    ``lengths`` (B,) integers (an array or Tensor; the second element of a ``data.SequenceDataset`` batch
    ``(tokens, lengths, labels)``); ``max_len`` is T, the padded length (default: the longest length). This is the
    ``key_padding_mask`` of ``MultiHeadAttention`` and ``src_key_padding_mask`` of the transformer layers.
    """
    n = lengths.data if isinstance(lengths, Tensor) else B.asarray(lengths)
    if n.ndim != 1 or n.dtype.kind not in "iu":
        raise ValueError(f"padding_mask: lengths must be a 1-D integer array, got {n.dtype} {tuple(n.shape)}")
    if n.size and n.min() < 0:
        raise ValueError(f"padding_mask: lengths must be non-negative, got {int(n.min())}")
    t = (int(n.max()) if n.size else 0) if max_len is None else int(max_len)
    if n.size and n.max() > t:
        raise ValueError(f"padding_mask: a length of {int(n.max())} does not fit in max_len {t}")
    return Tensor(B.xp.arange(t)[None, :] >= n[:, None])


def _positive_int(who, what, v):
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"{who}: {what} must be a positive int, got {v!r}")


def check_dropout(who: str, p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
        raise ValueError(f"{who}: dropout must be a number in [0, 1), got {p!r}")
    return float(p)


@register_layer
class MultiHeadAttention(Module):
    """Multi-head scaled dot-product attention, as PyTorch's ``nn.MultiheadAttention`` (same parameters and names).

    ``out = concat(head_1, ..., head_H) W_o^T + b_o`` with ``head_h = softmax(q_h k_h^T / sqrt(D) + mask) v_h``,
    ``q = query W_q^T + b_q``, ``k = key W_k^T + b_k``, ``v = value W_v^T + b_v``; ``D = embed_dim / num_heads``.

    Args:
        embed_dim: E, the size of each token vector (queries, keys, values and output).
        num_heads: H, a divisor of ``embed_dim``.
        dropout: probability of dropping each attention weight in training (default 0.0).
        bias: learn ``in_proj_bias`` and ``out_proj.bias`` (default True).
        batch_first: inputs are (B, L, E) (default True); False: (L, B, E), PyTorch's default.
        generator: seed or ``numpy.random.Generator`` for the initial weights and the dropout draws (default:
            neuronkit's default generator).
        dtype: parameter dtype (default float32).

    Parameters: ``in_proj_weight`` (3E, E): rows [0, E) are W_q, [E, 2E) W_k, [2E, 3E) W_v (Xavier uniform);
    ``in_proj_bias`` (3E,) (zeros); ``out_proj`` a ``Linear(E, E)`` (bias zeros). A PyTorch module's ``state_dict``
    loads as it is. Separate key/value sizes (``kdim``, ``vdim``), ``add_bias_kv`` and ``add_zero_attn`` are not
    supported.

    Call: ``mha(query, key=None, value=None, key_padding_mask=None, need_weights=False, attn_mask=None,
    average_attn_weights=True, is_causal=False)``; ``key`` defaults to ``query`` and ``value`` to ``key`` (so
    ``mha(x)`` is self-attention). Shapes (batch first): query (B, L, E), key and value (B, S, E); unbatched (L, E)
    inputs work too.

    - ``key_padding_mask``: (B, S) booleans, True at keys to ignore (padding; see ``nn.padding_mask``), or floats
      added to the scores.
    - ``attn_mask``: (L, S) or (B * H, L, S); booleans True where attending is NOT allowed, or floats added.
    - ``is_causal``: mask every key after the query's position (PyTorch only takes this as a hint about
      ``attn_mask``; here it builds the causal mask, combined with any other mask).

    Returns the output (B, L, E); with ``need_weights=True`` the pair ``(output, weights)``, the weights (B, L, S)
    averaged over heads, or (B, H, L, S) with ``average_attn_weights=False`` (before dropout, as PyTorch's). A query
    whose keys are all masked gets zero weights and a zero attention output (so ``out_proj.bias``); PyTorch returns
    the same output without weights, and NaN with them.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = True,
        generator=None,
        dtype: str | None = None,
    ):
        super().__init__()
        who = type(self).__name__
        _positive_int(who, "embed_dim", embed_dim)
        _positive_int(who, "num_heads", num_heads)
        if embed_dim % num_heads:
            raise ValueError(f"{who}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout, self.batch_first = check_dropout(who, dropout), bool(batch_first)
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        self.in_proj_weight = Parameter(B.xp.empty((3 * embed_dim, embed_dim), dtype=dt))
        self.in_proj_bias = Parameter(B.xp.zeros(3 * embed_dim, dtype=dt)) if bias else None
        self.generator = get_generator(generator) if generator is not None else None
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, generator=get_generator(self.generator), dtype=dt.name)
        I.xavier_uniform_(self.in_proj_weight, generator=get_generator(self.generator))
        if self.out_proj.bias is not None:
            self.out_proj.bias.data[...] = 0

    def reset_parameters(self, generator=None) -> None:
        """PyTorch's rule: ``in_proj_weight`` Xavier uniform, ``out_proj.weight`` as a ``Linear``, biases zero."""
        rng = get_generator(generator)
        I.xavier_uniform_(self.in_proj_weight, generator=rng)
        self.out_proj.reset_parameters(rng)
        for b in (self.in_proj_bias, self.out_proj.bias):
            if b is not None:
                b.data[...] = 0

    # -- forward ------------------------------------------------------------------------------------------------------
    def forward(
        self,
        query,
        key=None,
        value=None,
        key_padding_mask=None,
        need_weights: bool = False,
        attn_mask=None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ):
        query = query if isinstance(query, Tensor) else Tensor(query)
        key = query if key is None else key if isinstance(key, Tensor) else Tensor(key)
        value = key if value is None else value if isinstance(value, Tensor) else Tensor(value)
        same = query is key and key is value
        unbatched = query.ndim == 2
        query, key, value = (self._batch(t, unbatched) for t in (query, key, value))
        self._check(query, key, value)
        mask = self._mask(query, key, key_padding_mask, attn_mask, is_causal, unbatched)
        p = self.dropout if self.training else 0.0
        rng = self.generator if self.generator is not None else get_generator(None)
        if same and not need_weights:
            qkv = ops.linear(query, self.in_proj_weight, self.in_proj_bias)  # (B, L, 3E)
            out = ops.packed_attention(qkv, self.num_heads, attn_mask=mask, dropout_p=p, generator=rng)
            return self._unbatch(self.out_proj(out), unbatched)
        q, k, v = self._project(query, key, value, same)  # each (B, H, length, D)
        if need_weights:
            out, weights = attention_with_weights(q, k, v, mask, p, rng)
            if average_attn_weights:
                weights = ops.mean(weights, axis=1)
        else:
            out, weights = ops.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, generator=rng), None
        b, length = query.shape[0], query.shape[1]
        out = self.out_proj(ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (b, length, self.embed_dim)))
        out = self._unbatch(out, unbatched)
        if weights is None:
            return out
        return out, (ops.squeeze(weights, 0) if unbatched else weights)

    def _batch(self, t, unbatched):
        if unbatched:
            return ops.unsqueeze(t, 0)
        return t if self.batch_first or t.ndim != 3 else ops.swapaxes(t, 0, 1)

    def _unbatch(self, t, unbatched):
        if unbatched:
            return ops.squeeze(t, 0)
        return t if self.batch_first else ops.swapaxes(t, 0, 1)

    def _check(self, query, key, value):
        e = self.embed_dim
        shapes = [tuple(t.shape) for t in (query, key, value)]
        ok = all(len(s) == 3 and s[2] == e for s in shapes)
        ok = ok and shapes[0][0] == shapes[1][0] == shapes[2][0] and shapes[1][1] == shapes[2][1]
        if not ok:
            layout = "(B, L, E)" if self.batch_first else "(L, B, E)"
            raise ValueError(
                f"{self!r} got query, key and value of shapes {shapes} (batch first): expected {layout} inputs with "
                f"E = {e}, one batch size, and keys and values of one length"
            )
        if query.dtype.kind != "f":
            raise TypeError(f"{self!r} expects floating inputs, got dtype {query.dtype}")

    def _mask(self, query, key, key_padding_mask, attn_mask, is_causal, unbatched):
        """One additive mask broadcastable to (B, H, L, S) from the three kinds, or None."""
        b, length, s = query.shape[0], query.shape[1], key.shape[1]
        dt, who = query.dtype, repr(self)
        mask = None
        if key_padding_mask is not None:
            kpm = additive_mask(key_padding_mask, dt, who, attend_value=False)
            if unbatched and kpm.ndim == 1:
                kpm = kpm[None]
            if kpm.shape != (b, s):
                raise ValueError(f"{who}: key_padding_mask must have shape {(b, s)} (batch, keys), got {kpm.shape}")
            mask = kpm[:, None, None, :]
        if attn_mask is not None:
            am = additive_mask(attn_mask, dt, who, attend_value=False)
            if am.shape == (length, s):
                am = am[None, None]
            elif am.shape == (b * self.num_heads, length, s):
                am = am.reshape(b, self.num_heads, length, s)
            else:
                raise ValueError(
                    f"{who}: attn_mask must have shape {(length, s)} or {(b * self.num_heads, length, s)}, got "
                    f"{am.shape}"
                )
            mask = am if mask is None else mask + am
        if is_causal:
            c = causal_mask(length, s, dt)
            mask = c if mask is None else mask + c
        return mask

    def _project(self, query, key, value, same):
        """q, k, v projections split into heads: (B, H, length, D) each."""
        e, w, bias = self.embed_dim, self.in_proj_weight, self.in_proj_bias
        if same:
            parts = ops.split(ops.linear(query, w, bias), e, axis=-1)
        else:
            parts = [
                ops.linear(x, w[i * e : (i + 1) * e], None if bias is None else bias[i * e : (i + 1) * e])
                for i, x in enumerate((query, key, value))
            ]
        h, d = self.num_heads, self.head_dim
        return [ops.transpose(ops.reshape(t, (t.shape[0], t.shape[1], h, d)), (0, 2, 1, 3)) for t in parts]

    # -- configuration ------------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {
            "embed_dim": self.embed_dim,
            "num_heads": self.num_heads,
            "dropout": self.dropout,
            "bias": self.in_proj_bias is not None,
            "batch_first": self.batch_first,
            "dtype": self.in_proj_weight.data.dtype.name,
        }

    @classmethod
    def config_cost(cls, config) -> int:
        """Array elements the constructor allocates: 4 E^2 weights and 4 E biases."""
        e = int(config.get("embed_dim", 1))
        return 4 * e * e + 4 * e

    def extra_repr(self) -> str:
        extra = "" if self.dropout == 0 else f", dropout={self.dropout}"
        extra += "" if self.in_proj_bias is not None else ", bias=False"
        extra += "" if self.batch_first else ", batch_first=False"
        return f"{self.embed_dim}, num_heads={self.num_heads}{extra}"

    def __repr__(self):  # out_proj is part of the layer's one line
        return f"{type(self).__name__}({self.extra_repr()})"


def attention_with_weights(q, k, v, mask, dropout_p: float, rng):
    """Attention composed from differentiable ops, returning ``(output, weights)``: (B, H, L, Dv) and (B, H, L, S).

    The weights are those before dropout, and differentiable. A row whose keys are all masked gets zero weights (the
    mask row is replaced by zeros so the softmax stays finite, then the row is multiplied by 0)."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = ops.matmul(ops.mul(q, scale), ops.swapaxes(k, -1, -2))  # (B, H, L, S)
    alive = None
    if mask is not None:
        dead = B.xp.all(mask == -B.xp.inf, axis=-1, keepdims=True)
        if dead.any():
            mask = B.xp.where(dead, 0, mask).astype(mask.dtype, copy=False)
            alive = Tensor((~dead).astype(mask.dtype))
        scores = ops.add(scores, Tensor(mask))
    weights = ops.softmax(scores, axis=-1)
    if alive is not None:
        weights = ops.mul(weights, alive)
    dropped = weights
    if dropout_p > 0:
        dropped = ops.dropout(weights, dropout_p, generator=rng)  # the same draws as the fused op's
    return ops.matmul(dropped, v), weights
