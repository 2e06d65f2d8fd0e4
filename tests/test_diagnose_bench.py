"""The diagnosis benchmark (issue 16): scenarios of known cause, each trained on the digits and diagnosed as
``neuronkit diagnose`` does (``benchmarks/diagnose_scenarios.py``; the table is ``benchmarks/bench_diagnose.py``'s).

The whole table is asserted: every sick scenario's cause is the first-ranked serious finding, as its machine-readable
kind; every healthy scenario has nothing at warning level or above. The margins come from construction, not from one
trajectory (each scenario's docstring line in ``SCENARIOS`` says how; the figures under several seeds and OpenBLAS
kernels are in benchmarks/RESULTS.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_diagnose
import diagnose_scenarios as D

from neuronkit import creation
from neuronkit.inspect import ProbeCallback, check_before_training
from neuronkit.inspect.diagnosis import render
from neuronkit.train import fit


@pytest.fixture(scope="module")
def data():
    return D.digits()


@pytest.fixture(scope="module")
def outcomes(data):
    return {s.name: D.run(s, data=data) for s in D.SCENARIOS}


def _row(o) -> str:
    return f"{o.scenario.name}: first {o.first and o.first.kind}\n" + render(o.findings, verbose=True)


@pytest.mark.slow
@pytest.mark.parametrize("name", [s.name for s in D.SCENARIOS])
def test_every_row_of_the_table(outcomes, name):
    o = outcomes[name]
    if o.scenario.expected is None:
        serious = [f for f in o.findings if f.severity in ("warning", "error")]
        assert not serious, _row(o)
    else:
        assert o.first is not None and o.first.kind == o.scenario.expected, _row(o)
        assert o.first.remedy and o.first.message


@pytest.mark.slow
def test_precision_and_recall_are_complete(outcomes):
    precision, recall = bench_diagnose.scores(list(outcomes.values()))
    assert (precision, recall) == (1.0, 1.0), bench_diagnose.table(list(outcomes.values()))
    assert "| he2015_xavier_relu30 | 0 | vanishing_signal | vanishing_signal (error" in bench_diagnose.table(
        list(outcomes.values())
    )


@pytest.mark.slow
def test_he_xavier_relu30_fits_on_one_screen_and_names_he_init_first(outcomes):
    o = outcomes["he2015_xavier_relu30"]
    text = render(o.findings)
    lines = text.splitlines()
    assert len(lines) <= 10, text  # before: 149 lines, the first 15 dead-ReLU errors
    assert lines[0].startswith("ERROR layers 11-29: at initialisation, the signal fades with depth"), text
    assert "He initialisation" in lines[0] and "--init he_uniform" in lines[0]
    assert o.first.fix == {"init": "he_uniform"}
    assert sum("dead" in line for line in lines) <= 1  # dead units: explained, or one information line


@pytest.mark.slow
def test_glorot_bengio_top_layer_saturates_at_the_low_end(outcomes):
    o = outcomes["glorot2010_sigmoid"]
    assert o.first.kind == "saturation" and o.first.where.get("layer") == "3", _row(o)  # the last hidden layer
    assert "at the low end (outputs near 0)" in o.first.message
    assert o.val_accuracy < 0.2  # at chance, as in the paper


def test_check_before_training_warns_when_every_layers_gradient_is_equally_tiny(data):
    """Issue 16: 30 ReLU layers with Xavier init: every layer's gradient is about 1e-6 of its weights, so comparing
    layers finds nothing; the absolute expectation (and the depth trend) does."""
    xtr, ytr, _, _ = data
    creation.manual_seed(0)
    model = D.mlp([64] + [64] * 30 + [10], "relu", "xavier_uniform", "zeros")
    found = check_before_training(model, (xtr[:256], ytr[:256]), lr=0.01)
    kinds = {f.kind for f in found if f.severity in ("warning", "error")}
    assert {"vanishing_signal", "vanishing_gradient"} <= kinds
    grads = [f.where["ratio"] for f in found if f.kind == "vanishing_gradient"]
    assert len(grads) >= 25 and max(grads) / min(grads) < 10  # equally tiny: within one order of magnitude


def test_he_init_of_the_same_network_is_silent_before_training(data):
    xtr, ytr, _, _ = data
    creation.manual_seed(0)
    model = D.mlp([64] + [64] * 30 + [10], "relu", "he_uniform", "zeros")
    found = check_before_training(model, (xtr[:1000], ytr[:1000]), lr=0.01)
    assert not [f for f in found if f.kind in ("vanishing_signal", "vanishing_gradient")], [str(f) for f in found]


def test_glorot_bengio_probes_see_the_collapse_as_it_happens(data):
    """The probes on the Glorot & Bengio net: the top hidden layer's saturated_frac rises during the collapse (it read
    0.00 with the old 0.01/0.99 rule while the outputs sat at 0.02-0.07), and no unit of the output layer 'explodes'
    by growing from a start near 0 to its layer's ordinary scale."""
    xtr, ytr, _, _ = data
    s = next(s for s in D.SCENARIOS if s.name == "glorot2010_sigmoid")
    creation.manual_seed(0)
    model = s.build(0)
    cb = ProbeCallback(every=20)
    fit(model, (xtr, ytr), callbacks=[cb], progress=False, seed=0, **{**s.fit, "epochs": 6})
    h = cb.probe.history("3")
    top = h["out_mean"].mean(1)
    assert top[0] > 0.4 and top[-1] < 0.1  # the collapse towards 0
    assert h["saturated_frac"][-1].mean() > 0.9  # seen as saturation while it happens
    assert not [e for e in cb.events if e["kind"] == "exploding"]
    sat = [e for e in cb.events if e["kind"] == "saturated" and e["layer"] == "3"]
    assert sat and "sits near 0" in sat[0]["message"]


def test_a_unit_starting_near_zero_does_not_explode():
    """The exploding baseline is robust: a unit whose first pre-activation is 100x below its layer's grows to the
    layer's scale (old rule: an "exploding" event, "magnitude 0.709 (first 0.00636)"); a real explosion still fires."""
    from neuronkit import nn
    from neuronkit.inspect import EventDetector, Probe

    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    model = nn.Sequential(nn.Dense(8, 4, activation="sigmoid", generator=0))
    probe = Probe(model, every=1)
    det = EventDetector()
    w = model[0].weight.data
    w[0] *= 0.005  # unit 0 starts near 0
    for step, scale in enumerate([1.0, 1.0, 1.0]):
        if step == 1:
            w[0] *= 200  # unit 0 reaches its layer's scale
        if step == 2:
            w[1] *= 1e3  # unit 1 really explodes
        probe.begin(step + 1)
        model(x).sum().backward()
        probe.commit(lr=0.1)
        probe.events += det.check(probe)
    exploded = {e["unit"] for e in probe.events if e["kind"] == "exploding"}
    assert exploded == {1}


def test_saturation_is_judged_by_the_slope_not_by_outputs_beyond_0_01():
    """Issue 16: sigmoid outputs sitting at 0.047 (z = -3, slope 18% of its peak) read saturated_frac 0.00 under the
    old 0.01/0.99 rule; by the slope they are saturated, at the low end. At z = -2 (slope 42%) they are not."""
    from neuronkit import nn
    from neuronkit.inspect import Probe

    x = np.random.default_rng(0).normal(size=(64, 8)).astype(np.float32)
    model = nn.Sequential(nn.Dense(8, 2, activation="sigmoid", generator=0))
    model[0].weight.data[:] = 0
    model[0].bias.data[:] = [-3.0, -2.0]
    probe = Probe(model, every=1)
    probe.begin(1)
    model(x).sum().backward()
    probe.commit(lr=0.1)
    assert probe.history("0")["saturated_frac"][0].tolist() == [1.0, 0.0]
    found = check_before_training(nn.Sequential(model[0], nn.Dense(2, 3, generator=1)), (x, np.zeros(64, np.int64)))
    sat = [f for f in found if f.kind == "saturation"]
    assert len(sat) == 1 and sat[0].where["units"] == [0] and "at the low end (outputs near 0)" in sat[0].message
