"""Inside the layers that read sequences, measured on one real batch of texts ``(tokens, lengths, labels)``:

- recurrent gates (``LSTM``: input, forget, output; ``GRU``: reset, update), per unit: the share of the valid time
  steps where the gate is shut (< 0.05) or wide open (> 0.95), through the layers' gate hooks;
- the gradient norm of the loss reaching each token's embedding vector, ``||dL/dx_t||``, per position: how much
  learning signal gets back through time to the first tokens of a text;
- attention, per head of every ``MultiHeadAttention`` doing self-attention: the entropy of each query's weights
  over the text's tokens divided by ``ln(tokens)`` (1: spread evenly, 0: all on one token), and the share of all
  attention that goes to the single most-attended token of the text (1: every query looks at the same token);
- sequences cut by the maximum length (from the texts' lengths before the cut).

``measure_sequences(model, batch)`` returns the numbers (``SequenceStats``); ``check_sequences(stats)`` turns them
into ``Finding`` s with a remedy each: ``vanishing_through_time``, ``saturated_forget_gate``, ``collapsed_head``, and
``check_truncation(lengths, max_len)`` gives ``truncated_sequences``. Everything attaches through hooks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..nn.layers.attention import MultiHeadAttention
from ..nn.layers.recurrent import GRU, LSTM
from ..nn.losses import get_loss
from ..tensor import Tensor
from .attribution import embedding_leaf, eval_keeping_grads
from .diagnostics import Finding

__all__ = ["SequenceStats", "check_sequences", "check_truncation", "measure_sequences"]

GATES = {LSTM: ("input", "forget", "output"), GRU: ("reset", "update")}
SHUT, OPEN = 0.05, 0.95  # a sigmoid gate below/above these passes (almost) nothing/everything: its gradient is tiny
SATURATED_STEPS = 0.95  # a unit whose gate is shut on this share of the steps is saturated
SATURATED_UNITS = 0.5  # a layer with this share of saturated forget gates gets a finding
VANISH_RATIO = 1e-3  # gradient reaching the first token / the last one, below which the signal vanished through time
MIN_TOKENS = 8  # texts shorter than this say little about gradients through time
COLLAPSE_SHARE = 0.9  # a head giving this share of its attention to one token has collapsed onto it
TRUNCATED_SHARE = 0.05  # a finding when more of the texts than this are cut by max_len


@dataclass
class SequenceStats:
    """What ``measure_sequences`` found; each part empty when the model has no such layer.

    ``gates``: ``{"layer.l0": {"forget": {"shut": (units,), "open": (units,)}, ...}}``: per unit, the share of
    valid steps with the gate below 0.05 / above 0.95. ``step_grad``: (T,) the mean gradient norm reaching position t
    (over texts at least that long), ``first_last``: (texts,) ``||dL/dx_0|| / ||dL/dx_{n-1}||`` for texts of at least
    8 tokens. ``heads``: ``{layer: {"entropy": (heads,), "top_share": (heads,)}}`` averaged over the texts.
    ``lengths``: the texts' lengths in the batch.
    """

    gates: dict = field(default_factory=dict)
    step_grad: np.ndarray = field(default_factory=lambda: np.zeros(0))
    first_last: np.ndarray = field(default_factory=lambda: np.zeros(0))
    heads: dict = field(default_factory=dict)
    attention: dict = field(default_factory=dict)  # {layer: (B, H, T, T) weights} of the batch, for pictures
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    recurrent: bool = False


def _gate_hook(stats, name, kinds):
    def hook(module, gates, mask):
        for direction, acts in gates.items():
            entry = stats.gates.setdefault(f"{name}.{direction}", {})
            for g in kinds:
                a = np.asarray(acts[g], dtype=np.float64)[mask]  # (valid steps, units)
                entry[g] = {"shut": (a < SHUT).mean(0), "open": (a > OPEN).mean(0)}

    return hook


def attention_weights(module, query, key, lengths) -> np.ndarray:
    """``(B, H, L, S)`` softmax weights of ``module`` (a ``MultiHeadAttention``) for ``query`` and ``key``
    ((B, L, E), (B, S, E)), padded keys (``s >= lengths``) left out, recomputed in float64 from its projections."""
    e, h = module.embed_dim, module.num_heads
    w = np.asarray(module.in_proj_weight.data, dtype=np.float64)
    bias = None if module.in_proj_bias is None else np.asarray(module.in_proj_bias.data, dtype=np.float64)
    q = query @ w[:e].T + (0 if bias is None else bias[:e])
    k = key @ w[e : 2 * e].T + (0 if bias is None else bias[e : 2 * e])
    b, L, S, d = q.shape[0], q.shape[1], k.shape[1], e // h
    q = q.reshape(b, L, h, d).transpose(0, 2, 1, 3)
    k = k.reshape(b, S, h, d).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
    pad = np.arange(S)[None, :] >= lengths[:, None]
    scores = np.where(pad[:, None, None, :], -np.inf, scores)
    scores -= scores.max(-1, keepdims=True)
    p = np.exp(scores)
    return p / p.sum(-1, keepdims=True)


def _head_stats(weights, lengths) -> dict:
    """Per head: mean normalised entropy of the valid queries' weights, and mean share of the most-attended token."""
    ent, top = [], []
    for b, n in enumerate(lengths):
        if n < 2:
            continue
        w = weights[b, :, :n, :n]  # (H, n, n)
        with np.errstate(divide="ignore", invalid="ignore"):
            e = -np.where(w > 0, w * np.log(w), 0.0).sum(-1) / math.log(n)  # (H, n)
        ent.append(e.mean(1))
        top.append(w.mean(1).max(-1))  # the attention each token receives, averaged over the queries
    if not ent:
        return {"entropy": np.zeros(0), "top_share": np.zeros(0)}
    return {"entropy": np.mean(ent, 0), "top_share": np.mean(top, 0)}


def measure_sequences(model, batch, loss="cross_entropy", keep_attention: int = 0) -> SequenceStats:
    """Measure ``model`` (a text model called as ``model(tokens, lengths)``) on ``batch = (tokens, lengths,
    labels)``: one forward with gate hooks and attention pre-hooks, and one backward of the loss to the token vectors.
    The model runs in eval mode; its gradients and modes are put back. ``keep_attention``: keep the weights of the
    first that many texts (``SequenceStats.attention``)."""
    if not isinstance(batch, (tuple, list)) or len(batch) != 3:
        raise ValueError(f"measure_sequences: batch must be (tokens, lengths, labels), got {type(batch).__name__}")
    tokens, lengths, y = (np.asarray(getattr(v, "data", v)) for v in batch)
    stats = SequenceStats(lengths=lengths.astype(np.int64))
    handles, captured = [], {}
    for name, m in model.named_modules():
        for cls, kinds in GATES.items():
            if isinstance(m, cls):
                handles.append(m.register_gate_hook(_gate_hook(stats, name, kinds)))
        stats.recurrent |= hasattr(m, "register_gate_hook")
        if isinstance(m, MultiHeadAttention):

            def pre(mod, args, _name=name):
                q = np.asarray(args[0].data if isinstance(args[0], Tensor) else args[0], dtype=np.float64)
                k = args[1] if len(args) > 1 and args[1] is not None else None
                k = q if k is None else np.asarray(getattr(k, "data", k), dtype=np.float64)
                if q.ndim == 3 and q.shape[1] == tokens.shape[1]:  # self-attention over the text's tokens
                    captured[_name] = attention_weights(mod, q, k, stats.lengths)

            handles.append(m.register_forward_pre_hook(pre))
    leaf = {}
    handles.append(embedding_leaf(model, leaf))
    try:
        with eval_keeping_grads(model):
            out = model(tokens, lengths)
            get_loss(loss)(out, y).backward()
            g = np.linalg.norm(np.asarray(leaf["x"].grad.data, dtype=np.float64), axis=-1)  # (B, T)
    finally:
        for h in handles:
            h.remove()
    valid = np.arange(g.shape[1])[None, :] < stats.lengths[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        stats.step_grad = np.where(valid, g, 0).sum(0) / valid.sum(0)
        long = stats.lengths >= MIN_TOKENS
        last = g[np.arange(len(g)), np.maximum(stats.lengths - 1, 0)]
        stats.first_last = (g[:, 0] / last)[long]
    for name, w in captured.items():
        stats.heads[name] = _head_stats(w, stats.lengths)
        if keep_attention:
            stats.attention[name] = w[:keep_attention]
    return stats


def check_sequences(stats: SequenceStats, when: str = "after training") -> list:
    """Findings from ``SequenceStats``: gradients vanishing through time (recurrent models), saturated forget gates,
    collapsed attention heads."""
    out = []
    r = stats.first_last[np.isfinite(stats.first_last)]
    if stats.recurrent and len(r) and float(np.median(r)) < VANISH_RATIO:
        med = float(np.median(r))
        out.append(
            Finding(
                "vanishing_through_time",
                "warning",
                {"scope": "time steps", "first_over_last": med, "texts": int(len(r))},
                f"{when}, the gradient of the loss reaching the first token of a text is {med:.2g} of the one reaching "
                f"its last token (median over {len(r)} texts of at least {MIN_TOKENS} tokens): the signal fades on its "
                "way back through time, so what the first words say can hardly be learned.",
                "use gated recurrent layers (--model lstm or --model gru) or a bidirectional one (--model bilstm), "
                "shorter texts (--max-len), or attention (--model transformer); clip the gradient norm "
                "(--clip-grad-norm 1) so that the exploding side of the same problem stays bounded.",
                {"clip_grad_norm": 1.0},
            )
        )
    for layer, gates in stats.gates.items():
        f = gates.get("forget")
        if f is None:
            continue
        units = np.flatnonzero(f["shut"] > SATURATED_STEPS)
        if len(units) >= SATURATED_UNITS * len(f["shut"]):
            out.append(
                Finding(
                    "saturated_forget_gate",
                    "warning",
                    {"layer": layer, "units": units.tolist()},
                    f"{when}, the forget gates of {len(units)} of {len(f['shut'])} units of {layer} are shut (below "
                    f"{SHUT}) on more than {SATURATED_STEPS:.0%} of the steps: those cells forget their memory at "
                    "every token, so the LSTM remembers no better than a plain RNN, and the shut sigmoid passes "
                    "almost no gradient to the gate.",
                    "start the forget-gate biases at 1 (the LSTM then remembers by default), a smaller learning rate "
                    "(--lr) and gradient clipping (--clip-grad-norm 1).",
                    {"clip_grad_norm": 1.0},
                )
            )
    for layer, h in stats.heads.items():
        heads = np.flatnonzero(h["top_share"] > COLLAPSE_SHARE)
        if len(heads):
            share = ", ".join(f"head {i}: {h['top_share'][i]:.0%}" for i in heads)
            out.append(
                Finding(
                    "collapsed_head",
                    "warning" if len(heads) == len(h["top_share"]) else "info",
                    {"layer": layer, "heads": heads.tolist()},
                    f"{when}, {len(heads)} of {len(h['top_share'])} attention heads of {layer} give almost all their "
                    f"attention to one token of each text ({share}): every query reads the same token, so the head "
                    "adds nothing a pooling would not.",
                    "dropout on the attention (--dropout 0.1), a smaller learning rate (--lr), or fewer heads.",
                    {"dropout": 0.1},
                )
            )
    return out


def check_truncation(lengths, max_len: int) -> list:
    """A ``truncated_sequences`` finding when more than 5 % of the texts (their token counts before the cut,
    ``lengths``) are longer than ``max_len``."""
    n = np.asarray(lengths)
    if not len(n):
        return []
    cut = float((n > max_len).mean())
    if cut <= TRUNCATED_SHARE:
        return []
    p95 = int(np.percentile(n, 95))
    return [
        Finding(
            "truncated_sequences",
            "warning",
            {"scope": "data", "share": cut, "max_len": int(max_len), "p95": p95},
            f"{cut:.0%} of the texts are longer than the maximum length of {max_len} tokens and are cut: the model "
            f"never sees their end (95 % of the texts have at most {p95} tokens).",
            f"keep more tokens (--max-len {p95}).",
            {"max_len": p95},
        )
    ]
