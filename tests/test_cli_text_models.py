"""Every built-in text model from the command line (``--model bow|textcnn|lstm|bilstm|gru|transformer``): trained for
a few tiny epochs on a small CSV, saved and loaded back with identical predictions, resumed to the same weights as an
uninterrupted run, and evaluate/predict --text/summary on it; per-model defaults, flags and TOML, one-line errors."""

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
from neuronkit.cli.textmodels import DEFAULT_TEXT_MODEL, TEXT_DEFAULTS, TEXT_MODELS, auto_epochs

DATA = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TEXT = DATA / "text"
TINY = {
    "bow": ("--embed-dim", "8", "--hidden", "8"),
    "textcnn": ("--embed-dim", "8", "--hidden-size", "4"),
    "lstm": ("--embed-dim", "8", "--hidden-size", "6"),
    "bilstm": ("--embed-dim", "8", "--hidden-size", "6", "--layers", "2"),
    "gru": ("--embed-dim", "8", "--hidden-size", "6", "--pool", "last"),
    "transformer": ("--embed-dim", "8", "--hidden-size", "16", "--heads", "2", "--layers", "1"),
}
LEAF = {  # a layer of each model that summary lists
    "bow": "SequencePool",
    "textcnn": "Conv1d",
    "lstm": "LSTM",
    "bilstm": "LSTM",
    "gru": "GRU",
    "transformer": "LearnedPositionalEmbedding",
}
ENCODER = {
    "bow": "SequencePool",
    "textcnn": "ConvEncoder",
    "lstm": "RecurrentEncoder",
    "bilstm": "RecurrentEncoder",
    "gru": "RecurrentEncoder",
    "transformer": "TransformerTextEncoder",
}


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


GOOD = ["great", "lovely", "superb", "fun", "moving", "funny", "gripping", "wonderful"]
BAD = ["dull", "awful", "boring", "tired", "messy", "weak", "bland", "painful"]
FILLER = ["the", "film", "was", "a", "plot", "and", "with", "cast", "story", "quite", "really"]


@pytest.fixture(scope="module")
def reviews(tmp_path_factory):
    """240 short reviews of 1 to 12 words whose label is carried by a sentiment word somewhere in the text."""
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "label"])
        for i in range(240):
            pos = i % 2 == 0
            words = list(rng.choice(FILLER, size=int(rng.integers(0, 12))))
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(GOOD if pos else BAD)))
            w.writerow([" ".join(words), "pos" if pos else "neg"])
    return path


def _train(reviews, model, out, *extra):
    args = ("--data", reviews, "--text", "review", "--model", model, *TINY[model], "--batch-size", "16", "--seed", "3")
    return run_cli("train", *args, *extra, "--out", out)


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_each_text_model_trains_saves_loads_evaluates_predicts_and_resumes(model, reviews, tmp_path):
    rc, stdout, err = _train(reviews, model, tmp_path / "a", "--epochs", "1")
    assert rc == 0, err
    config = json.loads((tmp_path / "a" / "config.json").read_text())["config"]
    assert config["model"] == model and config["pool"] == ("last" if model == "gru" else TEXT_DEFAULTS[model]["pool"])
    loaded = nk.load(tmp_path / "a" / "model")
    assert type(loaded.encoder).__name__ == ENCODER[model]
    # save and load again: the same predictions, bit for bit
    nk.save(loaded, tmp_path / "copy")
    again = nk.load(tmp_path / "copy").eval()
    loaded.eval()
    tokens = nk.Tensor(np.array([[5, 9, 2, 0, 0], [3, 4, 6, 7, 8], [2, 0, 0, 0, 0]]))
    lengths = nk.Tensor(np.array([3, 5, 1]))
    with nk.no_grad():
        assert np.array_equal(loaded(tokens, lengths).data, again(tokens, lengths).data)
    # evaluate, predict --text and summary on the run
    rc, out, err = run_cli("evaluate", tmp_path / "a", "--json")
    assert rc == 0, err
    assert json.loads(out)["samples"] == 48
    rc, out, err = run_cli("predict", tmp_path / "a", "--text", "a gripping, funny film", "--text", "dull")
    assert rc == 0, err
    assert len(out.strip().splitlines()) == 3 and out.splitlines()[0].startswith("index,class,label,p_neg,p_pos")
    rc, out, err = run_cli("summary", tmp_path / "a")
    assert rc == 0, err
    assert f"({LEAF[model]})" in out and "total params" in out
    # resume to epoch 2 gives the weights of an uninterrupted 2-epoch run
    rc, _, err = run_cli("train", "--resume", tmp_path / "a", "--epochs", "2")
    assert rc == 0, err
    assert _train(reviews, model, tmp_path / "b", "--epochs", "2")[0] == 0
    a, b = nk.load(tmp_path / "a" / "model").state_dict(), nk.load(tmp_path / "b" / "model").state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in b)


def test_a_text_model_learns_the_tiny_task(reviews, tmp_path):
    """The sentiment word decides the label: the text CNN finds it (well above the 50 % of chance)."""
    rc, _, err = _train(reviews, "textcnn", tmp_path / "r", "--epochs", "15", "--lr", "0.01")
    assert rc == 0, err
    assert json.loads((tmp_path / "r" / "metrics.json").read_text())["accuracy"] >= 0.8


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_settings_not_given_come_from_the_models_defaults(model, reviews, tmp_path):
    from neuronkit.cli import config as C

    cfg = C.resolve(None, {"data": str(reviews), "text": ["review"], "model": model})
    for key, value in TEXT_DEFAULTS[model].items():
        assert getattr(cfg, key) == value, key
    flags = {"data": str(reviews), "text": ["review"], "model": model, "epochs": 7, "dropout": 0.25}
    cfg = C.resolve({"embed_dim": 32, "lr": 0.01}, flags)
    assert (cfg.epochs, cfg.dropout, cfg.embed_dim, cfg.lr) == (7, 0.25, 32, 0.01)


def test_a_text_run_without_model_gets_the_default_text_model(reviews, tmp_path):
    from neuronkit.cli import config as C

    cfg = C.resolve(None, {"data": str(reviews), "text": ["review"]})
    assert cfg.model == DEFAULT_TEXT_MODEL and cfg.epochs is None  # None: auto_epochs, once the data is read
    cfg = C.resolve(None, {"data": "digits"})  # other runs keep their defaults and take no text-model setting
    assert (cfg.model, cfg.epochs, cfg.dropout, cfg.pool, cfg.hidden_size) == ("mlp", 20, 0.0, None, None)


def test_default_epochs_make_about_2100_steps_whatever_the_data_size(reviews, tmp_path):
    assert [auto_epochs(n) for n in (1053, 63, 700, 5000, 3)] == [2, 34, 3, 2, 50]  # SST-2, SMS spam, ..., capped
    rc, _, err = _train(reviews, "bow", tmp_path / "run", "--batch-size", "64")  # 173 texts: 3 steps an epoch
    assert rc == 0, err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["config"]["epochs"] == 50
    assert len((tmp_path / "run" / "history.jsonl").read_text().splitlines()) == 50
    rc, out, err = run_cli("train", "--resume", tmp_path / "run")  # the resolved number is the run's: nothing to add
    assert rc == 0 and "its 50 epochs are done" in out, err


def test_text_model_settings_from_toml(reviews, tmp_path):
    toml = tmp_path / "lstm.toml"
    toml.write_text(
        f'data = "{reviews.as_posix()}"\ntext = "review"\nmodel = "bilstm"\nhidden-size = 5\nembed_dim = 6\n'
        'pool = "mean"\nepochs = 1\nbatch_size = 32\n',
        encoding="utf-8",
    )
    rc, _, err = run_cli("train", "--config", toml, "--out", tmp_path / "run")
    assert rc == 0, err
    m = nk.load(tmp_path / "run" / "model")
    assert (m.encoder.rnn.hidden_size, m.encoder.rnn.bidirectional, m.encoder.pool) == (5, True, "mean")
    assert m.embedding.embedding_dim == 6


@pytest.mark.parametrize(
    "args, parts",
    [
        (
            ("--model", "transformer", "--embed-dim", "10", "--heads", "4"),
            ["embed_dim 10 must be a multiple of heads 4"],
        ),
        (("--model", "textcnn", "--pool", "mean"), ["pool must be one of max for model 'textcnn', got 'mean'"]),
        (("--model", "bow", "--pool", "last"), ["pool must be one of mean, max for model 'bow'"]),
        (("--model", "textcnn", "--layers", "2"), ["layers does not apply to model 'textcnn'"]),
        (("--model", "lstm", "--heads", "2"), ["heads does not apply to model 'lstm'"]),
        (("--model", "gru", "--hidden-size", "0"), ["hidden_size must be >= 1, got 0"]),
        (("--model", "lstm", "--layers", "-1"), ["layers must be >= 1, got -1"]),
    ],
)
def test_bad_text_model_settings_are_one_line(args, parts, reviews, tmp_path):
    rc, _, err = run_cli("train", "--data", reviews, "--text", "review", *args, "--out", tmp_path / "run")
    one_line_error(rc, err, *parts)


def test_text_model_settings_on_a_run_that_does_not_read_text_are_one_line(tmp_path):
    rc, _, err = run_cli("train", "--data", "digits", "--hidden-size", "8", "--out", tmp_path / "run")
    one_line_error(rc, err, "hidden_size applies to text models only")
    rc, _, err = run_cli("train", "--data", "digits", "--model", "lstm", "--out", tmp_path / "run")
    one_line_error(rc, err, "model 'lstm' reads text")


@pytest.mark.parametrize("model", TEXT_MODELS)
def test_summary_of_each_text_model_before_training(model):
    rc, out, err = run_cli("summary", "--model", model, "--data", "sentiment", "--data-dir", TEXT)
    assert rc == 0, err
    assert f"({LEAF[model]})" in out and "total params" in out
