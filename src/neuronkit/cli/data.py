"""Data for the command line: a dataset name or a file, turned into checked train/validation/test arrays.

Every user mistake here (unknown dataset, missing column, non-numeric or missing value, empty data, labels out of
range, inputs that do not fit the model) raises ``CLIError`` or the data layer's ``DataFileError`` with one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import (
    DATASETS,
    DataFileError,
    Standardize,
    load_dataset,
    load_npy,
    load_npz,
    read_csv,
    read_csv_header,
    train_test_split,
)
from ..data.datasets.csvfile import missing_column
from . import datacache
from .errors import CLIError

FILE_SUFFIXES = (".csv", ".npy", ".npz")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_CLASSES = 10_000  # more distinct labels than this is a numeric target, not classes
INT_EXACT = 2**53  # float64 holds every integer up to here exactly: larger labels are not usable class labels


@dataclass
class Loaded:
    """A dataset's train and test splits plus what the run needs to know about them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    name: str  # the dataset name, or the file's name (with its extension: kmnist.csv is not the dataset kmnist)
    task: str  # "classification" or "regression"
    classes: list = field(default_factory=list)  # class names, index = label (classification)
    source: str = ""  # "dataset" or "file"
    target_name: str | None = None  # the CSV target column's name (so predict can drop it)
    pixel_max: float = 1.0  # the value of a white pixel (digits: 16), for predicting from image files
    test_rows: np.ndarray | None = None  # where each test sample is in its file: CSV line numbers, or indices
    row_word: str = "sample"  # what test_rows count: "row" (CSV line numbers) or "sample" (indices in the file)
    notes: list = field(default_factory=list)  # what the user should know about how the data was read
    from_cache: bool = False  # read from the run's cache of the parsed file, not parsed again

    @property
    def sample_shape(self) -> tuple:
        return tuple(self.x_train.shape[1:])

    def describe(self, i: int) -> str:
        """Where test sample ``i`` comes from: ``data.csv row 1234``, or ``mnist test split, sample 371``."""
        if self.test_rows is None:
            return f"{self.name} test split, sample {i}"
        return f"{self.name} {self.row_word} {int(self.test_rows[i])}"


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


def _integral(y: np.ndarray) -> bool:
    return y.dtype.kind in "iub" or (y.dtype.kind == "f" and bool(np.all(y == np.round(y))))


def resolve_task(y: np.ndarray, task: str, where) -> str:
    """Classification for integer labels (or integer-valued floats), regression for other numbers; checked.

    ``where``: a string naming the data, or a function of a sample index naming its place (file, row, column)."""
    name = where if callable(where) else (lambda i: str(where))
    integral = _integral(y)
    if task == "auto":
        task = "classification" if integral else "regression"
    if task == "classification":
        flat = y.reshape(-1)
        if not integral:
            i = int(np.flatnonzero(flat != np.round(flat))[0])
            raise CLIError(f"{name(i)}: classification needs integer class labels, found {flat[i]!r}")
        if y.ndim != 1:
            raise CLIError(f"{name(0)}: class labels must be one per sample (shape (N,)), got shape {y.shape}")
        if y.size and y.dtype.kind == "f" and np.abs(y).max() > INT_EXACT:
            i = int(np.argmax(np.abs(y)))
            raise CLIError(
                f"{name(i)}: label {y[i]:.6g} is not a usable class label: expected whole numbers below 2**53 "
                "(for a numeric target, pass --task regression)"
            )
        if y.size and y.min() < 0:
            i = int(np.argmin(y))
            raise CLIError(f"{name(i)}: labels out of range: class labels must be 0..K-1, found {int(y[i])}")
    return task


def class_labels(y: np.ndarray, where) -> tuple:
    """``(labels 0..K-1 int64, class names, note or None)`` for integer labels ``y`` (checked by ``resolve_task``).

    Labels close to 0..K-1 (the largest below twice the number of distinct values) are kept, so a class missing
    from the file stays in its place; others (``1, 5, 1000000000``) are mapped to 0..K-1 in sorted order, with
    their values as class names. More than ``MAX_CLASSES`` distinct values are refused: that is a numeric target.
    """
    values = np.unique(y)
    if len(values) > MAX_CLASSES:
        raise CLIError(
            f"{where}: {len(values):,} distinct labels: more than the {MAX_CLASSES:,} classes a run can have; "
            "for a numeric target pass --task regression"
        )
    top = int(values[-1])
    if top < 2 * len(values):
        return y.astype(np.int64), [str(i) for i in range(top + 1)], None
    names = [str(int(v)) for v in values]
    shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
    note = f"{where}: the labels ({shown}) are not 0..K-1: classes 0..{len(names) - 1} stand for them, in order"
    return np.searchsorted(values, y).astype(np.int64), names, note


def _targets(fd: FileData, task: str, spec: str) -> tuple:
    """``(y, task, classes, notes)``: the file's target as the run uses it."""
    if fd.y is None:
        raise CLIError(f"{spec}: the file has no target column")
    if fd.classes is not None:  # text labels: already codes of the sorted names
        if task == "regression":
            raise CLIError(f"{fd.where(0)}: regression needs numbers, the target column holds text labels")
        if len(fd.classes) > MAX_CLASSES:
            raise CLIError(f"{spec}: {len(fd.classes):,} distinct text labels: more than {MAX_CLASSES:,} classes")
        if len(fd.classes) < 2:
            raise CLIError(f"{spec}: classification needs at least 2 classes; every label is {fd.classes[0]!r}")
        return fd.y.astype(np.int64), "classification", list(fd.classes), []
    task = resolve_task(fd.y, task, fd.where)
    if task == "regression":
        return _float32_targets(fd), task, [], []
    y, classes, note = class_labels(fd.y, spec)
    if len(np.unique(y)) < 2:
        raise CLIError(f"{spec}: classification needs at least 2 classes; every label is {classes[int(y[0])]}")
    return y, task, classes, [note] if note else []


def _float32_targets(fd: FileData) -> np.ndarray:
    """Regression targets as float32; a value float32 cannot hold is an error naming its place."""
    y = np.asarray(fd.y)
    if y.dtype.kind == "f" and y.size:
        big = np.flatnonzero(np.abs(y.reshape(len(y), -1)).max(axis=1) > np.finfo(np.float32).max)
        if big.size:
            i = int(big[0])
            raise CLIError(
                f"{fd.where(i)}: target value {float(np.abs(y[i]).max()):.6g} is outside the range of float32 "
                f"(largest {float(np.finfo(np.float32).max):.4g}): rescale the target"
            )
    return y.astype(np.float32)


def _load_named(cfg) -> Loaded:
    spec = cfg.data
    info = DATASETS[spec]
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


def _split(spec: str, y: np.ndarray, task: str, classes: list, cfg) -> tuple:
    """Train and test indices, stratified for classes; a class too small to split is named in one line."""
    stratify = task == "classification"
    if stratify:
        counts = np.bincount(y, minlength=len(classes))
        few = np.flatnonzero((counts > 0) & (counts < 2))
        if few.size:
            raise CLIError(
                f"{spec}: class {classes[int(few[0])]!r} has only 1 sample; each class needs at least 2 (one to train "
                "on, one to test on)"
            )
    return train_test_split(len(y), y, test_size=cfg.test_fraction, stratify=stratify, seed=cfg.seed)


def _load_file(cfg) -> Loaded:
    spec = cfg.data
    fd = read_features_file(spec, cfg.target)
    y, task, classes, notes = _targets(fd, cfg.task, spec)
    if len(fd.x) < 2:
        raise CLIError(f"{spec}: {len(fd.x)} sample(s) cannot be split into training and test data")
    tr, te = _split(spec, y, task, classes, cfg)
    return Loaded(
        fd.x[tr],
        y[tr],
        fd.x[te],
        y[te],
        Path(spec).name,
        task,
        classes,
        "file",
        fd.target_name,
        test_rows=fd.rows[te],
        row_word=fd.row_word,
        notes=notes,
    )


def load_data(cfg) -> Loaded:
    """Load ``cfg.data`` (a DATASETS name or a file) as train and test splits; see ``TrainConfig``.

    A CSV file is parsed once per run: when ``cfg.out`` is a run directory holding a cache of it that is still
    current (``datacache``), the splits are read from there; a run directory without one gets one."""
    if cfg.data in DATASETS:
        return _load_named(cfg)
    if not is_file_spec(cfg.data):
        raise unknown_data(cfg.data)
    cached = datacache.load(cfg, Loaded)
    if cached is not None:
        return cached
    loaded = _load_file(cfg)
    if cfg.out is not None and (Path(cfg.out) / "config.json").is_file():
        datacache.save(Path(cfg.out), cfg, loaded)
    return loaded


def save_cache(run_dir, cfg, loaded: Loaded) -> None:
    """Keep the splits parsed from a CSV file in the run directory, for the run's later commands (``datacache``)."""
    datacache.save(Path(run_dir), cfg, loaded)


def labels_for_run(fd: FileData, info: dict) -> np.ndarray:
    """The labels of a file's samples as a run's model numbers its classes: text labels and mapped numeric labels
    by class name (``info["classes"]``), other labels as they are. One line names a label the run does not know."""
    classes = info.get("classes") or []
    if info.get("task") != "classification" or fd.y is None:
        return fd.y
    index = {c: i for i, c in enumerate(classes)}
    if fd.classes is not None:
        names = list(fd.classes)
        y = fd.y.astype(np.int64)
    elif classes == [str(i) for i in range(len(classes))]:  # labels are class numbers: checked by check_labels
        return fd.y
    else:
        resolve_task(fd.y, "classification", fd.where)
        names, y = [str(int(v)) for v in np.unique(fd.y)], np.searchsorted(np.unique(fd.y), fd.y)
    unknown = [k for k, c in enumerate(names) if c not in index]
    if unknown:
        i = int(np.flatnonzero(y == unknown[0])[0])
        raise CLIError(
            f"{fd.where(i)}: labels out of range: {names[unknown[0]]!r} is not one of the model's classes "
            f"({', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})"
        )
    return np.array([index[c] for c in names], dtype=np.int64)[y]


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
