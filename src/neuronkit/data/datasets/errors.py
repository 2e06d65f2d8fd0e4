"""The error of a data file whose content is not what was expected, and the check that a data file exists."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataFileError", "existing_file"]


class DataFileError(ValueError):
    """A data file is readable but its content is not what was expected."""


def existing_file(path) -> Path:
    """``path`` as a ``Path`` to an existing file: ``FileNotFoundError`` / ``IsADirectoryError`` otherwise."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"expected a data file, got a directory: {p}")
    return p
