"""Metrics as one-shot functions of whole arrays (``accuracy(y_true, scores)``, ``f1_score``, ``r2_score``, ...) and the
input checks the streaming metrics share. Conventions: see ``neuronkit.train.metrics``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .inputs import (
    as_array,
    check_average,
    check_k,
    check_range,
    class_labels,
    classification_inputs,
    nonempty,
    predicted_labels,
    probability_inputs,
    regression_inputs,
    same_length,
)

# ----------------------------------------------------------------------------------------------------- input checks


# ------------------------------------------------------------------------------------------- classification, one shot
def accuracy(y_true: Any, y_pred_or_scores: Any) -> float:
    """Fraction of samples whose predicted class equals the true class.

    Shape:
        y_true: (N,) integer labels. y_pred_or_scores: (N,) labels, or (N, C) scores reduced by argmax.

    Returns ``mean(y_pred == y_true)`` as a float in [0, 1].
    """
    t = class_labels(y_true, "accuracy", "y_true")
    p, _ = predicted_labels(y_pred_or_scores, "accuracy")
    same_length(t, p, "accuracy", as_array(y_pred_or_scores).shape)
    nonempty(t.size, "accuracy")
    return float(np.mean(t == p))


def top_k_hits(t: np.ndarray, scores: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Boolean (N,): is the true class among the k best-scored? Class j outranks the true class t when
    s_j > s_t, or s_j == s_t and j < t, so ties break like argmax and top-1 equals ``accuracy``."""
    if scores.ndim != 2:
        raise ValueError(f"{metric}: scores have shape {scores.shape}, expected (N, C)")
    same_length(t, scores, metric)
    check_range(t, scores.shape[1], metric, "y_true", f" (the scores have {scores.shape[1]} columns)")
    s_true = scores[np.arange(t.shape[0]), t][:, None]  # (N, 1)
    ahead = (scores > s_true) | ((scores == s_true) & (np.arange(scores.shape[1]) < t[:, None]))  # (N, C)
    return ahead.sum(axis=1) < k


def top_k_accuracy(y_true: Any, scores: Any, k: int = 5) -> float:
    """Fraction of samples whose true class is among the ``k`` highest-scored classes.

    Shape:
        y_true: (N,) integer labels in [0, C). scores: (N, C). ``k >= C`` gives 1.0. Defaults to ``k=5``.

    Ties are broken towards the lower class index (as ``argmax``), so ``k=1`` equals ``accuracy(y_true, scores)``.
    """
    k = check_k(k, "top_k_accuracy")
    t = class_labels(y_true, "top_k_accuracy", "y_true")
    nonempty(t.size, "top_k_accuracy")
    return float(np.mean(top_k_hits(t, as_array(scores), k, "top_k_accuracy")))


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int | None = None) -> np.ndarray:
    """Counts of (true class, predicted class) pairs: ``cm[i, j]`` = number of samples of class i predicted as j.

    Shape:
        y_true: (N,). y_pred: (N,) labels or (N, C) scores. Returns int64 (num_classes, num_classes), rows true,
        columns predicted. ``num_classes`` defaults to C for scores, else to the largest label seen + 1.
    """
    t, p, c = classification_inputs(y_true, y_pred, num_classes, "confusion_matrix")
    return confusion_counts(t, p, c)


def confusion_counts(t: np.ndarray, p: np.ndarray, c: int) -> np.ndarray:
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c).astype(np.int64, copy=False)


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den == 0 (scikit-learn's zero_division=0)."""
    num, den = np.asarray(num, np.float64), np.asarray(den, np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def class_counts(t: np.ndarray, p: np.ndarray, c: int) -> np.ndarray:
    """(3, C) int64: per class, true positives, predictions (tp + fp) and true samples (tp + fn): all that precision,
    recall and F1 need, in O(C) memory where the confusion matrix takes O(C^2) (800 MB for 10,000 classes)."""
    return np.stack(
        [np.bincount(t[t == p], minlength=c), np.bincount(p, minlength=c), np.bincount(t, minlength=c)]
    ).astype(np.int64, copy=False)


def prf_from_counts(counts: np.ndarray, average: str | None) -> tuple[Any, Any, Any]:
    """Precision, recall and F1 from per-class counts ``(tp, tp + fp, tp + fn)`` (``class_counts``).

    Per class c: precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2 tp / (2 tp + fp + fn), each 0 on a zero
    denominator.
    """
    tp, predicted, support = np.asarray(counts, dtype=np.float64)
    if average == "micro":
        tp, predicted, support = tp.sum(), predicted.sum(), support.sum()
    p = safe_divide(tp, predicted)
    r = safe_divide(tp, support)
    f = safe_divide(2 * tp, predicted + support)
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
    check_average(average, "precision_recall_f1")
    t, p, c = classification_inputs(y_true, y_pred, num_classes, "precision_recall_f1")
    nonempty(t.size, "precision_recall_f1")
    return prf_from_counts(class_counts(t, p, c), average)


def precision(y_true: Any, y_pred: Any, num_classes: int | None = None, average: str | None = "macro") -> Any:
    """Precision ``tp / (tp + fp)``; see ``precision_recall_f1`` for the arguments and conventions."""
    return precision_recall_f1(y_true, y_pred, num_classes, average)[0]


def recall(y_true: Any, y_pred: Any, num_classes: int | None = None, average: str | None = "macro") -> Any:
    """Recall ``tp / (tp + fn)``; see ``precision_recall_f1`` for the arguments and conventions."""
    return precision_recall_f1(y_true, y_pred, num_classes, average)[1]


def f1_score(y_true: Any, y_pred: Any, num_classes: int | None = None, average: str | None = "macro") -> Any:
    """F1 ``2 tp / (2 tp + fp + fn)``; see ``precision_recall_f1`` for the arguments and conventions."""
    return precision_recall_f1(y_true, y_pred, num_classes, average)[2]


def neg_log_likelihood(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    eps = np.finfo(np.float64).eps  # clip so that a zero probability costs -log(eps) ~ 36, not infinity
    return -np.log(np.clip(p[np.arange(t.shape[0]), t], eps, 1.0))


def log_loss(y_true: Any, probs: Any) -> float:
    """Mean negative log-likelihood of the true classes: ``-mean(log p[i, y_true[i]])``.

    Shape:
        y_true: (N,) labels. probs: (N, C) probabilities whose rows sum to 1, or (N,) P(class 1) for binary problems.

    Probabilities are clipped below at float64 eps, so a confident wrong answer costs about 36, not infinity.
    """
    t, p = probability_inputs(y_true, probs, "log_loss")
    nonempty(t.size, "log_loss")
    return float(np.mean(neg_log_likelihood(t, p)))


# ----------------------------------------------------------------------------------------------- regression, one shot
def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error ``mean((y_pred - y_true)^2)`` over all elements.

    Shape: y_true and y_pred (N,) or (N, D), equal shapes (an (N, 1) output against (N,) targets is squeezed).
    For (N, D) this equals the uniform average of the per-output errors.
    """
    t, p = regression_inputs(y_true, y_pred, "mse")
    nonempty(t.size, "mse")
    return float(np.mean((p - t) ** 2))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error ``mean(|y_pred - y_true|)`` over all elements; shapes as ``mse``."""
    t, p = regression_inputs(y_true, y_pred, "mae")
    nonempty(t.size, "mae")
    return float(np.mean(np.abs(p - t)))


def r2_from_sums(n: int, ss_res: np.ndarray, ss_tot: np.ndarray) -> float:
    """Mean over outputs of ``1 - ss_res / ss_tot``, with scikit-learn's force_finite rule for ss_tot == 0."""
    if n < 2:
        return float("nan")
    ss_res, ss_tot = np.atleast_1d(ss_res), np.atleast_1d(ss_tot)
    constant = ss_tot == 0
    scores = np.where(constant, np.where(ss_res == 0, 1.0, 0.0), 1.0 - safe_divide(ss_res, ss_tot))
    return float(np.mean(scores))


def r2_score(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination ``1 - sum((y - y_pred)^2) / sum((y - mean(y))^2)``.

    Shape: y_true and y_pred (N,) or (N, D); for (N, D) the per-output scores are averaged uniformly.
    A constant target scores 1.0 if predicted exactly, else 0.0; fewer than two samples give nan (as scikit-learn).
    """
    t, p = regression_inputs(y_true, y_pred, "r2_score")
    nonempty(t.size, "r2_score")
    ss_res = ((t - p) ** 2).sum(axis=0)
    ss_tot = ((t - t.mean(axis=0)) ** 2).sum(axis=0)
    return r2_from_sums(t.shape[0], ss_res, ss_tot)
