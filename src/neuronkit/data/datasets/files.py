"""The user's own data: ``.npy`` and ``.npz`` files (CSV: ``csvfile.py``), with one-line errors that say where."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from .errors import DataFileError, existing_file

__all__ = ["DataFileError", "load_npy", "load_npz"]


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
    p = existing_file(path)
    try:
        a = np.load(p, allow_pickle=False)
    except ValueError as e:
        raise DataFileError(f"{p}: not a plain numeric .npy array ({e})") from None
    except (OSError, EOFError) as e:
        raise DataFileError(f"{p}: not a readable .npy file ({e})") from None
    if not isinstance(a, np.ndarray):
        raise DataFileError(f"{p}: expected a .npy array, got an archive of several arrays (use load_npz)")
    return _check_numeric(a, p, "the array")


def _member(z, p: Path, key: str) -> np.ndarray:
    """Array ``key`` of an open archive; a member that is not a ``.npy`` array is one line naming it."""
    try:
        a = z[key]
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataFileError(f"{p}: member {key!r} is not a plain numeric .npy array ({e})") from None
    if not isinstance(a, np.ndarray):  # NumPy hands back the raw bytes of a member without the .npy header
        raise DataFileError(
            f"{p}: member {key!r} is not a .npy array (it does not start with the .npy header); expected an archive "
            "written by numpy.savez"
        )
    return _check_numeric(a, p, f"array {key!r}")


def load_npz(path, x_key: str = "x", y_key: str | None = "y"):
    """``(x, y)`` from a ``.npz`` archive's ``x_key`` and ``y_key`` arrays (``x`` alone when ``y_key`` is None)."""
    p = existing_file(path)
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
        x = _member(z, p, x_key)
        y = None if y_key is None else _member(z, p, y_key)
    if y is None:
        return x
    if len(y) != len(x):
        raise DataFileError(f"{p}: {x_key!r} has {len(x)} samples but {y_key!r} has {len(y)}")
    return x, y
