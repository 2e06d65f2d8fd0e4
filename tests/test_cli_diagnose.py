"""``neuronkit diagnose RUN_DIR``: the run's model on a test batch and its history, in plain language."""

from __future__ import annotations

import contextlib
import io as _io
import json
import shutil
from pathlib import Path

import pytest

from neuronkit.cli import main


def run_cli(*argv) -> tuple:
    """``(exit status, stdout, stderr)`` of ``neuronkit argv...`` run in-process."""
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "digits"
    rc, _, stderr = run_cli("train", "--data", "digits", "--epochs", "2", "--out", out)
    assert rc == 0, stderr
    return out


def test_diagnose_a_healthy_run_exits_0_and_prints_a_report(digits_run):
    rc, stdout, stderr = run_cli("diagnose", digits_run)
    assert rc == 0, stdout + stderr
    assert stderr == ""
    lines = stdout.strip().splitlines()
    assert lines[0].startswith(
        f"{digits_run}: the model at initialisation and after training on 64 samples of digits (test split)"
    )
    assert "2 epochs of history" in lines[0]
    assert "ERROR" not in stdout
    assert len(lines) >= 2 and (
        "No problems found." in stdout or any(s.startswith(("WARNING", "INFO")) for s in lines[1:])
    )


def test_diagnose_does_not_change_the_model(digits_run):
    before = (digits_run / "model" / "model.safetensors").read_bytes()
    assert run_cli("diagnose", digits_run, "--batch-size", "8")[0] == 0
    assert (digits_run / "model" / "model.safetensors").read_bytes() == before


def test_diagnose_reports_overfitting_from_the_history(digits_run, tmp_path):
    run = tmp_path / "overfit"
    shutil.copytree(digits_run, run)
    losses, val_losses = [1.0, 0.6, 0.4, 0.3], [0.9, 0.7, 0.8, 0.95]
    lines = [{"kind": "step", "step": 1, "loss": 1.0}]  # non-epoch lines are skipped
    lines += [
        {"kind": "epoch", "epoch": i + 1, "loss": lo, "val_loss": va, "lr": 1e-3, "time": 0.1}
        for i, (lo, va) in enumerate(zip(losses, val_losses))
    ]
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rc, stdout, stderr = run_cli("diagnose", run)
    assert rc == 0, stdout + stderr  # overfitting is a warning, not an error
    assert "4 epochs of history" in stdout
    assert "validation loss has risen for 2 epochs since epoch 2" in stdout
    assert any(s.startswith("WARNING") and "memorising" in s for s in stdout.splitlines())


def test_diagnose_exits_1_on_an_error_finding(digits_run, tmp_path):
    run = tmp_path / "diverged"
    shutil.copytree(digits_run, run)
    lines = [{"kind": "epoch", "epoch": i + 1, "loss": lo, "lr": 1.0} for i, lo in enumerate([2.0, 5.0, float("nan")])]
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    rc, stdout, _ = run_cli("diagnose", run)
    assert rc == 1
    assert stdout.splitlines()[1].startswith("ERROR") and "nan" in stdout


def test_diagnose_a_non_run_directory_is_a_one_line_error(tmp_path):
    rc, stdout, stderr = run_cli("diagnose", tmp_path)
    assert rc != 0 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("neuronkit: error:")
    assert "not a run directory" in stderr


@pytest.mark.parametrize("history", [None, "", '{"kind": "step", "loss": 1.0}\n', "{not json\n"])
def test_diagnose_missing_or_empty_history_is_a_one_line_error(digits_run, tmp_path, history):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    if history is None:
        (run / "history.jsonl").unlink()
    else:
        (run / "history.jsonl").write_text(history)
    rc, stdout, stderr = run_cli("diagnose", run)
    assert rc != 0 and stdout == ""
    assert len(stderr.splitlines()) == 1 and stderr.startswith("neuronkit: error:")
    assert "history.jsonl" in stderr


def test_diagnose_bad_batch_size_is_a_one_line_error(digits_run):
    rc, _, stderr = run_cli("diagnose", digits_run, "--batch-size", "0")
    assert rc != 0 and stderr.startswith("neuronkit: error:") and len(stderr.splitlines()) == 1


# -- --try-fix: the remedy as an experiment -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dying_run(tmp_path_factory) -> Path:
    """SGD at lr 1.5 kills most ReLU units of the second hidden layer within 3 epochs (seed 0)."""
    out = tmp_path_factory.mktemp("runs") / "dying"
    rc, _, stderr = run_cli(
        "train",
        "--data",
        "digits",
        "--epochs",
        "3",
        "--optimizer",
        "sgd",
        "--lr",
        "1.5",
        "--hidden",
        "64,64",
        "--out",
        out,
    )
    assert rc == 0, stderr
    return out


def test_try_fix_measures_that_the_dead_relu_remedy_helps(dying_run):
    rc, stdout, stderr = run_cli("diagnose", dying_run, "--try-fix")
    assert rc == 1, stdout + stderr  # dead units are an error
    assert "never fire" in stdout and "try-fix: 3 epoch(s) of training from the same start (seed 0" in stdout
    remedy = next(
        line for line in stdout.splitlines() if line.startswith("remedy") and "dead_relu" in line and "lr=0.15" in line
    )
    verdict = stdout.splitlines()[stdout.splitlines().index(remedy) + 1]
    assert verdict.strip().startswith("helps: accuracy") and "dead units" in verdict


def test_try_fix_numbers_come_from_real_training(dying_run):
    from neuronkit.cli import tryfix
    from neuronkit.cli.rundir import load_run
    from neuronkit.inspect import Finding

    run, cfg, info, model = load_run(dying_run)
    dead = Finding("dead_relu", "error", {"layer": "2"}, "m", "r", {"activation": "leaky_relu", "lr": 0.15})
    where, trials = tryfix.try_fixes(cfg, tryfix.loaded_for(cfg, None), [dead, dead], epochs=3)
    assert where == "validation split, 144 samples" and len(trials) == 2  # one trial per distinct fix
    base, fixed = trials
    assert base.changes == {} and fixed.changes == {"activation": "leaky_relu", "lr": 0.15}
    # the original trial repeats the run's own training (same seed, data and settings): the same last-epoch loss
    history = [json.loads(line) for line in (dying_run / "history.jsonl").read_text().splitlines()]
    assert base.loss == pytest.approx(history[-1]["loss"], rel=1e-6)
    assert base.dead_frac > 0.3 and fixed.dead_frac == 0.0  # leaky_relu units cannot die
    assert fixed.accuracy > base.accuracy + 0.5 and fixed.eval_loss < base.eval_loss
    assert "helps" in tryfix.verdict(base, fixed) and "does not help" in tryfix.verdict(fixed, base)


def test_try_fix_with_nothing_to_fix(digits_run):
    rc, stdout, _ = run_cli("diagnose", digits_run, "--try-fix")
    assert rc == 0
    assert "try-fix: no finding proposes a remedy to try" in stdout or "try-fix: 2 epoch(s)" in stdout


def test_try_fix_rejects_a_bad_epoch_count(dying_run):
    rc, _, stderr = run_cli("diagnose", dying_run, "--try-fix", "--fix-epochs", "0")
    assert rc == 1 and stderr.strip() == "neuronkit: error: --fix-epochs must be at least 1, got 0"
