"""Every remedy that ``diagnose`` proposes names the ``neuronkit train`` flag that applies it, and every flag it names
exists (read from the command line's own parser). The findings come from the real checks, driven into each branch."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from neuronkit import nn
from neuronkit.cli.main import build_parser, main
from neuronkit.inspect.diagnostics import FIX_FLAGS, check_before_training, diagnose_training

# what a remedy's words point at, and the flag that must then be named with them
CONCEPTS = {
    r"weight decay|regularisation": "--weight-decay",
    r"dropout": "--dropout",
    r"stop early|early stopping": "--patience",
    r"learning rate": "--lr",
    r"clipping": "--clip-grad-norm",
    r"initialis|initial weights": "--init",
    r"leaky_relu|relu-like": "--activation",
    r"normalise the inputs": "--standardize",
    r"capacity|smaller network|fewer layers": "--hidden",
    r"schedule": "--schedule",
    r"\bloss matches": "--loss",
}
KINDS = {
    "output_scale",
    "initial_loss",
    "vanishing_activation",
    "exploding_activation",
    "vanishing_gradient",
    "exploding_gradient",
    "dead_relu",
    "saturation",
    "lr_too_high",
    "lr_too_low",
    "plateau",
    "overfitting",
}


def run_cli(*argv) -> tuple:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def train_flags() -> set:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {s for s in sub.choices["train"]._option_string_actions if s.startswith("--")}


def dense(n_in, n_out, activation=None, scale=1.0, bias=0.0, seed=0):
    layer = nn.Dense(n_in, n_out, activation=activation)
    layer.weight.data[...] = np.random.default_rng(seed).normal(size=(n_out, n_in)) * scale
    layer.bias.data[...] = bias
    return layer


def before_training_findings() -> list:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 8)).astype(np.float32), rng.integers(0, 4, 64)
    models = [
        nn.Sequential(dense(8, 16, "relu", scale=30.0), dense(16, 4, scale=30.0)),  # huge: scale, loss, explosions
        nn.Sequential(dense(8, 16, "relu", scale=1e-4), dense(16, 4, scale=1e-4)),  # tiny: the signal dies out
        nn.Sequential(dense(8, 16, "relu", bias=-100.0), dense(16, 4)),  # dead ReLUs
        nn.Sequential(dense(8, 16, "sigmoid", scale=20.0), dense(16, 4, scale=0.1)),  # saturated sigmoids
        nn.Sequential(dense(8, 16, "relu", scale=1e5), dense(16, 4, scale=1e-6)),  # the first layer is starved
    ]
    found = [f for m in models for f in check_before_training(m, (x, y))]
    onehot = np.eye(4, 8, dtype=np.float32)[y] * 20.0  # the label is in the input: the initial loss is too low
    leak = nn.Sequential(dense(8, 4, scale=0.0))
    leak[0].weight.data[...] = np.eye(4, 8)
    return found + check_before_training(leak, (onehot, y))


def history_findings() -> list:
    def run(losses, val=None, acc=None, vacc=None):
        epochs = [{"epoch": i + 1, "loss": lo, "lr": 0.1} for i, lo in enumerate(losses)]
        for e, v in zip(epochs, val or []):
            e["val_loss"] = v
        for e, a, va in zip(epochs, acc or [], vacc or []):
            e["accuracy"], e["val_accuracy"] = a, va
        return diagnose_training(epochs)

    return [
        *run([2.0, 1.0, math.nan]),  # non-finite loss
        *run([1.0, 2.0, 4.0, 8.0]),  # rising
        *run([2.30, 2.29, 2.285, 2.28]),  # too slow
        *run([2.0, 1.0, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]),  # plateau
        *run([1.0, 0.6, 0.4, 0.3, 0.25], val=[0.9, 0.7, 0.8, 0.9, 1.0]),  # validation loss rising
        *run([1.0, 0.6, 0.4], val=[0.9, 0.6, 0.45], acc=[0.6, 0.9, 0.99], vacc=[0.5, 0.7, 0.75]),  # accuracy gap
    ]


def fake_probe(activation, grad, weight_norm=1.0, active=0.5, saturated=0.0, units=4):
    """A probe's saved history reduced to what ``diagnose_training`` reads: one layer, ``len(grad)`` records."""
    n = len(grad)
    rec = SimpleNamespace(
        size=n,
        order=lambda: np.arange(n),
        units=units,
        activation=activation,
        steps=np.arange(1, n + 1) * 10,
        lr=np.full(n, 0.5),
        layer={"layer_grad_norm": np.asarray(grad, dtype=np.float64)},
        unit={
            "active_frac": np.full((n, units), active),
            "saturated_frac": np.full((n, units), saturated),
            "weight_norm": np.full((n, units), weight_norm / math.sqrt(units)),
        },
    )
    return SimpleNamespace(layers={"0": rec})


def probe_findings() -> list:
    flat = [{"epoch": i + 1, "loss": 1.0 - 0.01 * i, "lr": 0.5} for i in range(4)]
    probes = [
        fake_probe("relu", [1.0] * 5, active=0.0),  # dead
        fake_probe("sigmoid", [1.0] * 5, saturated=0.99),  # saturated
        fake_probe("relu", [1.0, 2.0, math.inf]),  # gradients overflowed
        fake_probe("relu", [1.0, 10.0, 1e3]),  # gradients grew 1000x
        fake_probe("relu", [1e-8] * 5, weight_norm=10.0),  # tiny next to the weights
        fake_probe("relu", [1.0, 0.1, 1e-3], weight_norm=1.0),  # faded while the loss did not fall
    ]
    return [f for p in probes for f in diagnose_training(flat, p)]


@pytest.fixture(scope="module")
def findings() -> list:
    return before_training_findings() + history_findings() + probe_findings()


def test_the_scenarios_reach_every_kind_of_finding(findings):
    assert {f.kind for f in findings} == KINDS
    assert sum(f.kind == "overfitting" for f in findings) == 2 and sum(f.kind == "initial_loss" for f in findings) == 2


def test_every_flag_a_remedy_names_exists(findings):
    flags = train_flags()
    assert set(FIX_FLAGS.values()) <= flags
    for f in findings:
        named = set(re.findall(r"--[a-z][a-z-]*", f.remedy))
        assert named <= flags, (f.kind, named - flags, f.remedy)


def test_every_remedy_that_maps_to_a_flag_names_it(findings):
    for f in findings:
        for key, value in f.fix.items():  # the fix --try-fix applies is named in the words, with its value
            flag = FIX_FLAGS[key]
            shown = f"{flag} {value:.3g}" if isinstance(value, float) else f"{flag} {value}"
            assert (flag if key == "early_stopping" else shown) in f.remedy, (f.kind, shown, f.remedy)
        for words, flag in CONCEPTS.items():
            if re.search(words, f.remedy):
                assert flag in f.remedy, (f.kind, words, flag, f.remedy)


def test_overfitting_advice_names_weight_decay_dropout_and_patience(findings):
    rising = next(f for f in findings if f.kind == "overfitting" and "best_epoch" in f.where)
    assert "(--weight-decay 0.0001, --dropout 0.2)" in rising.remedy  # before: "(weight decay, dropout)"
    assert "stop early (--patience 2" in rising.remedy and "here epoch 2" in rising.remedy


# -- --try-fix trains long enough for the finding to show ------------------------------------------------------------
def overfitting_history(n_best: int, rises: int) -> list:
    """Epoch records whose validation loss falls until epoch ``n_best``, then rises for ``rises`` epochs, while the
    training loss keeps falling."""
    val = [1.0 - 0.1 * i for i in range(n_best)] + [1.0 - 0.1 * (n_best - 1) + 0.1 * (i + 1) for i in range(rises)]
    return [{"epoch": i + 1, "loss": 1.0 / (i + 1), "val_loss": v, "lr": 1e-3} for i, v in enumerate(val)]


def test_trial_epochs_cover_the_epoch_where_a_finding_showed():
    from neuronkit.cli.tryfix import DEFAULT_EPOCHS, first_seen, trial_epochs

    epochs = overfitting_history(n_best=3, rises=4)  # best at 3, two rises by epoch 5
    found = diagnose_training(epochs)
    assert [f.kind for f in found] == ["overfitting"] and first_seen(found, epochs) == {"overfitting": 5}
    assert trial_epochs(found, epochs, run_epochs=7) == (
        5,
        "5 epochs, as overfitting first showed at epoch 5 of the run",
    )
    assert trial_epochs(found, epochs, run_epochs=7, asked=3)[0] == 3  # as asked, with a warning
    assert "3 epoch(s) may be too few" in trial_epochs(found, epochs, run_epochs=7, asked=3)[1]
    assert trial_epochs(found, epochs, run_epochs=7, asked=6) == (6, "")
    early = overfitting_history(n_best=1, rises=3)  # shows at epoch 3: the default already covers it
    assert trial_epochs(diagnose_training(early), early, run_epochs=4) == (DEFAULT_EPOCHS, "")
    assert trial_epochs([], epochs, run_epochs=2) == (2, "")  # never more than the run itself trained


def test_try_fix_runs_an_overfitting_remedy_for_as_long_as_it_took_to_show(tmp_path):
    run = tmp_path / "run"
    rc, _, stderr = run_cli("train", "--data", "digits", "--epochs", "1", "--probe-every", "0", "--out", run)
    assert rc == 0, stderr
    history = overfitting_history(n_best=3, rises=3)  # the run's history as if it had overfitted from epoch 3
    (run / "history.jsonl").write_text("".join(json.dumps({"kind": "epoch", **e}) + "\n" for e in history))
    doc = json.loads((run / "config.json").read_text())
    doc["config"]["epochs"] = 6
    (run / "config.json").write_text(json.dumps(doc))
    rc, stdout, stderr = run_cli("diagnose", run, "--try-fix")
    assert rc == 0, stdout + stderr
    assert "stop early (--patience 2" in stdout
    assert "try-fix: 5 epochs, as overfitting first showed at epoch 5 of the run" in stderr
    assert "try-fix: 5 epoch(s) of training from the same start" in stdout  # before: 3, too few to overfit
