"""One neuron seen whole (``inspect.view_unit`` and ``neuronkit inspect RUN --layer L --unit U``): every number is
checked against a direct computation."""

from __future__ import annotations

import contextlib
import io as _io

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.cli import main
from neuronkit.inspect import ProbeCallback
from neuronkit.inspect.unit import format_unit, view_unit, weight_map
from neuronkit.train import fit


def _data(n=96, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def test_view_matches_the_layer_the_probe_and_a_direct_computation():
    x, y = _data()
    model = nn.Sequential(nn.Dense(6, 8, activation="relu", generator=0), nn.Dense(8, 2, generator=1))
    model[0].bias.data[3] = -40.0  # unit 3 can never fire: it dies and the probe reports it
    cb = ProbeCallback(every=2)
    fit(model, (x, y), optimizer="sgd", lr=0.1, epochs=2, batch_size=16, callbacks=[cb], progress=False, seed=0)
    view = view_unit(model, "0", 5, probes=cb, inputs=x, labels=y, top=4)
    np.testing.assert_array_equal(view.weight, model[0].weight.data[5].astype(np.float64))
    assert view.bias == float(model[0].bias.data[5]) and view.activation == "relu" and view.kind == "dense"
    h = cb.probe.history("0")
    np.testing.assert_array_equal(view.history["step"], h["step"])
    for stat in ("active_frac", "bias", "weight_norm", "grad_norm"):
        np.testing.assert_array_equal(view.history[stat], h[stat][:, 5])
    direct = np.maximum(x.astype(np.float64) @ view.weight + view.bias, 0)
    want = np.argsort(-direct, kind="stable")[:4]
    assert [i for i, _, _ in view.top] == want.tolist() and view.samples == len(x)
    np.testing.assert_allclose([r for _, r, _ in view.top], direct[want], rtol=1e-5, atol=1e-6)
    assert [lab for _, _, lab in view.top] == y[want].tolist()
    dead = view_unit(model, "0", 3, probes=cb)
    # one event: dead from the first record (its bias never moved: no gradient reaches it), seen at the third
    assert [(e["kind"], e["layer"], e["unit"], e["step"], e["detected_at"]) for e in dead.events] == [
        ("dead", "0", 3, 1, 5)
    ]
    text = format_unit(dead)
    assert "layer 0 (Dense), unit 3: output = relu(w . x + b)" in text and "bias b = -40" in text
    assert "  events (1):\n    layer 0, unit 3 never fired from step 1 on (bias -40.00): it is dead" in text
    w = view_unit(model, "0", 3).weight  # the five inputs with the largest |weight|, largest first
    strongest = sorted(range(6), key=lambda i: -abs(w[i]))[:5]
    assert "  strongest inputs: " + ", ".join(f"x[{i}] * {w[i]:+.4g}" for i in strongest) + "\n" in text


def test_conv_unit_responds_with_its_feature_maps_peak():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(10, 1, 6, 6)).astype(np.float32)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, generator=0), nn.ReLU(), nn.Flatten(), nn.Dense(48, 2, generator=1))
    view = view_unit(model, "0", 2, inputs=x, top=3)
    assert view.kind == "conv" and view.weight.shape == (1, 3, 3)
    maps = model[0](nk.tensor(x)).data[:, 2].reshape(10, -1).max(1)
    assert [i for i, _, _ in view.top] == np.argsort(-maps, kind="stable")[:3].tolist()
    assert "weights drawn as the input image" in format_unit(view)  # a filter is drawn in its own shape


def test_bad_layer_or_unit():
    model = nn.Sequential(nn.Dense(4, 3, generator=0))
    with pytest.raises(KeyError, match="layers: 0"):
        view_unit(model, "9", 0)
    with pytest.raises(ValueError, match="units 0 to 2; got unit 3"):
        view_unit(model, "0", 3)


def test_weight_map_draws_sign_and_strength():
    assert weight_map(np.array([[1.0, 0.3, 0.0, -0.3, -1.0]])) == ["##++..--=="]


# -- the command ----------------------------------------------------------------------------------------------------
def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    assert run_cli("train", "--data", "digits", "--epochs", "2", "--out", out)[0] == 0
    return out


def test_inspect_command_prints_the_neuron_and_writes_its_picture(run):
    rc, stdout, stderr = run_cli("inspect", run, "--layer", "0", "--unit", "7", "--top", "5")
    assert rc == 0, stderr
    assert "layer 0 (Dense), unit 7: output = relu(w . x + b)" in stdout
    assert "weights drawn as the input image" in stdout  # digits are 8x8 images: 8 rows of 16 characters
    rows = [
        line.strip()
        for line in stdout.splitlines()
        if line.startswith("    ") and len(line.strip()) == 16 and set(line.strip()) <= set("#+.-=")
    ]
    assert len(rows) == 8
    assert "probe records from step 1" in stdout and "the 5 inputs (of 359) that excite it most" in stdout
    png = run / "inspect-layer0-unit7.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    model_out = run_cli("inspect", run, "--layer", "1", "--unit", "4", "--no-image", "--top", "20")[1]
    labels = [line.rsplit("label ", 1)[1] for line in model_out.splitlines() if "label " in line]
    assert len(labels) == 20 and labels.count("4") >= 15  # the output unit for class 4 is excited by 4s


def test_inspect_command_errors(run):
    rc, _, stderr = run_cli("inspect", run)
    assert rc == 1 and "--layer is required; the layers of" in stderr and "0 (Dense), 1 (Dense)" in stderr
    rc, _, stderr = run_cli("inspect", run, "--layer", "0", "--unit", "500")
    assert rc == 1 and stderr.strip() == "neuronkit: error: layer 0 has units 0 to 127; got unit 500"
