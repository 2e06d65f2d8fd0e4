"""Evaluation metrics: one-shot functions on whole arrays, and streaming ``Metric`` objects for the training loop.

Every function and metric takes ``(y_true, output)`` as NumPy arrays, array-likes or neuronkit ``Tensor`` objects (their
``.data`` is read; nothing is differentiated). Classification outputs may be class labels of shape ``(N,)`` or scores /
logits / probabilities of shape ``(N, C)``, which are reduced to labels by ``argmax`` over the last axis (ties go to the
lowest class index, as ``numpy.argmax`` does). Class labels are integers in ``[0, num_classes)``.

Conventions, chosen to agree with scikit-learn:

- A ratio whose denominator is zero (precision of a class never predicted, recall of a class never present) is ``0``,
  as scikit-learn's ``zero_division=0``; no warning is raised.
- ``average="macro"`` is the unweighted mean over the classes that occur in ``y_true`` or ``y_pred``. A class absent
  from both has no defined score and is left out, as scikit-learn does when ``labels`` is not given; a class that is
  present but never predicted counts, with score ``0``.
- ``r2_score`` is ``1.0`` for perfect predictions of a constant target, ``0.0`` for imperfect ones (scikit-learn's
  ``force_finite=True``) and ``nan`` for fewer than two samples.

The streaming classes accumulate sufficient statistics (counts, sums, a confusion matrix, a running mean and sum of
squared deviations), never the predictions, so ``compute()`` after any split into batches equals the one-shot function
on the concatenated data up to float rounding. Metrics are found by name through ``METRICS`` / ``get_metric``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = [
    "METRICS",
    "Accuracy",
    "ConfusionMatrix",
    "F1",
    "LogLoss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "Metric",
    "Precision",
    "R2",
    "Recall",
    "TopK",
    "accuracy",
    "confusion_matrix",
    "cross_entropy",
    "f1_score",
    "get_metric",
    "log_loss",
    "mae",
    "mse",
    "precision",
    "precision_recall_f1",
    "r2_score",
    "recall",
    "top_k_accuracy",
]

AVERAGES = ("macro", "micro", "weighted", None)


# ----------------------------------------------------------------------------------------------------- input checks
def _array(x: Any) -> np.ndarray:
    """The NumPy array behind ``x``: a Tensor's ``.data`` (an ndarray's own ``.data`` is a buffer, so not that)."""
    if not isinstance(x, np.ndarray) and hasattr(x, "data"):
        x = x.data
    return np.asarray(x)


def _labels(y: Any, metric: str, what: str) -> np.ndarray:
    """Integer class labels of shape (N,) from ``y``; integral floats and bools are accepted."""
    y = _array(y)
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


def _predicted_labels(output: Any, metric: str) -> tuple[np.ndarray, int | None]:
    """Class labels (N,) from labels (N,) or scores (N, C); also C, or None for labels."""
    out = _array(output)
    if out.ndim == 2:
        if out.shape[1] == 1:
            raise ValueError(
                f"{metric}: scores of shape {out.shape} have a single column, which is ambiguous; threshold them "
                "into class labels first, e.g. (p > 0.5).astype(int) for probabilities or (z > 0) for logits"
            )
        return np.argmax(out, axis=1), out.shape[1]
    if out.ndim == 1:
        return _labels(out, metric, "y_pred"), None
    raise ValueError(f"{metric}: output has shape {out.shape}, expected class labels (N,) or scores (N, C)")


def _same_length(y_true: np.ndarray, y_pred: np.ndarray, metric: str, pred_shape: tuple | None = None) -> None:
    if y_true.shape[0] != y_pred.shape[0]:
        shape = y_pred.shape if pred_shape is None else pred_shape
        raise ValueError(
            f"{metric}: y_true has {y_true.shape[0]} samples (shape {y_true.shape}) but the output has "
            f"{shape[0]} (shape {shape})"
        )


def _nonempty(n: int, metric: str) -> None:
    if n == 0:
        raise ValueError(f"{metric}: got no samples")


def _check_range(y: np.ndarray, num_classes: int, metric: str, what: str, why: str = "") -> None:
    if y.size and y.max() >= num_classes:
        raise ValueError(
            f"{metric}: {what} holds the label {int(y.max())}, out of range for num_classes={num_classes}{why} "
            f"(labels must be integers in [0, {num_classes}))"
        )


def _classification_inputs(
    y_true: Any, output: Any, num_classes: int | None, metric: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated (y_true, y_pred, num_classes). num_classes: given, else the score columns, else max label + 1."""
    if num_classes is not None and (not isinstance(num_classes, (int, np.integer)) or num_classes < 1):
        raise ValueError(f"{metric}: num_classes must be a positive integer, got {num_classes!r}")
    t = _labels(y_true, metric, "y_true")
    p, columns = _predicted_labels(output, metric)
    _same_length(t, p, metric, _array(output).shape)
    if columns is not None:
        if num_classes is not None and num_classes != columns:
            raise ValueError(f"{metric}: num_classes={num_classes} but the scores have {columns} columns")
        num_classes = columns
    if num_classes is None:
        num_classes = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
        return t, p, max(num_classes, 1)
    why = f" (the scores have {columns} columns)" if columns is not None else ""
    _check_range(t, num_classes, metric, "y_true", why)
    _check_range(p, num_classes, metric, "y_pred")
    return t, p, int(num_classes)


def _regression_inputs(y_true: Any, y_pred: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """float64 arrays of equal shape (N,) or (N, D). A (N, 1) output against (N,) targets is squeezed, not broadcast."""
    t = _array(y_true).astype(np.float64, copy=False)
    p = _array(y_pred).astype(np.float64, copy=False)
    if t.ndim == 1 and p.ndim == 2 and p.shape[1] == 1:
        p = p[:, 0]
    elif p.ndim == 1 and t.ndim == 2 and t.shape[1] == 1:
        t = t[:, 0]
    if t.shape != p.shape or t.ndim not in (1, 2):
        raise ValueError(
            f"{metric}: y_true has shape {t.shape} and y_pred has shape {p.shape}; expected equal shapes (N,) or (N, D)"
        )
    return t, p


def _check_average(average: Any, metric: str) -> None:
    if average not in AVERAGES:
        raise ValueError(f"{metric}: average must be one of {list(AVERAGES)}, got {average!r}")


# ------------------------------------------------------------------------------------------- classification, one shot
def accuracy(y_true: Any, y_pred_or_scores: Any) -> float:
    """Fraction of samples whose predicted class equals the true class.

    Shape:
        y_true: (N,) integer labels. y_pred_or_scores: (N,) labels, or (N, C) scores reduced by argmax.

    Returns ``mean(y_pred == y_true)`` as a float in [0, 1].
    """
    t = _labels(y_true, "accuracy", "y_true")
    p, _ = _predicted_labels(y_pred_or_scores, "accuracy")
    _same_length(t, p, "accuracy", _array(y_pred_or_scores).shape)
    _nonempty(t.size, "accuracy")
    return float(np.mean(t == p))


def _top_k_hits(t: np.ndarray, scores: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Boolean (N,): is the true class among the k best-scored? Class j outranks the true class t when
    s_j > s_t, or s_j == s_t and j < t, so ties break like argmax and top-1 equals ``accuracy``."""
    if scores.ndim != 2:
        raise ValueError(f"{metric}: scores have shape {scores.shape}, expected (N, C)")
    _same_length(t, scores, metric)
    _check_range(t, scores.shape[1], metric, "y_true", f" (the scores have {scores.shape[1]} columns)")
    s_true = scores[np.arange(t.shape[0]), t][:, None]  # (N, 1)
    ahead = (scores > s_true) | ((scores == s_true) & (np.arange(scores.shape[1]) < t[:, None]))  # (N, C)
    return ahead.sum(axis=1) < k


def _check_k(k: Any, metric: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{metric}: k must be a positive integer, got {k!r}")
    return int(k)


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest-scored classes.

    Shape:
        y_true: (N,) integer labels in [0, C). scores: (N, C). ``k >= C`` gives 1.0. Defaults to ``k=5``.

    Ties are broken towards the lower class index (as ``argmax``), so ``k=1`` equals ``accuracy(y_true, scores)``.
    """
    k = _check_k(k, "top_k_accuracy")
    t = _labels(y_true, "top_k_accuracy", "y_true")
    _nonempty(t.size, "top_k_accuracy")
    return float(np.mean(_top_k_hits(t, _array(scores), k, "top_k_accuracy")))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs: ``cm[i, j]`` = number of samples of class i predicted as j.

    Shape:
        y_true: (N,). y_pred: (N,) labels or (N, C) scores. Returns int64 (num_classes, num_classes), rows true,
        columns predicted. ``num_classes`` defaults to C for scores, else to the largest label seen + 1.
    """
    t, p, c = _classification_inputs(y_true, y_pred, num_classes, "confusion_matrix")
    return _confusion(t, p, c)


def _confusion(t: np.ndarray, p: np.ndarray, c: int) -> np.ndarray:
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c).astype(np.int64, copy=False)


def _divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _class_counts(t: np.ndarray, p: np.ndarray, c: int) -> np.ndarray:
    """(3, C) int64: per class, true positives, predictions (tp + fp) and true samples (tp + fn): all that precision,
    recall and F1 need, in O(C) memory where the confusion matrix takes O(C^2) (800 MB for 10,000 classes)."""
    return np.stack(
        [np.bincount(t[t == p], minlength=c), np.bincount(p, minlength=c), np.bincount(t, minlength=c)]
    ).astype(np.int64, copy=False)


def _prf_from_counts(counts: np.ndarray, average: str | None) -> tuple[Any, Any, Any]:
    """Precision, recall and F1 from per-class counts ``(tp, tp + fp, tp + fn)`` (``_class_counts``).

    Per class c: precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn), each 0 on a zero
    denominator.
    """
    tp, predicted, support = np.asarray(counts, dtype=np.float64)
    if average == "micro":
        tp, predicted, support = tp.sum(), predicted.sum(), support.sum()
    p = _divide(tp, predicted)
    r = _divide(tp, support)
    f = _divide(2 * tp, predicted + support)
    if average is None or average == "micro":
        return (p, r, f) if average is None else (float(p), float(r), float(f))
    if average == "macro":
        weights = ((predicted + support) > 0).astype(np.float64)  # only classes that occur somewhere
    else:  # weighted by support
        weights = support
    total = weights.sum()
    if total == 0:
        return 0.0, 0.0, 0.0
    return tuple(float(np.dot(weights, x) / total) for x in (p, r, f))


def precision_recall_f1(
    y_true: Any, y_pred: Any, num_classes: int | None = None, average: str | None = "macro"
) -> tuple[Any, Any, Any]:
    """Precision, recall and F1 score for multiclass labels.

    Per class c, with tp/fp/fn counted from the confusion matrix:
    ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)``, ``F1 = 2 tp / (2 tp + fp + fn)`` (the harmonic mean
    of precision and recall). A zero denominator gives 0 (scikit-learn's ``zero_division=0``).

    Args:
        y_true: (N,) integer labels. y_pred: (N,) labels or (N, C) scores.
        num_classes: defaults to C for scores, else the largest label seen + 1.
        average: ``"macro"`` (default; unweighted mean over the classes occurring in y_true or y_pred), ``"micro"``
            (from the summed counts; equals accuracy for single-label multiclass data), ``"weighted"`` (mean weighted
            by each class's support in y_true), or ``None`` (per-class arrays of shape (num_classes,)).

    Returns:
        ``(precision, recall, f1)``: floats, or three float64 arrays of shape (num_classes,) when ``average=None``.
    """
    _check_average(average, "precision_recall_f1")
    t, p, c = _classification_inputs(y_true, y_pred, num_classes, "precision_recall_f1")
    _nonempty(t.size, "precision_recall_f1")
    return _prf_from_counts(_class_counts(t, p, c), average)


def precision(y_true: Any, y_pred: Any, num_classes: int | None = None, average: str | None = "macro") -> Any:
    """Precision ``tp / (tp + fp)``; see ``precision_recall_f1`` for the arguments and conventions."""
    return precision_recall_f1(y_true, y_pred, num_classes, average)[0]


def recall(y_true: Any, y_pred: Any, num_classes: int | None = None, average: str | None = "macro") -> Any:
    """Recall ``tp / (tp + fn)``; see ``precision_recall_f1`` for the arguments and conventions."""
    return precision_recall_f1(y_true, y_pred, num_classes, average)[1]


def f1_score(y_true: Any, y_pred: Any, num_classes: int | None = None, average: str | None = "macro") -> Any:
    """F1 ``2 tp / (2 tp + fp + fn)``; see ``precision_recall_f1`` for the arguments and conventions."""
    return precision_recall_f1(y_true, y_pred, num_classes, average)[2]


def _probabilities(y_true: Any, probs: Any, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated labels (N,) and float64 probabilities (N, C); a 1-D ``probs`` is P(class 1) of a binary problem."""
    t = _labels(y_true, metric, "y_true")
    p = _array(probs).astype(np.float64, copy=False)
    if p.ndim == 1:
        p = np.stack([1.0 - p, p], axis=1)  # (N,) -> (N, 2)
    if p.ndim != 2:
        raise ValueError(f"{metric}: probabilities have shape {p.shape}, expected (N, C) or (N,) for binary")
    _same_length(t, p, metric)
    _check_range(t, p.shape[1], metric, "y_true", f" (the probabilities have {p.shape[1]} columns)")
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


def _neg_log_likelihood(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float64).eps  # clip so that a zero probability costs -log(eps) ~ 36, not infinity
    return -np.log(np.clip(p[np.arange(t.shape[0]), t], eps, 1.0))


def log_loss(y_true: Any, probs: Any) -> float:
    """Mean negative log-likelihood of the true classes: ``-mean(log p[i, y_true[i]])``.

    Shape:
        y_true: (N,) labels. probs: (N, C) probabilities whose rows sum to 1, or (N,) P(class 1) for binary problems.

    Probabilities are clipped below at float64 eps, so a confident wrong answer costs about 36, not infinity.
    ``cross_entropy`` is the same function.
    """
    t, p = _probabilities(y_true, probs, "log_loss")
    _nonempty(t.size, "log_loss")
    return float(np.mean(_neg_log_likelihood(t, p)))


cross_entropy = log_loss


# ----------------------------------------------------------------------------------------------- regression, one shot
def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error ``mean((y_pred - y_true)^2)`` over all elements.

    Shape: y_true and y_pred (N,) or (N, D), equal shapes (an (N, 1) output against (N,) targets is squeezed).
    For (N, D) this equals the uniform average of the per-output errors.
    """
    t, p = _regression_inputs(y_true, y_pred, "mse")
    _nonempty(t.size, "mse")
    return float(np.mean((p - t) ** 2))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error ``mean(|y_pred - y_true|)`` over all elements; shapes as ``mse``."""
    t, p = _regression_inputs(y_true, y_pred, "mae")
    _nonempty(t.size, "mae")
    return float(np.mean(np.abs(p - t)))


def _r2_from_sums(n: int, ss_res: np.ndarray, ss_tot: np.ndarray) -> float:
    """Mean over outputs of ``1 - ss_res / ss_tot``, with scikit-learn's force_finite rule for ss_tot == 0."""
    if n < 2:
        return float("nan")
    ss_res, ss_tot = np.atleast_1d(ss_res), np.atleast_1d(ss_tot)
    constant = ss_tot == 0
    scores = np.where(constant, np.where(ss_res == 0, 1.0, 0.0), 1.0 - _divide(ss_res, ss_tot))
    return float(np.mean(scores))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - sum((y - y_pred)^2) / sum((y - mean(y))^2)``.

    Shape: y_true and y_pred (N,) or (N, D); for (N, D) the per-output scores are averaged uniformly.
    A constant target scores 1.0 if predicted exactly, else 0.0; fewer than two samples give nan (as scikit-learn).
    """
    t, p = _regression_inputs(y_true, y_pred, "r2_score")
    _nonempty(t.size, "r2_score")
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    return _r2_from_sums(t.shape[0], ss_res, ss_tot)


# ---------------------------------------------------------------------------------------------- streaming metrics
class Metric:
    """A metric accumulated over batches: ``reset()``, then ``update(y_true, output)`` per batch, then ``compute()``.

    Subclasses keep sufficient statistics, not predictions. ``name`` is the key used in logs and histories;
    ``greater_is_better`` tells early stopping and checkpointing which way is an improvement.
    """

    name: str = "metric"
    greater_is_better: bool = True

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything seen so far."""
        raise NotImplementedError

    def update(self, y_true: Any, output: Any) -> None:
        """Add one batch."""
        raise NotImplementedError

    def compute(self) -> Any:
        """The metric over every batch since the last ``reset()``."""
        raise NotImplementedError

    def __call__(self, y_true: Any, output: Any) -> Any:
        """One-shot: reset, update with the whole data, compute."""
        self.reset()
        self.update(y_true, output)
        return self.compute()

    def _empty(self) -> ValueError:
        return ValueError(f"{type(self).__name__}.compute() called with no samples: call update() first")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Accuracy(Metric):
    """Streaming ``accuracy``: counts correct predictions and samples. Output (B,) labels or (B, C) scores."""

    name = "accuracy"

    def reset(self) -> None:
        self.correct, self.total = 0, 0

    def update(self, y_true: Any, output: Any) -> None:
        t, out = y_true, output
        if not (  # the per-step case in fit: integer labels (N,) and scores (N, C) as arrays; checked inline
            type(t) is np.ndarray
            and t.ndim == 1
            and t.dtype.kind in "iu"
            and type(out) is np.ndarray
            and out.ndim == 2
            and out.shape == (t.shape[0], out.shape[1])
            and out.shape[1] > 1
            and (t.dtype.kind == "u" or not t.size or np.minimum.reduce(t) >= 0)
        ):
            t = _labels(y_true, self.name, "y_true")
            out, _ = _predicted_labels(output, self.name)
            _same_length(t, out, self.name, _array(output).shape)
        self.correct += int(np.count_nonzero(t == (out.argmax(axis=1) if out.ndim == 2 else out)))
        self.total += t.shape[0]

    def compute(self) -> float:
        if self.total == 0:
            raise self._empty()
        return self.correct / self.total


class TopK(Metric):
    """Streaming ``top_k_accuracy`` (default ``k=5``): counts samples whose true class is among the k best scores.

    Output: (B, C) scores. ``name`` is ``"top{k}"``.
    """

    def __init__(self, k: int = 5) -> None:
        self.k = _check_k(k, "TopK")
        self.name = f"top{self.k}"
        super().__init__()

    def reset(self) -> None:
        self.hits, self.total = 0, 0

    def update(self, y_true: Any, output: Any) -> None:
        t = _labels(y_true, self.name, "y_true")
        self.hits += int(np.count_nonzero(_top_k_hits(t, _array(output), self.k, self.name)))
        self.total += t.shape[0]

    def compute(self) -> float:
        if self.total == 0:
            raise self._empty()
        return self.hits / self.total

    def __repr__(self) -> str:
        return f"TopK(k={self.k})"


class ConfusionMatrix(Metric):
    """Streaming ``confusion_matrix``: an int64 (num_classes, num_classes) count matrix, rows true, columns predicted.

    With ``num_classes=None`` (default) the matrix starts from the first batch's score columns or labels and grows
    when a larger label arrives; with a fixed ``num_classes`` an out-of-range label is an error.
    """

    name = "confusion_matrix"
    greater_is_better = False  # not a scalar; never used to compare epochs

    def __init__(self, num_classes: int | None = None) -> None:
        self.num_classes = num_classes
        super().__init__()

    def reset(self) -> None:
        c = self.num_classes or 0
        self.matrix = np.zeros((c, c), dtype=np.int64)
        self.total = 0

    def update(self, y_true: Any, output: Any) -> None:
        t, p, c = _classification_inputs(y_true, output, self.num_classes, self.name)
        if self.num_classes is None and _array(output).ndim == 2 and self.matrix.shape[0] > c:
            raise ValueError(f"{self.name}: scores have {c} columns, but earlier batches had {self.matrix.shape[0]}")
        if c > self.matrix.shape[0]:  # grow, keeping the counts so far in the top-left corner
            grown = np.zeros((c, c), dtype=np.int64)
            old = self.matrix.shape[0]
            grown[:old, :old] = self.matrix
            self.matrix = grown
        c = self.matrix.shape[0]
        self.matrix += _confusion(t, p, c)
        self.total += t.shape[0]

    def compute(self) -> np.ndarray:
        if self.total == 0:
            raise self._empty()
        return self.matrix.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"


class _ConfusionScore(ConfusionMatrix):
    """Precision / recall / F1 from accumulated per-class counts (``_class_counts``: tp, tp + fp, tp + fn), so the
    streamed value is exact; memory O(classes), not the confusion matrix's O(classes^2)."""

    _index = 0

    def __init__(self, average: str | None = "macro", num_classes: int | None = None) -> None:
        _check_average(average, type(self).__name__)
        self.average = average
        super().__init__(num_classes)

    def reset(self) -> None:
        self.counts = np.zeros((3, self.num_classes or 0), dtype=np.int64)
        self.total = 0

    def update(self, y_true: Any, output: Any) -> None:
        t, p, c = _classification_inputs(y_true, output, self.num_classes, self.name)
        if self.num_classes is None and _array(output).ndim == 2 and self.counts.shape[1] > c:
            raise ValueError(f"{self.name}: scores have {c} columns, but earlier batches had {self.counts.shape[1]}")
        if c > self.counts.shape[1]:  # grow, keeping the counts so far
            self.counts = np.pad(self.counts, ((0, 0), (0, c - self.counts.shape[1])))
        self.counts += _class_counts(t, p, self.counts.shape[1])
        self.total += t.shape[0]

    def compute(self) -> Any:
        if self.total == 0:
            raise self._empty()
        return _prf_from_counts(self.counts, self.average)[self._index]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(average={self.average!r}, num_classes={self.num_classes})"


class Precision(_ConfusionScore):
    """Streaming ``precision`` (default ``average="macro"``); ``average=None`` gives a per-class array."""

    name, greater_is_better, _index = "precision", True, 0


class Recall(_ConfusionScore):
    """Streaming ``recall`` (default ``average="macro"``); ``average=None`` gives a per-class array."""

    name, greater_is_better, _index = "recall", True, 1


class F1(_ConfusionScore):
    """Streaming F1 score (default ``average="macro"``); ``average=None`` gives a per-class array."""

    name, greater_is_better, _index = "f1", True, 2


class _RegressionMetric(Metric):
    """Shared shape bookkeeping: every batch must have the trailing shape of the first."""

    greater_is_better = False

    def _inputs(self, y_true: Any, output: Any) -> tuple[np.ndarray, np.ndarray]:
        t, p = _regression_inputs(y_true, output, self.name)
        if self.trailing is None:
            self.trailing = t.shape[1:]
        elif t.shape[1:] != self.trailing:
            raise ValueError(
                f"{self.name}: batch has shape {t.shape}, but earlier batches had shape (N, *{self.trailing})"
            )
        return t, p


class MeanSquaredError(_RegressionMetric):
    """Streaming ``mse``: accumulates the sum of squared errors and the element count (float64)."""

    name = "mse"

    def reset(self) -> None:
        self.sum, self.count, self.trailing = 0.0, 0, None

    def update(self, y_true: Any, output: Any) -> None:
        t, p = self._inputs(y_true, output)
        self.sum += float(np.sum((p - t) ** 2))
        self.count += t.size

    def compute(self) -> float:
        if self.count == 0:
            raise self._empty()
        return self.sum / self.count


class MeanAbsoluteError(MeanSquaredError):
    """Streaming ``mae``: accumulates the sum of absolute errors and the element count (float64)."""

    name = "mae"

    def update(self, y_true: Any, output: Any) -> None:
        t, p = self._inputs(y_true, output)
        self.sum += float(np.sum(np.abs(p - t)))
        self.count += t.size


class R2(_RegressionMetric):
    """Streaming ``r2_score``.

    Keeps per output the count n, the residual sum ``ss_res``, and the running mean and sum of squared deviations
    of y_true, merged batch by batch with Chan et al.'s parallel update (stable, unlike ``sum(y^2) - n mean^2``):
    ``delta = mean_b - mean``, ``M2 += M2_b + delta^2 n n_b / (n + n_b)``, ``mean += delta n_b / (n + n_b)``.
    """

    name = "r2"
    greater_is_better = True

    def reset(self) -> None:
        self.n, self.ss_res, self.mean, self.m2, self.trailing = 0, 0.0, 0.0, 0.0, None

    def update(self, y_true: Any, output: Any) -> None:
        t, p = self._inputs(y_true, output)
        nb = t.shape[0]
        if nb == 0:
            return
        mean_b = t.mean(axis=0)
        m2_b = ((t - mean_b) ** 2).sum(axis=0)
        n = self.n + nb
        delta = mean_b - self.mean
        self.m2 = self.m2 + m2_b + delta**2 * (self.n * nb / n)
        self.mean = self.mean + delta * (nb / n)
        self.ss_res = self.ss_res + ((t - p) ** 2).sum(axis=0)
        self.n = n

    def compute(self) -> float:
        if self.n == 0:
            raise self._empty()
        return _r2_from_sums(self.n, self.ss_res, self.m2)


class LogLoss(Metric):
    """Streaming ``log_loss``: accumulates the summed negative log-likelihood and the sample count."""

    name = "log_loss"
    greater_is_better = False

    def reset(self) -> None:
        self.sum, self.total = 0.0, 0

    def update(self, y_true: Any, output: Any) -> None:
        t, p = _probabilities(y_true, output, self.name)
        self.sum += float(np.sum(_neg_log_likelihood(t, p)))
        self.total += t.shape[0]

    def compute(self) -> float:
        if self.total == 0:
            raise self._empty()
        return self.sum / self.total


# ------------------------------------------------------------------------------------------------------ registry
METRICS: dict[str, Callable[[], Metric]] = {
    "accuracy": Accuracy,
    "top5": functools.partial(TopK, 5),
    "precision": Precision,
    "recall": Recall,
    "f1": F1,
    "mse": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "r2": R2,
    "log_loss": LogLoss,
    "confusion_matrix": ConfusionMatrix,
}


def get_metric(name_or_obj: str | Metric | type[Metric]) -> Metric:
    """A fresh ``Metric`` from a registry name (``"accuracy"``, ``"f1"``, ..., and ``"top{k}"`` for any k), a
    ``Metric`` subclass (instantiated with defaults), or a ``Metric`` instance (returned as is)."""
    if isinstance(name_or_obj, Metric):
        return name_or_obj
    if isinstance(name_or_obj, type) and issubclass(name_or_obj, Metric):
        return name_or_obj()
    if isinstance(name_or_obj, str):
        key = name_or_obj.strip().lower()
        if key in METRICS:
            return METRICS[key]()
        match = re.fullmatch(r"top_?(\d+)", key)
        if match and int(match.group(1)) >= 1:
            return TopK(int(match.group(1)))
        raise ValueError(
            f"unknown metric {name_or_obj!r}; known metrics: {', '.join(sorted(METRICS))} (and 'top<k>' for any k)"
        )
    raise TypeError(
        f"get_metric expects a metric name, a Metric subclass or a Metric instance, got {type(name_or_obj).__name__}"
    )
