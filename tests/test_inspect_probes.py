"""Probes, per-neuron history and events: every statistic against a direct NumPy computation on the same batch."""

from __future__ import annotations

import json

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.inspect import Probe, ProbeCallback, load_history
from neuronkit.train import fit


def _mlp(act="relu", seed=0):
    return nn.Sequential(nn.Dense(6, 5, activation=act, generator=seed), nn.Dense(5, 3, generator=seed + 1))


def _data(n=64, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, rng.integers(0, 3, n)


def _recorded_step(model, probe, x, y, step=1, lr=0.1):
    probe.begin(step)
    out = model(nk.tensor(x))
    loss = nk.cross_entropy(out, nk.tensor(y))
    loss.backward()
    probe.commit(lr=lr)
    return out


@pytest.mark.parametrize("act", ["relu", "sigmoid", "tanh"])
def test_statistics_equal_direct_numpy(act):
    model = _mlp(act)
    probe = Probe(model, every=1)
    x, y = _data()
    _recorded_step(model, probe, x, y)
    l0 = model[0]
    w, b = l0.weight.data.astype(np.float64), l0.bias.data.astype(np.float64)
    z = x.astype(np.float64) @ w.T + b  # (batch, units)
    o = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh}[act](z)
    h = probe.history("0")
    assert h["step"].tolist() == [1]
    tol = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(h["pre_mean"][0], z.mean(0), **tol)
    np.testing.assert_allclose(h["pre_std"][0], z.std(0), **tol)
    np.testing.assert_allclose(h["out_mean"][0], o.mean(0), **tol)
    np.testing.assert_allclose(h["out_std"][0], o.std(0), **tol)
    if act == "relu":
        active = (z > 0).mean(0)
    elif act == "sigmoid":  # saturated: the slope below a fifth of its peak (issue 16; was: outside 0.01-0.99)
        active = 1 - (4 * o * (1 - o) < 0.2).mean(0)
    else:
        active = 1 - (1 - o * o < 0.2).mean(0)
    np.testing.assert_allclose(h["active_frac"][0], active)
    np.testing.assert_allclose(h["weight_norm"][0], np.linalg.norm(w, axis=1), rtol=1e-6)
    np.testing.assert_allclose(h["bias"][0], b)
    g = l0.weight.grad.data.astype(np.float64)
    np.testing.assert_allclose(h["grad_norm"][0], np.linalg.norm(g, axis=1), rtol=1e-6)
    np.testing.assert_allclose(h["layer_grad_norm"][0], np.linalg.norm(g), rtol=1e-6)
    assert np.isfinite(h["out_grad_norm"][0]) and h["out_grad_norm"][0] > 0
    assert h["hist"][0].sum() == o.size and h["hist_edges"].shape == (probe.bins + 1,)
    assert np.isnan(h["update_ratio"][0]).all()  # no previous record yet
    # the linear output layer: pre-activation == output
    h1 = probe.history("1")
    z1 = o @ model[1].weight.data.astype(np.float64).T + model[1].bias.data
    np.testing.assert_allclose(h1["pre_mean"][0], z1.mean(0), **tol)
    np.testing.assert_allclose(h1["out_std"][0], z1.std(0), **tol)


def test_update_ratio_and_bias_delta_against_saved_copy():
    model = _mlp()
    probe = Probe(model, every=1)
    x, y = _data()
    _recorded_step(model, probe, x, y, step=1)
    w_before = model[0].weight.data.astype(np.float64).copy()
    b_before = model[0].bias.data.astype(np.float64).copy()
    model.zero_grad()
    model[0].weight.data[...] += np.random.default_rng(3).normal(0, 0.05, size=(5, 6)).astype(np.float32)
    model[0].bias.data[2] -= 0.8
    _recorded_step(model, probe, x, y, step=2)
    w, b = model[0].weight.data.astype(np.float64), model[0].bias.data.astype(np.float64)
    h = probe.history("0")
    expect = np.linalg.norm(w - w_before, axis=1) / np.linalg.norm(w, axis=1)
    np.testing.assert_allclose(h["update_ratio"][1], expect, rtol=1e-6)
    np.testing.assert_allclose(h["bias_delta"][1], b - b_before, atol=1e-7)
    assert h["bias_delta"][1][2] == pytest.approx(-0.8, abs=1e-6)


def test_conv_per_output_channel():
    conv = nn.Conv2d(2, 4, 3, generator=0)
    model = nn.Sequential(conv)
    probe = Probe(model, every=1)
    x = np.random.default_rng(0).normal(size=(3, 2, 6, 6)).astype(np.float32)
    probe.begin(1)
    out = model(nk.tensor(x))
    (out * out).sum().backward()
    probe.commit()
    o = out.data.astype(np.float64).transpose(1, 0, 2, 3).reshape(4, -1)
    h = probe.history(probe.layers.__iter__().__next__())
    np.testing.assert_allclose(h["out_mean"][0], o.mean(1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(h["out_std"][0], o.std(1), rtol=1e-4)
    np.testing.assert_allclose(h["weight_norm"][0], np.linalg.norm(conv.weight.data.reshape(4, -1), axis=1), rtol=1e-6)
    np.testing.assert_allclose(
        h["grad_norm"][0], np.linalg.norm(conv.weight.grad.data.reshape(4, -1), axis=1), rtol=1e-5
    )


def test_inactive_steps_record_nothing_and_remove_detaches():
    model = _mlp()
    probe = Probe(model, every=1)
    x, _ = _data()
    model(nk.tensor(x))
    assert probe.commit() == [] and probe.work_count == 0 and probe.layers["0"].count == 0
    probe.remove()
    probe.begin(1)
    model(nk.tensor(x))
    assert probe.work_count == 0


def test_eval_mode_passes_are_not_recorded():
    # validation after an epoch (or a gradient check) runs in eval mode, possibly while the probe is armed for the
    # next training step: those passes must not leak into that step's record
    model = _mlp()
    probe = Probe(model, every=1)
    x, _ = _data()
    probe.begin(1)
    model.eval()
    model(nk.tensor(x))
    assert probe.work_count == 0
    model.train()
    model(nk.tensor(x))
    assert probe.work_count == 2


def test_validation_with_an_armed_probe_does_not_change_the_record():
    x, y = _data(n=320)
    records = []
    for validation in (None, (x[:64], y[:64])):
        model = _mlp()
        cb = ProbeCallback(every=20)  # step 21 (epoch 2's first) is armed while epoch 1's validation runs
        fit(
            model,
            (x, y),
            optimizer="sgd",
            lr=0.05,
            epochs=2,
            batch_size=16,
            shuffle=False,
            callbacks=[cb],
            progress=False,
            seed=0,
            validation=validation,
        )
        records.append(cb.probe.history("0"))
    assert records[0]["step"].tolist() == records[1]["step"].tolist() == [1, 21]
    np.testing.assert_array_equal(records[0]["out_mean"], records[1]["out_mean"])


def test_records_only_every_n_steps_in_fit():
    x, y = _data(n=320)
    model = _mlp()
    cb = ProbeCallback(every=4)
    fit(
        model,
        (x, y),
        optimizer="sgd",
        lr=0.05,
        epochs=2,
        batch_size=16,
        shuffle=False,
        callbacks=[cb],
        progress=False,
        seed=0,
    )
    steps = cb.probe.history("0")["step"]
    assert steps.tolist() == list(range(1, 41, 4))  # 40 steps: 1, 5, ..., 37
    assert cb.probe.work_count == 2 * len(steps)  # two layers' hooks did work, and only on recorded steps
    lr = cb.probe.history("0")["lr"]
    np.testing.assert_allclose(lr, 0.05)


def test_hook_work_count_matches_steps_over_every():
    x, y = _data(n=1600)
    model = nn.Sequential(nn.Dense(6, 4, activation="relu", generator=0))
    cb = ProbeCallback(every=50)
    fit(
        model,
        (x, y),
        loss="cross_entropy",
        optimizer="sgd",
        lr=0.01,
        epochs=1,
        batch_size=8,
        callbacks=[cb],
        progress=False,
        seed=0,
    )
    assert cb.probe.work_count == 200 // 50


def test_ring_buffer_stays_bounded():
    model = _mlp()
    probe = Probe(model, every=1, max_records=8)
    rec = probe.layers["0"]
    arrays = [rec.steps, rec.hist, *rec.unit.values(), *rec.layer.values()]
    ids, shapes = [id(a) for a in arrays], [a.shape for a in arrays]
    x, y = _data(n=16)
    for s in range(1, 51):
        _recorded_step(model, probe, x, y, step=s)
        model.zero_grad()
    assert [id(a) for a in [rec.steps, rec.hist, *rec.unit.values(), *rec.layer.values()]] == ids
    assert [a.shape for a in arrays] == shapes and rec.count == 50
    h = probe.history("0")
    assert h["step"].tolist() == list(range(43, 51))
    assert h["pre_mean"].shape == (8, 5) and h["hist"].shape == (8, probe.bins)


def test_dead_relu_event_names_layer_and_unit():
    x, y = _data(n=256)
    model = _mlp()
    model[0].bias.data[3] = -50.0
    cb = ProbeCallback(every=2, window=3)
    fit(model, (x, y), optimizer="sgd", lr=0.1, epochs=1, batch_size=16, callbacks=[cb], progress=False, seed=0)
    dead = [e for e in cb.events if e["kind"] == "dead"]
    assert [(e["layer"], e["unit"]) for e in dead] == [("0", 3)]
    ev = dead[0]
    assert ev["step"] == 1 and ev["detected_at"] == 5 and ev["lr"] == pytest.approx(0.1)
    assert "layer 0, unit 3" in ev["message"] and "never fired" in ev["message"]
    assert (cb.probe.history("0")["active_frac"][:, 3] == 0).all()


def test_dead_event_reports_the_bias_move_that_killed_it():
    x, y = _data(n=64)
    model = _mlp()
    probe = Probe(model, every=1)
    from neuronkit.inspect import EventDetector

    det = EventDetector(window=2)
    _recorded_step(model, probe, x, y, step=1)
    assert det.check(probe) == []  # one record: a unit is dead only when silent over the whole window of 2
    model[0].bias.data[1] -= 60.0
    events = []
    for s in (2, 3):
        model.zero_grad()
        _recorded_step(model, probe, x, y, step=s, lr=0.1)
        events += det.check(probe)
    dead = [e for e in events if e["kind"] == "dead"]
    assert len(dead) == 1 and dead[0]["unit"] == 1 and dead[0]["step"] == 2 and dead[0]["detected_at"] == 3
    assert dead[0]["update"]["bias"] == pytest.approx(-60.0, abs=1e-3)
    assert "layer 0, unit 1 stopped firing at step 2 after its bias moved by -60.00" in dead[0]["message"]
    assert "at lr 0.1" in dead[0]["message"]


def test_sigmoid_with_huge_weights_saturates():
    x, y = _data(n=128)
    model = _mlp("sigmoid")
    model[0].weight.data[...] *= 100
    cb = ProbeCallback(every=1)
    fit(model, (x, y), optimizer="sgd", lr=0.1, epochs=1, batch_size=32, callbacks=[cb], progress=False, seed=0)
    sat = [e for e in cb.events if e["kind"] == "saturated"]
    assert sat and all(e["layer"] == "0" for e in sat)
    frac = cb.probe.history("0")["saturated_frac"]
    assert {e["unit"] for e in sat} == set(np.flatnonzero((frac > 0.95).any(0)).tolist()) and len(sat) >= 3
    assert {e["unit"] for e in sat if e["step"] == 1} == set(np.flatnonzero(frac[0] > 0.95).tolist())
    assert "saturated at step 1" in sat[0]["message"]
    assert not [e for e in cb.events if e["kind"] == "saturated" and e["layer"] == "1"]


def test_learning_rate_ten_explodes_before_nan():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype(np.float32)
    y = (3 * x[:, :1] + x[:, 1:2]).astype(np.float32)
    model = nn.Sequential(nn.Dense(8, 16, activation="relu", generator=0), nn.Dense(16, 1, generator=1))
    cb = ProbeCallback(every=1)
    with np.errstate(all="ignore"):
        h = fit(
            model,
            (x, y),
            loss="mse",
            optimizer="sgd",
            lr=10.0,
            epochs=1,
            batch_size=32,
            callbacks=[cb],
            progress=False,
            seed=0,
        )
    losses = [s["loss"] for s in h.steps]
    first_nan = next(i + 1 for i, v in enumerate(losses) if not np.isfinite(v))
    expl = [e for e in cb.events if e["kind"] == "exploding"]
    assert expl and min(e["step"] for e in expl) < first_nan
    assert expl[0]["lr"] == 10.0 and "exploded at step" in expl[0]["message"]
    # a unit is reported once, not on every later step
    assert len({(e["layer"], e["unit"]) for e in expl}) == len(expl)


def test_healthy_run_has_no_events():
    x, y = _data(n=256)
    cb = ProbeCallback(every=2)
    fit(_mlp("tanh"), (x, y), optimizer="sgd", lr=0.05, epochs=1, batch_size=16, callbacks=[cb], progress=False, seed=0)
    assert cb.events == []


def test_save_load_round_trip(tmp_path):
    x, y = _data(n=256)
    model = _mlp()
    model[0].bias.data[3] = -50.0
    cb = ProbeCallback(every=2, max_records=5)
    fit(model, (x, y), optimizer="sgd", lr=0.1, epochs=1, batch_size=16, callbacks=[cb], progress=False, seed=0)
    tensors, meta = cb.probe.save(tmp_path / "run")
    assert tensors.endswith(".safetensors") and meta.endswith(".json")
    with open(tensors, "rb") as f:
        assert b"pickle" not in f.read(200)
    saved = json.loads(open(meta, encoding="utf-8").read())
    assert saved["every"] == 2 and [d["name"] for d in saved["layers"]] == ["0", "1"]
    back = load_history(tmp_path / "run")
    assert back.events == cb.events
    for layer in ("0", "1"):
        want, got = cb.probe.history(layer), back.history(layer)
        assert set(want) == set(got)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
            assert got[k].dtype == want[k].dtype


def test_bad_arguments():
    with pytest.raises(ValueError, match="every"):
        Probe(_mlp(), every=0)
    with pytest.raises(ValueError, match="no Dense"):
        Probe(nn.Sequential(nn.ReLU()))
    with pytest.raises(KeyError, match="probed layers"):
        Probe(_mlp()).history("nope")


def test_a_convolution_with_fused_relu_and_pool_is_probed_and_its_dead_filter_found():
    from neuronkit.inspect.unit import format_unit, view_unit

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 1, 8, 8)).astype(np.float32), rng.integers(0, 3, 64)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, activation="relu", max_pool=2, generator=0),
        nn.Flatten(),
        nn.Dense(64, 3, generator=1),
    )
    model[0].bias.data[1] = -50.0
    cb = ProbeCallback(every=2)
    fit(model, (x, y), optimizer="sgd", lr=0.1, epochs=2, batch_size=16, callbacks=[cb], progress=False, seed=0)
    rec = cb.probe.layers["0"]
    assert rec.activation == "relu"
    h = cb.probe.history("0")
    out = model[0](nk.tensor(x)).data  # (N, 4, 4, 4): pooled ReLU maps
    assert h["active_frac"][-1][1] == 0 and (out[:, 1] == 0).all()
    assert [(e["unit"], e["kind"]) for e in cb.events] == [(1, "dead")]
    text = format_unit(view_unit(model, "0", 1, probes=cb))
    assert "output = relu(w . x + b), max-pooled over 2x2 windows" in text


def test_probes_leave_a_fused_convolution_fused_and_the_run_bit_identical():
    # A probe must not hook a fused conv's activation module: that would make the layer run conv, ReLU and pooling
    # apart (slower, and not bit-identical to the run without probes).
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(48, 1, 10, 10)).astype(np.float32), rng.integers(0, 3, 48)

    def run(callbacks):
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3, activation="relu", max_pool=2, generator=0),
            nn.Conv2d(4, 6, 3, padding=1, activation="relu", max_pool=2, generator=1),
            nn.Flatten(),
            nn.Dense(24, 3, activation="tanh", generator=2),
        )
        fit(
            model, (x, y), optimizer="sgd", lr=0.1, epochs=2, batch_size=16, callbacks=callbacks, progress=False, seed=0
        )
        return model

    probe = ProbeCallback(every=1)
    probed, plain = run([probe]), run([])
    # The Dense layer's activation is watched while a step is recorded, and only then
    assert not probed[0].activation.has_hooks() and not probed[3].activation.has_hooks()
    probe.probe.begin(99)
    assert not probed[0].activation.has_hooks() and probed[3].activation.has_hooks()
    probe.probe.active = False
    assert not probed[3].activation.has_hooks()
    for a, b in zip(probed.parameters(), plain.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert len(probe.probe.history("0")["step"]) == 6


class _ThreadRanks:
    """Two ranks as two threads: ``allreduce`` sums the ranks' buffers in place, as MPI's would."""

    size = 2

    def __init__(self):
        import threading

        self.barrier, self.slots = threading.Barrier(2, timeout=60), [None, None]

    def comm(self, rank):
        ranks = self

        class Comm:
            size = 2

            def allreduce(self, buf):
                ranks.slots[rank] = buf.copy()
                ranks.barrier.wait()
                total = ranks.slots[0] + ranks.slots[1]
                ranks.barrier.wait()
                buf[...] = total
                return buf

        return Comm()


@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_data_parallel_probes_record_the_global_batch(act):
    """Two ranks, each probing its half of the batch (23 and 41 rows) and backpropagating its share of the
    global-batch loss: after commit both hold the statistics one probe computes on the whole batch."""
    import threading

    x, y = _data(64)
    whole = _mlp(act)
    p_one = Probe(whole, every=1)
    _recorded_step(whole, p_one, x, y)
    ranks, probes, errors = _ThreadRanks(), [], []
    shards = [(0, 23), (23, 64)]
    models = [_mlp(act) for _ in shards]
    for r, m in enumerate(models):
        probes.append(Probe(m, every=1))
        probes[r].comm = ranks.comm(r)

    def rank(r):
        try:
            lo, hi = shards[r]
            probes[r].begin(1)
            out = models[r](nk.tensor(x[lo:hi]))
            loss = nk.cross_entropy(out, nk.tensor(y[lo:hi])) * ((hi - lo) / len(x))
            loss.backward()
            probes[r].commit(lr=0.1)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for name in ("0", "1"):
        want = p_one.history(name)
        for p in probes:
            got = p.history(name)
            for s in ("pre_mean", "pre_std", "pre_rms", "out_mean", "out_std", "active_frac", "saturated_frac"):
                np.testing.assert_allclose(got[s], want[s], rtol=1e-5, atol=1e-6, err_msg=f"{name} {s}")
            np.testing.assert_array_equal(got["hist"], want["hist"])
            np.testing.assert_allclose(got["out_grad_norm"], want["out_grad_norm"], rtol=1e-5)


def _probe_records(model, x, y, jit):
    """One recorded step's statistics of every layer, with the compiled kernels on or off."""
    from neuronkit import backend as B

    old, B.JIT = B.JIT, jit
    try:
        probe = Probe(model, every=1)
        _recorded_step(model, probe, x, y)
        return {name: probe.history(name) for name in probe.layers}
    finally:
        B.JIT = old


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_compiled_statistics_equal_the_numpy_codes(dtype):
    """A fused convolution's and a layer without activation's records come from ``jit_kernels.unit_stats`` (one pass
    over the output's memory) where Numba is installed: the NumPy code's values within float64 rounding, the same
    histogram. The inputs put outputs outside the histogram's range and exactly on its edges."""
    from neuronkit import jit_kernels

    calls = []
    kernel = jit_kernels.unit_stats

    def counted(*args):
        calls.append(args[0].shape)
        return kernel(*args)

    rng = np.random.default_rng(5)
    x = (rng.integers(-8, 9, size=(32, 8, 9, 9)) / 4).astype(dtype)  # (outputs on a grid of quarters: on bin edges)
    y = rng.integers(0, 3, 32)
    model = nn.Sequential(
        nn.Conv2d(8, 6, 3, padding=1, activation="relu", max_pool=2, generator=0, dtype=dtype),
        nn.Flatten(),
        nn.Dense(96, 3, generator=1, dtype=dtype),
    )
    model[0].weight.data[...] = (rng.integers(-2, 3, model[0].weight.shape) / 4).astype(dtype)
    model[0].bias.data[...] = (rng.integers(-2, 3, 6) / 4).astype(dtype)
    jit_kernels.unit_stats = counted
    try:
        got = _probe_records(model, x, y, True)
    finally:
        jit_kernels.unit_stats = kernel
    want = _probe_records(model, x, y, False)
    assert calls == [(32 * 4 * 4, 6), (32, 3)]  # (both layers: conv as NHWC rows, the dense output as is)
    out = model[0](nk.tensor(x)).data
    assert (out > 5).any() and (out == 0).any() and np.isin(out[out > 0], np.linspace(-5, 5, 33)).sum() > 10
    for name in want:
        np.testing.assert_array_equal(got[name]["hist"], want[name]["hist"])
        for s in ("pre_mean", "pre_std", "pre_rms", "out_mean", "out_std", "active_frac", "saturated_frac"):
            np.testing.assert_allclose(got[name][s], want[name][s], rtol=1e-12, atol=1e-15, err_msg=f"{name} {s}")


@pytest.mark.parametrize("lo, hi, bins", [(-5.0, 5.0, 32), (0.0, 1.0, 32), (-3.3, 2.9, 29), (0.1, 0.7, 13)])
def test_the_compiled_histogram_counts_edges_the_ends_and_nan_as_numpy(lo, hi, bins):
    """Values on each edge and one ulp either side: on these ranges ``(v - lo) * bins / (hi - lo)`` rounds some of
    them into the neighbouring bin (on (-3.3, 2.9) even edges themselves), which the kernel must correct."""
    from neuronkit import jit_kernels

    edges = np.linspace(lo, hi, bins + 1)
    near = [np.nextafter(edges, -np.inf), edges, np.nextafter(edges, np.inf), edges + 1e-9, edges - 1e-9]
    a = np.concatenate([*near, [np.nan, np.inf, -np.inf, 1e30, lo - 2, -0.0]])
    a = np.stack([a, -a[::-1]], axis=1)
    stats, hist = np.empty((4, 2)), np.empty(bins, dtype=np.int64)
    with np.errstate(invalid="ignore"):
        jit_kernels.unit_stats(a, edges, stats, hist)
        want = np.histogram(np.clip(a, edges[0], edges[-1]), edges)[0]
    np.testing.assert_array_equal(hist, want)
    assert np.isnan(stats[:3]).all() and stats[3].tolist() == list((a > 0).mean(0))
