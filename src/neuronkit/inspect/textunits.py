"""One unit of a text model, seen through the texts that excite it: the phrases of a data set where the unit
responds most, with the token where it peaks, and (for a unit that has a value at every token: recurrent,
embedding, transformer and 1-D convolution units) its activation over the tokens of a text.

``text_layers(model)`` names the layers with units; ``unit_over_tokens(model, layer, unit, tokens, lengths)``
measures a unit on a batch; ``top_phrases(...)`` searches a data set; ``format_phrases`` renders them.

Where the unit has one value per text (a dense unit after the pooling of a bag of embeddings, or in a classifier's
head), the token it "peaks" at is the one contributing most to it, by gradient x input on the token's embedding
vector: ``c_t = sum_e x[t, e] * d unit / d x[t, e]``. For a unit that is linear in the pooled embeddings up to its
activation (the first dense layer after a mean pool), ``sum_t c_t`` is exactly its output minus its bias where the
activation is in its linear part, so ``c_t`` is each token's share.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn.layers.conv import ConvNd
from ..nn.layers.dense import Dense
from ..nn.layers.embedding import Embedding
from ..nn.layers.recurrent import GRU, LSTM, RNN
from ..nn.layers.transformer import TransformerEncoderLayer
from .attribution import embedding_leaf, eval_keeping_grads

__all__ = ["PhraseHit", "format_phrases", "text_layers", "top_phrases", "unit_over_tokens"]

RECURRENT = (RNN, LSTM, GRU)
BATCH = 256


def _units(m) -> int:
    if isinstance(m, Dense):
        return m.out_features
    if isinstance(m, ConvNd):
        return m.out_channels
    if isinstance(m, RECURRENT):
        return m.hidden_size * (2 if m.bidirectional else 1)
    if isinstance(m, Embedding):
        return m.embedding_dim
    return m.self_attn.embed_dim  # TransformerEncoderLayer


def text_layers(model) -> dict:
    """``{name: (module, units)}`` of the layers of a text model whose units can be inspected."""
    kinds = (Dense, ConvNd, Embedding, TransformerEncoderLayer, *RECURRENT)
    return {name: (m, _units(m)) for name, m in model.named_modules() if name and isinstance(m, kinds)}


def _per_token(module, a: np.ndarray, unit: int) -> np.ndarray | None:
    """``(B, T)`` values of the unit at each token, or None when the layer has one value per text."""
    if a.ndim != 3:
        return None
    return a[:, unit, :] if isinstance(module, ConvNd) else a[:, :, unit]


def unit_over_tokens(model, layer: str, unit: int, tokens, lengths) -> tuple:
    """``(response (B,), per_token (B, T))`` of unit ``unit`` of layer ``layer`` for a padded batch.

    ``per_token[b, t]``: the unit's activation at token t (recurrent, embedding, transformer and convolution units),
    or, for a unit with one value per text, each token's contribution to it (gradient x input on its embedding).
    ``response[b]``: the unit's largest activation over the text's tokens, or its value for the text. Padded
    positions hold NaN. The model runs in eval mode; its gradients are put back as they were."""
    layers = text_layers(model)
    if layer not in layers:
        raise KeyError(f"no layer {layer!r} with units; layers: {', '.join(layers)}")
    module, units = layers[layer]
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < units:
        raise ValueError(f"layer {layer} has units 0 to {units - 1}; got unit {unit!r}")
    tokens, lengths = np.asarray(tokens, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    seen, emb = {}, {}

    def hook(mod, args, output):
        seen["out"] = output[0] if isinstance(output, tuple) else output

    handles = [module.register_forward_hook(hook)]
    try:
        with eval_keeping_grads(model):
            with no_grad():
                model(tokens, lengths)
            a = np.asarray(seen["out"].data, dtype=np.float64)
            per = _per_token(module, a, unit)
            if per is None:  # gradient x input on the token vectors (a leaf copy of the embedding's output)
                handles.append(embedding_leaf(model, emb))
                model(tokens, lengths)
                seen["out"][:, unit].sum().backward()
                x = emb["x"]
                per = (np.asarray(x.data, dtype=np.float64) * np.asarray(x.grad.data, dtype=np.float64)).sum(-1)
                response = a[:, unit]
            else:
                response = None
    finally:
        for h in handles:
            h.remove()
    per = per[:, : tokens.shape[1]].astype(np.float64)
    pad = np.arange(per.shape[1])[None, :] >= lengths[:, None]
    per[pad] = np.nan
    if response is None:
        with np.errstate(all="ignore"):
            response = np.where(lengths > 0, np.nanmax(np.where(pad, -np.inf, per), axis=1), np.nan)
    return response, per


@dataclass
class PhraseHit:
    """One of the texts that excite a unit most."""

    index: int  # the text's index in the data searched
    response: float  # the unit's response to the text
    peak: int  # the token where it peaks (or contributes most)
    values: np.ndarray  # (length,) the unit's value (or each token's contribution) at each token
    label: int | None = None


def top_phrases(model, layer: str, unit: int, dataset, labels=None, top: int = 8) -> list:
    """The ``top`` texts of ``dataset`` (a ``SequenceDataset``) with the highest response of the unit, strongest
    first (see ``unit_over_tokens``), searched ``BATCH`` texts at a time."""
    responses, pers = [], []
    for s in range(0, len(dataset), BATCH):
        toks, lens = dataset.get_batch(np.arange(s, min(len(dataset), s + BATCH)))[:2]
        r, per = unit_over_tokens(model, layer, unit, toks, lens)
        responses.append(r)
        pers += [per[i, : lens[i]] for i in range(len(lens))]
    r = np.concatenate(responses) if responses else np.zeros(0)
    order = [i for i in np.argsort(-np.nan_to_num(r, nan=-np.inf), kind="stable") if len(pers[i])][:top]
    return [
        PhraseHit(int(i), float(r[i]), int(np.nanargmax(pers[i])), pers[i], None if labels is None else int(labels[i]))
        for i in order
    ]


def _window(words: list, peak: int, width: int) -> tuple:
    lo = max(0, min(peak - width // 2, len(words) - width))
    return lo, min(len(words), lo + width)


def format_phrases(hits: list, words_of, what: str, classes=None, width: int = 14, per_token: bool = False) -> str:
    """The hits as text: each text's tokens around the peak, the peak token marked ``[[token]]``; with
    ``per_token``, a second line of the unit's value at each shown token. ``words_of(i)``: the tokens of text i.
    ``what``: how the response is named (e.g. "largest activation")."""
    lines = []
    for h in hits:
        words = words_of(h.index)
        lo, hi = _window(words, h.peak, width)
        shown = [f"[[{w}]]" if lo + k == h.peak else w for k, w in enumerate(words[lo:hi])]
        label = "" if h.label is None else f", label {classes[h.label] if classes else h.label}"
        dots = ("... " if lo > 0 else "", " ..." if hi < len(words) else "")
        lines.append(f"    text {h.index} ({what} {h.response:.4g}{label}): {dots[0]}{' '.join(shown)}{dots[1]}")
        if per_token:
            lines.append(
                "      over its tokens: " + " ".join(f"{w}={v:+.2f}" for w, v in zip(words[lo:hi], h.values[lo:hi]))
            )
    return "\n".join(lines)
