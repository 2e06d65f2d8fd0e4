"""The complete check of a saved ``TextEncoder`` document: every field's type, range and consistency.

A file that fails any check raises ``neuronkit.FormatError`` naming the file and what was expected; nothing from the
file is used before it has passed (the subword package only ever sees a checked vocabulary and merges).
"""

from __future__ import annotations

from .subword import SUBWORD_KINDS
from .vocab import PAD, UNK, Vocab

MAX_VOCAB = 2_000_000  # entries
MAX_MERGES = 2_000_000
MAX_TOKEN_CHARS = 200
MAX_LEN_LIMIT = 1_000_000
FORMAT, VERSION = "neuronkit.text_encoder", 1
KINDS = ("word", "char", *SUBWORD_KINDS)


def _fail(where: str, msg: str):
    from ...io.errors import FormatError

    raise FormatError(f"{where}: {msg}")


def _int_or_none(doc: dict, key: str, low: int, high: int, where: str):
    v = doc.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        _fail(where, f"{key!r} must be null or an integer in [{low}, {high}], got {str(v)[:40]!r}")
    return v


def _tokens(doc: dict, kind: str, where: str) -> Vocab:
    tokens = doc.get("vocab")
    if not isinstance(tokens, list) or not 2 <= len(tokens) <= MAX_VOCAB:
        got = f"{len(tokens)} entries" if isinstance(tokens, list) else type(tokens).__name__
        _fail(where, f"'vocab' must be a list of 2 to {MAX_VOCAB:,} tokens, got {got}")
    if tokens[:2] != [PAD, UNK]:
        _fail(where, f"'vocab' must start with {PAD!r} and {UNK!r}, got {[str(t)[:20] for t in tokens[:2]]}")
    for i, t in enumerate(tokens):
        if not isinstance(t, str) or not 1 <= len(t) <= MAX_TOKEN_CHARS:
            _fail(where, f"vocab entry {i} must be a string of 1 to {MAX_TOKEN_CHARS} characters, got {str(t)[:40]!r}")
        if kind == "char" and i >= 2 and len(t) != 1:
            _fail(where, f"vocab entry {i} of a char tokenizer must be one character, got {t[:40]!r}")
    if len(set(tokens)) != len(tokens):
        _fail(where, "'vocab' holds a token more than once")
    return Vocab(tokens)


def _merges(doc: dict, vocab: Vocab, where: str) -> list:
    merges = doc.get("merges")
    if not isinstance(merges, list) or len(merges) > MAX_MERGES:
        _fail(where, f"a bpe encoder needs 'merges': a list of at most {MAX_MERGES:,} pairs")
    for i, m in enumerate(merges):
        if not (isinstance(m, list) and len(m) == 2 and all(isinstance(s, str) and s for s in m)):
            _fail(where, f"merge {i} must be a pair of non-empty strings, got {str(m)[:60]!r}")
        if m[0] not in vocab or m[1] not in vocab or m[0] + m[1] not in vocab:
            _fail(where, f"merge {i} {m[0][:20]!r} + {m[1][:20]!r} uses or makes a token missing from the vocab")
    return merges


def check_document(doc, where: str) -> tuple:
    """``(kind, lowercase, min_freq, max_size, max_len, vocab, merges)`` from a checked document."""
    if not isinstance(doc, dict):
        _fail(where, f"expected a JSON object, got {type(doc).__name__}")
    if doc.get("format") != FORMAT:
        _fail(where, f"not a neuronkit text encoder (format {str(doc.get('format'))[:40]!r}, expected {FORMAT!r})")
    if doc.get("version") != VERSION:
        _fail(where, f"version {str(doc.get('version'))[:20]!r} is not one this neuronkit reads ({VERSION})")
    tok = doc.get("tokenizer")
    if not isinstance(tok, dict) or tok.get("kind") not in KINDS or not isinstance(tok.get("lowercase"), bool):
        _fail(where, f"'tokenizer' must be {{'kind': one of {list(KINDS)}, 'lowercase': true/false}}")
    kind = tok["kind"]
    min_freq = _int_or_none(doc, "min_freq", 1, 2**31, where) or 1
    max_size = _int_or_none(doc, "max_size", 3, MAX_VOCAB, where)
    max_len = _int_or_none(doc, "max_len", 1, MAX_LEN_LIMIT, where)
    vocab = _tokens(doc, kind, where)
    if max_size is not None and len(vocab) > max_size:
        _fail(where, f"'vocab' has {len(vocab)} entries, more than its max_size {max_size}")
    merges = _merges(doc, vocab, where) if kind == "bpe" else None
    return kind, tok["lowercase"], min_freq, max_size, max_len, vocab, merges
