"""Data for the command line: a dataset name or a file, turned into checked train/validation/test arrays.

Every user mistake here (unknown dataset, missing column, non-numeric or missing value, empty data, labels out of
range, inputs that do not fit the model) raises ``CLIError`` or the data layer's ``DataFileError`` with one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import DATASETS, Standardize, load_dataset, train_test_split
from . import datacache
from .datafiles import (  # noqa: F401 - the names the other commands use as D.<name>
    FILE_SUFFIXES,
    IMAGE_SUFFIXES,
    FileData,
    csv_header,
    is_file_spec,
    read_features_file,
    read_images,
    read_inputs,
    unknown_data,
)
from .errors import CLIError
from .labels import check_labels, file_targets, labels_for_run, resolve_task  # noqa: F401


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


def _load_named(cfg) -> Loaded:
    spec = cfg.data
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
    y, task, classes, notes = file_targets(fd, cfg.task, spec)
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
    current (``datacache``), the splits are read from there; a run directory without one gets one. Text runs read
    their data through ``cli/text.py``: here they are one line saying so."""
    if getattr(cfg, "text", None):
        raise CLIError(
            f"{cfg.data} is read as text (--text): this command does not read text runs yet (train, evaluate, predict "
            f"and summary do)"
        )
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
    owned = x.dtype != np.float32  # (then astype makes the copy this function may standardize in place)
    x = x.astype(np.float32, copy=False)
    if not np.all(np.isfinite(x)):
        raise CLIError(f"{where}: the inputs hold missing or non-finite values")
    t = restore_standardize(data_info.get("standardize"))
    if t is not None:
        x = t.transform(x, out=x if owned else None)
    return x.reshape(len(x), *data_info["model_input_shape"])
