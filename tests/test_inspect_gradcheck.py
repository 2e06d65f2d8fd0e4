"""``neuronkit.inspect.check_gradients`` and ``neuronkit gradcheck``: whole-model float64 gradient checks."""

from __future__ import annotations

import contextlib
import io as _io
import re

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.autograd.function import Function
from neuronkit.cli.main import main
from neuronkit.inspect.gradcheck import GradientReport, check_gradients


def _batch(shape, classes=3, n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, *shape)).astype(np.float32), rng.integers(0, classes, n)


def _snapshot(model):
    arrays = [(name, t.data) for name, t in [*model.named_parameters(), *model.named_buffers()]]
    return [(name, a, a.copy()) for name, a in arrays]


def _assert_restored(model, snap):
    now = dict([*model.named_parameters(), *model.named_buffers()])
    for name, arr, copy in snap:
        assert now[name].data is arr, f"{name}: a different array object after the check"
        assert arr.dtype == copy.dtype and (arr.dtype == np.float32 or arr.dtype.kind != "f"), name
        assert arr.tobytes() == copy.tobytes(), name  # bit-exact
    for p in model.parameters():
        assert p.grad is None


class _BadScale(Function):
    """``x * w`` per feature, with a backward for ``w`` off by ``factor`` (the input's gradient is right)."""

    name = "bad_scale"

    def forward(self, x, w, factor=1.5):
        self.x, self.w, self.factor = x, w, factor
        return x * w

    def backward(self, g):
        return g * self.w, self.factor * (g * self.x).sum(axis=0)


class BadScale(nn.Module):
    def __init__(self, features, factor=1.5):
        super().__init__()
        self.factor = factor
        self.weight = nn.Parameter(np.linspace(0.5, 1.5, features).astype(np.float32))

    def forward(self, x):
        return _BadScale.apply(x, self.weight, factor=self.factor)


def test_mlp_passes_and_restores():
    nk.manual_seed(0)
    model = nn.Sequential(nn.Dense(6, 16, activation="tanh"), nn.Dense(16, 12, activation="relu"), nn.Dense(12, 3))
    snap = _snapshot(model)
    report = check_gradients(model, _batch((6,)))
    assert isinstance(report, GradientReport)
    assert report.ok and bool(report)
    assert [r.name for r in report.rows] == [n for n, _ in model.named_parameters()]
    assert all(r.max_rel_error < 1e-4 and r.max_abs_error < 1e-8 for r in report.rows)  # float32 would be ~1e-2
    assert report.rows[0].checked == 20 and report.rows[1].checked == 16  # sampled weight, every bias entry
    assert set(report.layers()) == {"0", "1", "2"}
    text = str(report)
    assert re.search(r"^layer 0 \(Dense 6 -> 16\):\s+weight max rel err \S+ .* ok$", text, re.M), text
    assert "FAIL" not in text
    assert text.rstrip().splitlines()[-1].startswith("ok:")
    _assert_restored(model, snap)
    assert model.training and all(m.training for m in model.modules())


def test_seed_picks_entries_reproducibly():
    nk.manual_seed(1)
    model = nn.Sequential(nn.Dense(6, 16, activation="tanh"), nn.Dense(16, 3))
    batch = _batch((6,))
    a, b = check_gradients(model, batch, seed=3), check_gradients(model, batch, seed=3)
    assert [r.max_abs_error for r in a.rows] == [r.max_abs_error for r in b.rows]
    full = check_gradients(model, batch, max_per_param=10_000)
    assert [r.checked for r in full.rows] == [p.size for p in model.parameters()]


def test_cnn_passes():
    nk.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dense(3 * 3 * 3, 4))
    snap = _snapshot(model)
    report = check_gradients(model, _batch((1, 8, 8), classes=4, n=4), max_per_param=10)
    assert report.ok, str(report)
    assert "layer 0 (Conv2d 1 -> 3, kernel 3x3)" in str(report)
    _assert_restored(model, snap)


def test_batchnorm_checked_in_eval_and_modes_restored():
    nk.manual_seed(0)
    model = nn.Sequential(nn.Dense(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5), nn.Dense(8, 3))
    x, y = _batch((5,), n=16)
    for _ in range(3):  # running statistics away from their initial values
        model(nk.tensor(x))
    model[4].eval()  # a mixed state, restored as it was
    modes = [m.training for m in model.modules()]
    snap = _snapshot(model)
    report = check_gradients(model, (x, y))
    assert report.ok, str(report)  # dropout off and batch norm on running statistics: a deterministic loss
    assert {r.layer for r in report.rows} == {"0", "1", "4"}
    assert [m.training for m in model.modules()] == modes
    _assert_restored(model, snap)


def test_wrong_backward_fails_and_is_named():
    nk.manual_seed(0)
    model = nn.Sequential(nn.Dense(6, 8, activation="tanh"), BadScale(8), nn.Dense(8, 3))
    model.eval()
    snap = _snapshot(model)
    report = check_gradients(model, _batch((6,)))
    assert not report.ok and not bool(report)
    worst = report.worst
    assert worst.name == "1.weight" and worst.layer == "1" and not worst.ok
    assert worst.max_rel_error == pytest.approx(1 / 3, rel=1e-3)  # |1.5 a - a| / (1.5 a)
    assert worst.analytical == pytest.approx(1.5 * worst.numerical, rel=1e-5)
    assert [r.name for r in report.rows if not r.ok] == ["1.weight"]  # the input gradient is right: others pass
    assert not report.layers()["1"]["ok"] and report.layers()["0"]["ok"]
    text = str(report)
    assert re.search(r"^layer 1 \(BadScale\):\s+weight max rel err 3.3e-01 .* FAIL$", text, re.M), text
    assert "FAILED: 1 of 5 parameters; worst: layer 1 (BadScale) weight" in text
    _assert_restored(model, snap)
    assert not any(m.training for m in model.modules())


def _scaled_model(factor):
    nk.manual_seed(0)
    return nn.Sequential(nn.Dense(6, 8, activation="tanh"), BadScale(8, factor), nn.Dense(8, 3))


@pytest.mark.parametrize("factor", [1.05, 1.01, 1.001])
def test_a_backward_wrong_by_a_little_fails(factor):
    # The default rtol 1e-4 sits far below 0.1 % and far above the ~1e-8 error of float64 central differences:
    # a backward 5 %, 1 % or 0.1 % wrong fails on every entry of that parameter and only there.
    report = check_gradients(_scaled_model(factor), _batch((6,)))
    assert [r.name for r in report.rows if not r.ok] == ["1.weight"] and not report.ok
    assert report.worst.max_rel_error == pytest.approx((factor - 1) / factor, rel=1e-4)  # |f a - a| / (f a)
    assert report.worst.max_abs_error > 10 * report.atol  # a real gradient, not one only atol decides


def test_a_right_backward_passes_in_the_same_model():
    report = check_gradients(_scaled_model(1.0), _batch((6,)))
    assert report.ok and all(r.max_rel_error < 1e-6 for r in report.rows), str(report)


def test_pass_or_fail_is_decided_by_rtol_and_atol_at_the_boundary():
    # An entry passes when |a - n| <= atol + rtol * max(|a|, |n|): 20 % either side of the measured error decides.
    model, batch = _scaled_model(1.001), _batch((6,))
    worst = check_gradients(model, batch).worst
    rel, err = worst.max_rel_error, worst.max_abs_error
    assert check_gradients(model, batch, rtol=1.2 * rel, atol=0).ok
    assert not check_gradients(model, batch, rtol=0.8 * rel, atol=0).ok
    assert check_gradients(model, batch, rtol=0, atol=1.2 * err).ok
    assert not check_gradients(model, batch, rtol=0, atol=0.8 * err).ok


def test_restored_when_the_check_raises():
    nk.manual_seed(0)
    model = nn.Sequential(nn.Dense(6, 3))
    snap = _snapshot(model)
    with pytest.raises(ValueError):
        check_gradients(model, (np.zeros((2, 7), np.float32), np.zeros(2, np.int64)))  # wrong input width
    _assert_restored(model, snap)
    with pytest.raises(ValueError, match="pair"):
        check_gradients(model, np.zeros((2, 6)))


def test_regression_loss():
    nk.manual_seed(0)
    model = nn.Sequential(nn.Dense(4, 8, activation="sigmoid"), nn.Dense(8, 1))
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 1)).astype(np.float32)
    assert check_gradients(model, (x, y), loss="mse").ok


def _cli(*argv):
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_cli_gradcheck(tmp_path):
    run = tmp_path / "run"
    rc, _, err = _cli("train", "--data", "digits", "--epochs", "1", "--out", run)
    assert rc == 0, err
    rc, out, err = _cli("gradcheck", run, "--batch-size", "8")
    assert rc == 0, out + err
    assert "gradient check (float64, batch of 8" in out
    assert re.search(r"^layer 0 \(Dense 64 -> 128\):\s+weight max rel err .* ok$", out, re.M), out
    assert out.rstrip().splitlines()[-1].startswith("ok:")
    rc, _, err = _cli("gradcheck", tmp_path / "missing")
    assert rc == 1 and err.startswith("neuronkit: error:") and len(err.strip().splitlines()) == 1


def test_gradcheck_callback_repeats_the_check_during_training():
    from neuronkit.inspect import GradCheckCallback
    from neuronkit.train import fit

    x, y = _batch((6,), n=64)
    nk.manual_seed(0)
    good = nn.Sequential(nn.Dense(6, 8, activation="tanh"), nn.Dense(8, 3))
    cb = GradCheckCallback((x[:8], y[:8]), every=3)
    fit(good, (x, y), optimizer="sgd", lr=0.1, epochs=1, batch_size=8, callbacks=[cb], progress=False, seed=0)
    assert [r["step"] for r in cb.results] == [3, 6] and all(r["ok"] for r in cb.results)
    assert all(d["max_rel_error"] < 1e-5 for r in cb.results for d in r["layers"].values())
    assert cb.results[0]["loss"] != cb.results[1]["loss"]  # checked on the weights as training changed them
    nk.manual_seed(0)
    bad = nn.Sequential(nn.Dense(6, 8, activation="tanh"), BadScale(8), nn.Dense(8, 3))
    cb = GradCheckCallback((x[:8], y[:8]), every=2, stop_on_failure=True)
    h = fit(bad, (x, y), optimizer="sgd", lr=0.1, epochs=1, batch_size=8, callbacks=[cb], progress=False, seed=0)
    assert len(cb.results) == 1 and not cb.results[0]["ok"] and not cb.results[0]["layers"]["1"]["ok"]
    assert h.stopped_early == "stopped at step 2: the gradient check failed"
    with pytest.raises(ValueError, match="every must be a positive int, got 0"):
        GradCheckCallback((x, y), every=0)


def test_cli_gradcheck_every(tmp_path):
    import json

    out = tmp_path / "run"
    rc, stdout, stderr = _cli("train", "--data", "digits", "--epochs", "1", "--gradcheck-every", "15", "--out", out)
    assert rc == 0, stderr
    lines = [json.loads(s) for s in (out / "gradcheck.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [15, 30] and all(r["ok"] for r in lines)
    assert "gradient checks: 2 of 2 passed" in stdout
