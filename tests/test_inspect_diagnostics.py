"""Plain-language diagnostics: each finding on a network built to show it, and none (above info) on a healthy one."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_digits

from neuronkit import nn
from neuronkit.inspect import Finding, ProbeCallback, check_before_training, diagnose_training, report
from neuronkit.train import fit


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x = d.data.astype(np.float64)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    idx = np.random.default_rng(0).permutation(len(x))
    tr, va = idx[:1400], idx[1400:]
    return x[tr], d.target[tr], x[va], d.target[va]


def _mlp(act="relu", hidden=64, depth=2, seed=0):
    layers = [nn.Dense(64, hidden, activation=act, generator=seed)]
    layers += [nn.Dense(hidden, hidden, activation=act, generator=seed + i + 1) for i in range(depth - 1)]
    layers.append(nn.Dense(hidden, 10, generator=seed + 9))
    return nn.Sequential(*layers)


def _kinds(findings, at_least="info"):
    order = ("error", "warning", "info")
    return {f.kind for f in findings if order.index(f.severity) <= order.index(at_least)}


def _serious(findings):
    return [f for f in findings if f.severity in ("warning", "error")]


def test_finding_text_and_report_worst_first():
    info = Finding(
        "dead_relu",
        "info",
        {"layer": "0", "units": [3]},
        "1 unit is dead.",
        "use leaky_relu.",
        {"activation": "leaky_relu"},
    )
    err = Finding("lr_too_high", "error", {"scope": "training"}, "the loss diverged.", "lower it.", {"lr": 0.01})
    assert str(info) == "INFO layer 0: 1 unit is dead. Try: use leaky_relu."
    assert str(err).startswith("ERROR training: the loss diverged.")
    lines = report([info, err]).splitlines()
    assert lines[0].startswith("ERROR") and lines[1].startswith("INFO")
    assert report([]) == "No problems found."
    with pytest.raises(ValueError, match="severity"):
        Finding("plateau", "fatal")


def test_healthy_digits_mlp_has_no_warnings(digits):
    xtr, ytr, xva, yva = digits
    model = _mlp()
    before = check_before_training(model, (xtr[:256], ytr[:256]))
    assert _serious(before) == [], report(before)
    cb = ProbeCallback(every=10)
    h = fit(
        model,
        (xtr, ytr),
        epochs=6,
        lr=1e-3,
        batch_size=32,
        validation=(xva, yva),
        callbacks=[cb],
        progress=False,
        seed=0,
    )
    assert h.epochs[-1]["val_accuracy"] > 0.9
    after = diagnose_training(h, cb)
    assert _serious(after) == [], report(after)


def test_check_before_training_leaves_model_as_it_was(digits):
    xtr, ytr, _, _ = digits
    model = _mlp()
    weights = {n: p.data.copy() for n, p in model.named_parameters()}
    check_before_training(model, (xtr[:64], ytr[:64]))
    for n, p in model.named_parameters():
        assert p.grad is None, n
        np.testing.assert_array_equal(p.data, weights[n])
    assert all(not m._forward_hooks for m in model.modules())


def test_dead_relu_named_before_and_after_training(digits):
    xtr, ytr, xva, yva = digits
    model = _mlp()
    model[0].bias.data[[3, 17]] = -100.0
    before = [f for f in check_before_training(model, (xtr[:256], ytr[:256])) if f.kind == "dead_relu"]
    assert [f.where["layer"] for f in before] == ["0"]
    assert {3, 17} <= set(before[0].where["units"])
    assert before[0].fix["activation"] == "leaky_relu"
    assert "cannot learn again" in before[0].message and "units 3" in before[0].message
    cb = ProbeCallback(every=5)
    h = fit(model, (xtr[:512], ytr[:512]), epochs=2, lr=1e-3, callbacks=[cb], progress=False, seed=0)
    after = [f for f in diagnose_training(h, cb) if f.kind == "dead_relu" and f.where["layer"] == "0"]
    assert len(after) == 1 and {3, 17} <= set(after[0].where["units"])
    assert after[0].fix["lr"] == pytest.approx(1e-4)


def test_sigmoid_with_huge_weights_saturates_and_starves_gradients(digits):
    xtr, ytr, _, _ = digits
    model = _mlp("sigmoid", depth=3)
    for layer in list(model)[:-1]:  # the sigmoid layers
        layer.weight.data *= 100
    found = check_before_training(model, (xtr[:256], ytr[:256]))
    assert {"saturation", "vanishing_gradient"} <= _kinds(found, "warning"), report(found)
    sat = [f for f in found if f.kind == "saturation"]
    assert {f.where["layer"] for f in sat} == {"0", "1", "2"}
    van = {f.where["layer"] for f in found if f.kind == "vanishing_gradient"}
    assert van and "3" not in van  # the output layer is fed; the sigmoid layers behind it are starved
    cb = ProbeCallback(every=5)
    h = fit(model, (xtr[:256], ytr[:256]), epochs=2, lr=1e-3, callbacks=[cb], progress=False, seed=0)
    during = diagnose_training(h, cb)
    assert {"saturation", "vanishing_gradient"} <= _kinds(during, "warning"), report(during)


def test_huge_weights_give_output_scale_and_initial_loss(digits):
    xtr, ytr, _, _ = digits
    model = _mlp()
    for layer in model:
        layer.weight.data *= 1e3
    found = check_before_training(model, (xtr[:256], ytr[:256]))
    by_kind = {f.kind: f for f in found}
    assert by_kind["output_scale"].severity == "error"
    assert by_kind["initial_loss"].where["expected"] == pytest.approx(math.log(10))
    assert "confident before it has learned anything" in by_kind["initial_loss"].message
    assert "exploding_activation" in by_kind


def _regression(n=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    y = (x @ rng.normal(size=(8, 1)) + 0.1 * rng.normal(size=(n, 1))).astype(np.float32)
    return x, y


def test_learning_rate_of_10_is_too_high():
    x, y = _regression()
    model = nn.Sequential(nn.Dense(8, 32, activation="relu", generator=0), nn.Dense(32, 1, generator=1))
    with np.errstate(all="ignore"):
        h = fit(model, (x, y), loss="mse", optimizer="sgd", lr=10.0, epochs=4, progress=False, seed=0)
    found = [f for f in diagnose_training(h) if f.kind == "lr_too_high"]
    assert len(found) == 1 and found[0].severity == "error"
    assert found[0].fix["lr"] == pytest.approx(1.0)


def test_tiny_learning_rate_is_too_low(digits):
    xtr, ytr, _, _ = digits
    h = fit(_mlp(), (xtr, ytr), optimizer="sgd", lr=1e-6, epochs=3, progress=False, seed=0)
    found = {f.kind: f for f in diagnose_training(h)}
    assert "lr_too_low" in found and "plateau" not in found
    assert found["lr_too_low"].fix["lr"] == pytest.approx(1e-5)


def test_tiny_training_set_on_large_network_overfits(digits):
    xtr, ytr, xva, yva = digits
    model = _mlp(hidden=256)
    h = fit(
        model, (xtr[:40], ytr[:40]), epochs=60, lr=3e-3, batch_size=40, validation=(xva, yva), progress=False, seed=0
    )
    found = [f for f in diagnose_training(h) if f.kind == "overfitting"]
    assert len(found) == 1, report(diagnose_training(h))
    assert found[0].fix["weight_decay"] > 0 and found[0].fix["dropout"] > 0


def _epochs(losses, lr=0.1, **series):
    out = []
    for i, v in enumerate(losses):
        e = {"epoch": i + 1, "loss": v, "lr": lr}
        e.update({k: s[i] for k, s in series.items()})
        out.append(e)
    return out


def test_history_checks_on_either_side_of_their_thresholds():
    falling = [1.0, 0.8, 0.6, 0.5, 0.4]
    # overfitting: the validation loss rose for 2 epochs after its best, by more than 2 %, while the loss fell
    two = diagnose_training(_epochs(falling, val_loss=[1.0, 0.6, 0.5, 0.55, 0.6]))
    assert [(f.kind, f.where["best_epoch"]) for f in two] == [("overfitting", 3)]
    assert "the validation loss has risen for 2 epochs since epoch 3 (0.5 to 0.6)" in two[0].message
    assert diagnose_training(_epochs(falling, val_loss=[1.0, 0.6, 0.5, 0.45, 0.5])) == []  # one rise only
    assert diagnose_training(_epochs(falling, val_loss=[1.0, 0.6, 0.5, 0.505, 0.509])) == []  # 1.8 % above its best
    # ... or training accuracy more than 10 points above validation accuracy
    gap = dict(val_loss=[1.0, 0.6, 0.5, 0.45, 0.4], accuracy=[0.5, 0.7, 0.8, 0.9, 0.95])
    assert _kinds(diagnose_training(_epochs(falling, val_accuracy=[0.5, 0.7, 0.8, 0.8, 0.84], **gap))) == {
        "overfitting"
    }
    assert diagnose_training(_epochs(falling, val_accuracy=[0.5, 0.7, 0.8, 0.8, 0.86], **gap)) == []
    # learning rate too low: the loss falls by less than 1 % of its start per epoch
    slow = diagnose_training(_epochs([1.0, 0.996, 0.992]))
    assert [f.kind for f in slow] == ["lr_too_low"] and slow[0].fix == {"lr": pytest.approx(1.0)}
    assert diagnose_training(_epochs([1.0, 0.985, 0.97])) == []  # 1.5 % per epoch
    # too high: the last three losses rising, the last more than 5 % above the best
    assert _kinds(diagnose_training(_epochs([1.0, 0.5, 0.51, 0.53]))) == {"lr_too_high"}
    assert diagnose_training(_epochs([1.0, 0.5, 0.51, 0.52])) == []  # 4 % above the best


def test_history_only_checks():
    plateau = _epochs([2.0, 1.0, 0.8, 0.7] + [0.7] * 6)
    assert _kinds(diagnose_training(plateau)) == {"plateau"}
    swings = _epochs([2.0, 1.0, 3.0, 0.9, 3.2, 1.0, 3.1])
    assert "lr_too_high" in _kinds(diagnose_training(swings))
    nan = _epochs([2.0, float("nan")])
    assert [f.kind for f in diagnose_training(nan)] == ["lr_too_high"]
    gap = _epochs([1.0, 0.5, 0.3], accuracy=[0.8, 0.9, 0.99], val_accuracy=[0.75, 0.8, 0.8], val_loss=[1.0, 0.6, 0.5])
    assert _kinds(diagnose_training(gap)) == {"overfitting"}
    healthy = _epochs([2.0, 1.0, 0.5, 0.3], val_loss=[2.1, 1.1, 0.6, 0.4])
    assert diagnose_training(healthy) == []
    assert diagnose_training([]) == []


def _all(findings) -> list:
    """The findings and every finding they group or explain."""
    out = []
    for f in findings:
        out += [f, *_all(f.details)]
    return out


def test_the_output_layer_growing_with_confidence_is_no_exploding_activation(digits):
    """The logits of a classifier grow as it becomes confident: the layer that gives the output is judged by
    output_scale, not as a hidden activation; a hidden layer as large still is one."""
    xtr, ytr, _, _ = digits
    model = _mlp()
    list(model)[-1].weight.data *= 3000  # logits std about 300x the input's: what the old rule called exploding
    found = check_before_training(model, (xtr[:256], ytr[:256]))
    logits_std = next(f for f in found if f.kind == "output_scale").where["std"]
    assert logits_std > 100 * float(np.std(xtr[:256]))
    assert "exploding_activation" not in _kinds(found), report(found)
    hidden = _mlp()
    list(hidden)[1].weight.data *= 3000  # the same growth in a hidden layer
    layers = {
        f.where["layer"]
        for f in check_before_training(hidden, (xtr[:256], ytr[:256]))
        if f.kind == "exploding_activation"
    }
    assert "1" in layers and "2" not in layers  # the hidden layer is; the output layer after it is not judged so


def test_a_large_trained_hidden_layer_is_an_explosion_only_when_the_loss_did_not_fall(digits):
    from neuronkit.inspect import diagnose

    xtr, ytr, _, _ = digits
    model = _mlp()
    list(model)[0].weight.data *= 1000
    falling = [{"loss": 1.5, "val_loss": 1.6}, {"loss": 0.6, "val_loss": 0.7}, {"loss": 0.3, "val_loss": 0.5}]
    rising = [{"loss": 1.5, "val_loss": 1.6}, {"loss": 0.6, "val_loss": 0.7}, {"loss": 0.9, "val_loss": 1.1}]
    for epochs, severity in ((falling, "info"), (rising, "warning")):
        found = [
            f for f in _all(diagnose(model, (xtr[:256], ytr[:256]), history=epochs)) if f.kind == "exploding_activation"
        ]
        assert found and {f.severity for f in found} == {severity}, report(found)
        assert ("the training loss fell from 1.5 to 0.3" in found[0].message) == (severity == "info")
