"""The playground's server and session: every security rule tested by sending the hostile request, the protocol's
answers to malformed messages, and the session's training through ``train.Trainer`` (commands between steps, lr
changes without a rebuild, edits, ablation, freezing, saving a run that ``report``/``inspect``/``diagnose`` read)."""

from __future__ import annotations

import contextlib
import io as _io
import json
import time
from pathlib import Path

import numpy as np
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from neuronkit.cli import main
from neuronkit.cli.playground import digits_arrays, save_run
from neuronkit.playground import PlaygroundConfig, Session, parse_config
from neuronkit.playground import frames as F
from neuronkit.playground.config import MAX_LAYERS, MAX_UNITS, ProtocolError
from neuronkit.playground.server import MAX_MESSAGE, create_app
from neuronkit.train import Trainer

TOKEN = "t0ken" * 8
BASE = "http://127.0.0.1:8765"
SMALL = {"data": "xor", "hidden": [4], "activations": ["tanh"], "samples": 100, "batch_size": 10, "lr": 0.05}


@pytest.fixture
def session():
    s = Session(PlaygroundConfig(**SMALL), providers={"digits": digits_arrays}).start()
    yield s
    s.close()


@pytest.fixture
def client(session):
    with TestClient(create_app(session, TOKEN), base_url=BASE) as c:  # one event loop, closed at the end
        yield c


def ws_url(token=TOKEN, host="127.0.0.1:8765"):
    return f"ws://{host}/ws?token={token}"


def call(ws, msg: dict, id_: int = 1) -> dict:
    """Send ``msg`` and return the reply with its id, skipping the data and frame messages in between."""
    ws.send_text(json.dumps({**msg, "id": id_}))
    return reply(ws, id_)


def reply(ws, id_):
    for _ in range(10000):
        m = ws.receive_json()
        if m.get("id") == id_ and m["type"] not in ("frame", "data"):
            return m
    raise AssertionError("no reply")


def run_in(session, fn, timeout=30):
    return session.submit(fn).result(timeout)


# -- HTTP: token, Host, methods, headers ----------------------------------------------------------------------------
def test_the_page_needs_the_token(client):
    assert client.get("/").status_code == 403
    assert client.get("/?token=wrong").status_code == 403
    assert client.get(f"/?token={TOKEN[:-1]}").status_code == 403
    r = client.get(f"/?token={TOKEN}")
    assert r.status_code == 200 and TOKEN in r.text  # the page carries its token to its script and its WebSocket


def test_a_query_with_too_many_fields_is_refused_not_an_error(client):
    fields = "&".join(f"a{i}=1" for i in range(100))
    assert client.get(f"/?token={TOKEN}&{fields}").status_code == 403


@pytest.mark.parametrize("path", ["/static/app.js", "/static/style.css", "/nowhere", "/ws"])
def test_every_path_needs_the_token(client, path):
    assert client.get(path).status_code == 403


def test_assets_are_served_with_the_token_and_nothing_else_is(client):
    r = client.get(f"/static/app.js?token={TOKEN}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert client.get(f"/static/style.css?token={TOKEN}").headers["content-type"].startswith("text/css")
    for bad in ["index.html", "..%2f..%2fconfig.py", "%2e%2e%2fserver.py", "app.js%00.css"]:
        r = client.get(f"/static/{bad}?token={TOKEN}")
        assert r.status_code == 404 and "import" not in r.text, bad


def test_security_headers_on_every_response(client):
    for path in ["/", "/static/app.js", "/nowhere"]:
        for token in (TOKEN, "bad"):
            h = client.get(f"{path}?token={token}").headers
            csp = h["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
            assert "connect-src 'self' ws://127.0.0.1:8765" in csp and "frame-ancestors 'none'" in csp
            assert h["x-content-type-options"] == "nosniff" and h["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", "localhost.evil", ""])
def test_a_foreign_host_header_is_refused(client, host):
    """DNS rebinding: a page of another site whose name now points at 127.0.0.1 sends its own name as Host."""
    assert client.get(f"/?token={TOKEN}", headers={"host": host}).status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.1"])
def test_local_host_headers_are_accepted(client, host):
    assert client.get(f"/?token={TOKEN}", headers={"host": host}).status_code == 200


def test_only_get_without_a_body(client):
    assert client.post(f"/?token={TOKEN}", content=b"x").status_code == 405
    assert client.put(f"/?token={TOKEN}").status_code == 405
    assert client.request("GET", f"/?token={TOKEN}", content=b"x" * 10).status_code == 413


# -- the WebSocket ----------------------------------------------------------------------------------------------------
def test_the_websocket_needs_the_token(client):
    for url in [ws_url(token="bad"), "ws://127.0.0.1:8765/ws"]:
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(url):
            pass


def test_the_websocket_refuses_a_foreign_host_and_a_foreign_origin(client):
    with pytest.raises(WebSocketDisconnect), client.websocket_connect(ws_url(), headers={"host": "evil.example"}):
        pass
    for origin in ["http://evil.example", "http://127.0.0.1:9999", "null"]:
        with pytest.raises(WebSocketDisconnect), client.websocket_connect(ws_url(), headers={"origin": origin}):
            pass
    with client.websocket_connect(ws_url(), headers={"origin": "http://127.0.0.1:8765"}) as ws:
        assert call(ws, {"type": "hello"})["type"] == "hello"


BAD_MESSAGES = [
    ("not json", "expected a JSON object"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('"hello"', "expected a JSON object, got str"),
    ("[" * 100000, "message too large"),
    ("[" * 20000 + "]" * 20000, "nested too deeply"),
    ('{"type": "launch"}', "type: expected one of"),
    ('{"no": "type"}', "type: expected one of"),
    ('{"type": "neuron", "layer": 99, "unit": 0}', "layer: expected an integer in [0, 1]"),
    ('{"type": "neuron", "layer": 0, "unit": -1}', "unit: expected an integer in [0, 3]"),
    ('{"type": "neuron", "layer": "0", "unit": 0}', "layer: expected an integer"),
    ('{"type": "edit", "layer": 0, "unit": 0}', "edit: give bias"),
    ('{"type": "edit", "layer": 0, "unit": 0, "bias": 1e300}', "bias: expected a finite number"),
    ('{"type": "edit", "layer": 0, "unit": 0, "weight": 5, "value": 1}', "weight: expected an integer in [0, 1]"),
    ('{"type": "ablate", "layer": 0, "unit": 0, "on": "yes"}', "on: expected true or false"),
    ('{"type": "reset", "seed": -1}', "seed: expected an integer"),
    ('{"type": "configure", "config": {"hidden": [8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8, 8]}}', "hidden"),
    ('{"type": "configure", "config": {"hidden": [513]}, "activations": ["relu"]}', "hidden[0]"),
    ('{"type": "configure", "config": {"batch_size": 100000}}', "batch_size: expected an integer in [1, 4096]"),
    ('{"type": "configure", "config": {"samples": 10000000}}', "samples: expected an integer in [20, 5000]"),
    ('{"type": "configure", "config": {"lr": NaN}}', "lr: expected a number"),
    ('{"type": "configure", "config": {"lr": 1e999}}', "lr: expected a number"),
    ('{"type": "configure", "config": {"data": "/etc/passwd"}}', "data: expected one of"),
    ('{"type": "configure", "config": {"data": "file"}}', "data: expected one of"),
    ('{"type": "configure", "config": {"path": "/etc/passwd"}}', "config: unknown field 'path'"),
    ('{"type": "configure", "config": [1]}', "config: expected an object"),
    ('{"type": "configure", "config": {"activations": ["__import__"], "hidden": [2]}}', "activations[0]"),
    ('{"type": "save"}', "save: this server was started without a place to save runs"),
]


def test_malformed_messages_get_an_error_reply_and_the_server_goes_on(client, session):
    with client.websocket_connect(ws_url()) as ws:
        for i, (text, expected) in enumerate(BAD_MESSAGES):
            ws.send_text(text)
            m = reply(ws, None) if '"id"' not in text else reply(ws, i)
            assert m["type"] == "error" and expected in m["message"], (text[:60], m)
        ws.send_bytes(b"\x00\x01")
        m = reply(ws, None)
        assert m["type"] == "error" and "binary" in m["message"]
        assert call(ws, {"type": "neuron", "layer": 0, "unit": 1}, 7)["type"] == "neuron"  # still answering
    assert session.config.to_dict() == PlaygroundConfig(**SMALL).to_dict()  # no bad message changed anything


def test_the_caps_allow_8_layers_of_256_units(client, session):
    cfg = {**SMALL, "hidden": [256] * 8, "activations": ["relu"] * 8}
    with client.websocket_connect(ws_url()) as ws:
        assert call(ws, {"type": "configure", "config": cfg}) == {"type": "ok", "rebuilt": True, "id": 1}
        m = call(ws, {"type": "neuron", "layer": 8, "unit": 1}, 2)
        assert m["type"] == "neuron" and len(m["weights"]) == 256
    assert MAX_LAYERS >= 8 and MAX_UNITS >= 256
    too_many = {**cfg, "hidden": [8] * (MAX_LAYERS + 1), "activations": ["relu"] * (MAX_LAYERS + 1)}
    with pytest.raises(ProtocolError, match="hidden: expected a list of 0 to 16 items"):
        parse_config(too_many)


def test_a_real_server_closes_an_oversized_frame_and_keeps_serving(session):
    """Through uvicorn: a message over ``MAX_MESSAGE`` ends that connection (1009); the server serves the next."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from neuronkit.playground.server import Running

    srv = Running(session, port=0)
    try:
        url = f"ws://127.0.0.1:{srv.port}/ws?token={srv.token}"
        with connect(url, max_size=2**24) as ws:
            ws.send("x" * (MAX_MESSAGE + 1))
            with pytest.raises(ConnectionClosed) as e:
                for _ in range(1000):
                    ws.recv(timeout=10)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1009
        with pytest.raises(Exception, match="403"):
            connect(f"ws://127.0.0.1:{srv.port}/ws?token=bad", open_timeout=5)
        with connect(url, max_size=2**24, origin=f"http://127.0.0.1:{srv.port}") as ws:
            ws.send(json.dumps({"type": "hello", "id": 3}))
            while (m := json.loads(ws.recv(timeout=10))).get("id") != 3:
                pass
            assert m["type"] == "hello"
    finally:
        srv.server.should_exit = True
        srv.thread.join(10)
        srv.sock.close()


# -- the command line ---------------------------------------------------------------------------------------------
def test_binds_loopback_by_default_and_warns_for_another_host(monkeypatch, capsys):
    from neuronkit.cli import playground as P
    from neuronkit.cli.main import build_parser

    args = build_parser().parse_args(["playground"])
    assert args.host == "127.0.0.1" and not args.no_browser
    seen = {}

    class FakeServer:
        def run(self, sockets):
            seen["addr"] = sockets[0].getsockname()

    monkeypatch.setattr(P, "make_server", lambda app, sock: FakeServer())
    assert main(["playground", "--no-browser", "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert seen["addr"][0] == "127.0.0.1" and "warning" not in err
    assert f"http://127.0.0.1:{seen['addr'][1]}/?token=" in out and len(out.split("token=")[1].strip()) == 64
    assert main(["playground", "--no-browser", "--port", "0", "--host", "0.0.0.0"]) == 0
    out, err = capsys.readouterr()
    assert seen["addr"][0] == "0.0.0.0" and "neuronkit: warning: listening on 0.0.0.0" in err


def test_a_bad_data_file_is_one_line_before_the_server_starts(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    assert main(["playground", "--no-browser", "--data", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("neuronkit: error: ") and err.count("\n") == 1 and "oops" in err


# -- the session ------------------------------------------------------------------------------------------------------
def wait_for(cond, timeout=30):
    t = time.time()
    while time.time() - t < timeout:
        if cond():
            return
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_training_runs_through_the_trainer_with_probes_and_steps_one_batch_at_a_time(session):
    wait_for(lambda: session.trainer is not None)
    assert isinstance(session.trainer, Trainer)
    assert run_in(session, lambda: session.trainer.step) == 0
    for k in range(1, 4):
        session.step()
        wait_for(lambda k=k: run_in(session, lambda: session.trainer.step) == k)
    time.sleep(0.2)
    assert run_in(session, lambda: session.trainer.step) == 3  # paused after each single step
    assert run_in(session, lambda: session.probe.probe.layers["0"].count) == 1  # the probe recorded step 1


def test_lr_changes_the_live_optimizer_and_architecture_rebuilds(session):
    wait_for(lambda: session.trainer is not None)
    session.play()
    wait_for(lambda: session.trainer.step > 20)
    session.play(False)
    model = session.model
    step = run_in(session, lambda: session.trainer.step)
    out = run_in(session, lambda: session.configure(parse_config({**SMALL, "lr": 0.001})))
    assert out == {"rebuilt": False}
    assert session.model is model and session.trainer.optimizer.param_groups[0]["lr"] == 0.001
    assert run_in(session, lambda: session.trainer.step) == step
    out = run_in(session, lambda: session.configure(parse_config({**SMALL, "hidden": [5]})))
    assert out == {"rebuilt": True}
    wait_for(lambda: session.model is not model)
    assert run_in(session, lambda: (session.model[0].out_features, session.trainer.step)) == (5, 0)


def weights_of(model):
    return [p.data.copy() for p in model.parameters()]


def test_a_seed_reproduces_the_experiment(session):
    wait_for(lambda: session.trainer is not None)
    first = run_in(session, lambda: (weights_of(session.model), session.data.x_train.copy()))
    session.play()
    wait_for(lambda: session.trainer.step > 10)
    session.play(False)
    run_in(session, lambda: session.reset())
    wait_for(lambda: run_in(session, lambda: session.trainer.step) == 0 and session.model is not None)
    again = run_in(session, lambda: (weights_of(session.model), session.data.x_train.copy()))
    assert all(np.array_equal(a, b) for a, b in zip(first[0], again[0])) and np.array_equal(first[1], again[1])
    run_in(session, lambda: session.reset(seed=1))
    wait_for(lambda: session.config.seed == 1 and run_in(session, lambda: session.trainer.step) == 0)
    other = run_in(session, lambda: weights_of(session.model))
    assert not np.array_equal(first[0][0], other[0])


def test_edit_freeze_and_ablate_act_on_the_live_model(session):
    wait_for(lambda: session.trainer is not None)
    d = run_in(session, lambda: session.edit(0, 2, bias=0.25))
    assert d["bias"] == 0.25 and float(session.model[0].bias.data[2]) == 0.25
    d = run_in(session, lambda: session.edit(0, 2, weight=1, value=-1.5))
    assert d["weights"][1] == -1.5 and float(session.model[0].weight.data[2, 1]) == -1.5
    run_in(session, lambda: session.freeze(0, 2))
    before = run_in(session, lambda: weights_of(session.model))
    session.play()
    wait_for(lambda: session.trainer.step > 30)
    session.play(False)
    after = run_in(session, lambda: weights_of(session.model))
    assert np.array_equal(before[0][2], after[0][2]) and before[1][2] == after[1][2]  # the frozen unit
    assert not np.array_equal(before[0][0], after[0][0])  # another unit learned

    def ablation_by_hand():  # the same unit silenced by zeroing its outgoing weights in a copy of the model
        import neuronkit as nk

        m, data = session.model, session.data
        saved = m[1].weight.data.copy()
        m[1].weight.data[:, 2] = 0
        acc = F.accuracy(m, data.x_test, data.y_test)
        m[1].weight.data[:] = saved
        return acc, nk

    result = run_in(session, lambda: session.ablate(0, 2))
    expected, _ = run_in(session, ablation_by_hand)  # with the hook on, zeroed weights change nothing more
    assert result["after"] == expected
    outs = run_in(session, lambda: F.layer_outputs(session.model, session.data.x_test))
    assert np.all(outs[0][:, 2] == 0) and np.any(outs[0][:, 1] != 0)
    back = run_in(session, lambda: session.ablate(0, 2, on=False))
    assert back["before"] == result["after"] and back["after"] == result["before"]


def test_frames_carry_metrics_heatmaps_and_flags(session):
    got = []
    session.add_listener(lambda kind, text: got.append((kind, json.loads(text))))
    wait_for(lambda: any(k == "frame" and "heatmaps" in f for k, f in got) and any(k == "data" for k, _ in got))
    data = next(f for k, f in got if k == "data")
    assert data["sizes"] == {"train": 50, "test": 50} and data["classes"] == ["0", "1"]
    f = next(f for k, f in got if k == "frame" and "heatmaps" in f)
    h = f["heatmaps"]
    assert f["layers"] == [4, 2] and len(h["hidden"]) == 1
    import base64

    assert len(base64.b64decode(h["hidden"][0])) == 4 * h["grid"] ** 2
    assert len(base64.b64decode(h["output"])) == h["output_grid"] ** 2
    acc = run_in(session, lambda: F.accuracy(session.model, session.data.x_test, session.data.y_test))
    assert f["test"]["accuracy"] == acc


def test_data_that_fails_to_load_is_reported_and_the_session_goes_on():
    def broken():
        raise FileNotFoundError("mnist: train-images-idx3-ubyte.gz not found under /nowhere")

    s = Session(PlaygroundConfig(**SMALL), providers={"mnist": broken}).start()
    try:
        got = []
        s.add_listener(lambda kind, text: got.append(json.loads(text)))
        wait_for(lambda: s.trainer is not None)
        assert run_in(s, lambda: s.configure(parse_config({**SMALL, "data": "mnist"}, ("mnist",)))) == {"rebuilt": True}
        wait_for(lambda: any(f.get("status") == "error" for f in got))
        f = next(f for f in got if f.get("status") == "error")
        assert f["error"] == "FileNotFoundError: mnist: train-images-idx3-ubyte.gz not found under /nowhere"
        run_in(s, lambda: s.configure(parse_config(SMALL)))
        wait_for(lambda: s.status == "paused" and s.config.data == "xor")
        s.step()
        wait_for(lambda: run_in(s, lambda: s.trainer.step) == 1)
    finally:
        s.close()


def test_dead_units_are_flagged():
    cfg = parse_config({**SMALL, "hidden": [6], "activations": ["relu"]})
    from neuronkit.playground import build_model
    from neuronkit.playground.data import make_2d

    data = make_2d(cfg)
    model = build_model(cfg, data.n_inputs, 2)
    model[0].bias.data[[1, 4]] = -100.0  # these two never fire on points in [-1.2, 1.2]^2
    outs = F.layer_outputs(model, data.x_train)
    assert F.flags(model, outs) == {"dead": [[0, 1], [0, 4]], "saturated": []}


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def write_csv(path, n=120):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    y = np.where(x[:, 0] + 0.5 * x[:, 1] > 0, "yes", "no")
    path.write_text("a,b,c,label\n" + "".join(f"{r[0]:.4f},{r[1]:.4f},{r[2]:.4f},{t}\n" for r, t in zip(x, y)))
    return path


@pytest.mark.parametrize("data", ["spirals", "digits", "file"])
def test_a_saved_run_is_a_normal_run_directory(tmp_path, data):
    from neuronkit.cli.playground import file_arrays

    cfg = {**SMALL, "data": data, "features": ["x1", "x2", "x1x2"] if data == "spirals" else ["x1", "x2"]}
    arrays = file_arrays(str(write_csv(tmp_path / "mine.csv")), "label")
    assert arrays.classes == ["no", "yes"] and arrays.x_train.shape[1] == 3
    providers = {"digits": digits_arrays, "file": lambda: arrays}
    s = Session(PlaygroundConfig(**cfg), providers=providers, saver=lambda snap: save_run(snap, tmp_path, None)).start()
    try:
        s.play()
        wait_for(lambda: s.trainer is not None and s.trainer.epoch >= 3)
        s.play(False)
        path = run_in(s, s.save)["path"]
        acc = run_in(s, lambda: F.accuracy(s.model, s.data.x_test, s.data.y_test))
        first = run_in(s, lambda: s.neuron(0, 1))
        assert first["image_shape"] == ([8, 8] if data == "digits" else None)  # digits' weights drawn as an image
    finally:
        s.close()
    page = json.loads(Path(path, "playground.json").read_text())
    assert page["playground"]["data"] == data and page["ablated_in_page"] == []
    rc, out, err = run_cli("evaluate", path, "--json")
    assert rc == 0, err
    assert json.loads(out)["accuracy"] == pytest.approx(acc, abs=1e-12)  # the same test samples, the same model
    if data == "file":  # saved as spirals are (data.csv and its cache): evaluate shows the same split
        return
    for argv in (["report", path], ["inspect", path, "--layer", "0", "--unit", "1"], ["diagnose", path]):
        rc, out, err = run_cli(*argv)
        assert rc in (0, 1) and "Traceback" not in err and "error" not in err, (argv, err)
    assert Path(path, "report.html").is_file()
