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

from .functional import (
    accuracy,
    confusion_matrix,
    f1_score,
    log_loss,
    mae,
    mse,
    precision,
    precision_recall_f1,
    r2_score,
    recall,
    top_k_accuracy,
)
from .streaming import (
    F1,
    METRICS,
    R2,
    Accuracy,
    ConfusionMatrix,
    LogLoss,
    MeanAbsoluteError,
    MeanSquaredError,
    Metric,
    Precision,
    Recall,
    TopK,
    get_metric,
)

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
