"""Text runs from the command line: a built-in text dataset or the user's own CSV/TSV, the tokenizer saved with the
run, evaluate/predict --text/summary on it, resume, and one-line errors for every user mistake."""

from __future__ import annotations

import contextlib
import csv
import io as _io
import json
import os
from pathlib import Path

import numpy as np
import pytest

import neuronkit as nk
from neuronkit.cli import main

DATA = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TEXT = DATA / "text"
FAST = (
    "--model",
    "bow",
    "--epochs",
    "2",
    "--batch-size",
    "64",
    "--embed-dim",
    "16",
    "--hidden",
    "16",
    "--probe-every",
    "5",
)


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def one_line_error(rc, stderr, *parts):
    assert rc == 1, stderr
    assert stderr.count("\n") == 1 and stderr.startswith("neuronkit: error: "), stderr
    for p in parts:
        assert p in stderr, stderr


@pytest.fixture(scope="module")
def sentiment_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "sentiment"
    rc, stdout, stderr = run_cli("train", "--data", "sentiment", "--data-dir", TEXT, *FAST, "--out", out)
    assert rc == 0, stderr
    return out, stdout


def test_train_on_a_text_dataset_writes_the_run_with_its_tokenizer(sentiment_run):
    run, stdout = sentiment_run
    for name in ("config.json", "tokenizer.json", "model/architecture.json", "metrics.json", "probes/probes.json"):
        assert (run / name).is_file(), name
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["model"] == "bow"
    assert config["data"]["text"]["kind"] == "word" and config["data"]["classes"] == ["negative", "positive"]
    assert config["data"]["sizes"] == {"train": 2160, "validation": 240, "test": 600}
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["samples"] == 600 and 0.5 < metrics["accuracy"] <= 1.0
    assert "training bow on sentiment (2160 train, 240 validation, 600 test" in stdout
    model = nk.load(run / "model")
    assert type(model).__name__ == "TextClassifier"
    tok = json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))
    assert len(tok["vocab"]) == config["data"]["text"]["vocab_size"] == model.embedding.num_embeddings


def test_evaluate_predict_and_summary_on_a_text_run(sentiment_run, tmp_path):
    run, _ = sentiment_run
    rc, out, err = run_cli("evaluate", run, "--json")
    assert rc == 0, err
    m = json.loads(out)
    assert m == {**m, **{k: v for k, v in json.loads((run / "metrics.json").read_text()).items() if k in m}}
    rc, out, err = run_cli("predict", run, "--text", "Great food, friendly staff!", "--text", "awful, never again")
    assert rc == 0, err
    rows = list(csv.reader(_io.StringIO(out)))
    assert rows[0] == ["index", "class", "label", "p_negative", "p_positive", "text"]
    assert rows[1][-1] == "Great food, friendly staff!" and len(rows) == 3
    p = np.array([[float(v) for v in r[3:5]] for r in rows[1:]])
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert [r[2] for r in rows[1:]] == ["negative" if a > b else "positive" for a, b in p]
    lines = tmp_path / "lines.txt"
    lines.write_text("Great food, friendly staff!\n\n  \nawful, never again\n", encoding="utf-8")
    rc, out2, err = run_cli("predict", run, lines)
    assert rc == 0, err and out2 == out
    rc, out, err = run_cli("summary", run)
    assert rc == 0, err
    assert (
        "embedding (Embedding)" in out and "encoder (SequencePool)" in out and "head.2 (Dense)" in out
    )  # head.1: Dropout(0.5)
    rc, out, err = run_cli("predict", run)
    one_line_error(rc, err, "nothing to predict")


def test_predict_uses_the_saved_tokenizer_and_a_damaged_one_is_one_line(sentiment_run, tmp_path):
    import shutil

    run, _ = sentiment_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "tokenizer.json").write_text('{"format": "neuronkit.text_encoder", "version": 1, "vocab": 5}')
    rc, _, err = run_cli("predict", copy, "--text", "good")
    one_line_error(rc, err, "tokenizer.json", "'tokenizer' must be")
    (copy / "tokenizer.json").unlink()
    rc, _, err = run_cli("predict", copy, "--text", "good")
    one_line_error(rc, err, "tokenizer.json is missing")


def _reviews_csv(path: Path, n=600, delimiter=","):
    """Yelp and Amazon sentences as a review table: a title (first word), the rest, and 1/5 stars."""
    rows = []
    for f in ("yelp_labelled.txt", "amazon_cells_labelled.txt"):
        for line in (TEXT / "sentiment_labelled_sentences" / f).read_text(encoding="utf-8").splitlines():
            text, label = line.rsplit("\t", 1)
            words = text.split()
            if len(words) > 1:
                rows.append([words[0], " ".join(words[1:]), "5" if label.strip() == "1" else "1"])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter)
        w.writerow(["title", "review", "stars"])
        w.writerows(rows[:n])
    return path


def test_train_on_your_own_csv_with_joined_text_columns(tmp_path):
    data = _reviews_csv(tmp_path / "reviews.csv", n=1500)
    out = tmp_path / "run"
    rc, _, err = run_cli(
        "train", "--data", data, "--text", "title", "--text", "review", "--target", "stars", *FAST, "--out", out
    )
    assert rc == 0, err
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["text"] == ["title", "review"] and config["data"]["classes"] == ["1", "5"]
    assert config["data"]["target_name"] == "stars"
    # evaluate on a labelled file: every row, through the run's tokenizer and columns
    rc, o, err = run_cli("evaluate", out, "--data", data, "--json")
    assert rc == 0, err
    assert json.loads(o)["samples"] == 1500
    rc, o, err = run_cli("predict", out, data)  # a .csv input: the run's text columns
    assert rc == 0, err
    assert len(o.strip().splitlines()) == 1501


def test_resume_a_text_run_equals_an_uninterrupted_one(tmp_path):
    common = (
        "--data",
        "sentiment",
        "--data-dir",
        TEXT,
        "--model",
        "bow",
        "--batch-size",
        "64",
        "--embed-dim",
        "8",
        "--hidden",
        "8",
    )
    assert run_cli("train", *common, "--epochs", "1", "--out", tmp_path / "a")[0] == 0
    rc, _, err = run_cli("train", "--resume", tmp_path / "a", "--epochs", "2")
    assert rc == 0, err
    assert run_cli("train", *common, "--epochs", "2", "--out", tmp_path / "b")[0] == 0
    a, b = nk.load(tmp_path / "a" / "model").state_dict(), nk.load(tmp_path / "b" / "model").state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in b)
    assert (tmp_path / "a" / "tokenizer.json").read_bytes() == (tmp_path / "b" / "tokenizer.json").read_bytes()


@pytest.mark.parametrize("tokenizer", ["char", "bpe", "wordpiece"])
def test_other_tokenizers_train_and_predict(tokenizer, tmp_path):
    out = tmp_path / "run"
    args = ("--data", "sentiment", "--data-dir", TEXT, "--tokenizer", tokenizer, "--vocab-size", "500")
    rc, _, err = run_cli("train", *args, *FAST, "--out", out)
    assert rc == 0, err
    assert json.loads((out / "tokenizer.json").read_text(encoding="utf-8"))["tokenizer"]["kind"] == tokenizer
    rc, o, err = run_cli("predict", out, "--text", "Loved it")
    assert rc == 0 and o.count("\n") == 2, err


@pytest.mark.parametrize(
    "content, args, parts",
    [
        ("title,review,stars\na,good,5\nb,,1\n", ("--text", "review"), ["row 3, column 'review'", "empty text"]),
        ("title,review,stars\na,good,5\nb,bad,5\n", ("--text", "review"), ["one class ('5')", "column 'stars'"]),
        ("title,review,stars\na,good,5\n", ("--text", "body"), ["no text column 'body'"]),
        ("title,review,stars\na,good,5\nb,bad,\n", ("--text", "review"), ["missing label at row 3, column 'stars'"]),
    ],
)
def test_bad_text_files_are_one_line_naming_file_row_and_column(content, args, parts, tmp_path):
    data = tmp_path / "r.csv"
    data.write_text(content, encoding="utf-8")
    rc, _, err = run_cli("train", "--data", data, *args, "--out", tmp_path / "run")
    one_line_error(rc, err, str(data), *parts)


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    data = tmp_path / "r.csv"
    data.write_bytes("review,stars\nok,5\ncaf\xe9,1\n".encode("latin-1"))
    rc, _, err = run_cli("train", "--data", data, "--text", "review", "--out", tmp_path / "run")
    one_line_error(rc, err, str(data), "not UTF-8", "row 3, column 1")


def test_missing_text_files_and_mismatched_models_are_one_line(tmp_path):
    rc, _, err = run_cli("train", "--data", "sst2", "--data-dir", tmp_path, "--out", tmp_path / "run")
    one_line_error(rc, err, "glue/train_full.tsv not found in " + str(tmp_path), "SST-2.zip")
    rc, _, err = run_cli("train", "--data", "sms_spam", "--data-dir", TEXT, "--model", "lenet", "--out", tmp_path / "r")
    one_line_error(rc, err, "model 'lenet' does not read text")
    rc, _, err = run_cli("train", "--data", "digits", "--model", "bow", "--out", tmp_path / "r2")
    one_line_error(rc, err, "model 'bow' reads text")
    rc, _, err = run_cli("train", "--data", "sms_spam", "--data-dir", TEXT, "--tokenizer", "spaces", "--out", tmp_path)
    assert rc == 2 and "invalid choice" in err


def test_datasets_lists_text_sets_with_sizes_and_where_they_are_looked_for(tmp_path):
    rc, out, err = run_cli("datasets", "--data-dir", TEXT)
    assert rc == 0, err
    assert "sms_spam" in out and "5,574" in out and "70,042" in out
    assert f"sst2       67,349 train, 872 validation, 1,821 test: found in {TEXT / 'sst2'}" in out
    rc, out, _ = run_cli("datasets", "--data-dir", tmp_path)
    assert f"missing (searched {tmp_path / 'sms_spam'}, {tmp_path / 'text' / 'sms_spam'}, {tmp_path})" in out


def test_summary_of_a_text_model_before_training():
    rc, out, err = run_cli("summary", "--model", "bow", "--data", "sentiment", "--data-dir", TEXT)
    assert rc == 0, err
    assert "Embedding" in out and "total params" in out


@pytest.mark.parametrize("command", [["report"], ["diagnose"], ["gradcheck"], ["inspect", "--layer", "head.0"]])
def test_commands_that_look_inside_a_run_read_text_runs(command, sentiment_run, tmp_path):
    run, _ = sentiment_run
    extra = ["--out", tmp_path / "r.html"] if command[0] == "report" else []
    rc, out, err = run_cli(command[0], run, *command[1:], *extra)
    assert rc in ((0, 1) if command[0] == "diagnose" else (0,)), err  # diagnose: 1 when a finding is an error
    assert "does not read text runs" not in err + out and err == "", err
    assert "sentiment (test split)" in out or command[0] in ("report", "inspect")
