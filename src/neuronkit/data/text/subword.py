"""Subword tokenizers (BPE, WordPiece) trained on the training split by the Hugging Face ``tokenizers`` package.

The package does the training and the encoding (in Rust); neuronkit keeps what it learned as plain data (the
vocabulary and, for BPE, the merges) and rebuilds the tokenizer from that data when a run is loaded, so a saved file
is never handed to the package unchecked. Both kinds lower-case (optional), split on white space and punctuation
(``\\w+|[^\\w\\s]+``), and map what they cannot spell to ``<unk>`` (id 1); ``<pad>`` is id 0.

BPE training is deterministic. The package's WordPiece trainer is not quite: it numbers continuation pieces in hash
order and breaks ties between equally frequent merges by those numbers, so two trainings on the same texts can
differ in a few rare pieces. A run saves the tokenizer it trained, and its evaluate, predict and resume use that.
"""

from __future__ import annotations

import numpy as np

from .vocab import PAD, UNK, Vocab

__all__ = ["SUBWORD_KINDS", "SubwordTokenizer"]

SUBWORD_KINDS = ("bpe", "wordpiece")
WORDPIECE_PREFIX = "##"


def _hf():
    try:
        import tokenizers
    except ImportError:  # pragma: no cover - a declared dependency
        raise ImportError(
            "subword tokenizers (bpe, wordpiece) need the 'tokenizers' package: pip install tokenizers"
        ) from None
    return tokenizers


class SubwordTokenizer:
    """A BPE or WordPiece tokenizer; ``train(texts)`` learns it and returns its ``Vocab``.

    Args:
        kind: ``"bpe"`` (byte-pair encoding merges, Sennrich et al. 2016) or ``"wordpiece"`` (greedy longest match
            with ``##`` continuation pieces, as in BERT).
        lowercase: lower-case the text first. Defaults to True.
        vocab_size: the vocabulary size to learn, ``<pad>`` and ``<unk>`` included. Defaults to 8000.
        min_freq: a merge or piece must be seen at least this often in the training texts. Defaults to 2.
    """

    def __init__(self, kind: str = "bpe", lowercase: bool = True, vocab_size: int = 8000, min_freq: int = 2):
        if kind not in SUBWORD_KINDS:
            raise ValueError(f"SubwordTokenizer: kind must be one of {SUBWORD_KINDS}, got {kind!r}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 3:
            raise ValueError(f"SubwordTokenizer: vocab_size must be an int >= 3, got {vocab_size!r}")
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"SubwordTokenizer: min_freq must be an int >= 1, got {min_freq!r}")
        self.kind, self.lowercase, self.vocab_size, self.min_freq = kind, bool(lowercase), vocab_size, min_freq
        self.merges: list = []
        self._tok = None

    # -- building ---------------------------------------------------------------------------------------------------
    def _wrap(self, model):
        hf = _hf()
        tok = hf.Tokenizer(model)
        if self.lowercase:
            tok.normalizer = hf.normalizers.Lowercase()
        tok.pre_tokenizer = hf.pre_tokenizers.Whitespace()
        return tok

    def train(self, texts) -> Vocab:
        """Learn the subword vocabulary (and merges) from ``texts``; returns the ``Vocab`` (ids as encoded)."""
        hf = _hf()
        specials = [PAD, UNK]
        if self.kind == "bpe":
            model = hf.models.BPE(unk_token=UNK)
            trainer = hf.trainers.BpeTrainer(
                vocab_size=self.vocab_size, min_frequency=self.min_freq, special_tokens=specials, show_progress=False
            )
        else:
            model = hf.models.WordPiece(unk_token=UNK, continuing_subword_prefix=WORDPIECE_PREFIX)
            trainer = hf.trainers.WordPieceTrainer(
                vocab_size=self.vocab_size,
                min_frequency=self.min_freq,
                special_tokens=specials,
                continuing_subword_prefix=WORDPIECE_PREFIX,
                show_progress=False,
            )
        tok = self._wrap(model)
        tok.train_from_iterator(list(texts), trainer)
        learned = tok.get_vocab()  # token -> id
        if self.kind == "bpe":
            # BPE's ids follow the order its merges were learned (deterministic); keep them
            tokens = [t for t, _ in sorted(learned.items(), key=lambda ti: ti[1])]
            self.merges = self._learned_merges(tok)
        else:
            # WordPiece's trainer numbers its alphabet in hash order, which varies from run to run; the pieces do
            # not (greedy longest match needs only the set), so give them a canonical order
            tokens = [PAD, UNK, *sorted(t for t in learned if t not in (PAD, UNK))]
        vocab = Vocab(tokens)
        self._tok = self._build(vocab)
        return vocab

    @staticmethod
    def _learned_merges(tok) -> list:
        import json

        merges = json.loads(tok.to_str())["model"]["merges"]
        # older releases write "a b" strings, newer ones [a, b] pairs
        return [list(m) if isinstance(m, list) else m.split(" ", 1) for m in merges]

    def _build(self, vocab: Vocab):
        hf = _hf()
        ids = dict(vocab.index)
        if self.kind == "bpe":
            model = hf.models.BPE(vocab=ids, merges=[tuple(m) for m in self.merges], unk_token=UNK)
        else:
            model = hf.models.WordPiece(vocab=ids, unk_token=UNK, continuing_subword_prefix=WORDPIECE_PREFIX)
        return self._wrap(model)

    def load(self, vocab: Vocab, merges=None) -> None:
        """Rebuild from saved data (a checked ``Vocab`` and, for BPE, merges as pairs of strings)."""
        self.merges = [list(m) for m in (merges or [])]
        self._tok = self._build(vocab)

    # -- use ----------------------------------------------------------------------------------------------------
    def _ready(self):
        if self._tok is None:
            raise RuntimeError(f"{self!r} is not trained yet: call train(texts) first")
        return self._tok

    def tokenize(self, text: str) -> list:
        """The subword pieces of one text."""
        return self._ready().encode(text, add_special_tokens=False).tokens

    def encode_batch(self, texts) -> tuple:
        """``(ids, lengths)``: every text's ids, concatenated (int64), and the number of ids per text."""
        tok = self._ready()
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"SubwordTokenizer: text {i} is a {type(t).__name__}, not a str")
        encodings = tok.encode_batch(texts, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(encodings))
        ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        return ids, lengths

    def config(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase}

    def __repr__(self) -> str:
        return f"SubwordTokenizer({self.kind!r}, lowercase={self.lowercase}, vocab_size={self.vocab_size})"
