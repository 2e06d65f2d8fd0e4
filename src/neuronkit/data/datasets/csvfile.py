"""CSV files of numbers: a chunked parse into one preallocated array, with one-line errors naming row and column.

The file is counted (its lines), the array allocated once, and the file read in chunks of whole lines (256 KB each),
each parsed by the first of three parsers that takes it:

1. integers: a chunk holding only digits, delimiters and line ends (pixels, counts, labels) is parsed with
   whole-array NumPy operations, several times faster than ``np.loadtxt``;
2. NumPy's C parser (``np.loadtxt``) for other numbers, quoted fields and text labels in the target column;
3. cell by cell, for a chunk the others refuse: it finds the first bad cell and names it
   (``data.csv: non-numeric value 'abc' at row 12, column 'age'``).

The values go through float64 into the array (float32 by default), so the peak memory is the final array plus one
chunk's temporaries. Row numbers are the file's line numbers, counting from 1; blank lines are skipped.

Text is UTF-8 (a UTF-8 byte-order mark is skipped). A UTF-16 file, a Latin-1 byte or a NUL byte is refused with the
row and column where it is, rather than a decoding traceback. Fields may be quoted (``"1.5"``, ``"New York, NY"``)
but may not span lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ... import backend as B
from .csvparse import ParseSpec, TextTarget, parse_chunk
from .csvtext import blank_pattern, column_list, count_lines, first_row, is_number, missing_column, open_csv, raw_chunks
from .errors import DataFileError, existing_file

__all__ = ["CsvTable", "load_csv", "numeric_target", "read_csv", "target_float32"]

FLOAT32_MAX = float(np.finfo(np.float32).max)


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


def _parse(s: ParseSpec, start_line: int, n_rows: int) -> tuple:
    """``(x, y, lines)`` of the data rows from line ``start_line`` on, into arrays allocated once for ``n_rows``."""
    feats, blank = s.feats, blank_pattern(s.delimiter)
    x = _allocate(s.p, n_rows, len(feats), s.dtype)
    y = np.empty(n_rows if s.t is not None else 0, dtype=np.float64)
    nums = np.empty(n_rows, dtype=np.int64)
    r = 0
    with open_csv(s.p) as fh:
        for raw, first in raw_chunks(fh):
            if first + raw.count(b"\n") < start_line:
                continue
            if first < start_line:  # the chunk holds the header: its data lines start after it
                raw, first = raw.split(b"\n", start_line - first)[-1], start_line
            got = parse_chunk(raw, first, s, blank)
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
    first = first_row(p, delimiter)
    if first is None:
        raise DataFileError(f"{p}: the file is empty")
    cells, line = first
    if header is None:
        header = not all(is_number(c) for c in cells)
    names = cells if header else [str(k) for k in range(len(cells))]
    t = _target_index(p, target, names, header)
    start = line + 1 if header else line
    n_rows = max(count_lines(p) - start + 1, 0)
    spec = ParseSpec(p, names, t, delimiter, np.dtype(dtype), False, {})
    try:
        x, y, nums = _parse(spec, start, n_rows)
    except TextTarget:  # the target column holds class names: read it as text
        spec.text_target = True
        x, y, nums = _parse(spec, start, n_rows)
    if len(nums) == 0:
        raise DataFileError(f"{p}: no data rows (only a header: {column_list(names)})")
    classes = None
    if spec.text_target:
        y, classes = _sorted_classes(y, spec.codes)
    return CsvTable(x, y, classes, [names[k] for k in spec.feats], None if t is None else names[t], nums, p)


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
