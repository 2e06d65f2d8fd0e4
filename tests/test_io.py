"""Tests for neuronkit.io: save/load through the layer registry, weights only, optimizer state, and a fuzz of damaged
and hostile files that must only ever raise FormatError."""

from __future__ import annotations

import builtins
import importlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.io import FormatError, load, load_optimizer, load_weights, save, save_optimizer, save_weights
from neuronkit.nn.registry import LAYERS, register_layer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fuzz_load  # the hostile-file mutations, shared with benchmarks/fuzz_load.py

DTYPES = ["float32", "float64"]


# ---------------------------------------------------------------------------------------------------------------------
# One example model per registered layer: a builder (dtype -> (model, input shape)) per class name. A layer registered
# without an entry here fails test_every_registered_layer_has_an_example.
# ---------------------------------------------------------------------------------------------------------------------
def _dense(dt, i=4, o=6, seed=1, **kw):
    return nn.Dense(i, o, dtype=dt, generator=seed, **kw)


def _input(shape, dt, seed=0):
    return nk.Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dt) * 3)


def _x(model, shape):
    """A builder's result: the model and an input of ``shape`` in the model's dtype."""
    dt = next(iter(model.state_dict().values())).dtype if model.state_dict() else np.dtype("float32")
    return model, _input(shape, dt)


def _act(cls, **options):
    return lambda dt: _x(nn.Sequential(_dense(dt), cls(**options)), (3, 4))


def L(name):
    """A registered class by name, looked up when an example is built (so this file imports before it exists)."""
    return LAYERS[name]


EXAMPLES = {
    "Dense": lambda dt: _x(nn.Sequential(_dense(dt, activation="tanh"), _dense(dt, 6, 3, seed=2, bias=False)), (5, 4)),
    "Linear": lambda dt: _x(nn.Linear(4, 3, dtype=dt, generator=3, init="xavier_uniform"), (5, 4)),
    "Sequential": lambda dt: _x(
        nn.Sequential(nn.Sequential(_dense(dt), nn.ReLU()), nn.Sequential(_dense(dt, 6, 2, seed=4)), names=["a", "b"]),
        (2, 4),
    ),
    "Flatten": lambda dt: _x(nn.Sequential(nn.Flatten(), _dense(dt, 12, 3)), (2, 3, 4)),
    "Dropout": lambda dt: _x(nn.Sequential(_dense(dt), nn.Dropout(0.3), _dense(dt, 6, 2, seed=5)), (4, 4)),
    "ReLU": _act(nn.ReLU),
    "LeakyReLU": _act(nn.LeakyReLU, negative_slope=0.2),
    "ELU": _act(nn.ELU, alpha=0.5),
    "SELU": _act(nn.SELU),
    "GELU": _act(nn.GELU, approximate="tanh"),
    "SiLU": _act(nn.SiLU),
    "Mish": _act(nn.Mish),
    "Sigmoid": _act(nn.Sigmoid),
    "Tanh": _act(nn.Tanh),
    "Softplus": _act(nn.Softplus, beta=2.0, threshold=10.0),
    "Softsign": _act(nn.Softsign),
    "HardSigmoid": _act(nn.HardSigmoid),
    "HardTanh": _act(nn.HardTanh, min_val=-0.5, max_val=2.0),
    "ReLU6": _act(nn.ReLU6),
    "Softmax": _act(nn.Softmax, axis=0),
    "LogSoftmax": _act(nn.LogSoftmax, axis=-1),
    "Identity": _act(nn.Identity),
    # Layers written alongside this file: built only once they are registered.
    "Conv2d": lambda dt: _x(
        nn.Sequential(
            L("Conv2d")(2, 3, 3, stride=2, padding=1, generator=0, dtype=dt),
            L("Conv2d")(3, 4, [1, 2], bias=False, generator=1, dtype=dt),
        ),
        (2, 2, 6, 6),
    ),
    "Conv1d": lambda dt: _x(L("Conv1d")(2, 3, 3, padding=1, generator=0, dtype=dt), (2, 2, 7)),
    "MaxPool2d": lambda dt: _x(
        nn.Sequential(L("Conv2d")(1, 2, 3, generator=0, dtype=dt), L("MaxPool2d")(2)), (2, 1, 6, 6)
    ),
    "AvgPool2d": lambda dt: _x(
        nn.Sequential(L("Conv2d")(1, 2, 3, generator=0, dtype=dt), L("AvgPool2d")(2, stride=1, padding=1)), (2, 1, 6, 6)
    ),
    "GlobalAvgPool2d": lambda dt: _x(
        nn.Sequential(L("Conv2d")(1, 2, 3, generator=0, dtype=dt), L("GlobalAvgPool2d")()), (2, 1, 6, 6)
    ),
    "Embedding": lambda dt: (
        nn.Sequential(L("Embedding")(10, 4, padding_idx=9, generator=0, dtype=dt), _dense(dt)),
        nk.Tensor(np.array([[1, 9, 3], [0, 2, 2]])),
    ),
    "BatchNorm1d": lambda dt: _x(nn.Sequential(_dense(dt), L("BatchNorm1d")(6, momentum=0.3, dtype=dt)), (8, 4)),
    "BatchNorm2d": lambda dt: _x(
        nn.Sequential(L("Conv2d")(1, 2, 3, generator=0, dtype=dt), L("BatchNorm2d")(2, affine=False, dtype=dt)),
        (4, 1, 5, 5),
    ),
    "LayerNorm": lambda dt: _x(nn.Sequential(_dense(dt), L("LayerNorm")([6], eps=1e-3, dtype=dt)), (3, 4)),
    # recurrent layers return (output, h_n) or (output, (h_n, c_n)): _out compares all of it
    "RNN": lambda dt: _x(
        L("RNN")(3, 4, num_layers=2, nonlinearity="relu", bidirectional=True, dropout=0.2, generator=0, dtype=dt),
        (2, 5, 3),
    ),
    "LSTM": lambda dt: _x(L("LSTM")(3, 4, num_layers=2, batch_first=False, generator=0, dtype=dt), (5, 2, 3)),
    "GRU": lambda dt: _x(L("GRU")(3, 4, bias=False, bidirectional=True, generator=0, dtype=dt), (2, 5, 3)),
    "MultiHeadAttention": lambda dt: _x(L("MultiHeadAttention")(8, 2, dropout=0.1, generator=0, dtype=dt), (2, 5, 8)),
    "TransformerEncoderLayer": lambda dt: _x(
        L("TransformerEncoderLayer")(8, 2, 16, activation="gelu", norm_first=True, generator=0, dtype=dt), (2, 5, 8)
    ),
    "TransformerEncoder": lambda dt: _x(
        L("TransformerEncoder")(
            L("TransformerEncoderLayer")(8, 2, 16, bias=False, generator=0, dtype=dt),
            2,
            norm=L("LayerNorm")(8, dtype=dt),
        ),
        (2, 5, 8),
    ),
    "SinusoidalPositionalEncoding": lambda dt: _x(
        nn.Sequential(_dense(dt), L("SinusoidalPositionalEncoding")(6, max_len=10)), (2, 5, 4)
    ),
    "LearnedPositionalEmbedding": lambda dt: _x(
        L("LearnedPositionalEmbedding")(4, max_len=7, std=0.5, generator=0, dtype=dt), (2, 5, 4)
    ),
    # a text model takes (tokens, lengths): its example input is that pair
    "TextClassifier": lambda dt: (
        L("TextClassifier")(
            L("Embedding")(10, 4, padding_idx=0, generator=0, dtype=dt), L("SequencePool")("max"), _dense(dt)
        ),
        (nk.Tensor(np.array([[1, 9, 3], [2, 2, 0]])), nk.Tensor(np.array([3, 2]))),
    ),
    "ConvEncoder": lambda dt: (
        L("TextClassifier")(
            L("Embedding")(10, 4, padding_idx=0, generator=0, dtype=dt),
            L("ConvEncoder")(4, 3, [1, 2, 4], generator=1, dtype=dt),
            _dense(dt, 9, 2),
        ),
        (nk.Tensor(np.array([[4, 5, 0, 0, 0], [7, 8, 9, 1, 3]])), nk.Tensor(np.array([2, 5]))),
    ),
    "RecurrentEncoder": lambda dt: (
        L("TextClassifier")(
            L("Embedding")(10, 4, padding_idx=0, generator=0, dtype=dt),
            L("RecurrentEncoder")(L("LSTM")(4, 3, bidirectional=True, generator=1, dtype=dt), "last"),
            _dense(dt, 6, 2),
        ),
        (nk.Tensor(np.array([[4, 5, 0], [7, 8, 9]])), nk.Tensor(np.array([2, 3]))),
    ),
    "TransformerTextEncoder": lambda dt: (
        L("TextClassifier")(
            L("Embedding")(10, 4, padding_idx=0, generator=0, dtype=dt),
            L("TransformerTextEncoder")(
                L("TransformerEncoder")(L("TransformerEncoderLayer")(4, 2, 8, generator=1, dtype=dt), 1),
                L("LearnedPositionalEmbedding")(4, max_len=6, std=0.5, generator=2, dtype=dt),
                "max",
            ),
            _dense(dt, 4, 2),
        ),
        (nk.Tensor(np.array([[4, 5, 0], [7, 8, 9]])), nk.Tensor(np.array([2, 3]))),
    ),
    "SequencePool": lambda dt: (
        L("TextClassifier")(
            L("Embedding")(10, 4, padding_idx=0, generator=0, dtype=dt),
            L("SequencePool")("mean"),
            nn.Sequential(_dense(dt), nn.ReLU(), _dense(dt, 6, 2, seed=3)),
        ),
        (nk.Tensor(np.array([[4, 5, 0, 0], [7, 8, 9, 1]])), nk.Tensor(np.array([2, 4]))),
    ),
}


def _out(model, x):
    """The model's output array; for a model that returns several tensors (a recurrent layer's (output, h_n) or
    (output, (h_n, c_n))), all of them flattened into one array."""
    with nk.no_grad():
        y = model(*x) if isinstance(x, tuple) else model(x)
    if isinstance(y, nk.Tensor):
        return y.data
    flat, todo = [], [y]
    while todo:
        t = todo.pop(0)
        if isinstance(t, nk.Tensor):
            flat.append(t.data.reshape(-1))
        else:
            todo[:0] = list(t)
    return np.concatenate(flat)


def test_every_registered_layer_has_an_example():
    missing = sorted(set(LAYERS) - set(EXAMPLES))
    assert not missing, f"registered layers with no example model in tests/test_io.py EXAMPLES: {missing}"


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_save_load_round_trip_is_bit_identical(name, dt, tmp_path):
    if name not in EXAMPLES:
        pytest.fail(f"{name} is registered but has no example model in EXAMPLES")
    model, x = EXAMPLES[name](dt)
    assert any(type(m) is LAYERS[name] for m in model.modules()), f"the example for {name} does not contain one"
    _out(model.train(), x)  # one training step's forward: running statistics move away from their initial values
    model.eval()
    save(model, tmp_path / "m")
    assert sorted(os.listdir(tmp_path / "m")) == ["architecture.json", "model.safetensors"]
    loaded = load(tmp_path / "m").eval()
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    assert repr(loaded) == repr(model)
    a, b = model.state_dict(), loaded.state_dict()
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].tobytes() == b[k].tobytes(), k
    ya, yb = _out(model, x), _out(loaded, x)
    assert ya.dtype == yb.dtype == np.dtype(dt)
    assert ya.tobytes() == yb.tobytes()
    # The file is plain JSON a person can read.
    doc = json.loads((tmp_path / "m" / "architecture.json").read_text())
    assert doc["format"] == "neuronkit" and doc["version"] == 1


def test_saved_architecture_is_readable_json(tmp_path):
    leaky = nn.LeakyReLU(negative_slope=0.1)
    model = nn.Sequential(nn.Dense(3, 4, activation=leaky), nn.Dense(4, 2, activation="relu"))
    save(model, tmp_path)
    doc = json.loads((tmp_path / "architecture.json").read_text())
    layers = doc["config"]["layers"]
    assert doc["class"] == "Sequential" and [s["class"] for s in layers] == ["Dense", "Dense"]
    assert layers[0]["config"]["activation"] == {"class": "LeakyReLU", "config": {"negative_slope": 0.1}}
    assert layers[1]["config"]["activation"] == "relu"
    assert layers[0]["config"]["dtype"] == "float32"


def test_overwrite_leaves_no_temporary_files(tmp_path):
    m1, _ = EXAMPLES["Dense"]("float32")
    m2, x = EXAMPLES["Dropout"]("float64")
    save(m1, tmp_path)
    save(m2, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["architecture.json", "model.safetensors"]
    assert _out(load(tmp_path).eval(), x).tobytes() == _out(m2.eval(), x).tobytes()


class Unregistered(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2, generator=0)

    def forward(self, x):
        return self.lin(x)


def test_unsaveable_models_say_what_to_do(tmp_path):
    with pytest.raises(NotImplementedError, match=r"Unregistered cannot be saved by architecture: give it get_config"):
        save(Unregistered(), tmp_path / "a")
    with pytest.raises(NotImplementedError, match="save_weights"):
        save(nn.Sequential(nn.Linear(2, 2), Unregistered()), tmp_path / "b")
    assert not (tmp_path / "a").exists()
    # a custom initialiser function no longer blocks saving (issue 16): tested in test_init_spec.py


def test_register_layer_rejects_a_second_class_under_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):

        @register_layer(name="Dense")
        class Other(nn.Module):
            pass

    assert LAYERS["Dense"] is nn.Dense


# ---------------------------------------------------------------------------------------------------------------------
# Weights only
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", DTYPES)
def test_save_weights_load_weights(dt, tmp_path):
    model = Unregistered()
    if dt == "float64":
        model.lin = nn.Linear(2, 2, generator=0, dtype=dt)
    for target in (tmp_path / "w.safetensors", tmp_path / "dir"):
        save_weights(model, target)
        fresh = Unregistered()
        fresh.lin = nn.Linear(2, 2, generator=9, dtype=dt)
        assert load_weights(fresh, target) is fresh
        for k, v in model.state_dict().items():
            assert fresh.state_dict()[k].tobytes() == v.tobytes()
    assert (tmp_path / "dir" / "model.safetensors").exists()


def test_load_weights_mismatch_is_a_format_error(tmp_path):
    save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
    with pytest.raises(FormatError, match=r"'weight' has shape \(2, 3\), the model expects \(2, 4\)"):
        load_weights(nn.Linear(4, 2), tmp_path / "w.safetensors")
    with pytest.raises(FormatError, match="dtype float32, the model expects float64"):
        load_weights(nn.Linear(3, 2, dtype="float64"), tmp_path / "w.safetensors")
    with pytest.raises(FormatError, match="missing"):
        load_weights(nn.Sequential(nn.Linear(3, 2)), tmp_path / "w.safetensors")
    with pytest.raises(FileNotFoundError):
        load_weights(nn.Linear(3, 2), tmp_path / "nothing.safetensors")
    with pytest.raises(FileNotFoundError):
        load(tmp_path / "nothing")


# ---------------------------------------------------------------------------------------------------------------------
# Optimizer state (a fake optimizer implementing the state_dict contract of neuronkit.optim)
# ---------------------------------------------------------------------------------------------------------------------
class FakeAdam:
    def __init__(self, sizes, lr=1e-3):
        self.param_groups = [{"lr": lr, "betas": (0.9, 0.999), "params": list(range(len(sizes)))}]
        self.sizes = sizes
        self.state = {}

    def state_dict(self):
        groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in self.param_groups]
        return {"param_groups": groups, "state": {i: dict(s) for i, s in self.state.items()}}

    def load_state_dict(self, sd):
        for i, s in sd["state"].items():
            if set(s) != {"step", "exp_avg", "exp_avg_sq"} or s["exp_avg"].shape != (self.sizes[i],):
                raise ValueError(f"bad state for {i}")
        self.param_groups = [{**g, "betas": tuple(g["betas"])} for g in sd["param_groups"]]
        self.state = {i: dict(s) for i, s in sd["state"].items()}


class FakeSGD(FakeAdam):
    pass


def test_optimizer_state_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    opt = FakeAdam([3, 5, 2], lr=0.01)
    opt.state = {
        i: {"step": 7, "exp_avg": rng.standard_normal(n).astype(np.float32), "exp_avg_sq": rng.random(n)}
        for i, n in ((0, 3), (2, 2))
    }
    opt.state[2]["step"] = np.int64(4)  # NumPy scalars are saved as plain numbers
    save(nn.Linear(2, 2), tmp_path)
    save_optimizer(opt, tmp_path)  # next to the model, one checkpoint directory
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["architecture.json", "model.safetensors", "optimizer.json", "optimizer.safetensors"]
    )
    other = FakeAdam([3, 5, 2])
    assert load_optimizer(other, tmp_path) is other
    assert other.param_groups == [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0, 1, 2]}]
    assert set(other.state) == {0, 2}
    for i in (0, 2):
        assert other.state[i]["step"] == opt.state[i]["step"]
        for k in ("exp_avg", "exp_avg_sq"):
            a, b = opt.state[i][k], other.state[i][k]
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    doc = json.loads((tmp_path / "optimizer.json").read_text())
    assert doc["class"] == "FakeAdam" and doc["state"] == {"0": {"step": 7}, "2": {"step": 4}}
    with pytest.raises(FormatError, match="saved by a 'FakeAdam', cannot load into a FakeSGD"):
        load_optimizer(FakeSGD([3, 5, 2]), tmp_path)
    with pytest.raises(FormatError, match="refused"):
        load_optimizer(FakeAdam([4, 5, 2]), tmp_path)


def test_real_optimizer_round_trip_if_available(tmp_path):
    optim = pytest.importorskip("neuronkit.optim")
    if not hasattr(optim, "Adam"):
        pytest.skip("neuronkit.optim.Adam not available yet")
    model = nn.Linear(3, 2, generator=0)
    opt = optim.Adam(list(model.parameters()), lr=0.01)
    loss = model(_input((4, 3), "float32")).sum()
    loss.backward()
    opt.step()
    save_optimizer(opt, tmp_path)
    opt2 = optim.Adam(list(model.parameters()), lr=0.5)
    load_optimizer(opt2, tmp_path)
    a, b = opt.state_dict(), opt2.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, s in a["state"].items():
        for k, v in s.items():
            assert np.array_equal(v, b["state"][i][k])


# ---------------------------------------------------------------------------------------------------------------------
# Damaged and hostile files: FormatError and nothing else
# ---------------------------------------------------------------------------------------------------------------------
def _fuzz_model():
    return nn.Sequential(
        nn.Dense(4, 8, activation="tanh", generator=0),
        nn.Dense(8, 3, activation=nn.LeakyReLU(negative_slope=0.1), generator=1),
        nn.Dropout(0.25),
        nn.Linear(3, 2, generator=2),
    )


def _write(d, arch: bytes, weights: bytes):
    (d / "architecture.json").write_bytes(arch)
    (d / "model.safetensors").write_bytes(weights)


def _fuzz_transformer():
    layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.1, activation="gelu", generator=0)
    return nn.Sequential(
        nn.Linear(4, 8, generator=1),
        nn.LearnedPositionalEmbedding(8, max_len=6, generator=2),
        nn.SinusoidalPositionalEncoding(8, max_len=6),
        nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8)),
        nn.MultiHeadAttention(8, 2, generator=3),
    )


def _check_loads_or_format_error(d, x):
    try:
        m = load(d)
    except FormatError:
        return "error"
    assert isinstance(m, nn.Module)
    with nk.no_grad():
        y = m.eval()(x)  # a file that loads must be a working model
    first = y if isinstance(y, nk.Tensor) else y[0]  # a recurrent layer returns (output, final states)
    assert first.shape[0] == x.shape[0]
    return "loaded"


@pytest.mark.parametrize(
    "make, shape, most",
    [(_fuzz_model, (5, 4), 2000), (_fuzz_transformer, (3, 5, 4), 600)],  # a transformer takes longer to load
    ids=["mlp", "transformer"],
)
def test_fuzz_damaged_files_only_raise_format_error(make, shape, most, tmp_path):
    _fuzz(tmp_path, make(), _input(shape, "float32"), b'"in_features": 4', 20240611, most, 25)


def test_fuzz_damaged_recurrent_files_only_raise_format_error(tmp_path):
    model = nn.LSTM(4, 3, num_layers=2, bidirectional=True, dropout=0.1, generator=0)
    _fuzz(tmp_path, model, _input((5, 2, 4), "float32"), b'"input_size": 4', 20260101, 600, 8)


def _fuzz(tmp_path, model, x, size_field: bytes, seed: int, most: int, seconds: float):
    """Up to ``most`` damaged copies of ``model``'s files (or ``seconds``): each must load or raise FormatError."""
    good = tmp_path / "good"
    save(model, good)
    arch = (good / "architecture.json").read_bytes()
    weights = (good / "model.safetensors").read_bytes()
    doc = json.loads(arch)
    header, body = fuzz_load.split(weights)
    rng = random.Random(seed)
    d = tmp_path / "case"
    d.mkdir()
    outcomes = {"error": 0, "loaded": 0}
    start, n = time.perf_counter(), 0
    while n < most and time.perf_counter() - start < seconds:
        a, w = arch, weights
        kind = rng.randrange(12)
        if kind == 0:  # byte flips
            which = bytearray(a if rng.random() < 0.5 else w)
            for _ in range(rng.randint(1, 4)):
                which[rng.randrange(len(which))] ^= 1 << rng.randrange(8)
            a, w = (bytes(which), w) if len(which) == len(a) and which[:1] == a[:1] else (a, bytes(which))
        elif kind == 1:
            a = a[: rng.randrange(len(a))]
        elif kind == 2:
            w = w[: rng.randrange(len(w))]
        elif kind == 3:  # insertions
            blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            if rng.random() < 0.5:
                i = rng.randrange(len(a) + 1)
                a = a[:i] + blob + a[i:]
            else:
                i = rng.randrange(len(w) + 1)
                w = w[:i] + blob + w[i:]
        elif kind == 4:
            a = json.dumps(fuzz_load.json_mutation(rng, doc)).encode()
        elif kind == 5:  # safetensors header mutations, length prefix kept right or made wrong
            h = fuzz_load.json_mutation(rng, header)
            w = fuzz_load.with_header(
                h, body, None if rng.random() < 0.8 else rng.choice([0, 7, 2**32, 2**63, 2**64 - 1])
            )
        elif kind == 6:
            a, w = w, a  # swapped files
        elif kind == 7:
            a = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
            w = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        elif kind == 8:
            a, w = (b"", w) if rng.random() < 0.5 else (a, b"")
        elif kind == 9:  # structural safetensors changes: shapes, dtypes, offsets
            h = json.loads(json.dumps(header))
            name = rng.choice([k for k in h if k != "__metadata__"])
            field = rng.choice(["shape", "dtype", "data_offsets"])
            h[name][field] = rng.choice(
                [
                    [2, 4],
                    [8],
                    [],
                    [-1],
                    [2**40, 2**40],
                    "F64",
                    "BOOL",
                    "BF16",
                    "I64",
                    "F16",
                    [0, 2**62],
                    [16, 8],
                    [0, 0],
                    [0, 32],
                ]
            )
            w = fuzz_load.with_header(h, body)
        elif kind == 10:  # valid-looking architecture text with huge or odd sizes
            key = size_field.split(b":")[0]
            values = [b"400000000", b"4.0", b"NaN", b"1e999", b"-4", b'"4"', b"9" * 5000]
            a = arch.replace(size_field, key + b": " + rng.choice(values))
        else:  # deep nesting
            depth = rng.choice([100, 10_000, 200_000])
            head = b'{"format": "neuronkit", "version": 1, "class": "Dense", "config": '
            a = head + b"[" * depth + b"]" * depth + b"}"
        _write(d, a, w)
        outcomes[_check_loads_or_format_error(d, x)] += 1
        n += 1
    assert n >= most // 2, f"only {n} mutations ran in the time budget"
    assert outcomes["error"] > n // 2, outcomes


@pytest.fixture
def tripwires(monkeypatch):
    """Replace everything a hostile file might try to reach with functions that record the attempt."""
    calls = []

    def trap(name):
        def f(*args, **kwargs):
            calls.append((name, args))
            raise AssertionError(f"{name} was called")

        return f

    targets = [
        (os, "system"),
        (os, "popen"),
        (os, "execv"),
        (subprocess, "Popen"),
        (subprocess, "run"),
        (builtins, "eval"),
        (builtins, "exec"),
        (builtins, "compile"),
        (importlib, "import_module"),
    ]
    for mod, attr in targets:
        monkeypatch.setattr(mod, attr, trap(f"{mod.__name__}.{attr}"))
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name not in sys.modules:
            calls.append(("import", name))
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", guarded_import)
    return calls


HOSTILE_NAMES = [
    "os.system",
    "builtins.eval",
    "subprocess.Popen",
    "__import__",
    "eval",
    "exec",
    "os",
    "Module",
    "Activation",
    "__class__",
    "__builtins__",
    "neuronkit.nn.Dense",
    "dense",
    "Dense ",
    "",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_class_names_never_import_or_call_anything(name, tmp_path, tripwires):
    save(nn.Sequential(nn.Dense(2, 2, generator=0)), tmp_path)
    payloads = [
        {"class": name, "config": {"command": "touch pwned"}},
        {"class": "Sequential", "config": {"layers": [{"class": name, "config": {"args": ["echo", "pwned"]}}]}},
        {
            "class": "Sequential",
            "config": {
                "layers": [
                    {
                        "class": "Dense",
                        "config": {"in_features": 2, "out_features": 2, "activation": {"class": name, "config": {}}},
                    }
                ]
            },
        },
    ]
    for payload in payloads:
        doc = {"format": "neuronkit", "version": 1, **payload}
        (tmp_path / "architecture.json").write_text(json.dumps(doc))
        with pytest.raises(FormatError):
            load(tmp_path)
    assert tripwires == []
    assert not os.path.exists("pwned")


def _arch_case(tmp_path, text: str | bytes, weights_model=None):
    save(weights_model or nn.Linear(2, 2, generator=0), tmp_path)
    p = tmp_path / "architecture.json"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return tmp_path


def _linear_doc(**config):
    cfg = {"in_features": 2, "out_features": 2, "bias": True, "init": None, "dtype": "float32", **config}
    return json.dumps({"format": "neuronkit", "version": 1, "class": "Linear", "config": cfg})


@pytest.mark.parametrize(
    "text, message",
    [
        ("[]", "expected a JSON object"),
        ('"Linear"', "expected a JSON object"),
        ("3", "expected a JSON object"),
        ("null", "expected a JSON object"),
        ("", "not valid JSON"),
        ('{"format": "keras", "version": 1, "class": "Linear", "config": {}}', "format is 'keras'"),
        ('{"format": "neuronkit", "version": 2, "class": "Linear", "config": {}}', "version 2 is not supported"),
        ('{"format": "neuronkit", "version": 1.0, "class": "Linear", "config": {}}', "version 1.0"),
        ('{"format": "neuronkit", "version": true, "class": "Linear", "config": {}}', "version True"),
        ('{"format": "neuronkit", "version": 1, "class": "Linear", "config": []}', "must be a JSON object"),
        ('{"format": "neuronkit", "version": 1, "class": "Linear", "config": {}, "code": 1}', "expected keys"),
        (_linear_doc(in_features=float("nan")), "NaN is not a JSON number"),
        (_linear_doc(in_features=2.0), "expected int, got float"),
        (_linear_doc(in_features=True), "expected int, got bool"),
        (_linear_doc(in_features="2"), "expected int, got str"),
        (_linear_doc(in_features=[2]), "got list"),
        (_linear_doc(in_features=10**45), "too large"),  # over 40 digits (a 128-bit generator state has 39)
        (_linear_doc(in_features=10**30), "out of range"),
        (_linear_doc(in_features=2**60), "out of range"),
        (_linear_doc(in_features=2**20, out_features=2**20), "would allocate over"),
        (_linear_doc(in_features=-2), "rejected its config"),
        (_linear_doc(dtype="object"), "dtype 'object' is not one of"),
        (_linear_doc(dtype="float64"), "dtype float32, the model expects float64"),
        (_linear_doc(init="os.system"), "rejected its config"),
        (_linear_doc(activation="relu"), "takes no argument 'activation'"),
        (_linear_doc(__class__="x"), "takes no argument '__class__'"),
        (_linear_doc(out_features=3), r"has shape \(2, 2\), the model expects \(3, 2\)"),
        (_linear_doc(bias=False), "unexpected"),
        ('{"format": "neuronkit", "version": 1, "class": "Linear", "config": {"in_features": 2}}', "lacks required"),
        ('{"format": "neuronkit", "version": 1, "class": "Linear", "config": {"in_features": 1e999}}', "float range"),
        ('{"format": "neuronkit", "version": 1, "class": "Linear", "config": {"in_features": Infinity}}', "Infinity"),
        ('{"format": "neuronkit", "format": "neuronkit", "version": 1, "class": "Linear", "config": {}}', "twice"),
        ("[" * 10_000 + "]" * 10_000, "nested"),
        ("[" * 100_000 + "]" * 100_000, "objects and lists, more than the limit"),  # refused before parsing
        ('{"a": ' * 150 + "1" + "}" * 150, "nested more than"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_bad_architecture_files(text, message, tmp_path, tripwires):
    _arch_case(tmp_path, text)
    with pytest.raises(FormatError, match=message):
        load(tmp_path)
    assert tripwires == []


def _spec(cls, **config):
    return {"class": cls, "config": config}


_LAYER64 = _spec("TransformerEncoderLayer", d_model=64, nhead=2, dim_feedforward=64)


@pytest.mark.parametrize(
    "spec",
    [
        _spec("TransformerEncoder", encoder_layer=_LAYER64, num_layers=2000),
        _spec(
            "TransformerEncoder", encoder_layer=_spec("TransformerEncoderLayer", d_model=2**16, nhead=2), num_layers=2
        ),
        _spec("MultiHeadAttention", embed_dim=2**11, num_heads=1),
        _spec("LearnedPositionalEmbedding", d_model=8, max_len=2**40),
    ],
    ids=["many_layers", "wide_layer", "wide_attention", "long_positions"],
)
def test_attention_configs_cannot_allocate_beyond_the_file(spec, tmp_path, tripwires):
    # the layers' config_cost counts what their constructors allocate (a stack counts its copies, attention its
    # E^2 weights, which the product of the config's integers would miss), so a small file cannot make load build a
    # huge model
    _arch_case(tmp_path, json.dumps({"format": "neuronkit", "version": 1, **spec}))
    with pytest.raises(FormatError, match="would allocate over"):
        load(tmp_path)
    assert tripwires == []


def test_bad_sequential_names_are_rejected(tmp_path):
    for names in (["_modules", "b"], ["a", "a"], ["a.b", "c"], ["forward", "x"], ["a"]):
        doc = {
            "format": "neuronkit",
            "version": 1,
            "class": "Sequential",
            "config": {"layers": [{"class": "ReLU", "config": {}}, {"class": "Tanh", "config": {}}], "names": names},
        }
        _arch_case(tmp_path, json.dumps(doc))
        with pytest.raises(FormatError):
            load(tmp_path)


def _weights_case(tmp_path, data: bytes):
    save(nn.Linear(2, 2, generator=0), tmp_path)
    (tmp_path / "model.safetensors").write_bytes(data)
    return tmp_path


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda w: b"", "truncated"),
        (lambda w: w[:5], "truncated"),
        (lambda w: w[:-1], "needs|outside|after"),
        (lambda w: w + b"\0", "after the last tensor"),
        (lambda w: (2**63).to_bytes(8, "little") + w[8:], "header length"),
        (lambda w: (len(w)).to_bytes(8, "little") + w[8:], "header length"),
        (
            lambda w: fuzz_load.with_header(
                {"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 2**62]}}, b""
            ),
            "outside",
        ),
        (
            lambda w: fuzz_load.with_header(
                {"weight": {"dtype": "BOOL", "shape": [4], "data_offsets": [0, 4]}}, b"\0" * 4
            ),
            "floats and integers only",
        ),
        (
            lambda w: fuzz_load.with_header(
                {"weight": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 8]}}, b"\0" * 8
            ),
            "non-negative",
        ),
        (
            lambda w: fuzz_load.with_header(
                {"weight": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 8]}}, b"\0" * 8
            ),
            "needs",
        ),
        (
            lambda w: fuzz_load.with_header(
                {
                    "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                    "b": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                },
                b"\0" * 8,
            ),
            "overlaps",
        ),
        (lambda w: fuzz_load.with_header([1, 2], b""), "must be a JSON object"),
        (lambda w: fuzz_load.with_header({"__metadata__": {"a": 1}}, b""), "__metadata__"),
        (lambda w: fuzz_load.with_header({"weight": {"dtype": "F32", "shape": [2, 2]}}, b"\0" * 16), "expected keys"),
    ],
)
def test_bad_weights_files(make, message, tmp_path):
    w = (save(nn.Linear(2, 2, generator=0), tmp_path), (tmp_path / "model.safetensors").read_bytes())[1]
    _weights_case(tmp_path, make(w))
    with pytest.raises(FormatError, match=message):
        load(tmp_path)


def test_weights_with_float64_for_a_float32_model(tmp_path):
    save(nn.Linear(2, 2, generator=0, dtype="float64"), tmp_path / "w64")
    save(nn.Linear(2, 2, generator=0), tmp_path / "w32")
    os.replace(tmp_path / "w64" / "model.safetensors", tmp_path / "w32" / "model.safetensors")
    with pytest.raises(FormatError, match="dtype float64, the model expects float32"):
        load(tmp_path / "w32")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only")
def test_special_files_do_not_hang(tmp_path):
    save(nn.Linear(2, 2), tmp_path)
    os.remove(tmp_path / "architecture.json")
    os.mkfifo(tmp_path / "architecture.json")
    with pytest.raises(FormatError, match="not a regular file"):
        load(tmp_path)
    os.remove(tmp_path / "architecture.json")
    if os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", tmp_path / "architecture.json")
        with pytest.raises(FormatError, match="not a regular file"):
            load(tmp_path)
        os.remove(tmp_path / "architecture.json")
    os.mkdir(tmp_path / "architecture.json")
    with pytest.raises(FormatError, match="not a regular file"):
        load(tmp_path)


def test_missing_pieces(tmp_path):
    save_weights(nn.Linear(2, 2), tmp_path / "only_weights")
    with pytest.raises(FormatError, match="does not exist"):
        load(tmp_path / "only_weights")
    save_weights(nn.Linear(2, 2), tmp_path / "w.safetensors")
    with pytest.raises(FormatError, match="not a directory"):
        load(tmp_path / "w.safetensors")


def test_optimizer_files_damaged(tmp_path, tripwires):
    opt = FakeAdam([2])
    opt.state = {0: {"step": 1, "exp_avg": np.zeros(2, np.float32), "exp_avg_sq": np.zeros(2, np.float32)}}
    save_optimizer(opt, tmp_path)
    good = (tmp_path / "optimizer.json").read_text()
    bad = [
        good.replace('"step": 1', '"step": "1"'),
        good.replace('"step": 1', '"step": NaN'),
        good.replace('"0": {', '"00": {'),
        good.replace('"params": [\n', '"params": [\n-1,\n'),
        good.replace("neuronkit-optimizer", "pickle"),
        "[]",
        "",
    ]
    for text in bad:
        (tmp_path / "optimizer.json").write_text(text)
        with pytest.raises(FormatError):
            load_optimizer(FakeAdam([2]), tmp_path)
    (tmp_path / "optimizer.json").write_text(good)
    _, body = fuzz_load.split((tmp_path / "optimizer.safetensors").read_bytes())
    h = {
        "state.0.exp_avg": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
        "os.system": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
    }
    (tmp_path / "optimizer.safetensors").write_bytes(fuzz_load.with_header(h, body))
    with pytest.raises(FormatError, match="not of the form"):
        load_optimizer(FakeAdam([2]), tmp_path)
    assert tripwires == []
