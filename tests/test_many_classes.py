"""Many classes: a 10,000-class run trains and reports in bounded memory and output, and the page says what it left
out (the confusion matrix is summarised to the classes with the most errors)."""

from __future__ import annotations

import contextlib
import io as _io
import json
import re
import tracemalloc

import numpy as np
import pytest

from neuronkit.cli import main
from neuronkit.report.page import MAX_CONFUSION_CLASSES, confusion_summary
from neuronkit.train import F1, Precision, Recall, precision_recall_f1

CLASSES = 10_000


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def _plots(html: str) -> dict:
    return {
        m.group(1): json.loads(m.group(2))
        for m in re.finditer(
            r'<figure class="plot" id="plot-([\w-]+)".*?<script type="application/json" class="plot-data">(.*?)'
            r"</script></figure>",
            html,
            re.S,
        )
    }


@pytest.mark.slow  # about 10 s of CPU: training and reporting a 10,000-output model
def test_a_10000_class_report_is_bounded_and_says_what_it_summarised(tmp_path):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(CLASSES), 2)  # two samples a class (the model has 10,000 outputs)
    np.savez(tmp_path / "many.npz", x=rng.normal(size=(len(y), 4)).astype(np.float32), y=y)
    run = tmp_path / "run"
    argv = ["--data", tmp_path / "many.npz", "--hidden", "8", "--epochs", "1", "--batch-size", "1024"]
    rc, _, stderr = run_cli("train", *argv, "--val-fraction", "0", "--probe-every", "2", "--out", run)
    assert rc == 0, stderr
    rc, _, stderr = run_cli("report", tmp_path / "run", "--out", tmp_path / "report.html")
    assert rc == 0, stderr
    size = (tmp_path / "report.html").stat().st_size
    assert size < 2_000_000, size  # before: 300 MB (the whole 10,000 x 10,000 matrix as JSON, and its picture)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    cm = _plots(html)["confusion"]
    assert len(cm["classes"]) == MAX_CONFUSION_CLASSES and cm["classes"][-1] == f"other {CLASSES - 19:,}"
    assert np.array(cm["matrix"]).shape == (MAX_CONFUSION_CLASSES, MAX_CONFUSION_CLASSES)
    assert cm["total_classes"] == CLASSES and len(cm["shown"]) == MAX_CONFUSION_CLASSES - 1
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.array(cm["matrix"]).sum() == metrics["samples"] == 4_000  # the 20 % test split, each sample once
    assert f"Of the {CLASSES:,} classes, the 19 involved in the most test errors" in html  # said on the page


def test_confusion_summary_keeps_the_classes_with_most_errors_and_sums_the_rest():
    # 30 classes; class 7 is confused with 3 five times, 12 with 29 twice, every other sample is right
    y = np.concatenate([np.arange(30).repeat(4), [7] * 5, [12] * 2])
    pred = np.concatenate([np.arange(30).repeat(4), [3] * 5, [29] * 2])
    m, shown = confusion_summary(y, pred, 30, k=5)
    assert shown.tolist() == [3, 7, 12, 29]  # the classes involved in an error, in index order
    assert m.shape == (5, 5) and m.sum() == len(y)
    assert m[1, 0] == 5 and m[2, 3] == 2 and m[4, 4] == 26 * 4  # 7 -> 3, 12 -> 29, the rest all right
    full, none = confusion_summary(y, pred, 30, k=30)
    assert none is None and full.shape == (30, 30) and full[7, 3] == 5
    # ties in errors: the classes with more samples first
    y = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    m, shown = confusion_summary(y, y, 4, k=3)
    assert shown.tolist() == [2, 3] and m.tolist() == [[3, 0, 0], [0, 4, 0], [0, 0, 3]]


@pytest.mark.parametrize("metric", [Precision, Recall, F1])
def test_streaming_precision_recall_f1_need_no_classes_squared_memory(metric):
    c, rng = 5_000, np.random.default_rng(0)
    y, p = rng.integers(0, c, 2_000), rng.integers(0, c, 2_000)
    m = metric(num_classes=c)
    tracemalloc.start()
    try:
        m.update(y, p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak  # before: a (C, C) int64 count matrix, 200 MB at 5,000 classes
    expected = precision_recall_f1(y, p, num_classes=c)[metric._index]
    assert m.compute() == pytest.approx(expected)
