"""The user's own data: CSV, ``.npy`` and ``.npz`` files, with one-line errors that say where the problem is."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["DataFileError", "load_csv", "load_npy", "load_npz"]


class DataFileError(ValueError):
    """A data file is readable but its content is not what was expected."""


def _existing(path) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"expected a data file, got a directory: {p}")
    return p


def _check_numeric(a: np.ndarray, p: Path, what: str) -> np.ndarray:
    if a.size == 0:
        raise DataFileError(f"{p}: {what} is empty (shape {a.shape})")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DataFileError(f"{p}: {what} must be numeric, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.complexfloating):
        bad = ~np.isfinite(a)
        if bad.any():
            at = tuple(int(i) for i in np.argwhere(bad)[0])
            where = f"row {at[0]}, column {at[1]}" if len(at) == 2 else f"index {at if len(at) > 1 else at[0]}"
            raise DataFileError(f"{p}: {what} has a missing or non-finite value ({a[at]}) at {where}")
    return a


def load_npy(path) -> np.ndarray:
    """The array in a ``.npy`` file (object arrays are refused: loading them would run Python deserialisation)."""
    p = _existing(path)
    try:
        a = np.load(p, allow_pickle=False)
    except ValueError as e:
        raise DataFileError(f"{p}: not a plain numeric .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise DataFileError(f"{p}: not a readable .npy file ({e})") from None
    if not isinstance(a, np.ndarray):
        raise DataFileError(f"{p}: expected a .npy array, got an archive of several arrays (use load_npz)")
    return _check_numeric(a, p, "the array")


def load_npz(path, x_key: str = "x", y_key: str | None = "y"):
    """``(x, y)`` from a ``.npz`` archive's ``x_key`` and ``y_key`` arrays (``x`` alone when ``y_key`` is None)."""
    p = _existing(path)
    try:
        z = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataFileError(f"{p}: not a readable .npz archive ({e})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise DataFileError(f"{p}: expected a .npz archive, got a single array (use load_npy)")
    with z:
        keys = list(z.files)
        for k in (x_key, y_key):
            if k is not None and k not in keys:
                raise DataFileError(f"{p}: no array named {k!r} in the archive; it holds {keys}")
        try:
            x = _check_numeric(z[x_key], p, f"array {x_key!r}")
            y = None if y_key is None else _check_numeric(z[y_key], p, f"array {y_key!r}")
        except ValueError as e:
            if isinstance(e, DataFileError):
                raise
            raise DataFileError(f"{p}: not a plain numeric array ({e})") from None
    if y is None:
        return x
    if len(y) != len(x):
        raise DataFileError(f"{p}: {x_key!r} has {len(x)} samples but {y_key!r} has {len(y)}")
    return x, y


def load_csv(
    path, target=None, delimiter: str = ",", header: bool = True, dtype=np.float32, return_classes: bool = False
):
    """Read a numeric CSV file into ``(x, y)``.

    Args:
        path: the file.
        target: the label column, by name (needs a header) or index (negative counts from the end); None returns
            ``x`` alone.
        delimiter: field separator. Defaults to ``","``.
        header: the first row holds column names. Defaults to True.
        dtype: dtype of ``x``. Defaults to float32.
        return_classes: also return the class names when the target column holds text labels.

    Returns:
        ``(x, y)``: ``x`` of shape ``(N, F)``; ``y`` int64 when every target value is an integer (or the column holds
        text labels, encoded as indices into the sorted class names), float32 otherwise. With ``return_classes``,
        ``(x, y, classes)`` (``classes`` None for a numeric target).

    Raises ``FileNotFoundError`` for a missing file and ``DataFileError`` (a ``ValueError``) naming the row and
    column of a missing or non-numeric value, a missing target column (with the available columns), a ragged row,
    or a file with no data rows. Row numbers are the file's line numbers, counting from 1.
    """
    p = _existing(path)
    with open(p, newline="", encoding="utf-8-sig") as fh:
        rows = [
            (i + 1, r) for i, r in enumerate(csv.reader(fh, delimiter=delimiter)) if r and any(c.strip() for c in r)
        ]
    if not rows:
        raise DataFileError(f"{p}: the file is empty")
    if header:
        names = [c.strip() for c in rows[0][1]]
        rows = rows[1:]
    else:
        names = [str(k) for k in range(len(rows[0][1]))]
    if not rows:
        raise DataFileError(f"{p}: no data rows (only a header: {names})")
    ncol = len(names)
    t = None
    if target is not None:
        if isinstance(target, str) and not (target.lstrip("-").isdigit() and not header):
            if target not in names:
                raise DataFileError(f"{p}: no target column {target!r}; the columns are {names}")
            t = names.index(target)
        else:
            ti = int(target)
            if not -ncol <= ti < ncol:
                raise DataFileError(f"{p}: target column index {ti} is out of range for {ncol} columns {names}")
            t = ti % ncol
        if ncol < 2:
            raise DataFileError(f"{p}: only one column ({names}); nothing is left for the features")
    feats = [k for k in range(ncol) if k != t]
    x = np.empty((len(rows), len(feats)), dtype=np.float64)
    ycol = []
    for r, (line, row) in enumerate(rows):
        if len(row) != ncol:
            raise DataFileError(f"{p}: row {line} has {len(row)} fields, expected {ncol} (columns {names})")
        for j, k in enumerate(feats):
            x[r, j] = _number(row[k], p, line, names[k])
        if t is not None:
            ycol.append((line, row[t].strip()))
    y, classes = (None, None) if t is None else _target(ycol, p, names[t])
    x = x.astype(dtype)
    if t is None:
        return x
    return (x, y, classes) if return_classes else (x, y)


def _number(cell: str, p, line: int, col: str) -> float:
    s = cell.strip()
    if s == "" or s.lower() in ("na", "nan", "null", "none", "?"):
        raise DataFileError(f"{p}: missing value at row {line}, column {col!r}")
    try:
        v = float(s)
    except ValueError:
        raise DataFileError(f"{p}: non-numeric value {s!r} at row {line}, column {col!r}") from None
    if not np.isfinite(v):
        raise DataFileError(f"{p}: non-finite value {s!r} at row {line}, column {col!r}")
    return v


def _target(cells, p, col):
    for line, s in cells:
        if s == "":
            raise DataFileError(f"{p}: missing target value at row {line}, column {col!r}")
    try:
        vals = np.array([float(s) for _, s in cells])
    except ValueError:
        classes = sorted({s for _, s in cells})
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index[s] for _, s in cells], dtype=np.int64), classes
    if not np.all(np.isfinite(vals)):
        line = cells[int(np.flatnonzero(~np.isfinite(vals))[0])][0]
        raise DataFileError(f"{p}: missing or non-finite target value at row {line}, column {col!r}")
    if np.all(vals == np.round(vals)):
        return vals.astype(np.int64), None
    return vals.astype(np.float32), None
