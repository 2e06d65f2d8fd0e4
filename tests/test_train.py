"""The training loop: accuracy on held-out data, reproducibility, exact resume, crash-safe checkpoints, NaN and
Ctrl-C handling, callbacks, and user mistakes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from sklearn.datasets import load_digits

import neuronkit as nk
from neuronkit import nn, optim
from neuronkit.train import (
    Callback,
    EarlyStopping,
    LRScheduler,
    ModelCheckpoint,
    StopOnNaN,
    Trainer,
    evaluate,
    fit,
    latest_checkpoint,
    load_checkpoint,
    predict,
)


@pytest.fixture(scope="module")
def digits():
    d = load_digits()
    x, y = (d.data / 16).astype(np.float32), d.target
    idx = np.random.default_rng(0).permutation(len(x))
    return (x[idx[:1400]], y[idx[:1400]]), (x[idx[1400:]], y[idx[1400:]])


def mlp(seed=0, dropout=0.2):
    nk.manual_seed(seed)
    return nn.Sequential(nn.Dense(64, 64, activation="relu"), nn.Dropout(dropout), nn.Dense(64, 10))


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def test_digits_mlp_generalises(digits):
    train, test = digits
    model = mlp()
    h = fit(model, train, optimizer="adam", lr=2e-3, epochs=25, validation=test, seed=0, progress=False)
    assert h.epochs[-1]["val_accuracy"] >= 0.97, h.epochs[-1]
    assert len(h.epochs) == 25 and len(h.steps) == 25 * 44
    assert h["loss"][-1] < h["loss"][0] / 5
    assert evaluate(model, test)["accuracy"] == pytest.approx(h.epochs[-1]["val_accuracy"])
    assert predict(model, test[0]).shape == (len(test[0]), 10)


def test_same_seed_gives_a_bit_identical_run(digits):
    runs = []
    for _ in range(2):
        model = mlp(seed=3)
        fit(model, digits[0], optimizer="sgd", lr=0.1, epochs=2, seed=7, progress=False)
        runs.append(weights(model))
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])
    model = mlp(seed=3)
    fit(model, digits[0], optimizer="sgd", lr=0.1, epochs=2, seed=8, progress=False)
    assert not np.array_equal(weights(model)["0.weight"], runs[0]["0.weight"])


class StopAt(Callback):
    def __init__(self, step, root):
        self.at, self.root = step, root

    def on_step_end(self, trainer, logs):
        if trainer.step == self.at:
            trainer.save_checkpoint(self.root)
            trainer.stop_reason = "test stop"


def _trainer(model):
    opt = optim.Adam(model.parameters(), lr=1e-3)
    sched = optim.StepLR(opt, step_size=1, gamma=0.5)
    return Trainer(model, "cross_entropy", opt, scheduler=LRScheduler(sched), seed=11, progress=False)


def test_resume_mid_epoch_equals_an_uninterrupted_run(digits, tmp_path):
    full = mlp(seed=5)
    _trainer(full).fit(digits[0], epochs=3, batch_size=50)

    part = mlp(seed=5)
    t = _trainer(part)
    t.callbacks.append(StopAt(40, tmp_path))  # epoch 2 of 3, batch 12 of 28
    t.fit(digits[0], epochs=3, batch_size=50)
    assert t.step == 40

    resumed = mlp(seed=99)  # different initial weights: everything must come from the checkpoint
    nk.manual_seed(12345)  # and a disturbed default generator
    h = _trainer(resumed).fit(digits[0], epochs=3, batch_size=50, resume=tmp_path)
    for k, v in weights(full).items():
        np.testing.assert_array_equal(weights(resumed)[k], v, err_msg=k)
    assert [e["epoch"] for e in h.epochs] == [1, 2, 3]


def test_ctrl_c_saves_a_checkpoint_and_resumes_exactly(digits, tmp_path):
    class CtrlC(Callback):
        def on_step_end(self, trainer, logs):
            if trainer.step == 30:
                os.kill(os.getpid(), signal.SIGINT)

    full = mlp(seed=2)
    fit(full, digits[0], optimizer="adam", epochs=2, batch_size=64, seed=4, progress=False)
    model = mlp(seed=2)
    h = fit(
        model,
        digits[0],
        optimizer="adam",
        epochs=2,
        batch_size=64,
        seed=4,
        progress=False,
        callbacks=[CtrlC(), ModelCheckpoint(tmp_path, every_epoch=False)],
    )
    assert h.interrupted and h.steps[-1]["step"] == 30
    _, state = load_checkpoint(tmp_path, model=mlp(seed=0))
    assert state["step"] == 30
    again = mlp(seed=0)
    fit(again, digits[0], optimizer="adam", epochs=2, batch_size=64, seed=4, progress=False, resume=tmp_path)
    for k, v in weights(full).items():
        np.testing.assert_array_equal(weights(again)[k], v, err_msg=k)


@pytest.mark.parametrize(
    "every_epoch,saved",
    [(False, ["4", "8", "9"]), (True, ["3", "4", "6", "8", "9.1"])],  # 9.1: step 9 saved again at the end, replacing it
)
def test_model_checkpoint_saves_every_n_steps_and_at_each_epoch_end(tmp_path, every_epoch, saved):
    # 24 samples in batches of 8: 3 steps per epoch, 9 in all; every 4 steps, and at the end of training
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(24, 3)).astype(np.float32), rng.integers(0, 2, 24)
    callback = ModelCheckpoint(tmp_path, every_steps=4, every_epoch=every_epoch, keep=10)
    fit(
        nn.Sequential(nn.Dense(3, 2, generator=0)), (x, y), epochs=3, batch_size=8, callbacks=[callback], progress=False
    )
    expected = [f"step-{int(float(s)):09d}{s[1:]}" for s in saved]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("step-")) == expected
    assert latest_checkpoint(tmp_path).endswith(expected[-1])


def test_stop_on_nan_stops_at_the_bad_step_without_updating(digits):
    x, y = digits[0][0][:320].copy(), digits[0][1][:320]
    x[200, 5] = np.nan  # batch 7 of 10 (batch size 32, no shuffle)
    seen = {}

    class Keep(Callback):
        def on_step_end(self, trainer, logs):
            seen[trainer.step] = weights(trainer.model)

    model = mlp(seed=1, dropout=0.0)
    h = fit(
        model, (x, y), optimizer="sgd", lr=0.1, epochs=1, shuffle=False, progress=False, callbacks=[StopOnNaN(), Keep()]
    )
    assert "step 7" in h.stopped_early and "'0.weight'" in h.stopped_early, h.stopped_early
    for k, v in seen[6].items():  # the weights after step 6: step 7 applied nothing
        np.testing.assert_array_equal(weights(model)[k], v)


def test_stop_on_nan_catches_one_non_finite_gradient_entry_under_a_finite_loss(digits):
    seen = {}

    class Corrupt(Callback):  # runs before StopOnNaN: one entry of one gradient becomes inf at step 3
        def after_backward(self, trainer, loss):
            assert np.isfinite(loss)
            if trainer.step + 1 == 3:
                trainer.model[2].weight.grad.data[1, 2] = np.inf
            return True

        def on_step_end(self, trainer, logs):
            seen[trainer.step] = weights(trainer.model)

    model = mlp(seed=1, dropout=0.0)
    h = fit(model, digits[0], optimizer="sgd", lr=0.1, epochs=1, progress=False, callbacks=[Corrupt(), StopOnNaN()])
    assert h.stopped_early == (
        "stopped at step 3: the gradient of '2.weight' is non-finite; no update was applied from this step"
    )
    for k, v in seen[2].items():
        np.testing.assert_array_equal(weights(model)[k], v)


def test_a_learning_rate_of_10_explodes_and_is_caught(digits):
    x, y = digits[0]
    target = y.astype(np.float32)[:, None]
    nk.manual_seed(0)
    model = nn.Sequential(nn.Dense(64, 1))
    h = fit(
        model,
        (x, target),
        loss="mse",
        optimizer="sgd",
        lr=10.0,
        epochs=5,
        progress=False,
        callbacks=[StopOnNaN()],
        seed=0,
    )
    assert h.stopped_early and "stopped at step" in h.stopped_early, h.stopped_early
    assert len(h.steps) < 5 * 44
    assert all(np.isfinite(v).all() for v in weights(model).values())  # the bad update was not applied


def test_early_stopping_restores_the_best_weights(digits):
    train, test = digits
    best = {}

    class Track(Callback):
        def on_epoch_end(self, trainer, logs):
            if logs["val_loss"] <= min(e["val_loss"] for e in trainer.history.epochs):
                best["w"] = weights(trainer.model)

    model = mlp(seed=0, dropout=0.0)
    h = fit(
        model,
        (train[0][:200], train[1][:200]),
        optimizer="adam",
        lr=0.01,
        epochs=60,
        validation=test,
        callbacks=[Track(), EarlyStopping("val_loss", patience=3)],
        seed=0,
        progress=False,
    )
    assert h.stopped_early and len(h.epochs) < 60
    for k, v in best["w"].items():
        np.testing.assert_array_equal(weights(model)[k], v)


class _Scripted(Callback):
    """Sets the monitored value of each epoch's logs to the next of ``values`` (before EarlyStopping reads it)."""

    def __init__(self, monitor, values):
        self.monitor, self.values = monitor, list(values)

    def on_epoch_end(self, trainer, logs):
        logs[self.monitor] = self.values[logs["epoch"] - 1]


# (monitor, values, EarlyStopping settings, epochs run, best value, best epoch); the values are exact binary
# fractions, so "improved by more than min_delta" is decided exactly
EARLY_STOPPING_CASES = [
    # no improvement at epochs 3 and 4: patience 2 is exhausted at epoch 4 (the improvement at 5 comes too late)
    ("val_loss", [1.0, 0.5, 0.75, 0.625, 0.25, 0.125], dict(patience=2), 4, 0.5, 2),
    # an equal value is no improvement
    ("val_loss", [1.0, 0.5, 0.5, 0.5, 0.25, 0.125], dict(patience=2), 4, 0.5, 2),
    ("val_loss", [1.0, 0.5, 0.5, 0.25, 0.125, 0.0625], dict(patience=0), 3, 0.5, 2),
    ("val_loss", [1.0, 0.5, 0.75, 0.25, 0.75, 0.5, 0.125, 0.0625], dict(patience=2), 6, 0.25, 4),
    # min_delta: 0.75 is exactly 0.25 below 1.0, not more: no improvement; 0.625 is
    ("val_loss", [1.0, 0.75, 0.625, 0.5, 0.4375, 0.0], dict(patience=2, min_delta=0.25), 5, 0.625, 3),
    ("val_loss", [1.0, 0.75, 0.5, 0.25, 0.0, 0.0], dict(patience=1, min_delta=0.25), 2, 1.0, 1),
    # accuracy: higher is better (mode "auto"), and min_delta counts upwards
    ("val_accuracy", [0.5, 0.75, 0.75, 0.875, 0.875, 0.875, 1.0], dict(patience=2), 6, 0.875, 4),
    ("val_accuracy", [0.5, 0.625, 0.5625, 1.0, 1.0, 1.0], dict(patience=2, min_delta=0.125), 3, 0.5, 1),
]


@pytest.mark.parametrize("monitor,values,settings,run,best,best_epoch", EARLY_STOPPING_CASES)
def test_early_stopping_stops_at_the_exact_epoch(monitor, values, settings, run, best, best_epoch):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 2)).astype(np.float32), rng.integers(0, 2, 8)
    model = nn.Sequential(nn.Dense(2, 2, generator=0))
    states = []

    class Keep(Callback):
        def on_epoch_end(self, trainer, logs):
            states.append(weights(trainer.model))

    stop = EarlyStopping(monitor, **settings)
    h = fit(
        model,
        (x, y),
        optimizer="sgd",
        lr=0.1,
        epochs=len(values),
        callbacks=[_Scripted(monitor, values), Keep(), stop],
        seed=0,
        progress=False,
    )
    assert len(h.epochs) == run
    assert (stop.best, stop.best_epoch) == (best, best_epoch)
    assert h.stopped_early == (
        f"early stopping: {monitor} did not improve for {settings['patience']} epochs (best {best:g} at epoch "
        f"{best_epoch})"
    )
    for k, v in states[best_epoch - 1].items():  # the weights of the best epoch are back
        np.testing.assert_array_equal(weights(model)[k], v)


def test_early_stopping_runs_on_while_it_improves():
    model = nn.Sequential(nn.Dense(2, 2, generator=0))
    x, y = np.ones((4, 2), np.float32), np.array([0, 1, 0, 1])
    values = [1.0, 0.75, 0.5, 0.25, 0.125]
    stop = EarlyStopping(patience=1, min_delta=0.0625)
    h = fit(model, (x, y), epochs=5, callbacks=[_Scripted("val_loss", values), stop], progress=False, seed=0)
    assert len(h.epochs) == 5 and h.stopped_early is None and stop.best_epoch == 5


CRASH_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import neuronkit as nk
    from neuronkit import nn, optim
    from neuronkit.train import save_checkpoint
    nk.manual_seed(0)
    model = nn.Sequential(nn.Dense(200, 300), nn.Dense(300, 10))
    opt = optim.Adam(model.parameters())
    for p in model.parameters():
        p.grad = nk.ones_like(p)
    opt.step()
    step = 0
    while True:
        step += 1
        for p in model.parameters():
            p.data += 1.0
        save_checkpoint(sys.argv[1], model, opt, {"step": step, "value": float(model[0].bias.data[0])})
        print(step, flush=True)
    """
)


def test_a_save_killed_at_random_moments_leaves_a_loadable_checkpoint(tmp_path):
    script = tmp_path / "saver.py"
    script.write_text(CRASH_SCRIPT)
    rng = np.random.default_rng(0)
    for trial in range(6):
        root = tmp_path / f"ckpt{trial}"
        proc = subprocess.Popen([sys.executable, str(script), str(root)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline()  # at least one checkpoint completed
        time.sleep(float(rng.uniform(0.0, 0.4)))
        proc.kill()
        proc.wait()
        model, state = load_checkpoint(root)
        # the checkpoint is internally consistent: its weights are those of the step it says
        assert model[0].bias.data[0] == pytest.approx(state["value"])
        assert latest_checkpoint(root).endswith(f"step-{state['step']:09d}")


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(epochs=0), ValueError, "epochs must be a positive int"),
        (dict(optimizer="adamm"), ValueError, "unknown optimizer 'adamm'"),
        (dict(loss="crossentropy"), ValueError, "crossentropy"),
    ],
)
def test_user_mistakes_get_clear_errors(digits, kwargs, err, match):
    with pytest.raises(err, match=match):
        fit(mlp(), digits[0], progress=False, **kwargs)


def test_empty_and_mismatched_data_are_refused():
    with pytest.raises(ValueError, match="empty"):
        fit(mlp(), (np.zeros((0, 64), np.float32), np.zeros(0, int)), progress=False)
    with pytest.raises(ValueError, match=r"Dense\(64 -> 64\) got input of shape \(32, 63\)"):
        fit(mlp(), (np.zeros((40, 63), np.float32), np.zeros(40, int)), progress=False)


def test_gradients_seen_by_a_callback_are_not_consumed_and_the_run_is_the_same(digits):
    (x, y), _ = digits

    class Keep(Callback):
        def __init__(self):
            self.kept = []

        def after_backward(self, trainer, loss):
            self.kept = [(p.grad, p.grad.data.copy()) for p in trainer.model.parameters()]
            return True

        def on_step_end(self, trainer, logs):
            assert all(np.array_equal(g.data, saved) for g, saved in self.kept)  # SGD did not scale them in place

    runs = []
    for callbacks in ((), (Keep(),)):
        model = mlp(dropout=0.0)
        opt = optim.SGD(model.parameters(), lr=0.1)
        fit(
            model,
            (x[:300], y[:300]),
            optimizer=opt,
            epochs=2,
            batch_size=32,
            seed=3,
            callbacks=callbacks,
            progress=False,
        )
        runs.append(weights(model))
        # with no one else holding them, fit let SGD scale the gradients in place (no scratch buffer was needed)
        assert (opt._scratch_buf is None) == (not callbacks)
    assert all(np.array_equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_clip_grad_norm_callback_clips_every_step_before_the_update(digits):
    from neuronkit.train import ClipGradNorm

    (x, y), _ = digits

    class Seen(Callback):
        def __init__(self):
            self.norms = []

        def after_backward(self, trainer, loss):
            g = [p.grad.data.astype(np.float64).ravel() for p in trainer.model.parameters()]
            self.norms.append(float(np.linalg.norm(np.concatenate(g))))
            return True

    clip, seen = ClipGradNorm(0.05), Seen()
    model = mlp(dropout=0.0)
    fit(
        model,
        (x[:256], y[:256]),
        optimizer="sgd",
        lr=0.1,
        epochs=1,
        batch_size=32,
        seed=0,
        callbacks=[clip, seen],
        progress=False,
    )
    assert len(seen.norms) == 8 and max(seen.norms) <= 0.05 * (1 + 1e-5)  # what the update sees is clipped
    assert clip.last_norm > 0.05  # the norm before clipping was larger
    # the same run by hand: clip then step, identical weights
    manual = mlp(dropout=0.0)
    opt = optim.SGD(manual.parameters(), lr=0.1)
    loader = nk.data.DataLoader(nk.data.ArrayDataset(x[:256], y[:256]), batch_size=32, shuffle=True, seed=0)
    for xb, yb in loader:
        nk.cross_entropy(manual(nk.tensor(xb)), yb).backward()
        optim.clip_grad_norm(list(manual.parameters()), 0.05)
        opt.step()
        opt.zero_grad()
    a, b = weights(model), weights(manual)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="max_norm must be a number > 0, got 0"):
        ClipGradNorm(0)


def test_an_optimizer_with_its_own_step_is_still_called_by_fit(digits):
    # fit uses step_and_zero_grad only for optimizers that keep the base class's step and zero_grad
    (x, y), _ = digits

    class Counting(optim.SGD):
        calls = 0

        def step(self, closure=None):
            Counting.calls += 1
            return super().step(closure)

    model = mlp(dropout=0.0)
    h = fit(
        model,
        (x[:256], y[:256]),
        optimizer=Counting(model.parameters(), lr=0.1),
        epochs=1,
        batch_size=32,
        progress=False,
    )
    assert Counting.calls == len(h.steps) == 8
