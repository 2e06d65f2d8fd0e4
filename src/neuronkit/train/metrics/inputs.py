"""The input checks every metric shares: arrays from array-likes and Tensors, class labels from labels or scores,
lengths, class ranges, probabilities. Each raises ``ValueError`` naming the metric, what was expected and what arrived.
Public within ``neuronkit.train.metrics``."""

from __future__ import annotations

from typing import Any

import numpy as np

AVERAGES = ("macro", "micro", "weighted", None)


def as_array(x: Any) -> np.ndarray:
    """The NumPy array behind ``x``: a Tensor's ``.data`` (an ndarray's own ``.data`` is a buffer, so not that)."""
    if not isinstance(x, np.ndarray) and hasattr(x, "data"):
        x = x.data
    return np.asarray(x)


def class_labels(y: Any, metric: str, what: str) -> np.ndarray:
    """Integer class labels of shape (N,) from ``y``; integral floats and bools are accepted."""
    y = as_array(y)
    if y.ndim != 1:
        raise ValueError(f"{metric}: {what} has shape {y.shape}, expected 1-D class labels of shape (N,)")
    if y.dtype.kind in "iub":
        y = y.astype(np.int64, copy=False)
    elif y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            bad = float(y[~np.isfinite(y) | (y != np.round(y))][0])
            raise ValueError(f"{metric}: {what} must hold integer class labels, got the value {bad!r}")
        y = y.astype(np.int64)
    else:
        raise ValueError(f"{metric}: {what} must hold integer class labels, got dtype {y.dtype}")
    if y.size and y.min() < 0:
        raise ValueError(f"{metric}: {what} holds the negative label {int(y.min())}; labels must be >= 0")
    return y


def predicted_labels(output: Any, metric: str) -> tuple[np.ndarray, int | None]:
    """Class labels (N,) from labels (N,) or scores (N, C); also C, or None for labels."""
    out = as_array(output)
    if out.ndim == 2:
        if out.shape[1] == 1:
            raise ValueError(
                f"{metric}: scores of shape {out.shape} have a single column, which is ambiguous; threshold them "
                "into class labels first, e.g. (p > 0.5).astype(int) for probabilities or (z > 0) for logits"
            )
        return np.argmax(out, axis=1), out.shape[1]
    if out.ndim == 1:
        return class_labels(out, metric, "y_pred"), None
    raise ValueError(f"{metric}: output has shape {out.shape}, expected class labels (N,) or scores (N, C)")


def same_length(y_true: np.ndarray, y_pred: np.ndarray, metric: str, pred_shape: tuple | None = None) -> None:
    if y_true.shape[0] != y_pred.shape[0]:
        shape = y_pred.shape if pred_shape is None else pred_shape
        raise ValueError(
            f"{metric}: y_true has {y_true.shape[0]} samples (shape {y_true.shape}) but the output has "
            f"{shape[0]} (shape {shape})"
        )


def nonempty(n: int, metric: str) -> None:
    if n == 0:
        raise ValueError(f"{metric}: got no samples")


def check_range(y: np.ndarray, num_classes: int, metric: str, what: str, why: str = "") -> None:
    if y.size and y.max() >= num_classes:
        raise ValueError(
            f"{metric}: {what} holds the label {int(y.max())}, out of range for num_classes={num_classes}{why} "
            f"(labels must be integers in [0, {num_classes}))"
        )


def classification_inputs(
    y_true: Any, output: Any, num_classes: int | None, metric: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated (y_true, y_pred, num_classes). num_classes: given, else the score columns, else max label + 1."""
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer)) or num_classes < 1):
        raise ValueError(f"{metric}: num_classes must be a positive integer, got {num_classes!r}")
    t = class_labels(y_true, metric, "y_true")
    p, columns = predicted_labels(output, metric)
    same_length(t, p, metric, as_array(output).shape)
    if columns is not None:
        if num_classes is not None and num_classes != columns:
            raise ValueError(f"{metric}: num_classes={num_classes} but the scores have {columns} columns")
        num_classes = columns
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
        return t, p, max(num_classes, 1)
    why = f" (the scores have {columns} columns)" if columns is not None else ""
    check_range(t, num_classes, metric, "y_true", why)
    check_range(p, num_classes, metric, "y_pred")
    return t, p, int(num_classes)


def regression_inputs(y_true: Any, y_pred: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 arrays of equal shape (N,) or (N, D). A (N, 1) output against (N,) targets is squeezed, not broadcast."""
    t = as_array(y_true).astype(np.float64, copy=False)
    p = as_array(y_pred).astype(np.float64, copy=False)
    if t.ndim == 1 and p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    elif p.ndim == 1 and t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.shape != p.shape or t.ndim not in (1, 2):
        raise ValueError(
            f"{metric}: y_true has shape {t.shape} and y_pred has shape {p.shape}; expected equal shapes (N,) or (N, D)"
        )
    return t, p


def check_average(average: Any, metric: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"{metric}: average must be one of {list(AVERAGES)}, got {average!r}")


def check_k(k: Any, metric: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{metric}: k must be a positive integer, got {k!r}")
    return int(k)


def probability_inputs(y_true: Any, probs: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated labels (N,) and float64 probabilities (N, C); a 1-D ``probs`` is P(class 1) of a binary problem."""
    t = class_labels(y_true, metric, "y_true")
    p = as_array(probs).astype(np.float64, copy=False)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)  # (N,) -> (N, 2)
    if p.ndim != 2:
        raise ValueError(f"{metric}: probabilities have shape {p.shape}, expected (N, C) or (N,) for binary")
    same_length(t, p, metric)
    check_range(t, p.shape[1], metric, "y_true", f" (the probabilities have {p.shape[1]} columns)")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(
            f"{metric}: probabilities must lie in [0, 1], got values in [{p.min():.4g}, {p.max():.4g}]; "
            "apply softmax to logits first"
        )
    sums = p.sum(axis=1)
    if p.size and not np.allclose(sums, 1.0, atol=1e-3):
        worst = sums[np.argmax(np.abs(sums - 1))]
        raise ValueError(f"{metric}: each row of probabilities must sum to 1, a row sums to {worst:.6g}")
    return t, p
