"""The page's insight commands through the WebSocket (Starlette's TestClient): revive a dead unit, explain a neuron's
terms on one input (``nn.Neuron.explain``), the inputs that excite a first-layer unit of an image set most
(``inspect.unit.view_unit``), the live diagnosis (``inspect.diagnose``) and "try the fix" (``cli.tryfix``), each
checked against the library code the command line runs, and each malformed variant answered with an error."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient
from test_playground import wait_for as _wait_for

from neuronkit import nn
from neuronkit.cli.playground import digits_arrays, try_fix
from neuronkit.inspect import diagnose
from neuronkit.inspect.diagnosis import render
from neuronkit.inspect.unit import view_unit
from neuronkit.playground import PlaygroundConfig, Session, insight, trial
from neuronkit.playground import frames as F
from neuronkit.playground.server import create_app

TOKEN = "t0ken" * 8
BASE = "http://127.0.0.1:8765"
WS = "ws://127.0.0.1:8765/ws?token=" + TOKEN
RELU = {"data": "xor", "hidden": [6, 5], "activations": ["relu", "relu"], "samples": 200, "batch_size": 10}


def start(cfg=RELU, **kw) -> Session:
    s = Session(PlaygroundConfig(**cfg), providers={"digits": digits_arrays}, **kw).start()
    wait_for(lambda: s.trainer is not None)
    return s


@pytest.fixture
def session():
    s = start(trier=try_fix)
    yield s
    s.close()


@pytest.fixture
def ws(session):
    with TestClient(create_app(session, TOKEN), base_url=BASE) as c, c.websocket_connect(WS) as w:
        yield w


def wait_for(cond, timeout=60):  # (training on a loaded machine: longer than test_playground's default)
    _wait_for(cond, timeout)


def run_in(session, fn):
    return session.submit(fn).result(30)


def call(ws, msg: dict, id_: int = 1, seen=None) -> dict:
    """Send ``msg``; the reply with its id (the pushed messages on the way are kept in ``seen``)."""
    ws.send_text(json.dumps({**msg, "id": id_}))
    for _ in range(100000):
        m = ws.receive_json()
        if m.get("id") == id_ and m["type"] not in ("frame", "data"):
            return m
        if seen is not None:
            seen.append(m)
    raise AssertionError("no reply")


def until(ws, kind: str, cond=lambda m: True, seen=()):
    for m in seen:
        if m["type"] == kind and cond(m):
            return m
    for _ in range(100000):
        m = ws.receive_json()
        if m["type"] == kind and cond(m):
            return m
    raise AssertionError(f"no {kind} message")


# -- revive -------------------------------------------------------------------------------------------------------
def test_revive_redraws_a_dead_unit_from_the_layers_initialiser_and_clears_its_optimizer_state(session, ws):
    session.play()
    wait_for(lambda: session.trainer.step > 30)
    session.play(False)

    def kill():
        m = session.model[0]
        m.bias.data[2] = -100.0  # never fires on the plane
        return F.flags(session.model, F.layer_outputs(session.model, session.data.x_test))["dead"]

    assert [0, 2] in run_in(session, kill)
    before = run_in(session, lambda: [p.data.copy() for p in session.model.parameters()])
    moments = run_in(session, lambda: session.trainer.optimizer.state[session.model[0].weight]["exp_avg"].copy())
    assert np.abs(moments[2]).sum() > 0  # unit 2 learned before it was killed: it has moments to clear

    r = call(ws, {"type": "revive", "layer": 0, "unit": 2})
    assert r["type"] == "neuron" and r["revived"] and r["layer"] == 0 and r["unit"] == 2
    after = run_in(session, lambda: [p.data.copy() for p in session.model.parameters()])
    w0, b0 = after[0], after[1]
    # drawn as a fresh layer of the same shape and initialiser from the documented generator
    fresh = nn.Dense(2, 6, generator=np.random.default_rng([session.config.seed, 0, 2, 1]))
    assert np.array_equal(w0[2], fresh.weight.data[2]) and b0[2] == fresh.bias.data[2]
    assert r["weights"] == w0[2].astype(np.float64).tolist() and r["bias"] == float(b0[2])
    bound = 1 / np.sqrt(2)  # U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(w0[2]).max() <= bound and abs(b0[2]) <= bound
    rest = np.arange(6) != 2
    assert np.array_equal(w0[rest], before[0][rest]) and np.array_equal(b0[rest], before[1][rest])
    assert all(np.array_equal(a, b) for a, b in zip(after[2:], before[2:]))
    state = run_in(session, lambda: session.trainer.optimizer.state[session.model[0].weight])
    assert not state["exp_avg"][2].any() and not state["exp_avg_sq"][2].any()
    assert np.array_equal(state["exp_avg"][rest], moments[rest])
    # a second revival of the same unit draws other values; a frozen unit keeps its revived values
    r2 = call(ws, {"type": "revive", "layer": 0, "unit": 2}, 2)
    assert r2["weights"] != r["weights"]
    call(ws, {"type": "freeze", "layer": 0, "unit": 2}, 3)
    r3 = call(ws, {"type": "revive", "layer": 0, "unit": 2}, 4)
    session.step()
    wait_for(lambda: run_in(session, lambda: session.trainer.step) > 0)
    kept = run_in(session, lambda: session.model[0].weight.data[2].astype(np.float64).tolist())
    assert kept == r3["weights"]


# -- explain ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layer", [0, 1, 2])
def test_explain_shows_the_terms_of_neuron_explain_on_one_test_sample(session, ws, layer):
    session.play()
    wait_for(lambda: session.trainer.step > 20)
    session.play(False)
    r = call(ws, {"type": "explain", "layer": layer, "unit": 1, "sample": 7})
    assert r["type"] == "explain" and (r["layer"], r["unit"], r["sample"]) == (layer, 1, 7)

    def expected():
        x = session.data.x_test[7:8]
        outs = F.layer_outputs(session.model, x)
        inputs = x[0] if layer == 0 else outs[layer - 1][0]
        e = F.dense_layers(session.model)[layer][1].neuron(1).explain(inputs)
        return e, float(outs[layer][0, 1]), session.data.classes[int(session.data.y_test[7])]

    e, in_model, label = run_in(session, expected)
    assert r["inputs"] == e.inputs.astype(np.float64).tolist() and r["products"] == e.products.tolist()
    assert (r["weighted_sum"], r["bias"], r["pre_activation"], r["output"]) == (
        e.weighted_sum,
        e.bias,
        e.pre_activation,
        e.output,
    )
    assert r["activation"] == ("relu" if layer < 2 else "linear") and r["label"] == label
    assert r["output"] == pytest.approx(in_model, abs=1e-5)  # the layer's own forward pass agrees
    assert r["names"] == (["x1", "x2"] if layer == 0 else None)


def test_explain_of_an_ablated_unit_shows_zero_in_the_model(session, ws):
    call(ws, {"type": "ablate", "layer": 0, "unit": 0})
    r = call(ws, {"type": "explain", "layer": 0, "unit": 0, "sample": 0}, 2)
    assert r["in_model"] == 0.0
    nxt = call(ws, {"type": "explain", "layer": 1, "unit": 0, "sample": 0}, 3)
    assert nxt["inputs"][0] == 0.0  # the next layer sees the silenced output


# -- the inputs that excite a unit most ----------------------------------------------------------------------------
def test_a_first_layer_unit_of_digits_shows_the_test_inputs_that_excite_it_most():
    s = start({**RELU, "data": "digits", "hidden": [16], "activations": ["tanh"]})
    try:
        with TestClient(create_app(s, TOKEN), base_url=BASE) as c, c.websocket_connect(WS) as ws:
            r = call(ws, {"type": "neuron", "layer": 0, "unit": 3, "top": True})
            assert "top" not in call(ws, {"type": "neuron", "layer": 0, "unit": 3}, 2)  # only when asked
            hidden = call(ws, {"type": "neuron", "layer": 1, "unit": 3, "top": True}, 3)
        assert hidden["top"] is None  # past the first layer the weights are not an image
        top = r["top"]
        n = min(insight.TOP_SEARCH, len(s.data.y_test))
        assert top["searched"] == n and top["shape"] == [8, 8] and len(top["items"]) == insight.TOP_K

        def by_hand():  # the unit's output on each searched test input, largest first
            out = F.layer_outputs(s.model, s.data.x_test[:n])[0][:, 3]
            return out, s.data.x_test.copy(), s.data.y_test.copy()

        out, x, y = run_in(s, by_hand)
        responses = [i["response"] for i in top["items"]]
        assert responses == sorted(responses, reverse=True)
        assert responses[0] == pytest.approx(float(out.max()), abs=1e-6)
        assert responses[-1] >= np.sort(out)[-insight.TOP_K] - 1e-6
        view = run_in(s, lambda: view_unit(s.model, "0", 3, inputs=x[:n], labels=y[:n], top=insight.TOP_K))
        assert [i["sample"] for i in top["items"]] == [i for i, _, _ in view.top]
        first = top["items"][0]
        img = np.frombuffer(base64.b64decode(first["image"]), np.uint8)
        assert img.size == 64 and img.min() == 0 and img.max() == 255
        raw = x[first["sample"]]  # its own min..max: the pixels keep their order
        assert np.all(np.diff(img[np.argsort(raw, kind="stable")].astype(int)) >= 0)
        assert first["label"] == str(int(y[first["sample"]]))
    finally:
        s.close()


# -- the diagnosis --------------------------------------------------------------------------------------------------
def test_diagnose_gives_the_findings_of_inspect_diagnose(session, ws):
    session.play()
    wait_for(lambda: session.trainer.epoch > 5)
    session.play(False)
    r = call(ws, {"type": "diagnose"})
    assert r["type"] == "diagnosis" and r["samples"] == len(session.data.y_test)

    def direct():
        findings = diagnose(
            session.model,
            (session.data.x_test, session.data.y_test),
            history=session.trainer.history,
            probe=session.probe.probe,
            initial=session.initial_model(),
        )
        return render(findings, limit=insight.FINDINGS_SHOWN), findings

    text, findings = run_in(session, direct)
    assert r["text"] == text and [f["text"] for f in r["findings"]] == [str(f) for f in findings[:10]]
    assert r["fixable"] == any(f.fix for f in findings)


def test_the_initial_model_is_the_one_training_started_from(session):
    first = run_in(session, lambda: [p.data.copy() for p in session.model.parameters()])
    session.play()
    wait_for(lambda: session.trainer.step > 20)
    session.play(False)
    again = run_in(session, lambda: [p.data.copy() for p in session.initial_model().parameters()])
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_the_diagnosis_is_pushed_while_training_at_a_bounded_rate(session, ws):
    got = []
    call(ws, {"type": "play"}, seen=got)
    t0 = time.time()
    until(ws, "diagnosis", seen=got)
    while time.time() - t0 < 5:
        got.append(ws.receive_json())
    elapsed = time.time() - t0
    call(ws, {"type": "pause"}, 2, seen=got)
    pushed = [m for m in got if m["type"] == "diagnosis"]
    assert 1 <= len(pushed) <= elapsed / 2.0 + 1  # DIAGNOSE_EVERY = 2 s at least between two
    steps = [m["step"] for m in pushed]
    assert steps == sorted(steps) and all("findings" in m and "text" in m for m in pushed)


# -- try the fix ------------------------------------------------------------------------------------------------------
def test_try_the_fix_trains_the_remedies_side_by_side(session, ws):
    session.play()
    wait_for(lambda: session.trainer.epoch > 3)
    session.play(False)

    def kill():  # two dead units: the diagnosis proposes a remedy
        session.model[0].bias.data[[1, 4]] = -100.0

    run_in(session, kill)
    seen = []
    d = call(ws, {"type": "diagnose"}, seen=seen)
    assert d["fixable"] and any(f["kind"] == "dead_relu" for f in d["findings"])
    r = call(ws, {"type": "try_fix"}, 2, seen=seen)
    assert r["type"] == "trial" and r["status"] == "running"
    done = until(ws, "trial", lambda m: m["status"] != "running", seen)
    assert done["status"] == "done", done
    trials = done["trials"]
    assert trials[0]["label"] == "original settings" and trials[0]["changes"] == {}
    assert len(trials) >= 2 and any("dead_relu" in t["label"] for t in trials[1:])
    assert len(done["verdicts"]) == len(trials) - 1 and done["text"].startswith("try-fix: ")
    assert done["epochs"] >= 1 and done["config"] == session.config.to_dict()
    assert f"seed {session.config.seed}" in done["text"]


def test_one_trial_at_a_time_and_the_page_waits_for_it():
    """The trial runs in the worker: the page's training waits, and commands are answered "busy" at once."""
    gate, asked = threading.Event(), []

    def trier(snap, findings, seconds):
        asked.append((snap.step, [f.kind for f in findings], seconds))
        gate.wait(30)
        return {"note": "held"}

    s = start(trier=trier)
    try:
        run_in(s, lambda: s.model[0].bias.data.__setitem__(slice(0, 3), -100.0))
        with TestClient(create_app(s, TOKEN), base_url=BASE) as c, c.websocket_connect(WS) as ws:
            seen = []
            call(ws, {"type": "play"}, seen=seen)
            assert call(ws, {"type": "try_fix"}, 2, seen=seen)["status"] == "running"
            wait_for(lambda: asked)
            step = s.trainer.step
            for i, msg in enumerate([{"type": "try_fix"}, {"type": "neuron", "layer": 0, "unit": 0}], 3):
                r = call(ws, msg, i, seen=seen)
                assert r["type"] == "error" and "a 'try the fix' trial is running" in r["message"]
            time.sleep(0.3)
            assert s.trainer.step == step  # the page's training waits
            gate.set()
            done = until(ws, "trial", lambda m: m["status"] != "running", seen)
            assert done["status"] == "done" and done["note"] == "held" and done["trial"] == 1
            assert call(ws, {"type": "neuron", "layer": 0, "unit": 0}, 9)["type"] == "neuron"
            wait_for(lambda: s.trainer.step > step)  # and goes on
        assert asked[0][1] and "dead_relu" in asked[0][1] and asked[0][2] == trial.TRIAL_SECONDS
    finally:
        gate.set()
        s.close()


def test_try_the_fix_is_bounded_in_time(session, ws, monkeypatch):
    monkeypatch.setattr(trial, "TRIAL_SECONDS", 0.0)
    run_in(session, lambda: session.model[0].bias.data.__setitem__(slice(0, 3), -100.0))
    seen = []
    assert call(ws, {"type": "try_fix"}, seen=seen)["status"] == "running"
    done = until(ws, "trial", lambda m: m["status"] != "running", seen)
    assert done["status"] == "done" and len(done["trials"]) >= 2
    assert all(t["stopped"] == "the playground's time limit (0 s)" for t in done["trials"])


def test_try_the_fix_refused_without_a_remedy_a_trier_or_one_activation():
    s = start({**RELU, "activations": ["relu", "tanh"]}, trier=try_fix)
    bare = start()
    try:
        with TestClient(create_app(bare, TOKEN), base_url=BASE) as c, c.websocket_connect(WS) as ws:
            r = call(ws, {"type": "try_fix"})
            assert r["type"] == "error" and "without the command line's try-fix" in r["message"]
        run_in(s, lambda: s.model[0].bias.data.__setitem__(slice(0, 3), -100.0))
        with TestClient(create_app(s, TOKEN), base_url=BASE) as c, c.websocket_connect(WS) as ws:
            seen = []
            assert call(ws, {"type": "try_fix"}, seen=seen)["status"] == "running"
            done = until(ws, "trial", lambda m: m["status"] != "running", seen)
            assert done["status"] == "error" and "one activation for all hidden layers" in done["message"]
            assert "relu, tanh" in done["message"]
    finally:
        s.close()
        bare.close()


def test_no_remedy_no_trial(session, ws, monkeypatch):
    monkeypatch.setattr(insight, "diagnose", lambda *a, **k: [])
    r = call(ws, {"type": "try_fix"})
    assert r["type"] == "error" and "proposes no remedy" in r["message"]


BAD = [
    ({"type": "revive", "layer": 0, "unit": 6}, "unit: expected an integer in [0, 5]"),
    ({"type": "revive", "layer": 3, "unit": 0}, "layer: expected an integer in [0, 2]"),
    ({"type": "revive", "layer": 0}, "unit: expected an integer"),
    ({"type": "explain", "layer": 0, "unit": 0}, "sample: expected an integer in [0, 99]"),
    ({"type": "explain", "layer": 0, "unit": 0, "sample": 100}, "sample: expected an integer in [0, 99]"),
    ({"type": "explain", "layer": 0, "unit": 0, "sample": "../../etc/passwd"}, "sample: expected an integer"),
    ({"type": "explain", "layer": 0, "unit": 0, "sample": True}, "sample: expected an integer"),
    ({"type": "explain", "layer": 0, "unit": 0, "sample": 1.5}, "sample: expected an integer"),
    ({"type": "neuron", "layer": 0, "unit": 0, "top": "yes"}, "top: expected true or false"),
    ({"type": "neuron", "layer": 0, "unit": 0, "top": 1}, "top: expected true or false"),
]


def test_malformed_insight_messages_get_an_error_reply_and_nothing_changes(session, ws):
    before = run_in(session, lambda: [p.data.copy() for p in session.model.parameters()])
    for i, (msg, expected) in enumerate(BAD):
        r = call(ws, msg, i)
        assert r["type"] == "error" and expected in r["message"], (msg, r)
    after = run_in(session, lambda: [p.data.copy() for p in session.model.parameters()])
    assert all(np.array_equal(a, b) for a, b in zip(before, after))
    assert call(ws, {"type": "explain", "layer": 0, "unit": 0, "sample": 0}, 99)["type"] == "explain"


# -- a text set as word counts ----------------------------------------------------------------------------------------
def test_a_text_set_becomes_word_counts_of_the_library_encoder():
    from neuronkit.cli.playground import text_arrays
    from neuronkit.data.text import TextEncoder, TextSplits
    from neuronkit.playground.data import from_arrays

    train = ["win a free prize now", "free free entry", "see you at lunch", "lunch at noon ?", "a prize for you"]
    test = ["free lunch", "zebra crossing now"]
    splits = TextSplits(train, np.array([1, 1, 0, 0, 1]), test, np.array([0, 0]), ("ham", "spam"))
    a = text_arrays(splits, vocab=4)
    enc = TextEncoder("word", min_freq=2, max_size=6).fit(train)  # the same encoder, by hand
    words = enc.vocab.lookup(np.arange(1, len(enc)))
    assert a.input_names == words and words[0] == "<unk>" and len(words) == 5
    for x, texts in ((a.x_train, train), (a.x_test, test)):
        for row, text in zip(x, texts):
            tokens = enc.tokens(text)
            assert row.tolist() == [float(tokens.count(w)) for w in words]
    assert a.x_test[1].tolist() == [3.0, 0.0, 0.0, 0.0, 0.0]  # zebra, crossing, now (once in training): unknown
    d = from_arrays("toy-text", a)
    assert d.standardize is None and np.array_equal(d.x_train, a.x_train) and d.test_texts == test
    assert d.input_names == words and d.classes == ["ham", "spam"]


def test_sms_spam_in_the_page_trains_and_its_units_show_texts_and_words():
    from neuronkit.cli.playground import text_provider
    from neuronkit.playground import parse_config

    data_dir = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    cfg = {**RELU, "data": "sms_spam", "hidden": [8], "activations": ["relu"], "batch_size": 32, "lr": 0.01}
    s = Session(PlaygroundConfig(), providers={"sms_spam": text_provider("sms_spam", str(data_dir))}).start()
    try:
        run_in(s, lambda: s.configure(parse_config(cfg, ("sms_spam",))))
        wait_for(lambda: s.data is not None and s.data.name == "sms_spam" and s.trainer is not None)
        assert s.data.n_inputs == 1001 and len(s.data.test_texts) == len(s.data.y_test) == 1115
        s.play()
        wait_for(lambda: s.trainer.epoch >= 2, 120)
        s.play(False)
        acc = run_in(s, lambda: F.accuracy(s.model, s.data.x_test, s.data.y_test))
        assert acc > 0.93  # 86.6 % of the test texts are ham; bags of words reach about 97 %
        with TestClient(create_app(s, TOKEN), base_url=BASE) as c, c.websocket_connect(WS) as ws:
            r = call(ws, {"type": "neuron", "layer": 0, "unit": 1, "top": True})
            e = call(ws, {"type": "explain", "layer": 0, "unit": 1, "sample": 3}, 2)
        top = r["top"]
        assert top["shape"] is None and len(top["items"]) == insight.TOP_K
        view = run_in(s, lambda: view_unit(s.model, "0", 1, inputs=s.data.x_test[: top["searched"]], top=6))
        assert [i["sample"] for i in top["items"]] == [i for i, _, _ in view.top]
        assert all(i["text"] == s.data.test_texts[i["sample"]][:300] for i in top["items"])
        present = np.flatnonzero(s.data.x_test[3])  # the words of test text 3: the only non-zero terms
        assert np.flatnonzero(e["products"]).tolist() == [i for i in present if e["weights"][i] != 0]
        assert e["names"][present[-1]] in s.data.test_texts[3].lower() or present[-1] == 0
    finally:
        s.close()
