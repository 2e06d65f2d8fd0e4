"""Targets for the command line: the task (classification or regression) from the labels, class labels checked and
mapped to 0..K-1, regression targets checked against float32, and a file's labels numbered as a run numbers them."""

from __future__ import annotations

import numpy as np

from .datafiles import FileData
from .errors import CLIError

MAX_CLASSES = 10_000  # more distinct labels than this is a numeric target, not classes
INT_EXACT = 2**53  # float64 holds every integer up to here exactly: larger labels are not usable class labels


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


def file_targets(fd: FileData, task: str, spec: str) -> tuple:
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
