"""CSV files of numbers: a chunked parse into one preallocated array, with one-line errors naming row and column.

The file is read in chunks of whole lines (about 1 MB of text each). NumPy's C parser (``np.loadtxt``) turns a
chunk into float64 values, which are copied into the preallocated ``(rows, features)`` array; so the peak memory is
the final array plus one chunk, and the speed is NumPy's. A chunk the fast parser refuses (a missing or non-numeric
value, a ragged row, a value out of range) is parsed again cell by cell, which finds the first bad cell and names it:
``data.csv: non-numeric value 'abc' at row 12, column 'age'``. Row numbers are the file's line numbers, counting
from 1.

Text is UTF-8 (a UTF-8 byte-order mark is skipped). A UTF-16 file, a Latin-1 byte or a NUL byte is refused with the
row and column where it is, rather than a decoding traceback. Fields may be quoted (``"1.5"``, ``"New York, NY"``)
but may not span lines.
"""

from __future__ import annotations

import csv
import difflib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import backend as B
from .errors import DataFileError, existing_file

__all__ = ["CsvTable", "load_csv", "read_csv", "read_csv_header"]

CHUNK_BYTES = 1 << 20  # text parsed per NumPy call: large enough to amortise the call, small enough to stay in cache
MISSING = ("", "na", "nan", "null", "none", "?")  # cells read as a missing value (case-insensitive)
FLOAT32_MAX = float(np.finfo(np.float32).max)
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


@dataclass
class CsvTable:
    """A parsed CSV file.

    Attributes:
        x: ``(N, F)`` features (float32 by default).
        y: ``(N,)`` target: float64 values for a numeric column, int64 indices into ``classes`` for text labels;
            None without a target.
        classes: the text labels, sorted (index = code); None for a numeric target.
        columns: the feature columns' names (``"0"``, ``"1"``, ... without a header).
        target: the target column's name, or None.
        lines: ``(N,)`` int64, each sample's line number in the file (from 1): the row a user can find.
        path: the file.
    """

    x: np.ndarray
    y: np.ndarray | None
    classes: list | None
    columns: list
    target: str | None
    lines: np.ndarray
    path: Path

    def where(self, i: int, column: str | None = None) -> str:
        """``"FILE: row LINE, column 'NAME'"`` for sample ``i`` (the target column by default)."""
        col = self.target if column is None else column
        return f"{self.path}: row {int(self.lines[i])}" + ("" if col is None else f", column {col!r}")


# -- reading text -------------------------------------------------------------------------------------------------
def _decode(raw: bytes, p: Path, first_line: int, delimiter: str, names=None) -> str:
    """``raw`` (whole lines) as text; one line naming row and column (by name when ``names`` are known) for bytes
    that are not UTF-8 text."""
    nul = raw.find(b"\x00")
    try:
        if nul >= 0:
            raise UnicodeDecodeError("utf-8", raw, nul, nul + 1, "NUL byte")
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        col = raw.count(delimiter.encode(), raw.rfind(b"\n", 0, e.start) + 1, e.start)
        col = repr(names[col]) if names is not None and col < len(names) else col + 1
        what = "a NUL byte (UTF-16 or binary data?)" if e.reason == "NUL byte" else f"byte 0x{raw[e.start]:02x}"
        raise DataFileError(
            f"{p}: row {line}, column {col}: {what} is not UTF-8 text; expected a UTF-8 (or ASCII) CSV file: save it "
            "as UTF-8 (e.g. from a Latin-1 or Windows-1252 export)"
        ) from None


def _text_chunks(fh, p: Path, delimiter: str, names=None, first_line: int = 1, size: int = CHUNK_BYTES):
    """``(text, number of its first line)`` for successive chunks of whole lines of the open binary file ``fh``; the
    text holds the lines joined by ``\\n``, without the last line end."""
    pending, line = [], first_line
    while True:
        raw = fh.read(size)
        if not raw:
            break
        cut = raw.rfind(b"\n") + 1
        if cut == 0:  # no line end yet: keep the piece (joined once, so a long line costs its length, not its square)
            pending.append(raw)
            continue
        whole = b"".join([*pending, raw[:cut]])
        pending = [raw[cut:]]
        yield _decode(whole[:-1], p, line, delimiter, names), line
        line += whole.count(b"\n")
    rest = b"".join(pending)
    if rest:
        yield _decode(rest, p, line, delimiter, names), line


def _open(p: Path):
    """The file opened for binary reading, past a UTF-8 byte-order mark; UTF-16/32 files are refused."""
    fh = open(p, "rb")
    head = fh.read(4)
    for bom, name in _BOMS.items():
        if head.startswith(bom):
            fh.close()
            raise DataFileError(
                f"{p}: row 1, column 1: the file is {name} text (it starts with a {name} byte-order mark); expected "
                "UTF-8 (or ASCII): save it as UTF-8"
            )
    fh.seek(3 if head.startswith(b"\xef\xbb\xbf") else 0)
    return fh


def _cells(line: str, delimiter: str) -> list:
    return next(csv.reader([line.rstrip("\r")], delimiter=delimiter))


def _blank_pattern(delimiter: str):
    """A line holding nothing but spaces and delimiters (skipped, as csv.reader-based readers skip it)."""
    return re.compile(r"^[ \t\r" + re.escape(delimiter) + r"]*$", re.MULTILINE)


def _first_row(p: Path, delimiter: str):
    """``(cells, line number)`` of the first non-blank line, or None for a file with none."""
    blank = _blank_pattern(delimiter)
    with _open(p) as fh:
        for number, raw in enumerate(fh, 1):  # line by line: only the first row is decoded here
            text = _decode(raw.rstrip(b"\n"), p, number, delimiter)
            if not blank.match(text):
                return [c.strip() for c in _cells(text, delimiter)], number
    return None


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_csv_header(path, delimiter: str = ",") -> list | None:
    """The first row's cells when it is a header (some cell is not a number), None when it holds only numbers.

    Raises ``FileNotFoundError`` for a missing file and ``DataFileError`` for an empty one or one that is not UTF-8.
    """
    p = existing_file(path)
    first = _first_row(p, delimiter)
    if first is None:
        raise DataFileError(f"{p}: the file is empty")
    cells = first[0]
    return None if all(_is_number(c) for c in cells) else cells


# -- columns ------------------------------------------------------------------------------------------------------
def column_list(names, head: int = 6, tail: int = 3) -> str:
    """Column names for a message: all of a few, the first ``head`` and last ``tail`` of many, with the count."""
    names = list(names)
    if len(names) <= head + tail + 1:
        return ", ".join(repr(n) for n in names)
    shown = [repr(n) for n in names[:head]] + ["..."] + [repr(n) for n in names[-tail:]]
    return ", ".join(shown) + f" ({len(names)} columns)"


def missing_column(p, name: str, names) -> DataFileError:
    """``no target column 'lable'; did you mean 'label'? the columns are ...``: the closest names first."""
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=3, cutoff=0.6)
    hint = f" did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return DataFileError(f"{p}: no target column {name!r};{hint} the columns are {column_list(names)}")


def _target_index(p, target, names: list, header: bool) -> int | None:
    if target is None:
        return None
    ncol = len(names)
    if isinstance(target, str) and not (target.lstrip("-").isdigit() and not header):
        if target not in names:
            raise missing_column(p, target, names)
        t = names.index(target)
    else:
        ti = int(target)
        if not -ncol <= ti < ncol:
            raise DataFileError(
                f"{p}: target column index {ti} is out of range for {ncol} columns ({column_list(names)})"
            )
        t = ti % ncol
    if ncol < 2:
        raise DataFileError(f"{p}: only one column ({column_list(names)}); nothing is left for the features")
    return t


# -- parsing ------------------------------------------------------------------------------------------------------
class _TextTarget(Exception):
    """The target column holds text: parse again with the column read as class names."""


@dataclass
class _Spec:
    """What one parse needs to know: the file, its columns, the target, and the text labels seen so far."""

    p: Path
    names: list
    t: int | None
    delimiter: str
    dtype: np.dtype
    text_target: bool
    codes: dict  # text label -> code, in order of first appearance

    @property
    def feats(self) -> list:
        return [k for k in range(len(self.names)) if k != self.t]

    def code(self, s: str) -> float:
        s = s.strip()
        if s.lower() in MISSING:
            return np.nan  # reported with its row by the slow path
        return float(self.codes.setdefault(s, len(self.codes)))


def _number(cell: str, s: _Spec, line: int, col: str) -> float:
    v = cell.strip()
    if v.lower() in MISSING:
        raise DataFileError(f"{s.p}: missing value at row {line}, column {col!r}")
    try:
        f = float(v)
    except ValueError:
        raise DataFileError(f"{s.p}: non-numeric value {v!r} at row {line}, column {col!r}") from None
    if not np.isfinite(f):
        raise DataFileError(f"{s.p}: non-finite value {v!r} at row {line}, column {col!r}")
    if s.dtype.itemsize < 8 and abs(f) > float(np.finfo(s.dtype).max):
        raise DataFileError(
            f"{s.p}: value {v} at row {line}, column {col!r} is outside the range of {s.dtype.name} "
            f"(largest {float(np.finfo(s.dtype).max):.4g}): rescale the column"
        )
    return f


def _target_value(cell: str, s: _Spec, line: int) -> float:
    v = cell.strip()
    col = s.names[s.t]
    if v.lower() in MISSING:
        raise DataFileError(f"{s.p}: missing target value at row {line}, column {col!r}")
    if s.text_target:
        return s.code(v)
    try:
        f = float(v)
    except ValueError:
        raise _TextTarget from None
    if not np.isfinite(f):
        raise DataFileError(f"{s.p}: missing or non-finite target value at row {line}, column {col!r}")
    return f


def _slow_rows(lines: list, first: int, s: _Spec, blank) -> tuple:
    """``(values (k, ncol) float64, line numbers)`` of a chunk, cell by cell: raises on the first bad cell."""
    ncol, rows, nums = len(s.names), [], []
    for k, text in enumerate(lines):
        if blank.match(text):
            continue
        line, row = first + k, _cells(text, s.delimiter)
        if len(row) != ncol:
            raise DataFileError(
                f"{s.p}: row {line} has {len(row)} fields, expected {ncol} (columns {column_list(s.names)})"
            )
        vals = [_target_value(c, s, line) if j == s.t else _number(c, s, line, s.names[j]) for j, c in enumerate(row)]
        rows.append(vals)
        nums.append(line)
    return np.array(rows, dtype=np.float64).reshape(len(rows), ncol), np.array(nums, dtype=np.int64)


def _fast_rows(text: str, lines: list, first: int, s: _Spec, blank) -> tuple | None:
    """The same as ``_slow_rows`` through NumPy's C parser, or None when the chunk needs the cell-by-cell look."""
    keep = None
    if blank.search(text):  # one scan in C; the rare chunk with blank lines is filtered line by line
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
    if a.shape[1] != len(s.names) or not np.isfinite(a).all():
        return None
    if s.dtype.itemsize < 8 and a.size and _largest(a, s.t) > np.finfo(s.dtype).max:
        return None
    nums = first + (np.arange(len(lines), dtype=np.int64) if keep is None else np.asarray(keep, dtype=np.int64))
    return a, nums


def _largest(a: np.ndarray, t: int | None) -> float:
    """The largest magnitude among the feature columns of ``a`` (all columns but ``t``)."""
    if t is None:
        return float(np.abs(a).max())
    return max(float(np.abs(part).max()) for part in (a[:, :t], a[:, t + 1 :]) if part.size)


def _count_lines(p: Path) -> int:
    n, last = 0, b"\n"
    with open(p, "rb") as fh:
        while raw := fh.read(1 << 24):
            n += raw.count(b"\n")
            last = raw[-1:]
    return n + (last != b"\n")


def _allocate(p: Path, rows: int, cols: int, dtype) -> np.ndarray:
    """An empty ``(rows, cols)`` array, refused with one line when it cannot fit in the memory available."""
    need = rows * cols * np.dtype(dtype).itemsize
    avail = B.available_memory()
    if avail is not None and need > avail.bytes:
        raise DataFileError(
            f"{p}: {rows:,} rows of {cols:,} values need {B.format_bytes(need)} as {np.dtype(dtype).name}, more than "
            f"the {B.format_bytes(avail.bytes)} of memory available ({avail.source})"
        )
    return np.empty((rows, cols), dtype=dtype)


def _parse(s: _Spec, start_line: int, n_rows: int) -> tuple:
    """``(x, y, lines)`` of the data rows from line ``start_line`` on, into arrays allocated once for ``n_rows``."""
    feats, blank = s.feats, _blank_pattern(s.delimiter)
    x = _allocate(s.p, n_rows, len(feats), s.dtype)
    y = np.empty(n_rows if s.t is not None else 0, dtype=np.float64)
    nums = np.empty(n_rows, dtype=np.int64)
    r = 0
    with _open(s.p) as fh:
        for text, first in _text_chunks(fh, s.p, s.delimiter, s.names):
            lines = text.split("\n")
            if first + len(lines) <= start_line:
                continue
            if first < start_line:  # the chunk holds the header: its data lines start after it
                lines, first = lines[start_line - first :], start_line
                text = "\n".join(lines)
            got = _fast_rows(text, lines, first, s, blank) or _slow_rows(lines, first, s, blank)
            a, k = got[0], len(got[1])
            if s.t is None:
                x[r : r + k] = a
            else:
                x[r : r + k, : s.t] = a[:, : s.t]
                x[r : r + k, s.t :] = a[:, s.t + 1 :]
                y[r : r + k] = a[:, s.t]
            nums[r : r + k] = got[1]
            r += k
    return _trim(x, r), (None if s.t is None else _trim(y, r)), _trim(nums, r)


def _trim(a: np.ndarray, n: int) -> np.ndarray:
    if len(a) == n:
        return a
    a.resize((n, *a.shape[1:]), refcheck=False)  # in place: no second copy of a large array
    return a


def _sorted_classes(y: np.ndarray, codes: dict) -> tuple:
    """Codes of first appearance -> codes of the sorted class names (so the classes do not depend on row order)."""
    classes = sorted(codes)
    remap = np.empty(len(codes), dtype=np.int64)
    for new, name in enumerate(classes):
        remap[codes[name]] = new
    return remap[y.astype(np.int64)], classes


def read_csv(path, target=None, delimiter: str = ",", header: bool | None = True, dtype=np.float32) -> CsvTable:
    """Parse a CSV file of numbers (and, in the target column, numbers or text labels) into a ``CsvTable``.

    Args:
        path: the file.
        target: the target column, by name (needs a header) or index (negative counts from the end); None: none.
        delimiter: field separator. Defaults to ``","``.
        header: the first non-blank row holds column names (True, the default), data (False), or either (None:
            a header when some cell of it is not a number).
        dtype: dtype of the features. Defaults to float32; a value outside its range is an error.

    Raises ``FileNotFoundError`` for a missing file and ``DataFileError`` (a ``ValueError``) with one line naming
    the row and column of a missing, non-numeric, non-finite or out-of-range value, a missing target column (with
    the closest names), a ragged row, an encoding that is not UTF-8, an empty file, or data that cannot fit in the
    memory available.
    """
    p = existing_file(path)
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    first = _first_row(p, delimiter)
    if first is None:
        raise DataFileError(f"{p}: the file is empty")
    cells, line = first
    if header is None:
        header = not all(_is_number(c) for c in cells)
    names = cells if header else [str(k) for k in range(len(cells))]
    t = _target_index(p, target, names, header)
    start = line + 1 if header else line
    n_rows = max(_count_lines(p) - start + 1, 0)
    spec = _Spec(p, names, t, delimiter, np.dtype(dtype), False, {})
    try:
        x, y, nums = _parse(spec, start, n_rows)
    except _TextTarget:  # the target column holds class names: read it as text
        spec.text_target = True
        x, y, nums = _parse(spec, start, n_rows)
    if len(nums) == 0:
        raise DataFileError(f"{p}: no data rows (only a header: {column_list(names)})")
    classes = None
    if spec.text_target:
        y, classes = _sorted_classes(y, spec.codes)
    return CsvTable(x, y, classes, [names[k] for k in spec.feats], None if t is None else names[t], nums, p)


# -- load_csv: the arrays ------------------------------------------------------------------------------------------
INT_EXACT = 2**53  # float64 holds every integer up to here exactly


def numeric_target(table: CsvTable) -> np.ndarray:
    """The numeric target as ``load_csv`` returns it: int64 when every value is an integer of magnitude at most
    2**53, else float32 (a value beyond float32's range is an error naming its row)."""
    y = table.y
    if np.all(y == np.round(y)) and np.abs(y).max() <= INT_EXACT:
        return y.astype(np.int64)
    return target_float32(table)


def target_float32(table: CsvTable) -> np.ndarray:
    """The target values as float32; ``DataFileError`` naming the row of a value float32 cannot hold."""
    big = np.flatnonzero(np.abs(table.y) > FLOAT32_MAX)
    if big.size:
        i = int(big[0])
        raise DataFileError(
            f"{table.where(i)}: target value {table.y[i]:.6g} is outside the range of float32 (largest "
            f"{FLOAT32_MAX:.4g}): rescale the column"
        )
    return table.y.astype(np.float32)


def load_csv(
    path, target=None, delimiter: str = ",", header: bool = True, dtype=np.float32, return_classes: bool = False
):
    """Read a numeric CSV file into ``(x, y)`` (see ``read_csv`` for the parse and its errors).

    Args:
        path: the file.
        target: the label column, by name (needs a header) or index (negative counts from the end); None returns
            ``x`` alone.
        delimiter: field separator. Defaults to ``","``.
        header: the first row holds column names. Defaults to True.
        dtype: dtype of ``x``. Defaults to float32.
        return_classes: also return the class names when the target column holds text labels.

    Returns:
        ``(x, y)``: ``x`` of shape ``(N, F)``; ``y`` int64 when every target value is an integer (of magnitude at
        most 2**53), or the column holds text labels (encoded as indices into the sorted class names), float32
        otherwise. With ``return_classes``, ``(x, y, classes)`` (``classes`` None for a numeric target).

    Row numbers in errors are the file's line numbers, counting from 1.
    """
    table = read_csv(path, target=target, delimiter=delimiter, header=header, dtype=dtype)
    if table.y is None:
        return table.x
    y = table.y if table.classes is not None else numeric_target(table)
    return (table.x, y, table.classes) if return_classes else (table.x, y)
