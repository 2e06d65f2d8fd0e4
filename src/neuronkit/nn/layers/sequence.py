"""Layers for padded sequences, which take ``(x, lengths)``: ``SequencePool`` and the ``TextClassifier`` container.

A batch of variable-length sequences arrives padded, ``(tokens (B, T), lengths (B,))`` (``data.SequenceDataset``);
every layer here uses ``lengths`` so that padding never changes an output or receives a gradient.
"""

from __future__ import annotations

from ... import ops
from ..module import Module
from ..registry import layer_spec, register_layer

POOL_MODES = ("mean", "max")


@register_layer
class SequencePool(Module):
    """Pool a padded sequence over time, each row over its own real steps only.

    ``mode="mean"``: ``out[b] = sum_{t < lengths[b]} x[b, t] / lengths[b]``; ``mode="max"``: the per-feature maximum
    over ``t < lengths[b]``. A row of length 0 pools to zeros.

    Args:
        mode: ``"mean"`` (default) or ``"max"``.

    Shape: ``x`` (B, T, D) and ``lengths`` (B,) integers in 0..T -> (B, D).
    """

    def __init__(self, mode: str = "mean"):
        super().__init__()
        if mode not in POOL_MODES:
            raise ValueError(f"SequencePool: mode must be one of {POOL_MODES}, got {mode!r}")
        self.mode = mode

    def forward(self, x, lengths):
        if self.mode == "mean":
            return ops.masked_mean_pool(x, lengths)
        return ops.masked_max_pool(x, lengths)

    def get_config(self) -> dict:
        return {"mode": self.mode}

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


@register_layer
class TextClassifier(Module):
    """A text model in three parts: ``head(encoder(embedding(tokens), lengths))``.

    - ``embedding``: token ids (B, T) -> vectors (B, T, E), usually ``Embedding(vocab, E, padding_idx=0)``;
    - ``encoder``: ``(x (B, T, E), lengths (B,)) -> (B, H)``, e.g. ``SequencePool("mean")`` (a bag of embeddings);
    - ``head``: (B, H) -> (B, classes), e.g. ``Sequential(Dense(H, 64, activation="relu"), Dense(64, 2))``.

    Called as ``model(tokens, lengths)``, as ``fit`` calls a model on the ``(tokens, lengths, labels)`` batches of
    a ``SequenceDataset``. Example, the bag of embeddings of ``neuronkit train --model bow``::

        model = nn.TextClassifier(
            nn.Embedding(len(encoder), 64, padding_idx=0),
            nn.SequencePool("mean"),
            nn.Sequential(nn.Dense(64, 64, activation="relu"), nn.Dense(64, 2)),
        )
    """

    def __init__(self, embedding: Module, encoder: Module, head: Module):
        super().__init__()
        for what, m in (("embedding", embedding), ("encoder", encoder), ("head", head)):
            if not isinstance(m, Module):
                raise TypeError(f"TextClassifier: {what} must be a Module, got {type(m).__name__}")
        self.embedding, self.encoder, self.head = embedding, encoder, head

    def forward(self, tokens, lengths):
        return self.head(self.encoder(self.embedding(tokens), lengths))

    def get_config(self) -> dict:
        return {
            "embedding": layer_spec(self.embedding),
            "encoder": layer_spec(self.encoder),
            "head": layer_spec(self.head),
        }
