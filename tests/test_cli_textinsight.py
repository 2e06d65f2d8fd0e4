"""gradcheck, diagnose, report, inspect and explain on a text run (a bag of embeddings on SMS spam): each reads the
run's test texts through its own tokenizer, and each user mistake is one line."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from test_cli_text import TEXT, one_line_error, run_cli

import neuronkit as nk
from neuronkit.cli.rundir import RunDir
from neuronkit.cli.text import load_encoder

FAST = ("--epochs", "3", "--batch-size", "64", "--embed-dim", "16", "--hidden", "16", "--probe-every", "5")


@pytest.fixture(scope="module")
def spam_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "spam"
    rc, _, err = run_cli("train", "--data", "sms_spam", "--data-dir", TEXT, "--model", "bow", *FAST, "--out", out)
    assert rc == 0, err
    return out


def test_gradcheck_on_a_text_run_checks_the_embedding_and_the_head(spam_run):
    rc, out, err = run_cli("gradcheck", spam_run, "--batch-size", "8")
    assert rc == 0, err
    assert "sms_spam (test split)" in out and "batch of 8" in out
    assert re.search(r"layer embedding \(Embedding \d+, 16\):\s+weight .* ok", out), out
    assert "ok: all 5 parameters pass" in out


def test_diagnose_on_a_text_run_reads_its_test_texts(spam_run):
    rc, out, err = run_cli("diagnose", spam_run, "--batch-size", "32")
    assert rc in (0, 1) and err == "", err
    assert "after training on 32 samples of sms_spam (test split), 3 epochs of history" in out


def wrong_count(run) -> int:
    m = json.loads((run / "metrics.json").read_text())
    return round((1 - m["accuracy"]) * m["samples"])


def test_report_on_a_text_run(spam_run, tmp_path):
    page = tmp_path / "report.html"
    rc, out, err = run_cli("report", spam_run, "--out", page)
    assert rc == 0, err
    html = page.read_text(encoding="utf-8")
    assert "Confusion matrix" in html and "Embedding" in html and "bow on sms_spam" in html
    sizes = json.loads((spam_run / "config.json").read_text())["data"]["sizes"]
    assert f"{sizes['test']} test samples" in html
    # the text section: confidently wrong texts with coloured tokens, and the phrases of head.0's first units
    assert "<h2>Reading the texts</h2>" in html and "href='#reading-the-texts'" in html
    assert html.count("<li><b>true ") == min(8, wrong_count(spam_run)) and 'class="tok"' in html
    assert [f"layer head.0, unit {u}" in html for u in range(3)] == [True] * 3 and html.count("<mark>") >= 3


def test_inspect_a_dense_unit_shows_the_test_texts_that_excite_it_with_the_peak_token(spam_run):
    rc, out, err = run_cli("inspect", spam_run, "--layer", "head.0", "--unit", "2", "--top", "3")
    assert rc == 0, err
    assert "layer head.0 (Dense), unit 2" in out and "history:" in out
    assert "the 3 test texts (of 1115) that excite it most" in out
    hits = [ln for ln in out.splitlines() if ln.strip().startswith("text ")]
    assert len(hits) == 3 and all(ln.count("[[") == 1 for ln in hits)
    outputs = [float(re.search(r"output (\S+),", ln).group(1)) for ln in hits]
    assert outputs == sorted(outputs, reverse=True)


def test_inspect_an_embedding_unit_shows_its_value_over_the_tokens(spam_run):
    rc, out, err = run_cli("inspect", spam_run, "--layer", "embedding", "--unit", "0", "--top", "2")
    assert rc == 0, err
    assert out.count("over its tokens:") == 2
    # the peak token's value is the largest activation printed for the text
    line = next(ln for ln in out.splitlines() if "largest activation" in ln)
    peak = re.search(r"\[\[(.+?)\]\]", line).group(1)
    values = out.splitlines()[out.splitlines().index(line) + 1].split(":", 1)[1].split()
    best = max(values, key=lambda kv: float(kv.rsplit("=", 1)[1]))
    assert best.rsplit("=", 1)[0] == peak


@pytest.mark.parametrize(
    "args, parts",
    [
        (["--layer", "nope"], ["no layer 'nope' with units", "embedding (Embedding, ", "head.0 (Dense, 16 units)"]),
        (["--layer", "head.2", "--unit", "2"], ["layer head.2 has units 0 to 1; got --unit 2"]),
        (["--layer", "head.0", "--top", "-1"], ["--top must be at least 0"]),
    ],
)
def test_inspect_mistakes_on_a_text_run_are_one_line(spam_run, args, parts):
    rc, _, err = run_cli("inspect", spam_run, *args)
    one_line_error(rc, err, *parts)


def test_explain_attributes_the_prediction_to_the_tokens_and_checks_completeness(spam_run):
    text = "WINNER!! You have won a free prize, call now to claim"
    rc, out, err = run_cli("explain", spam_run, "--text", text, "--text", "see you at lunch")
    assert rc == 0, err
    assert out.count("prediction: ") == 2 and "\x1b[" not in out  # not a terminal: no colour
    first = out.split("prediction: ")[1]
    m = re.search(r"difference (\S+); the attributions add up to (\S+) \((\d+) steps, completeness error (\S+)%", first)
    delta, total, err_pct = float(m.group(1)), float(m.group(2)), float(m.group(4))
    assert err_pct <= 1.0 and abs(total - delta) <= 0.011 * abs(delta) + 1e-3
    assert "winner(" in first and "claim(" in first
    # the printed attributions are those of the Python API on the run's model and tokenizer
    run = RunDir(spam_run)
    ids, lengths = load_encoder(run).dataset([text]).get_batch(np.arange(1))[:2]
    a = nk.inspect.integrated_gradients(nk.load(spam_run / "model"), ids, lengths)
    assert f"claim({a.scores[-1]:+.3g})" in first
    rc, colored, _ = run_cli("explain", spam_run, "--text", text, "--color", "always")
    assert rc == 0 and "\x1b[48;5;" in colored


@pytest.mark.parametrize(
    "args, parts",
    [
        (["--text", "   "], ["--text is empty"]),
        (["--text", "hi", "--target", "eggs"], ["--target 'eggs' is not one of the model's classes"]),
        (["--text", "hi", "--steps", "1"], ["--steps must be at least 2"]),
    ],
)
def test_explain_mistakes_are_one_line(spam_run, args, parts):
    rc, _, err = run_cli("explain", spam_run, *args)
    one_line_error(rc, err, *parts)


def test_explain_needs_a_text_run(tmp_path):
    out = tmp_path / "digits"
    rc, _, err = run_cli("train", "--data", "digits", "--epochs", "1", "--out", out)
    assert rc == 0, err
    rc, _, err = run_cli("explain", out, "--text", "hello")
    one_line_error(rc, err, "is not a text run: explain needs a model trained on text")


def test_diagnose_says_when_the_maximum_length_cuts_the_texts(tmp_path):
    out = tmp_path / "short"
    args = ("--epochs", "1", "--embed-dim", "8", "--hidden", "8", "--max-len", "6")
    rc, _, err = run_cli("train", "--data", "sentiment", "--data-dir", TEXT, *args, "--out", out)
    assert rc == 0, err
    rc, text, err = run_cli("diagnose", out)
    assert rc in (0, 1) and err == "", err
    line = next(ln for ln in text.splitlines() if "longer than the maximum length of 6 tokens" in ln)
    assert line.startswith("WARNING data:") and re.search(r"--max-len \d+", line)
    # the remedy is re-run: a trial reads the texts again with the longer maximum length
    rc, text, err = run_cli("diagnose", out, "--try-fix", "--fix-epochs", "1")
    assert rc in (0, 1) and "does not read text runs" not in err, err
    m = re.search(r"remedy (\d+) \(proposed for truncated_sequences\): max_len=(\d+)", text)
    assert m and int(m.group(2)) > 6, text
    assert re.search(rf"  remedy {m.group(1)} +\d\.\d{{4}} +\d\.\d{{4}} +\d+\.\d%", text), text


def test_a_healthy_text_run_is_diagnosed_without_warnings(tmp_path):
    """A BiLSTM that learns SMS spam (98.4 % at seed 0; 86.6 % is "all ham") ends with logits about 130x the
    embedding vectors' scale: a confident classifier, which diagnose once called an exploding activation."""
    from neuronkit.autograd import no_grad
    from neuronkit.cli.rundir import load_run
    from neuronkit.cli.textinsight import test_split

    out = tmp_path / "bilstm"
    args = ("--model", "bilstm", "--epochs", "4", "--embed-dim", "32", "--hidden-size", "32")
    rc, _, err = run_cli("train", "--data", "sms_spam", "--data-dir", TEXT, *args, "--out", out)
    assert rc == 0, err
    assert json.loads((out / "metrics.json").read_text())["accuracy"] >= 0.95  # it learned
    run, cfg, info, model = load_run(out)
    tokens, lengths = test_split(run, cfg, info).batch(1000)[:2]
    model.eval()
    with no_grad():
        ratio = np.std(model(tokens, lengths).data) / np.std(model.embedding(tokens).data)
    assert ratio > 100  # what the old rule (a layer's std over 100x the input's) flagged on the output layer
    rc, text, err = run_cli("diagnose", out, "--json")
    assert rc == 0 and err == "", err
    serious = [f for f in json.loads(text)["findings"] if f["severity"] != "info"]
    assert serious == [], serious
