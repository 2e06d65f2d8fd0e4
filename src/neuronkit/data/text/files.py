"""The user's own text: a CSV or TSV file (UTF-8, with a header row) with one or more text columns and a label
column. Every problem is a ``DataFileError`` of one line naming the file, the row (the file's line number, from 1)
and the column."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from ..datasets.files import DataFileError

__all__ = ["MAX_FIELD_CHARS", "read_text_table"]

MAX_FIELD_CHARS = 1_000_000  # one cell; csv's own limit is 131,072
MAX_FILE_BYTES = 512 * 2**20  # a text table larger than this is refused before it is read (held 4x in memory)


def _delimiter(p: Path, delimiter: str | None) -> str:
    if delimiter is not None:
        return delimiter
    return "\t" if p.suffix.lower() in (".tsv", ".tab") else ","


def _decode(p: Path, raw: bytes, delimiter: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        start = raw.rfind(b"\n", 0, e.start) + 1
        before = raw[start : e.start].decode("utf-8", errors="replace")
        col = next(csv.reader([before], delimiter=delimiter), [""])
        raise DataFileError(
            f"{p}: not UTF-8 text: byte 0x{raw[e.start]:02x} at row {line}, column {len(col)} cannot be decoded "
            f"(save the file as UTF-8)"
        ) from None


def _rows(p: Path, text: str, delimiter: str):
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    # newline="": csv sees the file's own line ends (a cell may hold a quoted newline, or a \f or \u2028 that
    # str.splitlines would break the row at)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        for row in reader:
            if row and any(c.strip() for c in row):
                yield reader.line_num, row
    except csv.Error as e:
        raise DataFileError(f"{p}: row {reader.line_num}: {e}") from None


def _column(p: Path, names: list, name: str, what: str) -> int:
    if name in names:
        return names.index(name)
    raise DataFileError(f"{p}: no {what} column {name!r}; the columns are {names}")


def read_text_table(path, text_columns, target=None, delimiter: str | None = None) -> tuple:
    """``(texts, labels, classes, target_name)`` from a CSV/TSV file with a header row.

    Args:
        path: the file (``.tsv``/``.tab`` is tab-separated, anything else comma-separated unless ``delimiter``).
        text_columns: the column name, or several names whose cells are joined with a space, in that order.
        target: the label column; None: the last column that is not a text column.
        delimiter: the field separator. Defaults to the suffix's.

    Returns:
        ``texts`` (list of str), ``labels`` (int64 indices into ``classes``), ``classes`` (the distinct label values
        as strings, sorted, numerically when they all are numbers) and the label column's name.

    Raises ``DataFileError`` naming the row and column of a missing or empty text or label, a file that is not UTF-8,
    a row with too few fields, or a label column with only one class.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"expected a data file, got a directory: {p}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise DataFileError(f"{p}: {p.stat().st_size:,} bytes is more than a text table may hold ({MAX_FILE_BYTES:,})")
    cols = [text_columns] if isinstance(text_columns, str) else list(text_columns)
    if not cols:
        raise DataFileError(f"{p}: no text column given")
    delim = _delimiter(p, delimiter)
    rows = _rows(p, _decode(p, p.read_bytes(), delim), delim)
    header = next(rows, None)
    if header is None:
        raise DataFileError(f"{p}: the file is empty")
    names = [c.strip() for c in header[1]]
    tcols = [_column(p, names, c, "text") for c in cols]
    if target is None:
        rest = [k for k in range(len(names)) if k not in tcols]
        if not rest:
            raise DataFileError(f"{p}: every column is a text column; name the label column with --target")
        t = rest[-1]
    else:
        t = _column(p, names, str(target), "label")
        if t in tcols:
            raise DataFileError(f"{p}: column {names[t]!r} cannot be both the text and the label")
    texts, raw = [], []
    for line, row in rows:
        if len(row) < len(names):
            raise DataFileError(f"{p}: row {line} has {len(row)} fields, expected {len(names)} (columns {names})")
        parts = [row[k].strip() for k in tcols]
        for k, s in zip(tcols, parts):
            if not s:
                raise DataFileError(f"{p}: missing or empty text at row {line}, column {names[k]!r}")
        label = row[t].strip()
        if not label:
            raise DataFileError(f"{p}: missing label at row {line}, column {names[t]!r}")
        texts.append(" ".join(parts))
        raw.append(label)
    if not texts:
        raise DataFileError(f"{p}: no data rows (only a header: {names})")
    classes = _sorted_classes(set(raw))
    if len(classes) < 2:
        raise DataFileError(
            f"{p}: label column {names[t]!r} has one class ({classes[0]!r}) in all {len(raw)} rows: "
            f"classification needs at least 2"
        )
    index = {c: i for i, c in enumerate(classes)}
    labels = np.fromiter((index[v] for v in raw), dtype=np.int64, count=len(raw))
    return texts, labels, classes, names[t]


def _sorted_classes(values: set) -> list:
    try:
        return sorted(values, key=float)
    except ValueError:
        return sorted(values)
