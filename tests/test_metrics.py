"""Metrics: every function against scikit-learn on random data (class counts, imbalance, a class never predicted,
every average mode), streaming over random batch splits against the one-shot value, top-k against a direct
computation, the registry, and the error messages."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

import neuronkit as nk
from neuronkit.train import metrics as M
from neuronkit.train.metrics import (
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
    accuracy,
    confusion_matrix,
    get_metric,
    log_loss,
    mae,
    mse,
    precision_recall_f1,
    r2_score,
    top_k_accuracy,
)

CLASS_COUNTS = [2, 3, 7, 20]


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_classification(rng, n, c, imbalanced=False, never_predicted=None):
    """Labels (n,), scores (n, c) correlated with the labels, and predicted labels (n,)."""
    if imbalanced:
        prior = rng.dirichlet(np.full(c, 0.3))
        y = rng.choice(c, size=n, p=prior)
    else:
        y = rng.integers(0, c, size=n)
    scores = rng.normal(size=(n, c))
    scores[np.arange(n), y] += 1.0
    if never_predicted is not None:
        scores[:, never_predicted] = -1e3
    return y, scores, scores.argmax(axis=1)


def random_splits(rng, n, max_parts=6):
    """Random cut points, empty batches allowed."""
    cuts = np.sort(rng.integers(0, n + 1, size=rng.integers(0, max_parts)))
    return np.split(np.arange(n), cuts)


def stream(metric, y, out, parts):
    metric.reset()
    for idx in parts:
        metric.update(y[idx], out[idx])
    return metric.compute()


# ----------------------------------------------------------------------------------------------- vs scikit-learn
@pytest.mark.parametrize("c", CLASS_COUNTS)
@pytest.mark.parametrize("imbalanced", [False, True])
def test_accuracy_and_confusion_vs_sklearn(c, imbalanced):
    rng = np.random.default_rng(c + 100 * imbalanced)
    y, scores, pred = make_classification(rng, 300, c, imbalanced)
    assert accuracy(y, scores) == pytest.approx(skm.accuracy_score(y, pred), abs=1e-15)
    assert accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred), abs=1e-15)
    cm = confusion_matrix(y, scores)
    assert cm.dtype == np.int64 and cm.shape == (c, c)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, pred, labels=np.arange(c)))
    np.testing.assert_array_equal(confusion_matrix(y, pred, num_classes=c + 2)[:c, :c], cm)


@pytest.mark.parametrize("c", CLASS_COUNTS)
@pytest.mark.parametrize("imbalanced", [False, True])
@pytest.mark.parametrize("average", ["macro", "micro", "weighted", None])
def test_precision_recall_f1_vs_sklearn(c, imbalanced, average):
    rng = np.random.default_rng(7 * c + imbalanced)
    y, scores, pred = make_classification(rng, 250, c, imbalanced, never_predicted=c - 1)
    assert (pred != c - 1).all()  # a class that is never predicted: zero division for its precision
    p, r, f = precision_recall_f1(y, pred, num_classes=c, average=average)
    # average=None reports every class 0..c-1; averages use sklearn's default label set (classes that occur)
    labels = np.arange(c) if average is None else None
    sp, sr, sf, _ = skm.precision_recall_fscore_support(y, pred, labels=labels, average=average, zero_division=0)
    np.testing.assert_allclose(p, sp, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r, sr, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(f, sf, rtol=1e-12, atol=1e-15)
    if average is None:
        assert p.shape == (c,) and p[c - 1] == 0.0
    # scores give the same answer as their argmax
    np.testing.assert_allclose(precision_recall_f1(y, scores, average=average)[2], f, rtol=1e-15)
    np.testing.assert_allclose(M.precision(y, pred, c, average), sp, rtol=1e-12)
    np.testing.assert_allclose(M.recall(y, pred, c, average), sr, rtol=1e-12)
    np.testing.assert_allclose(M.f1_score(y, pred, c, average), sf, rtol=1e-12)


def test_class_absent_everywhere_is_left_out_of_macro_like_sklearn():
    y = np.array([0, 0, 1, 3, 3, 3])  # class 2 never occurs, class 1 never predicted
    pred = np.array([0, 3, 0, 3, 3, 0])
    for average in ["macro", "weighted", "micro"]:
        got = precision_recall_f1(y, pred, num_classes=5, average=average)
        want = skm.precision_recall_fscore_support(y, pred, average=average, zero_division=0)[:3]
        np.testing.assert_allclose(got, want, rtol=1e-12)
    per_class = precision_recall_f1(y, pred, num_classes=5, average=None)
    want = skm.precision_recall_fscore_support(y, pred, labels=range(5), average=None, zero_division=0)[:3]
    np.testing.assert_allclose(per_class, want, rtol=1e-12)


def test_micro_equals_accuracy():
    rng = np.random.default_rng(0)
    y, scores, _ = make_classification(rng, 200, 5)
    assert all(v == pytest.approx(accuracy(y, scores)) for v in precision_recall_f1(y, scores, average="micro"))


@pytest.mark.parametrize("c", [2, 5, 20])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_top_k_vs_direct_and_sklearn(c, k):
    rng = np.random.default_rng(c * 10 + k)
    y, scores, _ = make_classification(rng, 300, c)
    ranks = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    direct = np.mean([y[i] in ranks[i] for i in range(len(y))])
    assert top_k_accuracy(y, scores, k) == pytest.approx(direct, abs=1e-15)
    if c == 2 and k == 1:  # sklearn wants 1-D scores for binary problems
        assert top_k_accuracy(y, scores, k) == pytest.approx(skm.accuracy_score(y, scores.argmax(1)), abs=1e-15)
    elif k < c:
        got = skm.top_k_accuracy_score(y, scores, k=k, labels=np.arange(c))
        assert top_k_accuracy(y, scores, k) == pytest.approx(got, abs=1e-15)
    else:
        assert top_k_accuracy(y, scores, k) == 1.0


def test_top_k_ties_break_like_argmax():
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 2.0, 2.0], [3.0, 3.0, 0.0]])
    y = np.array([2, 2, 0])
    assert top_k_accuracy(y, scores, 1) == accuracy(y, scores) == pytest.approx(1 / 3)
    assert top_k_accuracy(y, scores, 2) == pytest.approx(2 / 3)  # row 0: class 2 is third among equals
    assert top_k_accuracy(y, scores, 3) == 1.0


@pytest.mark.parametrize("shape", [(200,), (200, 1), (200, 3)])
def test_regression_vs_sklearn(shape):
    rng = np.random.default_rng(len(shape) * 10 + shape[-1])
    y = rng.normal(5.0, 3.0, size=shape)
    pred = y + rng.normal(0.0, 1.5, size=shape)
    assert mse(y, pred) == pytest.approx(skm.mean_squared_error(y, pred), rel=1e-12)
    assert mae(y, pred) == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert r2_score(y, pred) == pytest.approx(skm.r2_score(y, pred), rel=1e-12)


def test_regression_column_output_against_flat_target():
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    pred = (y + rng.normal(size=50))[:, None]  # (N, 1) model output: squeezed, never broadcast to (N, N)
    assert mse(y, pred) == pytest.approx(skm.mean_squared_error(y, pred[:, 0]))
    assert r2_score(y, pred) == pytest.approx(skm.r2_score(y, pred[:, 0]))


def test_r2_edge_cases_match_sklearn():
    y = np.full(10, 3.0)
    assert r2_score(y, y) == skm.r2_score(y, y) == 1.0
    assert r2_score(y, y + 1) == skm.r2_score(y, y + 1) == 0.0
    assert np.isnan(r2_score([1.0], [2.0]))
    y2 = np.stack([np.full(10, 3.0), np.arange(10.0)], axis=1)
    p2 = y2 + np.array([1.0, 0.5])
    assert r2_score(y2, p2) == pytest.approx(skm.r2_score(y2, p2))


@pytest.mark.parametrize("c", [2, 4, 10])
def test_log_loss_vs_sklearn(c):
    rng = np.random.default_rng(c)
    y, scores, _ = make_classification(rng, 200, c)
    probs = softmax(scores)
    want = skm.log_loss(y, probs, labels=np.arange(c))
    assert log_loss(y, probs) == pytest.approx(want, rel=1e-10)
    if c == 2:
        assert log_loss(y, probs[:, 1]) == pytest.approx(skm.log_loss(y, probs[:, 1]), rel=1e-10)


def test_log_loss_zero_probability_is_finite():
    assert np.isfinite(log_loss([0, 1], [[1.0, 0.0], [1.0, 0.0]]))


def test_tensor_inputs():
    rng = np.random.default_rng(3)
    y, scores, _ = make_classification(rng, 64, 4)
    assert accuracy(nk.tensor(y), nk.tensor(scores.astype(np.float32))) == accuracy(y, scores.astype(np.float32))
    m = Accuracy()
    m.update(nk.tensor(y), nk.tensor(scores))
    assert m.compute() == accuracy(y, scores)
    t = rng.normal(size=20)
    assert mse(nk.tensor(t), nk.tensor(t + 1)) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------------ streaming
def classification_streams():
    return [
        (Accuracy(), lambda y, s: accuracy(y, s)),
        (TopK(3), lambda y, s: top_k_accuracy(y, s, 3)),
        (ConfusionMatrix(), lambda y, s: confusion_matrix(y, s)),
        (LogLoss(), lambda y, s: log_loss(y, softmax(s))),
    ] + [
        (cls(average=avg), lambda y, s, i=i, avg=avg: precision_recall_f1(y, s, average=avg)[i])
        for i, cls in enumerate([Precision, Recall, F1])
        for avg in ["macro", "micro", "weighted", None]
    ]


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), c=st.sampled_from(CLASS_COUNTS), n=st.integers(1, 120))
def test_classification_streaming_equals_one_shot(seed, c, n):
    rng = np.random.default_rng(seed)
    y, scores, _ = make_classification(rng, n, c, imbalanced=bool(seed % 2))
    parts = random_splits(rng, n)
    for metric, one_shot in classification_streams():
        out = softmax(scores) if isinstance(metric, LogLoss) else scores
        got = stream(metric, y, out, parts)
        np.testing.assert_allclose(got, one_shot(y, scores), rtol=1e-12, atol=1e-15, err_msg=repr(metric))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 150), d=st.sampled_from([None, 1, 3]))
def test_regression_streaming_equals_one_shot(seed, n, d):
    rng = np.random.default_rng(seed)
    shape = (n,) if d is None else (n, d)
    y = rng.normal(100.0, 0.5, size=shape)  # large mean, small spread: a naive sum-of-squares R2 would drift
    pred = y + rng.normal(0.0, 0.3, size=shape)
    parts = random_splits(rng, n)
    for metric, one_shot in [(MeanSquaredError(), mse), (MeanAbsoluteError(), mae), (R2(), r2_score)]:
        got = stream(metric, y, pred, parts)
        assert got == pytest.approx(one_shot(y, pred), rel=1e-9, abs=1e-12), repr(metric)
        assert got == pytest.approx(
            getattr(skm, {"mse": "mean_squared_error", "mae": "mean_absolute_error", "r2": "r2_score"}[metric.name])(
                y, pred
            ),
            rel=1e-9,
        )


def test_streaming_label_predictions_and_growing_confusion():
    cm = ConfusionMatrix()
    cm.update([0, 1], [0, 0])
    cm.update([4, 2], [4, 3])  # a larger label arrives: the matrix grows and keeps its counts
    np.testing.assert_array_equal(cm.compute(), skm.confusion_matrix([0, 1, 4, 2], [0, 0, 4, 3], labels=range(5)))
    cm.reset()
    with pytest.raises(ValueError, match="no samples"):
        cm.compute()


def test_metric_call_is_one_shot_and_reset_forgets():
    m = Accuracy()
    m.update([0, 0], [1, 1])
    assert m([0, 1], [0, 1]) == 1.0
    m.reset()
    with pytest.raises(ValueError, match=r"Accuracy.compute\(\) called with no samples"):
        m.compute()


# ------------------------------------------------------------------------------------------------------- registry
def test_registry_builds_fresh_metrics():
    for name, factory in METRICS.items():
        m = factory()
        assert isinstance(m, Metric) and m.name == name
        assert get_metric(name) is not get_metric(name)
    assert get_metric("top5").k == 5 and get_metric("top3").k == 3 and get_metric("Accuracy").name == "accuracy"
    m = F1(average="weighted")
    assert get_metric(m) is m
    assert isinstance(get_metric(R2), R2)
    assert R2.greater_is_better and not MeanSquaredError.greater_is_better


def test_registry_errors_list_names():
    with pytest.raises(ValueError, match=r"unknown metric 'acc'; known metrics: accuracy, confusion_matrix, f1"):
        get_metric("acc")
    with pytest.raises(TypeError, match="got int"):
        get_metric(3)


# --------------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: accuracy([0, 1, 2], [0, 1]), r"accuracy: y_true has 3 samples \(shape \(3,\)\) but the output has 2"),
        (lambda: accuracy([[0], [1]], [0, 1]), r"accuracy: y_true has shape \(2, 1\), expected 1-D class labels"),
        (lambda: accuracy([0, 1], np.zeros((2, 1))), r"accuracy: scores of shape \(2, 1\) have a single column"),
        (lambda: accuracy([0, 1], np.zeros((2, 3, 4))), r"output has shape \(2, 3, 4\), expected class labels"),
        (lambda: accuracy([0.5, 1], [0, 1]), r"accuracy: y_true must hold integer class labels, got the value 0.5"),
        (lambda: accuracy([-1, 1], [0, 1]), r"accuracy: y_true holds the negative label -1"),
        (lambda: accuracy([], []), r"accuracy: got no samples"),
        (
            lambda: confusion_matrix([0, 5], [0, 1], num_classes=3),
            r"confusion_matrix: y_true holds the label 5, out of range for num_classes=3 \(labels must be integers in",
        ),
        (lambda: confusion_matrix([0, 1], [0, 4], num_classes=3), r"y_pred holds the label 4, out of range"),
        (lambda: confusion_matrix([0, 3], np.zeros((2, 3))), r"label 3, out of range for num_classes=3 \(the scores"),
        (lambda: confusion_matrix([0, 1], np.zeros((2, 3)), num_classes=4), r"num_classes=4 but the scores have 3"),
        (lambda: confusion_matrix([0, 1], [0, 1], num_classes=0), r"num_classes must be a positive integer, got 0"),
        (lambda: precision_recall_f1([0, 1], [0, 1], average="binary"), r"average must be one of .*got 'binary'"),
        (lambda: top_k_accuracy([0, 1], np.zeros((2, 3)), k=0), r"top_k_accuracy: k must be a positive integer"),
        (lambda: top_k_accuracy([0, 1], np.zeros(2), k=1), r"top_k_accuracy: scores have shape \(2,\), expected"),
        (lambda: top_k_accuracy([0, 9], np.zeros((2, 3)), k=1), r"label 9, out of range for num_classes=3"),
        (lambda: mse(np.zeros(4), np.zeros(5)), r"mse: y_true has shape \(4,\) and y_pred has shape \(5,\)"),
        (lambda: r2_score(np.zeros((4, 2)), np.zeros((4, 3))), r"r2_score: y_true has shape \(4, 2\)"),
        (lambda: mae(np.zeros((4, 2)), np.zeros(4)), r"mae: y_true has shape \(4, 2\) and y_pred has shape \(4,\)"),
        (lambda: log_loss([0, 1], [[2.0, -1.0], [0.5, 0.5]]), r"log_loss: probabilities must lie in \[0, 1\]"),
        (lambda: log_loss([0, 1], [[0.2, 0.2], [0.5, 0.5]]), r"log_loss: each row of probabilities must sum to 1"),
        (lambda: log_loss([0, 2], [[0.5, 0.5], [0.5, 0.5]]), r"log_loss: y_true holds the label 2, out of range"),
        (lambda: TopK(2.5), r"TopK: k must be a positive integer, got 2.5"),
        (lambda: F1(average="samples"), r"F1: average must be one of"),
    ],
)
def test_errors_name_metric_expected_and_received(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_streaming_errors():
    m = MeanSquaredError()
    m.update(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"mse: batch has shape \(3, 4\), but earlier batches had shape \(N, \*\(2,\)"):
        m.update(np.zeros((3, 4)), np.zeros((3, 4)))
    cm = ConfusionMatrix()
    cm.update([0, 1], np.zeros((2, 5)))
    with pytest.raises(ValueError, match="scores have 3 columns, but earlier batches had 5"):
        cm.update([0, 1], np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"f1: y_pred holds the label 3, out of range for num_classes=3"):
        F1(num_classes=3).update([0, 1], [0, 3])
    with pytest.raises(ValueError, match=r"top5: y_true has 2 samples"):
        TopK(5).update([0, 1], np.zeros((3, 5)))


def test_accuracy_update_array_fast_path_still_checks():
    # fit's per-step call (int64 labels and float scores as arrays) skips the generic conversion, not the checks
    m = Accuracy()
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]], dtype=np.float32)
    m.update(np.array([1, 0, 0]), scores)
    m.update(np.array([1], dtype=np.uint8), scores[:1])
    assert m.compute() == 0.75
    with pytest.raises(ValueError, match="negative label -1"):
        m.update(np.array([1, -1, 0]), scores)
    with pytest.raises(ValueError, match="y_true has 2 samples"):
        m.update(np.array([1, 0]), scores)
    with pytest.raises(ValueError, match="single column"):
        m.update(np.array([1, 0, 0]), scores[:, :1])
