"""``Vocab``: tokens <-> integer ids, with padding (id 0) and unknown (id 1) tokens, built from token counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from itertools import repeat

import numpy as np

__all__ = ["PAD", "UNK", "Vocab"]

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1


class Vocab:
    """An ordered list of distinct tokens; a token's id is its position. ``tokens[0]`` is ``<pad>``, ``tokens[1]``
    ``<unk>``: padding positions hold id 0 (``Embedding(..., padding_idx=0)`` keeps that row at zero) and any token
    not in the vocabulary maps to id 1.

    Build one from training tokens with ``Vocab.build(counts, min_freq=..., max_size=...)``: tokens seen fewer than
    ``min_freq`` times are left out, then the ``max_size - 2`` most frequent are kept (ties broken by the token's
    text, so the result does not depend on the order the corpus was read in).
    """

    def __init__(self, tokens: list):
        tokens = list(tokens)
        if len(tokens) < 2 or tokens[0] != PAD or tokens[1] != UNK:
            raise ValueError(f"Vocab: the first two tokens must be {PAD!r} and {UNK!r}, got {tokens[:2]!r}")
        index = {t: i for i, t in enumerate(tokens)}
        if len(index) != len(tokens):
            dup = next(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"Vocab: token {dup!r} appears more than once")
        self.tokens, self.index = tokens, index

    @classmethod
    def build(cls, counts, min_freq: int = 1, max_size: int | None = None) -> Vocab:
        """A vocabulary from ``counts`` (a ``Counter``/dict token -> count, or an iterable of tokens).

        Args:
            counts: token frequencies in the training split, or the tokens themselves.
            min_freq: keep tokens seen at least this often. Defaults to 1.
            max_size: at most this many entries in all, ``<pad>`` and ``<unk>`` included (>= 2). Defaults to no
                limit.
        """
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"Vocab.build: min_freq must be an int >= 1, got {min_freq!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 2):
            raise ValueError(f"Vocab.build: max_size must be an int >= 2 (room for {PAD} and {UNK}), got {max_size!r}")
        if not isinstance(counts, dict):
            counts = Counter(counts)
        kept = [(t, n) for t, n in counts.items() if n >= min_freq and t not in (PAD, UNK)]
        kept.sort(key=lambda tn: (-tn[1], tn[0]))
        if max_size is not None:
            kept = kept[: max_size - 2]
        return cls([PAD, UNK, *(t for t, _ in kept)])

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token) -> bool:
        return token in self.index

    def __getitem__(self, token: str) -> int:
        return self.index.get(token, UNK_ID)

    def ids(self, tokens: Iterable, count: int = -1) -> np.ndarray:
        """The ids of ``tokens`` as an int64 array (unknown tokens -> 1); ``count`` = ``len(tokens)`` if known."""
        return np.fromiter(map(self.index.get, tokens, repeat(UNK_ID)), dtype=np.int64, count=count)

    def lookup(self, ids) -> list:
        """The tokens of ``ids`` (ids out of range are an ``IndexError``)."""
        n = len(self.tokens)
        out = []
        for i in np.asarray(ids, dtype=np.int64).reshape(-1).tolist():
            if not 0 <= i < n:
                raise IndexError(f"token id {i} is out of range for a vocabulary of {n}")
            out.append(self.tokens[i])
        return out

    def __repr__(self) -> str:
        head = ", ".join(repr(t) for t in self.tokens[2:7])
        return f"Vocab({len(self)} tokens: <pad>, <unk>, {head}{', ...' if len(self) > 7 else ''})"
