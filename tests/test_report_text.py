"""The report's "Reading the texts" section: built from a Python transformer text model (attention maps), with
every text escaped, and the numbers of each picture embedded beside it."""

from __future__ import annotations

import json
import re

import numpy as np
from test_inspect_sequence import Attend

from neuronkit import nn
from neuronkit.cli.textinsight import REPORT_MISTAKES, TextTest, text_report
from neuronkit.data.text import TextEncoder
from neuronkit.report import ReportData
from neuronkit.report.page import build_report
from neuronkit.report.text import Mistake, TextReport

TEXTS = [
    "a gripping funny film",
    "dull and far too long",
    "<script>alert(1)</script> is not a review",
    "the best film of the year",
    "never again",
    "funny , moving , and long",
]
LABELS = np.array([1, 0, 0, 1, 0, 1])


def _model(vocab, seed=0):
    e = 8
    return nn.TextClassifier(
        nn.Embedding(vocab, e, padding_idx=0, generator=seed),
        Attend(nn.TransformerEncoderLayer(e, 2, 16, dropout=0.0, generator=seed)),
        nn.Dense(e, 2, generator=seed),
    )


def test_reading_the_texts_of_an_attention_model():
    enc = TextEncoder("word", True, 1, None, 32).fit(TEXTS)
    tt = TextTest(TEXTS, LABELS, enc.dataset(TEXTS, LABELS), "toy (test split)", "toy")
    model = _model(len(enc))
    outputs = np.asarray(model(*tt.batch()[:2]).data)
    classes = ["negative", "positive"]
    t = text_report(enc, model, tt, outputs, classes)
    wrong = np.flatnonzero(outputs.argmax(1) != LABELS)
    assert len(t.mistakes) == min(REPORT_MISTAKES, len(wrong)) and {m.index for m in t.mistakes} == set(wrong)
    assert all(m.error <= 0.01 for m in t.mistakes)  # attributions complete within 1 %
    assert [u.unit for u in t.units] == [0, 1, 2] and t.units[0].layer == "encoder.layer"
    assert len(t.attention) == 3  # the first three test texts, one layer
    html = build_report(ReportData(title="t", epochs=[], classes=classes, text=t))
    assert "<script>alert" not in html
    blobs = [
        json.loads(b) for b in re.findall(r'<script type="application/json" class="plot-data">(.*?)</script>', html)
    ]
    first = next(b for b in blobs if b.get("text") == 0)
    w = np.array(first["weights"])  # (heads, tokens, tokens): each query's weights sum to 1
    assert w.shape == (2, 4, 4) and first["tokens"] == ["a", "gripping", "funny", "film"]
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-3)


def test_no_text_section_for_other_runs():
    html = build_report(ReportData(title="t", epochs=[]))
    assert "Reading the texts" not in html


def test_every_token_is_escaped_and_coloured_by_its_push():
    words = ["<", "script", ">", "hello"]
    m = Mistake(2, words, np.array([1.0, -0.5, 0.0, 0.25]), "neg", "pos", 0.9, 0.001)
    html = build_report(ReportData(title="t", epochs=[], text=TextReport(mistakes=[m])))
    assert "<script>" not in html and '>&lt;</span> <span class="tok"' in html
    assert 'style="background:rgb(115, 255, 115)" title="+1.000">&lt;' in html  # strongest push towards: green
    assert 'style="background:rgb(255, 185, 185)" title="-0.500">script' in html  # against, half as strong: red
