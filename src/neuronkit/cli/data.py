"""Data for the command line: a dataset name or a file, turned into checked train/validation/test arrays.

Every user mistake here (unknown dataset, missing column, non-numeric or missing value, empty data, labels out of
range, inputs that do not fit the model) raises ``CLIError`` or the data layer's ``DataFileError`` with one line.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import DATASETS, DataFileError, Standardize, load_csv, load_dataset, load_npy, load_npz, train_test_split
from .errors import CLIError

FILE_SUFFIXES = (".csv", ".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass
class Loaded:
    """A dataset's train and test splits plus what the run needs to know about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str  # the dataset name, or the file's stem
    task: str  # "classification" or "regression"
    classes: list = field(default_factory=list)  # class names, index = label (classification)
    source: str = ""  # "dataset" or "file"
    target_name: str | None = None  # the CSV target column's name (so predict can drop it)
    pixel_max: float = 1.0  # the value of a white pixel (digits: 16), for predicting from image files

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])


def _is_file_spec(spec: str) -> bool:
    return Path(spec).suffix.lower() in FILE_SUFFIXES or "/" in spec or Path(spec).exists()


def _csv_header(path: Path) -> list | None:
    """The first row's cells when it is a header (some cell is not a number), else None."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        for row in csv.reader(fh):
            if row and any(c.strip() for c in row):
                for c in row:
                    try:
                        float(c)
                    except ValueError:
                        return [c.strip() for c in row]
                return None
    return None


def _csv_target(path: Path, target, header):
    """``target`` as load_csv takes it: a column name when the file has that header, else an index."""
    if target is None:
        return -1
    if header is not None and target in header:
        return target
    try:
        return int(target)
    except ValueError:
        if header is None:
            raise DataFileError(f"{path}: no target column {target!r}: the file has no header row") from None
        raise DataFileError(f"{path}: no target column {target!r}; the columns are {header}") from None


def read_features_file(path, target=None, require_target: bool = True):
    """``(x, y, classes, target_name)`` from a .csv/.npy/.npz file; ``y`` None when there are no labels."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {p}")
    classes = target_name = None
    if suffix == ".csv":
        header = _csv_header(p)
        if not require_target and target is None:
            return load_csv(p, header=header is not None), None, None, None
        t = _csv_target(p, target, header)
        x, y, classes = load_csv(p, target=t, header=header is not None, return_classes=True)
        if header is not None:
            target_name = t if isinstance(t, str) else header[t]
    elif suffix == ".npy":
        a = load_npy(p)
        if not require_target and target is None:
            return a, None, None, None
        if a.ndim != 2 or a.shape[1] < 2:
            raise DataFileError(
                f"{p}: a training .npy file must be a 2-D table (samples, features + target), got shape {a.shape}; "
                f"use a .npz with arrays 'x' and 'y' for images"
            )
        t = -1 if target is None else int(_index(p, target, a.shape[1]))
        y = a[:, t]
        x = np.delete(a, t, axis=1).astype(np.float32)
    elif suffix == ".npz":
        if not require_target and target is None:
            x = load_npz(p, y_key=None)
            return x, None, None, None
        x, y = load_npz(p)
        x = x.astype(np.float32) if x.dtype != np.float32 else x
    else:
        raise CLIError(f"{p}: unsupported data file type {suffix or '(none)'!r}; expected .csv, .npy or .npz")
    return x, y, classes, target_name


def _index(p, target, ncol):
    try:
        t = int(target)
    except ValueError:
        raise DataFileError(f"{p}: a .npy file has no column names; give --target as a column index") from None
    if not -ncol <= t < ncol:
        raise DataFileError(f"{p}: target column index {t} is out of range for {ncol} columns")
    return t


def resolve_task(y: np.ndarray, task: str, where) -> str:
    """Classification for integer labels (or integer-valued floats), regression for other numbers; checked."""
    integral = y.dtype.kind in "iub" or (y.dtype.kind == "f" and bool(np.all(y == np.round(y))))
    if task == "auto":
        task = "classification" if integral else "regression"
    if task == "classification":
        if not integral:
            bad = y.reshape(-1)[np.flatnonzero(y.reshape(-1) != np.round(y.reshape(-1)))[0]]
            raise CLIError(f"{where}: classification needs integer class labels, found {bad!r}")
        if y.ndim != 1:
            raise CLIError(f"{where}: class labels must be one per sample (shape (N,)), got shape {y.shape}")
        if y.size and y.min() < 0:
            raise CLIError(f"{where}: labels out of range: class labels must be 0..K-1, found {int(y.min())}")
    return task


def load_data(cfg) -> Loaded:
    """Load ``cfg.data`` (a DATASETS name or a file) as train and test splits; see ``TrainConfig``."""
    spec = cfg.data
    if getattr(cfg, "text", None):  # text runs read their data through cli/text.py
        raise CLIError(
            f"{spec} is read as text (--text): this command does not read text runs yet (train, evaluate, predict "
            f"and summary do)"
        )
    if spec in DATASETS:
        info = DATASETS[spec]
        if info.kind == "text":
            raise CLIError(
                f"{spec} is a text dataset: this command does not read text runs yet (train, evaluate, predict and "
                f"summary do)"
            )
        kw = {"data_dir": cfg.data_dir, "download": cfg.download} if info.kind == "idx" else {}
        if info.kind == "idx" and cfg.data_dir is not None and not Path(cfg.data_dir).expanduser().is_dir():
            raise FileNotFoundError(f"data directory not found: {cfg.data_dir}")
        try:
            s = load_dataset(spec, **kw)
        except FileNotFoundError as e:
            if info.kind != "idx":
                raise
            raise CLIError(
                f"{str(e).split('; pass')[0]}; give --data-dir DIR (or set NEURONKIT_DATA) to a folder "
                f"holding the files, or add --download"
            ) from None
        task = "classification" if cfg.task == "auto" else cfg.task
        y_tr, y_te = s.y_train, s.y_test
        if task == "regression":
            y_tr, y_te = y_tr.astype(np.float32), y_te.astype(np.float32)
        return Loaded(
            s.x_train,
            y_tr,
            s.x_test,
            y_te,
            spec,
            task,
            list(info.classes) if task != "regression" else [],
            "dataset",
            pixel_max=16.0 if spec == "digits" else 1.0,
        )
    if not _is_file_spec(spec):
        raise CLIError(f"unknown dataset {spec!r}; available: {', '.join(DATASETS)} (or a .csv, .npy or .npz file)")
    x, y, classes, target_name = read_features_file(spec, cfg.target)
    task = resolve_task(y, cfg.task, spec)
    if task == "classification":
        y = y.astype(np.int64)
        k = int(y.max()) + 1
        classes = list(classes) if classes else [str(i) for i in range(k)]
        if k < 2:
            raise CLIError(f"{spec}: classification needs at least 2 classes; every label is {int(y.max())}")
    else:
        y = y.astype(np.float32)
        classes = []
    if len(x) < 2:
        raise CLIError(f"{spec}: {len(x)} sample(s) cannot be split into training and test data")
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=cfg.test_fraction, stratify=task == "classification", seed=cfg.seed
    )
    return Loaded(x_tr, y_tr, x_te, y_te, Path(spec).stem, task, classes, "file", target_name)


def check_labels(y, task: str, n_classes: int, where: str) -> np.ndarray:
    """Labels as the model takes them: int64 in 0..n_classes-1, or float32 (N, 1) for regression."""
    y = np.asarray(y)
    if task == "regression":
        if y.dtype.kind not in "iuf":
            raise CLIError(f"{where}: regression targets must be numbers, got dtype {y.dtype}")
        return y.astype(np.float32).reshape(len(y), -1)
    resolve_task(y, "classification", where)
    y = y.astype(np.int64)
    if y.size and y.max() >= n_classes:
        raise CLIError(
            f"{where}: labels out of range: the model predicts {n_classes} classes (0..{n_classes - 1}), "
            f"but the data has label {int(y.max())}"
        )
    return y


def fit_standardize(x_train: np.ndarray) -> Standardize:
    """Per-feature statistics for tables, one mean and std for images (so a rare pixel is not blown up)."""
    return Standardize(per_feature=x_train.ndim == 2).fit(x_train)


def restore_standardize(state) -> Standardize | None:
    if state is None:
        return None
    t = Standardize()
    t.load_state_dict(state)
    return t


def fit_shape(x, sample_shape: tuple, where: str) -> np.ndarray:
    """``x`` reshaped to (N, *sample_shape) when each sample has the right number of values; else a one-line error."""
    x = np.asarray(x)
    if x.size == 0 or len(x) == 0:
        raise CLIError(f"{where}: the data is empty (shape {x.shape})")
    if x.dtype.kind not in "iufb":
        raise CLIError(f"{where}: the inputs must be numbers, got dtype {x.dtype}")
    want = math.prod(sample_shape)
    if x.shape[1:] == tuple(sample_shape):
        return x
    have = math.prod(x.shape[1:])
    if have == want:
        return x.reshape(len(x), *sample_shape)
    if x.ndim >= 1 and x.size == want:  # a single sample without the batch axis
        return x.reshape(1, *sample_shape)
    raise CLIError(
        f"{where}: input size does not match the model: each sample has {have} values (shape {x.shape[1:]}), "
        f"the model expects {want} (shape {tuple(sample_shape)})"
    )


def prepare_inputs(x, data_info: dict, where: str) -> np.ndarray:
    """Raw inputs to model inputs: checked shape, float32, the run's standardisation, the model's sample shape."""
    x = fit_shape(x, tuple(data_info["sample_shape"]), where)
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise CLIError(f"{where}: the inputs hold missing or non-finite values")
    t = restore_standardize(data_info.get("standardize"))
    if t is not None:
        x = t(x).astype(np.float32, copy=False)
    return x.reshape(len(x), *data_info["model_input_shape"])


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
