"""``neuronkit train``'s messages and exit status: a diverged run (stop-on-NaN) fails in one line and writes only strict
JSON; a resumed run says where it continues and labels the metrics of its partial first epoch; the command is a
sequence of short steps."""

from __future__ import annotations

import contextlib
import inspect
import io as _io
import json
import math
import os
import signal

import numpy as np

from neuronkit.cli import training
from neuronkit.cli.main import cmd_train, main
from neuronkit.train import Callback, History, JSONLLogger


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def strict(text: str):
    """``json.loads`` that refuses NaN, Infinity and -Infinity (Python's lenient extensions of JSON)."""

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


# -- stop-on-NaN ------------------------------------------------------------------------------------------------------
def test_a_diverged_run_exits_1_with_one_line_and_strict_json(tmp_path):
    run = tmp_path / "run"
    rc, stdout, stderr = run_cli("train", "--data", "digits", "--optimizer", "sgd", "--lr", "1000", "--out", run)
    assert rc == 1, stdout + stderr  # before: 0
    lines = stderr.splitlines()  # before: the stop reason and four NumPy RuntimeWarnings with their source lines
    assert len(lines) == 1 and lines[0].startswith("neuronkit: error: training diverged: stopped at step "), stderr
    assert "the loss is nan" in lines[0] and "--lr (now 1000)" in lines[0]
    metrics = strict((run / "metrics.json").read_text())  # before: "loss": NaN
    assert metrics["loss"] is None and metrics["stopped_early"].startswith("stopped at step")
    for line in (run / "history.jsonl").read_text().splitlines():
        strict(line)
    assert (run / "model" / "model.safetensors").is_file()  # the run is kept, for diagnose and report


def test_non_finite_numbers_in_the_history_files_are_null(tmp_path):
    logs = {"epoch": 1, "loss": float("nan"), "accuracy": np.float32("inf"), "per_class": [1.0, -math.inf]}
    logger = JSONLLogger(tmp_path / "h.jsonl", steps=True)
    logger.on_train_begin(None)
    logger.on_step_end(None, {"step": 1, "loss": float("inf")})
    logger.on_epoch_end(None, logs)
    logger.on_train_end(None)
    step, epoch = (strict(line) for line in (tmp_path / "h.jsonl").read_text().splitlines())
    assert step == {"kind": "step", "step": 1, "loss": None}
    assert epoch == {"kind": "epoch", "epoch": 1, "loss": None, "accuracy": None, "per_class": [1.0, None]}
    History([{"step": 1, "loss": float("nan")}], [logs]).to_jsonl(tmp_path / "all.jsonl")
    assert [strict(line)["loss"] for line in (tmp_path / "all.jsonl").read_text().splitlines()] == [None, None]


# -- resume -----------------------------------------------------------------------------------------------------------
class CtrlCAt(Callback):
    """Sends the process a SIGINT (what Ctrl-C does) at the end of step ``step``."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, logs):
        if trainer.step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_resume_says_where_it_continues_and_labels_the_partial_epoch(tmp_path, monkeypatch):
    run = tmp_path / "run"
    plain = training.make_trainer
    monkeypatch.setattr(training, "make_trainer", lambda *a, **k: plain(*a[:5], [CtrlCAt(30), *a[5]], *a[6:], **k))
    rc, _, stderr = run_cli("train", "--data", "digits", "--epochs", "2", "--out", run)
    assert rc == 130 and "interrupted at epoch 1, step 30" in stderr, stderr
    monkeypatch.setattr(training, "make_trainer", plain)
    rc, stdout, stderr = run_cli("train", "--resume", run)
    assert rc == 0, stderr
    lines = stdout.splitlines()
    # before: "training mlp on digits (...)", the line of a fresh run
    assert lines[0].startswith(f"resuming {run} from epoch 1, step 30 (30 steps into it), to epoch 2: mlp on digits")
    # digits: 1294 training samples in batches of 32 are 41 steps an epoch; the first epoch's accuracy counts 31-41
    assert lines[1].startswith("epoch 1/2  loss ") and "accuracy" in lines[1]
    assert " (steps 31-41 only, since resuming)" in lines[1].split("val_")[0]
    assert lines[2].startswith("epoch 2/2") and "since resuming" not in lines[2]
    rc, stdout, _ = run_cli("train", "--resume", run)
    assert rc == 0 and stdout.startswith(f"resuming {run}: its 2 epochs are done (give a larger --epochs to train on)")


# -- the command's shape ----------------------------------------------------------------------------------------------
def test_the_train_command_is_a_sequence_of_short_steps():
    from neuronkit.cli import train_command

    source = inspect.getsource(cmd_train)
    assert len(source.splitlines()) <= 25, source  # before: 71 lines resolving, resuming, running and reporting
    for name, fn in inspect.getmembers(train_command, inspect.isfunction):
        if fn.__module__ == train_command.__name__:
            assert len(inspect.getsource(fn).splitlines()) <= 40, name
