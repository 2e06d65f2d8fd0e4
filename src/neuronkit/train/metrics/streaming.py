"""Streaming metrics for the training loop: ``Metric`` objects updated batch by batch (``Accuracy``, ``F1``, ``R2``,
...) and the name registry ``METRICS`` / ``get_metric``. Each keeps sufficient statistics, never the predictions."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from .functional import (
    class_counts,
    confusion_counts,
    neg_log_likelihood,
    prf_from_counts,
    r2_from_sums,
    top_k_hits,
)
from .inputs import (
    as_array,
    check_average,
    check_k,
    class_labels,
    classification_inputs,
    predicted_labels,
    probability_inputs,
    regression_inputs,
    same_length,
)


# ---------------------------------------------------------------------------------------------- streaming metrics
class Metric:
    """A metric accumulated over batches: ``reset()``, then ``update(y_true, output)`` per batch, then ``compute()``.

    Subclasses keep sufficient statistics, not predictions. ``name`` is the key used in logs and histories;
    ``greater_is_better`` tells early stopping and checkpointing which way is an improvement.
    """

    name: str = "metric"
    greater_is_better: bool = True
    # The attributes that hold sums over samples: a metric over several parts of the data (data-parallel ranks) is
    # the metric of their element-wise sums. Empty: the statistics cannot be combined by summing.
    additive: tuple = ()

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
    additive = ("correct", "total")

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
            t = class_labels(y_true, self.name, "y_true")
            out, _ = predicted_labels(output, self.name)
            same_length(t, out, self.name, as_array(output).shape)
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

    additive = ("hits", "total")

    def __init__(self, k: int = 5) -> None:
        self.k = check_k(k, "TopK")
        self.name = f"top{self.k}"
        super().__init__()

    def reset(self) -> None:
        self.hits, self.total = 0, 0

    def update(self, y_true: Any, output: Any) -> None:
        t = class_labels(y_true, self.name, "y_true")
        self.hits += int(np.count_nonzero(top_k_hits(t, as_array(output), self.k, self.name)))
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
        t, p, c = classification_inputs(y_true, output, self.num_classes, self.name)
        if self.num_classes is None and as_array(output).ndim == 2 and self.matrix.shape[0] > c:
            raise ValueError(f"{self.name}: scores have {c} columns, but earlier batches had {self.matrix.shape[0]}")
        if c > self.matrix.shape[0]:  # grow, keeping the counts so far in the top-left corner
            grown = np.zeros((c, c), dtype=np.int64)
            old = self.matrix.shape[0]
            grown[:old, :old] = self.matrix
            self.matrix = grown
        c = self.matrix.shape[0]
        self.matrix += confusion_counts(t, p, c)
        self.total += t.shape[0]

    def compute(self) -> np.ndarray:
        if self.total == 0:
            raise self._empty()
        return self.matrix.copy()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_classes={self.num_classes})"


class _ConfusionScore(ConfusionMatrix):
    """Precision / recall / F1 from accumulated per-class counts (``class_counts``: tp, tp + fp, tp + fn), so the
    streamed value is exact; memory O(classes), not the confusion matrix's O(classes^2)."""

    _index = 0

    def __init__(self, average: str | None = "macro", num_classes: int | None = None) -> None:
        check_average(average, type(self).__name__)
        self.average = average
        super().__init__(num_classes)

    def reset(self) -> None:
        self.counts = np.zeros((3, self.num_classes or 0), dtype=np.int64)
        self.total = 0

    def update(self, y_true: Any, output: Any) -> None:
        t, p, c = classification_inputs(y_true, output, self.num_classes, self.name)
        if self.num_classes is None and as_array(output).ndim == 2 and self.counts.shape[1] > c:
            raise ValueError(f"{self.name}: scores have {c} columns, but earlier batches had {self.counts.shape[1]}")
        if c > self.counts.shape[1]:  # grow, keeping the counts so far
            self.counts = np.pad(self.counts, ((0, 0), (0, c - self.counts.shape[1])))
        self.counts += class_counts(t, p, self.counts.shape[1])
        self.total += t.shape[0]

    def compute(self) -> Any:
        if self.total == 0:
            raise self._empty()
        return prf_from_counts(self.counts, self.average)[self._index]

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
        t, p = regression_inputs(y_true, output, self.name)
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
    additive = ("sum", "count")

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
        return r2_from_sums(self.n, self.ss_res, self.m2)


class LogLoss(Metric):
    """Streaming ``log_loss``: accumulates the summed negative log-likelihood and the sample count."""

    name = "log_loss"
    greater_is_better = False
    additive = ("sum", "total")

    def reset(self) -> None:
        self.sum, self.total = 0.0, 0

    def update(self, y_true: Any, output: Any) -> None:
        t, p = probability_inputs(y_true, output, self.name)
        self.sum += float(np.sum(neg_log_likelihood(t, p)))
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
