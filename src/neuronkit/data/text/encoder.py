"""``TextEncoder``: text -> token ids, fitted on the training split and saved with a run as plain JSON.

A ``TextEncoder`` is a tokenizer (``word``, ``char``, ``bpe`` or ``wordpiece``) with its vocabulary and a maximum
length. ``fit_encode(train_texts)`` learns the vocabulary and encodes the training texts in one pass;
``encode(texts)`` encodes any other text the same way; ``dataset(texts, labels)`` gives the padded-batch
``SequenceDataset`` the models train on. ``save(path)`` writes one JSON document; ``TextEncoder.load(path)`` checks
it completely (size, types, ranges, the special tokens, uniqueness) and raises ``neuronkit.FormatError`` for anything
that is not a file it could have written.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from itertools import repeat
from pathlib import Path

import numpy as np

from ..dataset import SequenceDataset
from .checks import FORMAT, KINDS, VERSION, check_document
from .subword import SUBWORD_KINDS, SubwordTokenizer
from .tokenize import SEP, CharTokenizer, WordTokenizer, split_on_separator
from .vocab import UNK_ID, Vocab

__all__ = ["FORMAT", "MAX_FILE_BYTES", "TOKENIZERS", "TextEncoder"]

TOKENIZERS = KINDS
MAX_FILE_BYTES = 64 * 2**20  # a saved encoder larger than this is refused before it is read


def _default_lowercase(kind: str) -> bool:
    return kind != "char"


class TextEncoder:
    """Text -> int64 token ids through a tokenizer and its vocabulary.

    Args:
        tokenizer: ``"word"`` (words and punctuation, ``WordTokenizer``), ``"char"`` (characters), ``"bpe"`` or
            ``"wordpiece"`` (subwords learned by the ``tokenizers`` package). Defaults to ``"word"``.
        lowercase: lower-case the text first. Defaults to True, False for ``char``.
        min_freq: a token (word, character; for subwords, a merge or piece) must occur this often in the training
            texts to get its own id. Defaults to 1 (2 for subwords).
        max_size: at most this many ids, ``<pad>`` (0) and ``<unk>`` (1) included. Defaults to no limit for word and
            char, 8000 for subwords.
        max_len: keep the first ``max_len`` tokens of a longer text (None: keep all). Defaults to None.
    """

    def __init__(
        self,
        tokenizer: str = "word",
        lowercase: bool | None = None,
        min_freq: int | None = None,
        max_size: int | None = None,
        max_len: int | None = None,
    ):
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"TextEncoder: tokenizer must be one of {', '.join(TOKENIZERS)}; got {tokenizer!r}")
        subword = tokenizer in SUBWORD_KINDS
        lowercase = _default_lowercase(tokenizer) if lowercase is None else bool(lowercase)
        min_freq = (2 if subword else 1) if min_freq is None else min_freq
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"TextEncoder: min_freq must be an int >= 1, got {min_freq!r}")
        if subword and max_size is None:
            max_size = 8000
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 3):
            raise ValueError(f"TextEncoder: max_size must be an int >= 3, got {max_size!r}")
        if max_len is not None and (isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1):
            raise ValueError(f"TextEncoder: max_len must be an int >= 1, got {max_len!r}")
        self.kind, self.lowercase, self.min_freq, self.max_size, self.max_len = (
            tokenizer,
            lowercase,
            min_freq,
            max_size,
            max_len,
        )
        if subword:
            self.tokenizer = SubwordTokenizer(tokenizer, lowercase, max_size, min_freq)
        else:
            self.tokenizer = (WordTokenizer if tokenizer == "word" else CharTokenizer)(lowercase)
        self.vocab: Vocab | None = None
        self._sep_index = None

    # -- fitting and encoding ---------------------------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.vocab is not None

    def __len__(self) -> int:
        """The vocabulary size (the ``num_embeddings`` an ``Embedding`` needs)."""
        return len(self._need())

    def _need(self) -> Vocab:
        if self.vocab is None:
            raise RuntimeError("TextEncoder is not fitted yet: call fit(texts) or fit_encode(texts) first")
        return self.vocab

    def _set_vocab(self, vocab: Vocab) -> None:
        self.vocab = vocab
        self._sep_index = None if self.kind in SUBWORD_KINDS else {**vocab.index, SEP: -1}

    def fit(self, texts) -> TextEncoder:
        """Learn the vocabulary from the training ``texts``; returns ``self``."""
        self.fit_encode(texts)
        return self

    def fit_encode(self, texts) -> tuple:
        """Learn the vocabulary from ``texts`` and return their ``(ids, lengths)`` (see ``encode``)."""
        texts = list(texts)
        if self.kind in SUBWORD_KINDS:
            self._set_vocab(self.tokenizer.train(texts))
            return self.encode(texts)
        tokens, n = self.tokenizer.tokenize_joined(texts)
        counts = Counter(tokens)
        counts.pop(SEP, None)
        self._set_vocab(Vocab.build(counts, self.min_freq, self.max_size))
        return self._ids(tokens, n)

    def encode(self, texts) -> tuple:
        """``(ids, lengths)``: the ids of every text concatenated (int64; unknown tokens -> 1) and each text's number
        of tokens (before ``max_len``, which ``dataset`` applies)."""
        self._need()
        if isinstance(texts, str):
            raise TypeError("TextEncoder.encode expected a list of texts, got one str (wrap it in a list)")
        if self.kind in SUBWORD_KINDS:
            return self.tokenizer.encode_batch(texts)
        return self._ids(*self.tokenizer.tokenize_joined(texts))

    def _ids(self, tokens: list, n: int) -> tuple:
        ids = np.fromiter(map(self._sep_index.get, tokens, repeat(UNK_ID)), dtype=np.int64, count=len(tokens))
        is_sep = ids < 0
        lengths = split_on_separator(is_sep, n) if n else np.zeros(0, np.int64)
        return (ids[~is_sep] if n > 1 else ids), lengths

    def dataset(self, texts, labels=None) -> SequenceDataset:
        """The texts encoded as a ``SequenceDataset`` (padded batches ``(tokens, lengths[, labels])``, pad id 0),
        each cut to ``max_len`` tokens."""
        ids, lengths = self.encode(texts)
        return SequenceDataset.from_flat(ids, lengths, labels, pad_value=0, max_len=self.max_len)

    def tokens(self, text: str) -> list:
        """The tokens of one text as the model sees them (out-of-vocabulary ones as ``<unk>``, cut to max_len)."""
        ids, _ = self.encode([text])
        return self._need().lookup(ids[: self.max_len])

    # -- saving and loading -----------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        vocab = self._need()
        doc = {
            "format": FORMAT,
            "version": VERSION,
            "tokenizer": self.tokenizer.config(),
            "min_freq": self.min_freq,
            "max_size": self.max_size,
            "max_len": self.max_len,
            "vocab": vocab.tokens,
        }
        if self.kind == "bpe":
            doc["merges"] = self.tokenizer.merges
        return doc

    def save(self, path) -> None:
        """Write the encoder as one JSON document (atomically: a crash leaves the old file or the new one)."""
        p = Path(path)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, p)
        finally:
            tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path) -> TextEncoder:
        """Read a saved encoder; ``neuronkit.FormatError`` for a file that is too large, not JSON, or not valid."""
        from ...io.errors import FormatError

        p = Path(path)
        try:
            size = p.stat().st_size
            if size > MAX_FILE_BYTES:
                raise FormatError(f"{p}: {size:,} bytes is larger than a text encoder may be ({MAX_FILE_BYTES:,})")
            with open(p, "rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except OSError as e:
            raise FormatError(f"{p}: cannot read the text encoder ({e.strerror or e})") from None
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise FormatError(f"{p}: not a JSON text encoder ({type(e).__name__}: {str(e)[:100]})") from None
        return cls.from_dict(doc, str(p))

    @classmethod
    def from_dict(cls, doc, where: str = "text encoder") -> TextEncoder:
        """Rebuild from ``to_dict()``'s document, checking every field (``FormatError`` naming ``where``)."""
        kind, lowercase, min_freq, max_size, max_len, vocab, merges = check_document(doc, where)
        enc = cls(kind, lowercase, min_freq, max_size, max_len)
        if kind in SUBWORD_KINDS:
            from ...io.errors import FormatError

            try:
                enc.tokenizer.load(vocab, merges)
            except Exception as e:  # the package's own check of the merges against the vocabulary
                raise FormatError(f"{where}: the {kind} vocabulary and merges do not fit together ({e})") from None
        enc._set_vocab(vocab)
        return enc

    def __repr__(self) -> str:
        size = len(self.vocab) if self.vocab is not None else "unfitted"
        return f"TextEncoder({self.kind!r}, lowercase={self.lowercase}, vocab={size}, max_len={self.max_len})"
