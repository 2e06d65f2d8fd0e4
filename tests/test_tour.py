"""``neuronkit.tour``: each experiment's claim, checked against its measured numbers (not only its ``holds``), its
picture and ``tour.json`` written and valid, the printed tour, the ``tour`` subcommand, and checks that fail when the
thing they test is broken (a wrong derivative, a network with activations that cannot collapse)."""

from __future__ import annotations

import argparse
import io
import json
import runpy
import struct
from pathlib import Path

import numpy as np
import pytest

from neuronkit import nn
from neuronkit.ops import activation as act_ops
from neuronkit.tour import EXPERIMENTS, backprop, bias, descent, linear_collapse, memory, neuron, run_tour
from neuronkit.tour.cli import add_parser, cmd_tour

NAMES = ["neuron", "linear_collapse", "bias", "backprop", "descent", "generalisation", "weights", "memory"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tour(tmp_path_factory):
    """The whole tour, run once with seed 0: (results by name, printed text, output folder)."""
    out = tmp_path_factory.mktemp("tour")
    stream = io.StringIO()
    results = run_tour(out=out, stream=stream, seed=0)
    return {r.name: r for r in results}, stream.getvalue(), out


def figures(tour, name) -> dict:
    return tour[0][name].figures


def test_every_experiment_runs_in_order_and_its_claim_holds(tour):
    results, _, _ = tour
    assert list(EXPERIMENTS) == NAMES
    assert list(results) == NAMES
    for r in results.values():
        assert r.holds is True, f"{r.name}: {r.claim}\n{r.explanation}"
        assert r.claim and r.title and len(r.explanation) > 200 and r.seconds > 0


# -- a: the neuron -------------------------------------------------------------------------------------------------
def test_neuron_terms_summed_by_hand_give_the_layers_output(tour):
    f = figures(tour, "neuron")
    x, w, products = (np.array(f[k]) for k in ("inputs", "weights", "products"))
    assert len(x) == len(w) == neuron.IN_FEATURES
    np.testing.assert_allclose(products, x * w, rtol=0, atol=1e-15)  # each term is input * weight
    z = products.sum() + f["bias"]
    assert abs(z - f["pre_activation"]) <= 1e-12
    assert abs(1 / (1 + np.exp(-z)) - f["layer_output"]) <= 1e-12  # sigmoid(w . x + b), by hand, here
    for key in ("explained_vs_layer", "by_hand_vs_layer", "sum_plus_bias_vs_pre_activation"):
        assert f[key] <= 1e-12
    assert 0 < f["output"] < 1


# -- b: linear collapse --------------------------------------------------------------------------------------------
def test_linear_network_collapses_to_one_map_and_cannot_fit_spirals(tour):
    f = figures(tour, "linear_collapse")
    for key in ("collapse_error_initial", "collapse_error_initial_far_inputs", "collapse_error_trained"):
        assert f[key] <= 1e-10
    assert np.array(f["collapsed_weight"]).shape == (2, 2) and len(f["collapsed_bias"]) == 2
    assert f["linear_accuracy"] <= 0.65
    assert f["linear_accuracy"] <= f["best_straight_line_accuracy"] < 0.95  # no line fits, and it is one
    assert f["relu_accuracy"] >= 0.95
    assert f["relu_accuracy"] - f["linear_accuracy"] >= 0.3
    assert f["majority_rate"] == 0.5


def test_collapse_is_the_product_of_the_weight_matrices_and_fails_with_relu():
    rng = np.random.default_rng(3)
    model = linear_collapse.build(None, rng)
    ws = [layer.weight.data for layer in model]
    bs = [layer.bias.data for layer in model]
    w, b = linear_collapse.collapse(model)
    np.testing.assert_allclose(w, np.linalg.multi_dot(ws[::-1]), rtol=1e-12, atol=1e-14)
    expected_b = ws[3] @ (ws[2] @ (ws[1] @ bs[0] + bs[1]) + bs[2]) + bs[3]
    np.testing.assert_allclose(b, expected_b, rtol=1e-12, atol=1e-14)
    x = rng.normal(0, 3, (50, 2))
    assert linear_collapse.collapse_error(model, x) <= 1e-12
    relu = linear_collapse.build("relu", rng)  # a network with activations is no single linear map
    assert linear_collapse.collapse_error(relu, x) > 1e-2


def test_best_line_accuracy_is_exact_on_small_cases():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]) + [[0.01, 0.0], [0, 0], [0, 0.02], [0, 0]]
    assert linear_collapse.best_line_accuracy(x, np.array([0, 0, 1, 1])) == 0.75  # XOR: one point must be lost
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(40, 2))
    y = (pts @ [1.0, -2.0] > 0.3).astype(np.int64)
    assert linear_collapse.best_line_accuracy(pts, y) == 1.0


# -- c: bias -------------------------------------------------------------------------------------------------------
def test_bias_moves_the_threshold_and_without_it_the_neuron_is_stuck_at_the_majority(tour):
    f = figures(tour, "bias")
    assert f["with_bias_accuracy"] >= 0.99
    assert abs(f["with_bias_threshold"] - bias.BOUNDARY) < 0.15
    assert f["without_bias_threshold"] == 0.0
    assert f["without_bias_accuracy"] <= f["majority_rate"]
    assert f["majority_rate"] < 0.65  # the data are not so lopsided that one class alone looks good
    assert f["with_bias_accuracy"] - f["without_bias_accuracy"] >= 0.3
    assert f["without_bias_final_loss"] > 5 * f["with_bias_final_loss"]
    assert nn.Dense(1, 1, bias=False).bias is None  # the experiment's "without bias" really has none


# -- d: backprop ---------------------------------------------------------------------------------------------------
def test_backprop_matches_finite_differences_on_every_entry(tour):
    f = figures(tour, "backprop")
    a, h1, h2, c = backprop.SIZES
    assert f["parameters"] == a * h1 + h1 + h1 * h2 + h2 + h2 * c + c == f["entries_checked"]
    assert f["max_rel_error"] < 1e-6
    assert max(f["per_parameter_max_rel_error"].values()) == f["max_rel_error"]
    assert len(f["per_parameter_max_rel_error"]) == 6
    assert abs(f["worst_backprop"] - f["worst_finite_difference"]) <= 1e-6 * abs(f["worst_finite_difference"])


def test_backprop_check_catches_a_wrong_derivative(monkeypatch):
    monkeypatch.setattr(act_ops.Tanh, "df", staticmethod(lambda x, y: 1 - y))  # should be 1 - y**2
    r = backprop.run(seed=0)
    assert r.figures["max_rel_error"] > 1e-2
    assert r.holds is False


# -- e: descent ----------------------------------------------------------------------------------------------------
def test_small_steps_lower_the_loss_every_step_and_large_ones_raise_it(tour):
    f = figures(tour, "descent")
    small = np.array(f["small_losses"])
    assert len(small) == descent.STEPS
    assert np.mean(np.diff(small) < 0) >= 0.99
    assert f["fraction_of_steps_falling"] >= 0.99
    assert small[-1] <= 0.1 * small[0]
    assert f["final_over_first"] <= 0.1
    large = np.array(f["large_losses"], dtype=float)
    assert large[0] == small[0]  # the same starting weights
    assert large[-1] > large[0] and f["large_final_over_first"] > 1
    assert np.mean(np.diff(large) > 0) >= 0.5  # it goes up at most steps, not by one fluke


# -- f: generalisation ---------------------------------------------------------------------------------------------
def test_fitting_few_digits_does_not_generalise_and_more_data_does(tour):
    f = figures(tour, "generalisation")
    runs = f["runs"]
    assert [r["train_samples"] for r in runs] == [40, 100, 300, 1438]
    assert f["test_samples"] == 359
    small, full = runs[0], runs[-1]
    assert small["train_accuracy"] == 1.0
    assert small["train_accuracy"] - small["test_accuracy"] >= 0.10
    assert full["test_accuracy"] - small["test_accuracy"] >= 0.08
    assert full["test_accuracy"] >= 0.95
    assert f["small_gap"] == small["train_accuracy"] - small["test_accuracy"]
    assert f["parameters"] > 100 * small["train_samples"]  # the network is big for its 40 samples


# -- g: weights ----------------------------------------------------------------------------------------------------
def test_xavier_lets_a_deep_relu_signal_fade_and_he_keeps_it_and_learns(tour):
    """He et al. 2015 Fig. 3, small: 30 ReLU layers. Xavier halves the signal's variance at each layer (std x 0.71),
    He keeps it; the He network learns and the Xavier one stays at chance (seeds 0-2: Xavier 10.0 %, loss 2.3035;
    He 26-39 %, loss 1.48-1.88)."""
    f = figures(tour, "weights")
    assert f["depth"] == 30 and len(f["xavier_scales"]) == len(f["he_scales"]) == 30
    assert 0.6 < f["xavier_decay_per_layer"] < 0.8  # 1/sqrt(2) = 0.707 in theory
    assert f["xavier_last_vs_first"] < 1e-3 and f["he_last_vs_first"] > 0.1
    assert abs(np.log(f["he_decay_per_layer"])) < 0.05  # He: about 1 per layer
    assert f["xavier_accuracy"] <= 0.15 and f["he_accuracy"] >= 0.2
    assert abs(f["xavier_losses"][-1] - np.log(10)) < 0.01  # the Xavier network learned nothing
    assert f["he_losses"][-1] < 0.9 * np.log(10) and f["he_losses"][-1] < f["he_losses"][0]


# -- h: memory through time ----------------------------------------------------------------------------------------
def test_the_lstm_with_an_open_forget_gate_carries_the_gradient_to_token_1_and_learns(tour):
    """Seeds 0-9: token 1 gets 7e-16 - 1e-12 of the last token's gradient in the RNN, 3e-12 - 2e-9 in the default
    LSTM, 0.12 - 0.86 in the open one; test accuracy 47-54 %, 47-54 % and 99.6-100 %."""
    f = figures(tour, "memory")
    assert f["length"] == 50 and f["test_sequences"] == 512 and f["majority_rate"] < 0.6
    for kind in memory.NETWORKS:
        grad = np.asarray(f[f"{kind}_step_grad"])
        assert grad.shape == (50,) and np.all(np.isfinite(grad)) and np.all(grad >= 0)
        assert len(f[f"{kind}_losses"]) == memory.STEPS
        ratio = f[f"{kind}_first_over_last"]
        assert abs(f[f"{kind}_per_step_factor"] ** 49 - ratio) <= 1e-6 * ratio
    assert f["rnn_first_over_last"] < 1e-5 and f["lstm_default_first_over_last"] < 1e-5
    assert f["lstm_open_first_over_last"] > 1e-2
    assert f["lstm_open_first_over_last"] > 1e4 * max(f["rnn_first_over_last"], f["lstm_default_first_over_last"])
    assert f["rnn_forget_gate_mean"] is None
    assert 0.4 < f["lstm_default_forget_gate_mean"] < 0.6  # sigmoid(0) = 0.5, moved a little by the inputs
    assert f["lstm_open_forget_gate_mean"] > 0.9  # sigmoid(3) = 0.95
    assert f["lstm_open_accuracy"] >= 0.9 and f["lstm_open_losses"][-1] < 0.2
    assert f["rnn_accuracy"] <= 0.65 and f["lstm_default_accuracy"] <= 0.65
    assert min(f["rnn_losses"][-10:]) > 0.5 * np.log(2)  # the RNN never got below half of chance's loss


def test_first_token_task_and_networks_are_what_the_experiment_says():
    tokens, lengths, labels = memory.sequences(200, np.random.default_rng(0))
    assert tokens.shape == (200, 50) and np.all(lengths == 50)
    np.testing.assert_array_equal(tokens[:, 0], labels)  # the label is the first token ...
    assert set(np.unique(labels)) == {0, 1} and tokens[:, 1:].min() >= 2  # ... and no later token carries it
    rng = np.random.default_rng(0)
    rnn, default, opened = (memory.build(k, rng) for k in memory.NETWORKS)
    assert isinstance(rnn.encoder.rnn, nn.RNN) and rnn.encoder.rnn.nonlinearity == "tanh"
    assert rnn.encoder.pool == "last"  # classified from the state after the last token, not a pool over all steps
    h = memory.HIDDEN
    assert np.all(opened.encoder.rnn.bias_ih_l0.data[h : 2 * h] + opened.encoder.rnn.bias_hh_l0.data[h : 2 * h] == 3)
    assert np.all(np.abs(default.encoder.rnn.bias_ih_l0.data[h : 2 * h]) <= 1 / np.sqrt(h))  # PyTorch's U(+-1/sqrt H)
    assert memory.forget_gate_mean(rnn, (tokens, lengths, labels)) is None


def test_memory_claim_fails_when_the_open_lstm_cannot_learn(monkeypatch):
    monkeypatch.setattr(memory, "OPEN_BIAS", -3.0)  # the "open" gate starts shut: nothing reaches token 1
    monkeypatch.setattr(memory, "STEPS", 20)
    r = memory.run(seed=0)
    assert r.figures["lstm_open_first_over_last"] < 1e-5 and r.figures["lstm_open_accuracy"] <= 0.65
    assert r.holds is False


# -- pictures, json, printing --------------------------------------------------------------------------------------
def test_each_picture_is_a_real_png(tour):
    _, _, out = tour
    for name in NAMES:
        data = (out / f"{name}.png").read_bytes()
        assert data[:8] == PNG_SIGNATURE
        assert data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 600 and height >= 300
        assert len(data) > 15_000, f"{name}.png is suspiciously small ({len(data)} bytes)"


def test_tour_json_holds_the_measured_numbers(tour):
    results, _, out = tour
    doc = json.loads((out / "tour.json").read_text())
    assert doc["seed"] == 0 and doc["all_hold"] is True
    assert [e["name"] for e in doc["experiments"]] == NAMES
    for e in doc["experiments"]:
        r = results[e["name"]]
        assert e["holds"] is True and e["claim"] == r.claim and e["picture"] == f"{r.name}.png"
    byname = {e["name"]: e["figures"] for e in doc["experiments"]}
    assert byname["backprop"]["max_rel_error"] == results["backprop"].figures["max_rel_error"]
    assert (
        byname["generalisation"]["runs"][0]["test_accuracy"] == results["generalisation"].figures["small_test_accuracy"]
    )


def test_printed_tour_mentions_every_experiment_and_its_verdict(tour):
    results, text, out = tour
    for i, name in enumerate(NAMES, 1):
        assert f"[{i}/8] {name}:" in text
        assert str(out / f"{name}.png") in text
    assert text.count("-> holds") == 8 and "DOES NOT HOLD" not in text
    assert "8 of 8 claims hold." in text and "tour.json" in text
    g = results["generalisation"].figures  # the explanations quote the measured numbers
    text = " ".join(text.split())  # undo the line wrapping
    assert f"got {g['small_test_accuracy']:.1%}" in text and f"{g['full_test_accuracy']:.1%}" in text
    assert f"{results['backprop'].figures['max_rel_error']:.1e}" in text


def test_run_tour_subset_unknown_names_and_determinism():
    stream = io.StringIO()
    a = run_tour(["neuron", "backprop"], stream=stream, seed=2)
    assert [r.name for r in a] == ["neuron", "backprop"] and "2 of 2 claims hold." in stream.getvalue()
    b = run_tour(["neuron", "backprop"], stream=io.StringIO(), seed=2)
    assert [r.figures for r in a] == [r.figures for r in b]
    assert run_tour(["neuron"], stream=io.StringIO(), seed=3)[0].figures != a[0].figures
    with pytest.raises(ValueError, match="unknown tour experiment 'nope'.*known: neuron"):
        run_tour(["neuron", "nope"], stream=io.StringIO())


# -- the command-line entry and the example ------------------------------------------------------------------------
def _parse(argv):
    parser = argparse.ArgumentParser(prog="neuronkit")
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_tour_subcommand(tmp_path, capsys, monkeypatch):
    args = _parse(["tour", "--only", "neuron,backprop", "--out", str(tmp_path), "--seed", "1"])
    assert args.func is cmd_tour
    assert args.func(args) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["backprop.png", "neuron.png", "tour.json"]
    assert "2 of 2 claims hold." in capsys.readouterr().out
    assert _parse(["tour"]).only is None and _parse(["tour"]).seed == 0
    with pytest.raises(ValueError, match="unknown tour experiment"):
        cmd_tour(_parse(["tour", "--only", "neuron,bogus"]))
    monkeypatch.setattr(act_ops.Tanh, "df", staticmethod(lambda x, y: 1 - y))  # break backprop: a claim fails
    assert cmd_tour(_parse(["tour", "--only", "backprop"])) == 1
    assert "DOES NOT HOLD" in capsys.readouterr().out


def test_example_script_runs(tmp_path, capsys):
    example = runpy.run_path(str(Path(__file__).resolve().parents[1] / "examples" / "tour.py"))
    assert example["main"](str(tmp_path), ["bias"]) == 0
    assert (tmp_path / "bias.png").is_file() and (tmp_path / "tour.json").is_file()
    assert "bias" in capsys.readouterr().out
