"""Parsing one chunk of a CSV file's data lines into float64 values: integers with whole-array NumPy operations,
other numbers with NumPy's C parser, and cell by cell for a chunk neither takes (which names the first bad cell)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .csvtext import cells, column_list, decode, maybe_blank
from .errors import DataFileError

__all__ = [
    "MISSING",
    "ParseSpec",
    "TextTarget",
    "number_cell",
    "parse_cells",
    "parse_chunk",
    "parse_integers",
    "parse_numpy",
    "target_cell",
]


MISSING = ("", "na", "nan", "null", "none", "?")  # cells read as a missing value (case-insensitive)


class TextTarget(Exception):
    """The target column holds text: parse again with the column read as class names."""


@dataclass
class ParseSpec:
    """What one parse needs to know: the file, its columns, the target, and the text labels seen so far."""

    p: Path
    names: list
    t: int | None
    delimiter: str
    dtype: np.dtype
    text_target: bool
    codes: dict  # text label -> code, in order of first appearance

    @property
    def limit(self) -> float | None:
        """The largest magnitude the feature dtype holds, where float64 values can exceed it (float32, float16)."""
        return float(np.finfo(self.dtype).max) if self.dtype.kind == "f" and self.dtype.itemsize < 8 else None

    @property
    def feats(self) -> list:
        return [k for k in range(len(self.names)) if k != self.t]

    def code(self, s: str) -> float:
        s = s.strip()
        if s.lower() in MISSING:
            return np.nan  # reported with its row by the slow path
        return float(self.codes.setdefault(s, len(self.codes)))


def number_cell(cell: str, s: ParseSpec, line: int, col: str) -> float:
    v = cell.strip()
    if v.lower() in MISSING:
        raise DataFileError(f"{s.p}: missing value at row {line}, column {col!r}")
    try:
        f = float(v)
    except ValueError:
        raise DataFileError(f"{s.p}: non-numeric value {v!r} at row {line}, column {col!r}") from None
    if not np.isfinite(f):
        raise DataFileError(f"{s.p}: non-finite value {v!r} at row {line}, column {col!r}")
    if s.limit is not None and abs(f) > s.limit:
        raise DataFileError(
            f"{s.p}: value {v} at row {line}, column {col!r} is outside the range of {s.dtype.name} "
            f"(largest {s.limit:.4g}): rescale the column"
        )
    return f


def target_cell(cell: str, s: ParseSpec, line: int) -> float:
    v = cell.strip()
    col = s.names[s.t]
    if v.lower() in MISSING:
        raise DataFileError(f"{s.p}: missing target value at row {line}, column {col!r}")
    if s.text_target:
        return s.code(v)
    try:
        f = float(v)
    except ValueError:
        raise TextTarget from None
    if not np.isfinite(f):
        raise DataFileError(f"{s.p}: missing or non-finite target value at row {line}, column {col!r}")
    return f


def parse_cells(lines: list, first: int, s: ParseSpec, blank) -> tuple:
    """``(values (k, ncol) float64, line numbers)`` of a chunk, cell by cell: raises on the first bad cell."""
    ncol, rows, nums = len(s.names), [], []
    for k, text in enumerate(lines):
        if blank.match(text):
            continue
        line, row = first + k, cells(text, s.delimiter)
        if len(row) != ncol:
            raise DataFileError(
                f"{s.p}: row {line} has {len(row)} fields, expected {ncol} (columns {column_list(s.names)})"
            )
        vals = [target_cell(c, s, line) if j == s.t else number_cell(c, s, line, s.names[j]) for j, c in enumerate(row)]
        rows.append(vals)
        nums.append(line)
    return np.array(rows, dtype=np.float64).reshape(len(rows), ncol), np.array(nums, dtype=np.int64)


def parse_numpy(text: str, lines: list, first: int, s: ParseSpec, blank) -> tuple | None:
    """The same as ``parse_cells`` through NumPy's C parser, or None when the chunk needs the cell-by-cell look."""
    keep = None
    if maybe_blank(text, s.delimiter):  # the rare chunk with blank lines is filtered line by line
        keep = [k for k, t in enumerate(lines) if not blank.match(t)]
        lines = [lines[k] for k in keep]
    if not lines:
        return np.empty((0, len(s.names))), np.empty(0, dtype=np.int64)
    conv = {s.t: s.code} if s.text_target else None
    try:
        a = np.loadtxt(
            lines, delimiter=s.delimiter, dtype=np.float64, ndmin=2, quotechar='"', comments=None, converters=conv
        )
    except ValueError:
        return None
    if a.shape != (len(lines), len(s.names)) or not np.isfinite(a).all():  # NumPy skips lines it finds empty
        return None
    if s.limit is not None and a.size and _largest(a, s.t) > s.limit:
        return None
    nums = first + (np.arange(len(lines), dtype=np.int64) if keep is None else np.asarray(keep, dtype=np.int64))
    return a, nums


_DIGITS = np.arange(256) - 48  # byte -> digit value (for the digit bytes 48..57)
_POW10 = 10.0 ** np.arange(16)


def parse_integers(raw: bytes, first: int, s: ParseSpec) -> tuple | None:
    """The common case at several times NumPy's speed: a chunk of non-negative integers of at most 15 digits
    (pixels, counts, class labels) and nothing else, parsed with whole-array operations. None for anything else
    (a sign, a decimal point, a space, a quote, an empty field, a ragged row), which the other parsers take."""
    ncol, sep = len(s.names), ord(s.delimiter) if len(s.delimiter.encode()) == 1 else -1
    a = np.frombuffer(raw, dtype=np.uint8)
    if sep < 0 or 48 <= sep <= 57 or not a.size:
        return None
    allowed = np.zeros(256, dtype=bool)
    allowed[48:58] = allowed[sep] = allowed[10] = True
    if not allowed[a].all():
        return None
    ends = np.flatnonzero((a == sep) | (a == 10))  # the byte after each field but the last
    ends = np.append(ends, len(a))
    lens = np.diff(ends, prepend=-1) - 1
    width = int(lens.max())
    if lens.min() < 1 or width > 15 or len(ends) % ncol:
        return None
    after = np.append(a, 10)[ends].reshape(-1, ncol)  # each row's separators: delimiters, then its line end
    if not (after[:, -1] == 10).all() or (after[:, :-1] == 10).any():
        return None
    padded = np.concatenate([np.full(width, 48, dtype=np.uint8), a])  # reads before the first field give 0
    vals = np.zeros(len(ends))
    for k in range(width):  # the k-th digit from the right of every field at once
        digit = _DIGITS[padded[ends + (width - 1 - k)]].astype(np.float64)
        digit[lens <= k] = 0.0
        vals += digit * _POW10[k]
    rows = vals.reshape(-1, ncol)
    return rows, first + np.arange(len(rows), dtype=np.int64)


def _largest(a: np.ndarray, t: int | None) -> float:
    """The largest magnitude among the feature columns of ``a`` (all columns but ``t``)."""
    if t is None:
        return float(np.abs(a).max())
    return max(float(np.abs(part).max()) for part in (a[:, :t], a[:, t + 1 :]) if part.size)


def parse_chunk(raw: bytes, first: int, s: ParseSpec, blank) -> tuple:
    """``(values (k, ncol) float64, line numbers)`` of the data lines in ``raw``: the integer parser, NumPy's C
    parser, or cell by cell (which raises naming the first bad cell), whichever first takes the chunk."""
    got = None if s.text_target else parse_integers(raw, first, s)
    if got is not None:
        return got
    text = decode(raw, s.p, first, s.delimiter, s.names)
    lines = text.split("\n")
    return parse_numpy(text, lines, first, s, blank) or parse_cells(lines, first, s, blank)
