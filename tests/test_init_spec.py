"""Initialisation you can state (issue 16): initialisers with a parameter (``uniform:0.05``, ``normal:0.01``,
``xavier_uniform:2``) from Python, TOML and the command line, a separate bias initialiser, saved and reloaded with the
model, hostile values refused in one line, and the default rule named in ``summary()``."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from neuronkit import io, nn
from neuronkit.nn import init as I
from neuronkit.tensor import Tensor


def _w(shape=(400, 300)):
    return Tensor(np.empty(shape, dtype=np.float64))


@pytest.mark.parametrize(
    "spec, lo, hi",
    [("uniform:0.05", -0.05, 0.05), ("default", -1 / math.sqrt(300), 1 / math.sqrt(300))],
)
def test_uniform_specs_fill_their_range(spec, lo, hi):
    t = I.parse_init(spec)(_w(), generator=0)
    a = t.data
    assert a.min() >= lo and a.max() <= hi
    # 120,000 draws: the extremes come within 0.1% of the bounds and the variance is (hi - lo)^2 / 12 within 2%
    assert a.min() < lo + 0.001 * (hi - lo) and a.max() > hi - 0.001 * (hi - lo)
    assert a.var() == pytest.approx((hi - lo) ** 2 / 12, rel=0.02)


@pytest.mark.parametrize(
    "spec, std",
    [
        ("normal:0.01", 0.01),
        ("he_normal", math.sqrt(2 / 300)),
        ("he_normal:1", 1 / math.sqrt(300)),
        ("xavier_normal:2", 2 * math.sqrt(2 / 700)),
        ("lecun_normal:3", 3 / math.sqrt(300)),
    ],
)
def test_normal_specs_have_their_std(spec, std):
    a = I.parse_init(spec)(_w(), generator=1).data
    assert a.std() == pytest.approx(std, rel=0.01)  # 120,000 draws: the std's sampling error is 0.2%
    assert abs(a.mean()) < 0.01 * std


def test_gain_scales_xavier_and_he_uniform_like_torch():
    for spec, ref in [
        ("xavier_uniform:2", lambda t: torch.nn.init.xavier_uniform_(t, gain=2)),
        ("he_uniform", lambda t: torch.nn.init.kaiming_uniform_(t, nonlinearity="relu")),
    ]:
        ours = I.parse_init(spec)(_w(), generator=2).data
        theirs = ref(torch.empty(400, 300, dtype=torch.float64)).numpy()
        assert np.abs(ours).max() == pytest.approx(np.abs(theirs).max(), rel=0.01)
        assert ours.std() == pytest.approx(theirs.std(), rel=0.02)


def test_bias_init_zeros_constant_and_default_range():
    assert np.all(nn.Dense(30, 20, bias_init="zeros", generator=0).bias.data == 0)
    assert np.all(nn.Dense(30, 20, bias_init="constant:0.1", generator=0).bias.data == np.float32(0.1))
    b = nn.Dense(400, 500, generator=0).bias.data  # the default: U(+-1/sqrt(fan_in)), fan_in 400, whatever init is
    assert np.abs(b).max() <= 1 / 20 and np.abs(b).max() > 0.9 / 20
    b = nn.Dense(400, 500, init="he_uniform", generator=0).bias.data
    assert np.abs(b).max() <= 1 / 20 and np.abs(b).max() > 0.9 / 20
    c = nn.Conv2d(3, 8, 3, bias_init="zeros", init="he_normal", generator=0)
    assert np.all(c.bias.data == 0)
    assert c.weight.data.std() == pytest.approx(math.sqrt(2 / 27), rel=0.2)  # 216 draws


def test_a_bias_refuses_schemes_that_need_a_weight_shape():
    with pytest.raises(ValueError, match="a bias takes one of"):
        nn.Dense(3, 2, bias_init="he_uniform")


def test_default_bias_does_not_repeat_the_weight_draws():
    layer = nn.Dense(8, 8, init="uniform:0.05", generator=3)
    assert not np.allclose(layer.bias.data, layer.weight.data[0])


@pytest.mark.parametrize(
    "layer",
    [
        lambda: nn.Dense(30, 20, init="uniform:0.05", bias_init="zeros", activation="relu", generator=0),
        lambda: nn.Linear(30, 20, init=I.Init("normal", 0.01), bias_init="normal:0.5", generator=0),
        lambda: nn.Conv2d(3, 4, 3, init="xavier_uniform:2", bias_init="constant:-0.25", generator=0),
    ],
)
def test_parameterised_init_saves_and_reloads(layer, tmp_path):
    model = nn.Sequential(layer())
    io.save(model, tmp_path / "m")
    back = io.load(tmp_path / "m")
    assert back[0].get_config() == model[0].get_config()
    np.testing.assert_array_equal(back[0].weight.data, model[0].weight.data)
    fresh = back[0]
    fresh.reset_parameters(generator=0)  # the reloaded spec draws as the original did from the same seed
    np.testing.assert_array_equal(fresh.weight.data, layer().weight.data)
    np.testing.assert_array_equal(fresh.bias.data, layer().bias.data)


def test_a_custom_function_saves_and_refuses_only_to_rerun(tmp_path):
    model = nn.Sequential(nn.Dense(3, 2, init=lambda t, generator=None: I.constant_(t, 0.5)))
    assert model[0].get_config()["init"].endswith("<lambda>")  # get_config no longer raises: custom:QUALNAME
    io.save(model, tmp_path / "c")
    back = io.load(tmp_path / "c")
    np.testing.assert_array_equal(back[0].weight.data, np.full((2, 3), 0.5, dtype=np.float32))
    with pytest.raises(ValueError, match="was a Python function, not saved"):
        back[0].reset_parameters()


@pytest.mark.parametrize(
    "spec, match",
    [
        ("uniform:nan", "finite"),
        ("uniform:inf", "finite"),
        ("uniform:1e400", "finite"),
        ("uniform:-1", "positive"),
        ("uniform:0", "positive"),
        ("normal:1e7", "at most"),
        ("normal:abc", r"expected normal:NUMBER"),
        ("uniform:0.05:3", "expected uniform:NUMBER"),
        ("zeros:1", "takes no parameter"),
        ("os.system", "unknown initializer"),
        ("x" * 10_000, "at most 200 characters"),
        (3, "must be a string"),
    ],
)
def test_hostile_specs_are_one_line_errors(spec, match):
    with pytest.raises(ValueError, match=match) as e:
        nn.Dense(3, 2, init=spec)
    assert "\n" not in str(e.value)


def test_hostile_init_in_a_saved_file_is_refused(tmp_path):
    io.save(nn.Sequential(nn.Dense(3, 2, init="uniform:0.05")), tmp_path / "m")
    arch = tmp_path / "m" / "architecture.json"
    for bad in ("uniform:nan", "he_uniform:-3", "custom:" + "y" * 300):
        doc = json.loads(arch.read_text())
        doc["config"]["layers"][0]["config"]["init"] = bad
        arch.write_text(json.dumps(doc))
        if bad.startswith("custom:"):  # a custom record loads (the weights are in the file); it cannot re-run
            assert str(io.load(tmp_path / "m")[0].init).startswith("custom:y")
            continue
        with pytest.raises(ValueError, match="rejected its config"):
            io.load(tmp_path / "m")


def test_summary_names_the_initialisation():
    model = nn.Sequential(nn.Dense(8, 4, activation="relu"), nn.Dense(4, 2, init="uniform:0.05", bias_init="zeros"))
    text = str(model.summary((1, 8)))
    assert "initialisation of layer 0: weights default U(-1/sqrt(fan_in), 1/sqrt(fan_in)); biases default" in text
    assert "initialisation of layer 1: weights uniform:0.05; biases zeros" in text


def _cli(*argv) -> tuple:
    import contextlib
    import io as _io

    from neuronkit.cli.main import main

    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def test_cli_and_toml_init_specs_reach_every_layer(tmp_path):
    toml = tmp_path / "run.toml"
    toml.write_text('data = "iris"\nhidden = [16]\nepochs = 1\ninit = "uniform:0.05"\nbias-init = "constant:0.1"\n')
    for run, extra in [
        (tmp_path / "flags", ["--data", "iris", "--hidden", "16", "--epochs", "1"]),
        (tmp_path / "toml", ["--config", toml]),
    ]:
        flags = ["--init", "uniform:0.05", "--bias-init", "constant:0.1"] if "flags" in str(run) else []
        rc, _, err = _cli("train", *extra, *flags, "--lr", "1e-9", "--optimizer", "sgd", "--out", run)
        assert rc == 0, err
        config = json.loads((run / "config.json").read_text())["config"]
        assert (config["init"], config["bias_init"]) == ("uniform:0.05", "constant:0.1")
        model = io.load(run / "model")
        for layer in (model[0], model[1]):
            assert np.abs(layer.weight.data).max() <= 0.05 + 1e-6  # lr 1e-9: one epoch moves nothing visible
            np.testing.assert_allclose(layer.bias.data, 0.1, atol=1e-6)


@pytest.mark.parametrize(
    "flag, value", [("--init", "uniform:nan"), ("--init", "magic:1"), ("--bias-init", "he_uniform")]
)
def test_cli_bad_init_is_one_line(tmp_path, flag, value):
    rc, out, err = _cli("train", "--data", "iris", flag, value, "--out", tmp_path / "o")
    assert rc != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("neuronkit: error: "), err
    assert ("bias_init" if flag == "--bias-init" else "init") in lines[0]
