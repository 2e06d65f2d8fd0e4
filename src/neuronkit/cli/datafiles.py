"""The user's data files for the command line: ``--data`` specs, .csv/.npy/.npz files read as samples with their
place in the file (``FileData``), and ``predict``'s inputs (a file, or image files)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import DATASETS, DataFileError, load_npy, load_npz, read_csv, read_csv_header
from ..data.datasets.csvtext import missing_column
from .errors import CLIError

FILE_SUFFIXES = (".csv", ".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class FileData:
    """A data file's samples: ``x``, the target ``y`` (raw values, or codes into ``classes`` for text labels, or
    None), and where each sample is in the file (``rows``: CSV line numbers, else indices)."""

    x: np.ndarray
    y: np.ndarray | None
    classes: list | None
    target_name: str | None
    rows: np.ndarray
    path: Path
    row_word: str = "sample"

    def where(self, i: int) -> str:
        """``FILE: row 12, column 'label'`` (CSV) or ``FILE: sample 11`` for sample ``i``'s target."""
        col = f", column {self.target_name!r}" if self.target_name is not None else ""
        return f"{self.path}: {self.row_word} {int(self.rows[i])}{col}"


def is_file_spec(spec: str) -> bool:
    """Whether ``--data spec`` names a file: a .csv/.npy/.npz name, a path with a folder, or an existing file.

    A dataset name always means the dataset: a file named like one is given as a path (``./kmnist``)."""
    if spec in DATASETS:
        return False
    return Path(spec).suffix.lower() in FILE_SUFFIXES or "/" in spec or Path(spec).exists()


def unknown_data(spec: str) -> CLIError:
    return CLIError(f"unknown dataset {spec!r}; available: {', '.join(DATASETS)} (or a .csv, .npy or .npz file)")


def csv_header(path) -> list | None:
    """The first row's cells when it is a header (some cell is not a number), None when it holds data."""
    return read_csv_header(path)


def _csv_target(path: Path, target, header):
    """``target`` as read_csv takes it: a column name when the file has that header, else an index."""
    if target is None:
        return -1
    if header is not None and target in header:
        return target
    try:
        return int(target)
    except ValueError:
        if header is None:
            raise DataFileError(
                f"{path}: no target column {target!r}: the file has no header row (its first row holds numbers); "
                "give --target as a column index"
            ) from None
        raise missing_column(path, target, header) from None


def _read_csv(p: Path, target, require_target: bool) -> FileData:
    header = csv_header(p)
    if not require_target and target is None:
        t = read_csv(p, header=header is not None)
        return FileData(t.x, None, None, None, t.lines, p, "row")
    t = read_csv(p, target=_csv_target(p, target, header), header=header is not None)
    name = t.target if header is not None else None
    return FileData(t.x, t.y, t.classes, name, t.lines, p, "row")


def _read_npy(p: Path, target, require_target: bool) -> FileData:
    a = load_npy(p)
    rows = np.arange(len(a), dtype=np.int64)
    if not require_target and target is None:
        return FileData(a, None, None, None, rows, p)
    if a.ndim != 2 or a.shape[1] < 2:
        raise DataFileError(
            f"{p}: a training .npy file must be a 2-D table (samples, features + target), got shape {a.shape}; "
            f"use a .npz with arrays 'x' and 'y' for images"
        )
    t = -1 if target is None else int(_index(p, target, a.shape[1]))
    x = np.delete(a, t, axis=1).astype(np.float32)
    return FileData(x, a[:, t], None, None, rows, p)


def read_features_file(path, target=None, require_target: bool = True) -> FileData:
    """The samples of a .csv/.npy/.npz file as ``FileData`` (``y`` None when there are no labels)."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    if suffix == ".csv":
        return _read_csv(p, target, require_target)
    if suffix == ".npy":
        return _read_npy(p, target, require_target)
    if suffix == ".npz":
        if not require_target and target is None:
            x = load_npz(p, y_key=None)
            return FileData(x, None, None, None, np.arange(len(x), dtype=np.int64), p)
        x, y = load_npz(p)
        x = x.astype(np.float32) if x.dtype != np.float32 else x
        return FileData(x, y, None, None, np.arange(len(x), dtype=np.int64), p)
    raise CLIError(f"{p}: unsupported data file type {suffix or '(none)'!r}; expected .csv, .npy or .npz")


def _index(p, target, ncol):
    try:
        t = int(target)
    except ValueError:
        raise DataFileError(f"{p}: a .npy file has no column names; give --target as a column index") from None
    if not -ncol <= t < ncol:
        raise DataFileError(f"{p}: target column index {t} is out of range for {ncol} columns")
    return t


def read_inputs(paths, info: dict, target=None) -> np.ndarray:
    """Raw inputs for ``predict``: image files, or one .csv/.npy/.npz file (a labelled CSV loses its label column:
    ``target``, or the run's own target column when the file has it)."""
    suffixes = {Path(p).suffix.lower() for p in paths}
    if suffixes <= set(IMAGE_SUFFIXES):
        return read_images(paths, tuple(info["sample_shape"]), float(info.get("pixel_max", 1.0)))
    if len(paths) != 1:
        raise CLIError("predict takes one .csv or .npy file, or any number of image files")
    p = Path(paths[0])
    if p.suffix.lower() not in FILE_SUFFIXES:
        raise CLIError(f"{p}: unsupported input type {p.suffix or '(none)'!r}; expected .csv, .npy, .npz or images")
    if p.suffix.lower() == ".csv":
        if not p.exists():
            raise FileNotFoundError(f"input file not found: {p}")
        header = csv_header(p)
        name = target if target is not None else info.get("target_name")
        if header is not None and name is not None and name in header:  # a labelled file: predict from its features
            return read_features_file(p, name).x
        return read_features_file(p, None, require_target=False).x
    return read_features_file(p, target, require_target=target is not None).x


def read_images(paths, sample_shape: tuple, pixel_max: float) -> np.ndarray:
    """Image files as grey arrays of the run's image size, scaled to [0, pixel_max]; white-on-black like MNIST.

    Needs Pillow (optional). A picture that is mostly light (a dark digit on paper) is inverted.
    """
    from .models import image_shape

    img = image_shape(sample_shape)
    if img is None or img[0] != 1:
        raise CLIError(f"this run's model takes samples of shape {tuple(sample_shape)}, not grey images")
    try:
        from PIL import Image
    except ImportError:
        raise CLIError("reading image files needs Pillow, which is not installed: pip install pillow") from None
    _, h, w = img
    out = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"image file not found: {p}")
        try:
            with Image.open(p) as im:
                a = np.asarray(im.convert("L").resize((w, h)), dtype=np.float32) / 255.0
        except OSError as e:
            raise CLIError(f"{p}: not a readable image ({e})") from None
        if a.mean() > 0.5:
            a = 1.0 - a
        out.append(a * pixel_max)
    return np.stack(out).reshape(len(out), *sample_shape)
