"""The ``neuronkit`` command line: train/evaluate/predict/datasets/summary, run directories, resume, user mistakes."""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neuronkit as nk
from neuronkit.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
RUN_FILES = (
    "config.json",
    "model/architecture.json",
    "model/model.safetensors",
    "history.jsonl",
    "metrics.json",
    "checkpoints/latest",
)


def run_cli(*argv) -> tuple:
    """``(exit status, stdout, stderr)`` of ``neuronkit argv...`` run in-process."""
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def epochs_of(run: Path) -> list:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """``neuronkit train --data digits`` with every default."""
    out = tmp_path_factory.mktemp("runs") / "digits"
    rc, stdout, stderr = run_cli("train", "--data", "digits", "--out", out)
    assert rc == 0, stderr
    return out, stdout


@pytest.fixture
def digits_arrays():
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32), d.target


# -- train, evaluate, predict -----------------------------------------------------------------------------------------
def test_train_digits_defaults_reach_97_percent_and_write_the_run_dir(digits_run):
    run, stdout = digits_run
    for name in RUN_FILES:
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["samples"] == 359
    assert metrics["accuracy"] >= 0.97, metrics
    assert metrics["epochs"] == 20 and 0 < metrics["train_time_s"] < 60
    config = json.loads((run / "config.json").read_text())
    assert config["config"]["model"] == "mlp" and config["config"]["hidden"] == [128]
    assert config["config"]["optimizer"] == "adam" and config["config"]["lr"] == 1e-3
    assert config["data"]["task"] == "classification" and config["data"]["sizes"]["test"] == 359
    assert config["data"]["standardize"]["type"] == "Standardize"
    history = epochs_of(run)
    assert [e["epoch"] for e in history] == list(range(1, 21))
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(history[-1])
    lines = stdout.splitlines()
    assert sum(line.startswith("epoch ") for line in lines) == 20  # one line per epoch when piped
    assert "test accuracy" in lines[-1] and str(run) in lines[-1]
    model = nk.load(run / "model")
    assert sum(p.size for p in model.parameters()) == 64 * 128 + 128 + 128 * 10 + 10


def test_evaluate_reproduces_metrics_json(digits_run):
    run, _ = digits_run
    rc, stdout, stderr = run_cli("evaluate", run, "--json")
    assert rc == 0, stderr
    got = json.loads(stdout)
    want = json.loads((run / "metrics.json").read_text())
    assert got["accuracy"] == want["accuracy"] and got["samples"] == want["samples"]
    rc, stdout, _ = run_cli("evaluate", run)
    assert rc == 0 and f"accuracy {want['accuracy']:.4f}" in stdout


def test_predict_npy_and_csv(digits_run, digits_arrays, tmp_path):
    run, _ = digits_run
    x, y = digits_arrays
    np.save(tmp_path / "x.npy", x[:50])
    rc, stdout, stderr = run_cli("predict", run, tmp_path / "x.npy")
    assert rc == 0, stderr
    lines = stdout.strip().splitlines()
    # digits' classes are their numbers: one column says the class (a label column would repeat it)
    assert lines[0].split(",")[:3] == ["index", "class", "p_0"] and len(lines[0].split(",")) == 12
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 50
    assert all(abs(sum(float(v) for v in r[2:]) - 1) < 1e-4 for r in rows)
    assert np.mean([int(r[1]) for r in rows] == y[:50]) >= 0.9
    # a CSV with a header and the label column: the label column is left out when named with --target
    header = ",".join([f"px{i}" for i in range(64)] + ["digit"])
    np.savetxt(tmp_path / "x.csv", np.c_[x[:20], y[:20]], delimiter=",", header=header, comments="", fmt="%g")
    out = tmp_path / "pred.csv"
    rc, _, stderr = run_cli("predict", run, tmp_path / "x.csv", "--target", "digit", "--output", out)
    assert rc == 0, stderr
    pred = out.read_text().strip().splitlines()
    assert len(pred) == 21 and [r.split(",")[1] for r in pred[1:]] == [r[1] for r in rows[:20]]
    # a plain CSV of features without a header
    np.savetxt(tmp_path / "plain.csv", x[:5], delimiter=",", fmt="%g")
    rc, stdout, _ = run_cli("predict", run, tmp_path / "plain.csv")
    assert rc == 0 and [r.split(",")[1] for r in stdout.strip().splitlines()[1:]] == [r[1] for r in rows[:5]]


def test_datasets_lists_digits_and_mnist():
    rc, stdout, _ = run_cli("datasets")
    assert rc == 0
    names = [line.split()[0] for line in stdout.splitlines()[1:]]
    assert {"digits", "mnist", "iris", "fashion_mnist"} <= set(names)
    digits = next(line for line in stdout.splitlines() if line.startswith("digits"))
    assert "1,797" in digits and "64" in digits and "scikit-learn" in digits


def test_summary_of_a_run_and_of_a_model(digits_run):
    rc, stdout, _ = run_cli("summary", digits_run[0])
    assert rc == 0 and "Dense" in stdout and "9,610" in stdout
    rc, stdout, _ = run_cli("summary", "--model", "mlp", "--data", "digits", "--hidden", "32")
    assert rc == 0 and f"{64 * 32 + 32 + 32 * 10 + 10:,}" in stdout
    rc, stdout, _ = run_cli("summary", "--model", "lenet", "--data", "mnist")
    assert rc == 0 and "Conv2d" in stdout and "(1, 32, 7, 7)" in stdout


def test_learning_flags_reach_the_model_and_the_optimizer(tmp_path):
    out = tmp_path / "run"
    rc, _, stderr = run_cli(
        "train",
        "--data",
        "iris",
        "--epochs",
        "2",
        "--init",
        "he_uniform",
        "--weight-decay",
        "0.01",
        "--clip-grad-norm",
        "1.5",
        "--optimizer",
        "sgd",
        "--lr",
        "0.1",
        "--out",
        out,
    )
    assert rc == 0, stderr
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["init"], config["weight_decay"], config["clip_grad_norm"]) == ("he_uniform", 0.01, 1.5)
    arch = json.loads((out / "model" / "architecture.json").read_text())
    assert '"he_uniform"' in json.dumps(arch)  # every Dense layer was built with the initialiser
    from neuronkit.cli import training as T
    from neuronkit.cli.config import resolve

    cfg = resolve(None, {"optimizer": "sgd", "weight_decay": 0.01, "lr": 0.1})
    opt = nk.optim.make_optimizer(cfg.optimizer, nk.nn.Dense(2, 2).parameters(), **T.optimizer_options(cfg))
    assert opt.param_groups[0]["weight_decay"] == 0.01
    cfg = resolve(None, {"optimizer": "adamw"})
    adamw = nk.optim.make_optimizer(cfg.optimizer, nk.nn.Dense(2, 2).parameters(), **T.optimizer_options(cfg))
    assert adamw.param_groups[0]["weight_decay"] == 1e-2  # not given: the optimizer's own default


def test_toml_config_with_flag_override(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('data = "iris"\nhidden = [16]\nepochs = 40\nlr = 0.01\nbatch-size = 16\nschedule = "cosine"\n')
    out = tmp_path / "iris"
    rc, _, stderr = run_cli("train", "--config", cfg, "--epochs", "25", "--out", out)
    assert rc == 0, stderr
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["epochs"] == 25 and config["hidden"] == [16] and config["batch_size"] == 16
    assert config["schedule"] == "cosine" and config["data"] == "iris"
    assert len(epochs_of(out)) == 25
    assert json.loads((out / "metrics.json").read_text())["accuracy"] >= 0.85


def test_resume_an_interrupted_run_equals_an_uninterrupted_one(tmp_path):
    common = ("--data", "digits", "--hidden", "32", "--batch-size", "64")
    rc, _, stderr = run_cli("train", *common, "--epochs", "2", "--out", tmp_path / "a")
    assert rc == 0, stderr
    rc, stdout, stderr = run_cli("train", "--resume", tmp_path / "a", "--epochs", "3")
    assert rc == 0, stderr
    assert sum(line.startswith("epoch ") for line in stdout.splitlines()) == 1  # only epoch 3 ran
    assert [e["epoch"] for e in epochs_of(tmp_path / "a")] == [1, 2, 3]
    from neuronkit.inspect import load_history

    # the neurons' history continues across the resume: every step of both parts (21 steps per epoch) is recorded
    steps = load_history(tmp_path / "a" / "probes").layers["0"].steps
    assert steps.tolist() == list(range(1, 64))
    rc, _, _ = run_cli("train", *common, "--epochs", "3", "--out", tmp_path / "b")
    assert rc == 0
    a, b = nk.load(tmp_path / "a" / "model").state_dict(), nk.load(tmp_path / "b" / "model").state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in b)
    ma, mb = (json.loads((tmp_path / r / "metrics.json").read_text()) for r in "ab")
    assert ma["accuracy"] == mb["accuracy"] and ma["epochs"] == mb["epochs"] == 3
    rc, _, stderr = run_cli("train", "--resume", tmp_path / "a", "--lr", "0.1")
    assert rc != 0 and "only --epochs" in stderr


def test_mnist_mlp_one_epoch_from_shared_data(tmp_path):
    assert (SHARED_DATA / "mnist").is_dir(), f"MNIST files are missing from {SHARED_DATA}"
    out = tmp_path / "mnist"
    rc, _, stderr = run_cli(
        "train",
        "--data",
        "mnist",
        "--data-dir",
        SHARED_DATA,
        "--model",
        "784-128-10",
        "--epochs",
        "1",
        "--batch-size",
        "128",
        "--lr",
        "3e-3",
        "--out",
        out,
    )
    assert rc == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["samples"] == 10000 and metrics["accuracy"] >= 0.95, metrics


def test_lenet_and_regression_and_schedules(tmp_path, digits_arrays):
    rc, _, stderr = run_cli("train", "--data", "digits", "--model", "lenet", "--epochs", "2", "--out", tmp_path / "l")
    assert rc == 0, stderr
    assert json.loads((tmp_path / "l" / "config.json").read_text())["data"]["model_input_shape"] == [1, 8, 8]
    assert json.loads((tmp_path / "l" / "metrics.json").read_text())["accuracy"] >= 0.8
    rng = np.random.default_rng(0)
    xr = rng.normal(size=(300, 3))
    yr = xr @ [1.5, -2.0, 0.5] + 0.1 * rng.normal(size=300) + 0.25
    np.savetxt(tmp_path / "r.csv", np.c_[xr, yr], delimiter=",", header="a,b,c,y", comments="")
    rc, stdout, stderr = run_cli(
        "train",
        "--data",
        tmp_path / "r.csv",
        "--target",
        "y",
        "--epochs",
        "15",
        "--lr",
        "0.01",
        "--out",
        tmp_path / "r",
    )
    assert rc == 0, stderr
    m = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert m["r2"] > 0.9 and "test mse" in stdout
    rc, stdout, _ = run_cli("predict", tmp_path / "r", tmp_path / "r.csv")
    assert rc == 0 and stdout.splitlines()[0] == "index,prediction" and len(stdout.splitlines()) == 301
    for schedule in ("step", "onecycle", "warmup-cosine"):
        rc, _, stderr = run_cli(
            "train", "--data", "iris", "--epochs", "6", "--schedule", schedule, "--out", tmp_path / schedule
        )
        assert rc == 0, (schedule, stderr)
        lrs = [r["lr"] for r in epochs_of(tmp_path / schedule) if r["kind"] == "epoch"]
        np.testing.assert_allclose(lrs, _schedule_lrs(schedule), rtol=1e-9, atol=1e-15, err_msg=schedule)


def _schedule_lrs(schedule, lr=1e-3, epochs=6, steps=4) -> list:
    """The lr each epoch's record holds for ``--schedule`` (Adam 1e-3, iris: 108 training samples, 4 steps of 32 per
    epoch): the optimizer's lr after the epoch's last step, before a per-epoch schedule steps."""
    import math

    import torch

    total = epochs * steps
    if schedule == "step":  # StepLR, step_size = epochs // 3, gamma 0.1, stepped per epoch
        return [lr * 0.1 ** ((e - 1) // (epochs // 3)) for e in range(1, epochs + 1)]
    if schedule == "warmup-cosine":  # linear warm-up over max(1, total // 20) steps, then cosine to 0
        w = max(1, total // 20)
        return [lr / 2 * (1 + math.cos(math.pi * (e * steps - w) / (total - w))) for e in range(1, epochs + 1)]
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)  # onecycle: torch's, max_lr = --lr
    sched, out = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total), []
    for _ in range(epochs):
        for _ in range(steps):
            opt.step()
            sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_python_m_neuronkit_in_a_subprocess():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run(
        [sys.executable, "-m", "neuronkit", "datasets"], capture_output=True, text=True, env=env, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert "digits" in r.stdout and "mnist" in r.stdout


def test_unexpected_errors_still_show_a_traceback(monkeypatch):
    import importlib

    m = importlib.import_module("neuronkit.cli.main")

    def boom(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(m, "cmd_datasets", boom)
    with pytest.raises(RuntimeError, match="a bug"):
        m.main(["datasets"])


# -- user mistakes: one line on stderr, non-zero status, no traceback -------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


MISTAKES = {
    "unknown dataset": lambda t, run: ["train", "--data", "nosuch", "--out", t / "o"],
    "missing data file": lambda t, run: ["train", "--data", t / "missing.csv", "--out", t / "o"],
    "missing column": lambda t, run: [
        "train",
        "--data",
        _write(t / "a.csv", "x,y\n1,0\n2,1\n3,0\n4,1\n"),
        "--target",
        "label",
        "--out",
        t / "o",
    ],
    "non-numeric value": lambda t, run: [
        "train",
        "--data",
        _write(t / "a.csv", "x,y\n1,0\nabc,1\n3,0\n4,1\n"),
        "--target",
        "y",
        "--out",
        t / "o",
    ],
    "missing value": lambda t, run: [
        "train",
        "--data",
        _write(t / "a.csv", "x,z,y\n1,2,0\n2,,1\n3,1,0\n4,1,1\n"),
        "--target",
        "y",
        "--out",
        t / "o",
    ],
    "negative label": lambda t, run: [
        "train",
        "--data",
        _write(t / "a.csv", "x,y\n1,0\n2,-1\n3,0\n4,1\n"),
        "--out",
        t / "o",
    ],
    "label out of range for the model": lambda t, run: [
        "evaluate",
        run,
        "--data",
        _write(t / "b.csv", "\n".join(",".join(["1"] * 64 + ["12"]) for _ in range(3))),
    ],
    "input size does not match the model": lambda t, run: [
        "predict",
        run,
        _write(t / "b.csv", "\n".join(",".join(["1"] * 10) for _ in range(3))),
    ],
    "layer sizes do not match the data": lambda t, run: [
        "train",
        "--data",
        "digits",
        "--model",
        "100-10",
        "--out",
        t / "o",
    ],
    "empty data": lambda t, run: ["train", "--data", _write(t / "e.csv", "x,y\n"), "--out", t / "o"],
    "empty npy": lambda t, run: ["predict", run, np.save(t / "e.npy", np.zeros((0, 64))) or t / "e.npy"],
    "not a run directory": lambda t, run: ["evaluate", t],
    "missing run directory": lambda t, run: ["predict", t / "nope", t / "x.npy"],
    "bad config key": lambda t, run: ["train", "--config", _write(t / "c.toml", "epoch = 3\n")],
    "bad config value": lambda t, run: ["train", "--config", _write(t / "c.toml", "lr = -1\n")],
    "bad flag value in range": lambda t, run: ["train", "--val-fraction", "1.5"],
    "bad config type": lambda t, run: ["train", "--config", _write(t / "c.toml", 'epochs = "many"\n')],
    "unknown optimizer in config": lambda t, run: ["train", "--config", _write(t / "c.toml", 'optimizer = "x"\n')],
    "config not TOML": lambda t, run: ["train", "--config", _write(t / "c.toml", "epochs = = 3\n")],
    "config file missing": lambda t, run: ["train", "--config", t / "none.toml"],
    "bad flag value": lambda t, run: ["train", "--epochs", "abc"],
    "bad schedule": lambda t, run: ["train", "--schedule", "linear"],
    "zero epochs": lambda t, run: ["train", "--epochs", "0"],
    "unknown command": lambda t, run: ["fly"],
    "lenet on tabular data": lambda t, run: ["train", "--data", "iris", "--model", "lenet", "--out", t / "o"],
    "out directory not empty": lambda t, run: ["train", "--data", "iris", "--out", run],
    "missing mnist directory": lambda t, run: [
        "train",
        "--data",
        "mnist",
        "--data-dir",
        t / "nodata",
        "--out",
        t / "o",
    ],
    "image without pillow": lambda t, run: ["predict", run, t / "digit.png"],
    "unknown initialiser": lambda t, run: ["train", "--init", "magic", "--out", t / "o"],
    "negative weight decay": lambda t, run: ["train", "--weight-decay", "-1", "--out", t / "o"],
    "infinite learning rate": lambda t, run: ["train", "--data", "iris", "--lr", "inf", "--out", t / "o"],
    "infinite weight decay": lambda t, run: ["train", "--data", "iris", "--weight-decay", "inf", "--out", t / "o"],
    "NaN learning rate in config": lambda t, run: [
        "train",
        "--config",
        _write(t / "c.toml", "lr = nan\n"),
        "--out",
        t / "o",
    ],
    "zero clipping norm": lambda t, run: ["train", "--clip-grad-norm", "0", "--out", t / "o"],
    "negative probe interval": lambda t, run: ["train", "--probe-every", "-1", "--out", t / "o"],
    "negative gradcheck interval": lambda t, run: ["train", "--gradcheck-every", "-5", "--out", t / "o"],
    "inspect without a layer": lambda t, run: ["inspect", run],
    "report of a missing run": lambda t, run: ["report", t / "nope"],
}


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_user_mistakes_get_one_line_and_a_nonzero_status(mistake, digits_run, tmp_path, monkeypatch):
    if mistake == "image without pillow":
        monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    monkeypatch.chdir(tmp_path)
    rc, _, stderr = run_cli(*MISTAKES[mistake](tmp_path, digits_run[0]))
    assert rc != 0
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuronkit: error:"), stderr
    assert not (tmp_path / "o").exists()  # a failed run leaves no half-made run directory
