"""Tokenizers: text -> tokens. A built-in word and character tokenizer, and subword tokenizers (BPE, WordPiece)
trained through the Hugging Face ``tokenizers`` package.

Every tokenizer turns a whole list of texts into one flat list of tokens plus one length per text
(``tokenize_batch``), so that a corpus costs one pass of C code rather than one Python call per text: the texts are
joined with a separator character that the tokenizer keeps as a token of its own, and the separators' positions
give the lengths.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["CharTokenizer", "WordTokenizer", "split_on_separator"]

SEP = "\x00"  # joins texts for batch tokenization; a text's own NUL characters are turned into spaces first


def join_texts(texts, lowercase: bool) -> str:
    """The texts joined by ``SEP`` (NULs inside a text become spaces), lower-cased when asked."""
    texts = list(texts)
    joined = SEP.join(texts)
    if joined.count(SEP) != max(len(texts) - 1, 0):
        joined = SEP.join(t.replace(SEP, " ") for t in texts)
    return joined.lower() if lowercase else joined


def split_on_separator(is_sep: np.ndarray, n_texts: int) -> np.ndarray:
    """Lengths of the ``n_texts`` runs between separator positions (``is_sep``: one bool per flat token)."""
    pos = np.flatnonzero(is_sep)
    if len(pos) != n_texts - 1:
        raise AssertionError(f"found {len(pos)} separators for {n_texts} texts")
    bounds = np.concatenate([[-1], pos, [len(is_sep)]])
    return np.diff(bounds) - 1


class _Joined:
    """The batch path shared by the word and character tokenizers: ``split`` one joined string into tokens."""

    kind = ""
    lowercase = False

    def split(self, joined: str) -> list:  # pragma: no cover - overridden
        raise NotImplementedError

    def tokenize(self, text: str) -> list:
        """The tokens of one text."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.tokenize expected a str, got {type(text).__name__}")
        return self.split(join_texts([text], self.lowercase))

    def tokenize_joined(self, texts) -> tuple:
        """``(tokens, n_texts)``: the flat tokens of every text, with a ``SEP`` token between consecutive texts."""
        texts = list(texts)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"{type(self).__name__}: text {i} is a {type(t).__name__}, not a str")
        return self.split(join_texts(texts, self.lowercase)), len(texts)

    def config(self) -> dict:
        return {"kind": self.kind, "lowercase": self.lowercase}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lowercase={self.lowercase})"


class WordTokenizer(_Joined):
    """Words and punctuation: each maximal run of letters, digits and underscores (any script: Python's Unicode
    ``\\w``) is a token, and so is every other character that is not white space (``"don't!"`` -> ``don ' t !``).

    Args:
        lowercase: lower-case the text first (Unicode ``str.lower``). Defaults to True.
    """

    kind = "word"
    PATTERN = re.compile(r"\w+|[^\w\s]")

    def __init__(self, lowercase: bool = True):
        self.lowercase = bool(lowercase)

    def split(self, joined: str) -> list:
        return self.PATTERN.findall(joined)


class CharTokenizer(_Joined):
    """Characters: every character of the text, white space included, is a token.

    Args:
        lowercase: lower-case the text first. Defaults to False.
    """

    kind = "char"

    def __init__(self, lowercase: bool = False):
        self.lowercase = bool(lowercase)

    def split(self, joined: str) -> list:
        return list(joined)
