"""ONNX export: every exportable layer and activation, the README's models on real data, the CLI command, errors.

Each check writes the model with ``nk.export_onnx``, passes ``onnx.checker.check_model`` (full check, shape
inference included), runs the file in onnxruntime and compares with neuronkit's own output in evaluation mode (float32,
atol 1e-5 with rtol 1e-5 for values above 1), at two batch sizes for the dynamic batch axis.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.cli import main
from neuronkit.io.onnx import EXPORTERS, ExportError
from neuronkit.nn.registry import LAYERS, register_layer

DATA = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
ATOL = RTOL = 1e-5


def reference(model, inputs):
    was = {m: m.training for m in model.modules()}
    model.eval()
    with nk.no_grad():
        out = model(*[nk.Tensor(a) for a in inputs]).data
    for m, t in was.items():
        m.__dict__["training"] = t
    return out


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run(sess, inputs):
    (got,) = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), inputs)})
    return got


def export(model, inputs, tmp_path, **kw):
    path = tmp_path / "model.onnx"
    proto = nk.export_onnx(model, inputs, path, **kw)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    return proto, path


def max_diff(model, inputs, sess) -> float:
    got, want = run(sess, inputs), reference(model, inputs)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)
    return float(np.abs(got.astype(np.float64) - want).max())


def check(model, make_inputs, tmp_path, batches=(3, 7), **kw):
    """Export on a batch of ``batches[0]``, then compare outputs at every batch size; returns the max abs diff."""
    _, path = export(model, make_inputs(batches[0]), tmp_path, **kw)
    sess = session(path)
    return max(max_diff(model, make_inputs(n), sess) for n in batches)


def normal(*shape, scale=1.0, seed=0):
    def make(n):
        return (np.random.default_rng(seed + n).standard_normal((n, *shape)) * scale).astype(np.float32)

    return make


def sequences(t, d, vocab=None, seed=0):
    """A maker of (x (n, t, d) floats or (n, t) token ids, lengths (n,)) with a full row, an empty row and padding."""

    def make(n):
        rng = np.random.default_rng(seed + n)
        lengths = rng.integers(0, t + 1, size=n).astype(np.int64)
        lengths[0], lengths[-1] = t, 0
        if vocab is None:
            x = rng.standard_normal((n, t, d)).astype(np.float32)
        else:
            x = rng.integers(1, vocab, size=(n, t)).astype(np.int64)
            x[np.arange(t) >= lengths[:, None]] = 0
        return x, lengths

    return make


def randomize_norm(layer, seed=0):
    """Running statistics and affine parameters away from their initial 0/1, as after training."""
    rng = np.random.default_rng(seed)
    for name, t in [*layer.named_parameters(), *layer.named_buffers()]:
        if t.data.dtype.kind == "f":
            v = rng.standard_normal(t.shape) * 0.5
            t.data[...] = np.abs(v) + 0.5 if name.endswith("var") else v
    return layer


def nonempty(make):
    """Sequences whose every length is at least 1 (recurrent layers and attention need one real step per row)."""

    def wrapped(n):
        x, lengths = make(n)
        return x, np.maximum(lengths, 1)

    return wrapped


def one(make):
    return lambda n: (make(n),)


# -- every layer ----------------------------------------------------------------------------------------------------
def _bn(cls, *a, **kw):
    return lambda: randomize_norm(cls(*a, **kw))


LAYER_CASES = {
    "Dense": (lambda: nn.Dense(6, 5, activation="tanh", generator=0), one(normal(6))),
    "Dense-3d-input": (lambda: nn.Dense(6, 5, generator=0), one(normal(4, 6))),
    "Dense-no-bias-3d": (lambda: nn.Dense(6, 5, bias=False, activation="relu", generator=0), one(normal(2, 3, 6))),
    "Dense-no-bias": (lambda: nn.Dense(6, 5, bias=False, generator=0), one(normal(6))),
    "Linear": (lambda: nn.Linear(6, 3, generator=0), one(normal(6))),
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, generator=0), one(normal(3, 9, 8))),
    "Conv2d-stride-pad-dilation-groups": (
        lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2, generator=0),
        one(normal(4, 11, 9)),
    ),
    "Conv2d-no-bias-depthwise": (lambda: nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), one(normal(4, 6, 6))),
    "Conv2d-fused-relu": (lambda: nn.Conv2d(3, 4, 3, padding=1, activation="relu", generator=0), one(normal(3, 8, 8))),
    "Conv2d-fused-relu-maxpool": (
        lambda: nn.Conv2d(3, 4, 3, padding=1, activation="relu", max_pool=2, generator=0),
        one(normal(3, 9, 7)),  # odd sizes: the pooling drops the last row and column (floor)
    ),
    "Conv2d-fused-maxpool3": (lambda: nn.Conv2d(2, 3, 2, max_pool=3, generator=0), one(normal(2, 10, 10))),
    "Conv1d": (lambda: nn.Conv1d(4, 6, 3, stride=2, padding=2, dilation=2, groups=2, generator=0), one(normal(4, 13))),
    "Conv1d-no-bias": (lambda: nn.Conv1d(3, 2, 1, bias=False, generator=0), one(normal(3, 5))),
    "MaxPool2d": (lambda: nn.MaxPool2d(2), one(normal(3, 8, 7))),
    "MaxPool2d-stride-padding": (lambda: nn.MaxPool2d(3, stride=2, padding=1), one(normal(2, 9, 8))),
    "AvgPool2d": (lambda: nn.AvgPool2d(2), one(normal(3, 8, 7))),
    "AvgPool2d-stride-padding": (lambda: nn.AvgPool2d((3, 2), stride=(2, 1), padding=(1, 1)), one(normal(2, 9, 8))),
    "GlobalAvgPool2d": (lambda: nn.GlobalAvgPool2d(), one(normal(5, 4, 3))),
    "Flatten": (lambda: nn.Flatten(), one(normal(2, 3, 4))),
    "Flatten-middle-axes": (lambda: nn.Flatten(2, 3), one(normal(2, 3, 4, 5))),
    "Flatten-to-the-last-but-one": (lambda: nn.Flatten(1, -2), one(normal(2, 3, 4))),
    "Flatten-2d": (lambda: nn.Flatten(), one(normal(5))),
    "Dropout": (lambda: nn.Sequential(nn.Dense(4, 4, generator=0), nn.Dropout(0.5, generator=0)), one(normal(4))),
    "BatchNorm1d": (_bn(nn.BatchNorm1d, 5), one(normal(5))),
    "BatchNorm1d-3d": (_bn(nn.BatchNorm1d, 4), one(normal(4, 6))),
    "BatchNorm1d-no-affine": (_bn(nn.BatchNorm1d, 5, affine=False), one(normal(5))),
    "BatchNorm1d-batch-statistics": (_bn(nn.BatchNorm1d, 4, track_running_stats=False), one(normal(4, 6))),
    "BatchNorm2d": (_bn(nn.BatchNorm2d, 3, eps=1e-3), one(normal(3, 5, 4))),
    "BatchNorm2d-batch-statistics": (_bn(nn.BatchNorm2d, 3, track_running_stats=False), one(normal(3, 5, 4))),
    "LayerNorm": (_bn(nn.LayerNorm, 6), one(normal(6, scale=3.0))),
    "LayerNorm-two-axes-3d": (_bn(nn.LayerNorm, (4, 5), eps=1e-3), one(normal(3, 4, 5))),
    "LayerNorm-no-affine": (lambda: nn.LayerNorm(6, elementwise_affine=False), one(normal(2, 6))),
    "LayerNorm-no-bias": (_bn(nn.LayerNorm, 6, bias=False), one(normal(6))),
    "Embedding": (lambda: nn.Embedding(11, 4, generator=0), lambda n: (sequences(5, 0, vocab=11)(n)[0],)),
    "Embedding-padding-idx": (
        lambda: nn.Embedding(11, 4, padding_idx=0, generator=0),
        lambda n: (sequences(5, 0, vocab=11)(n)[0],),
    ),
    "SequencePool-mean": (lambda: nn.SequencePool("mean"), sequences(6, 4)),
    "SequencePool-max": (lambda: nn.SequencePool("max"), sequences(6, 4)),
    "Sequential": (
        lambda: nn.Sequential(nn.Dense(5, 8, activation="relu", generator=0), nn.Dense(8, 3, generator=1)),
        one(normal(5)),
    ),
    "Sequential-named": (
        lambda: nn.Sequential(nn.Dense(5, 8, generator=0), nn.GELU(), names=["hidden", "act"]),
        one(normal(5)),
    ),
    "TextClassifier": (
        lambda: nn.TextClassifier(
            nn.Embedding(20, 6, padding_idx=0, generator=0),
            nn.SequencePool("max"),
            nn.Sequential(nn.Dense(6, 8, activation="relu", generator=1), nn.Dense(8, 3, generator=2)),
        ),
        sequences(7, 0, vocab=20),
    ),
    "ConvEncoder": (
        lambda: nn.TextClassifier(
            nn.Embedding(20, 6, padding_idx=0, generator=0),
            nn.ConvEncoder(6, 4, [2, 3, 5], generator=1),  # width 5 > some texts and than a batch of 3 steps
            nn.Dense(12, 3, generator=2),
        ),
        sequences(7, 0, vocab=20),
    ),
    "RecurrentEncoder-bilstm-max": (
        lambda: nn.TextClassifier(
            nn.Embedding(20, 6, padding_idx=0, generator=0),
            nn.RecurrentEncoder(nn.LSTM(6, 4, num_layers=2, bidirectional=True, generator=1), "max"),
            nn.Dense(8, 3, generator=2),
        ),
        nonempty(sequences(7, 0, vocab=20)),
    ),
    "RecurrentEncoder-gru-last": (
        lambda: nn.TextClassifier(
            nn.Embedding(20, 6, padding_idx=0, generator=0),
            nn.RecurrentEncoder(nn.GRU(6, 4, num_layers=2, bidirectional=True, generator=1), "last"),
            nn.Dense(8, 3, generator=2),
        ),
        nonempty(sequences(7, 0, vocab=20)),
    ),
    "RecurrentEncoder-lstm-mean": (
        lambda: nn.TextClassifier(
            nn.Embedding(20, 6, padding_idx=0, generator=0),
            nn.RecurrentEncoder(nn.LSTM(6, 4, generator=1), "mean"),
            nn.Dense(4, 3, generator=2),
        ),
        nonempty(sequences(7, 0, vocab=20)),
    ),
    "TransformerTextEncoder": (
        lambda: nn.TextClassifier(
            nn.Embedding(20, 8, padding_idx=0, generator=0),
            nn.TransformerTextEncoder(
                nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, generator=1), 2),
                nn.LearnedPositionalEmbedding(8, max_len=16, generator=2),
                "mean",
            ),
            nn.Dense(8, 3, generator=3),
        ),
        nonempty(sequences(7, 0, vocab=20)),
    ),
    "TransformerTextEncoder-sinusoidal-max-unscaled": (
        lambda: nn.TextClassifier(
            nn.Embedding(20, 8, padding_idx=0, generator=0),
            nn.TransformerTextEncoder(
                nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, norm_first=True, generator=1), 1),
                nn.SinusoidalPositionalEncoding(8, max_len=16),
                "max",
                scale=False,
            ),
            nn.Dense(8, 3, generator=3),
        ),
        nonempty(sequences(7, 0, vocab=20)),
    ),
}


@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_layer_matches_onnxruntime(case, tmp_path):
    build, make = LAYER_CASES[case]
    nk.manual_seed(0)
    check(build(), make, tmp_path)


# -- every activation, with its options -----------------------------------------------------------------------------
ACTIVATION_CASES = {
    "ReLU": nn.ReLU(),
    "LeakyReLU": nn.LeakyReLU(),
    "LeakyReLU-slope": nn.LeakyReLU(negative_slope=0.2),
    "ELU": nn.ELU(),
    "ELU-alpha": nn.ELU(alpha=0.5),
    "SELU": nn.SELU(),
    "GELU": nn.GELU(),
    "GELU-tanh": nn.GELU(approximate="tanh"),
    "SiLU": nn.SiLU(),
    "Mish": nn.Mish(),
    "Sigmoid": nn.Sigmoid(),
    "Tanh": nn.Tanh(),
    "Softplus": nn.Softplus(),
    "Softplus-beta-threshold": nn.Softplus(beta=2.0, threshold=5.0),
    "Softsign": nn.Softsign(),
    "HardSigmoid": nn.HardSigmoid(),
    "HardTanh": nn.HardTanh(),
    "HardTanh-range": nn.HardTanh(min_val=-2.0, max_val=3.0),
    "ReLU6": nn.ReLU6(),
    "Softmax": nn.Softmax(),
    "Softmax-axis-1": nn.Softmax(axis=1),
    "LogSoftmax": nn.LogSoftmax(),
    "LogSoftmax-axis-1": nn.LogSoftmax(axis=1),
    "Identity": nn.Identity(),
}


def wide(n):
    """Values over [-30, 30] (both sides of every kink and saturation, softplus's threshold) and near 0."""
    rng = np.random.default_rng(n)
    x = rng.uniform(-30, 30, size=(n, 4, 50)).astype(np.float32)
    x[:, 0] = rng.standard_normal((n, 50)).astype(np.float32)
    x[:, 1, :9] = [-6, -3, -1e-3, 0, 1e-3, 3, 6, 20, 20.5]
    return (x,)


@pytest.mark.parametrize("case", sorted(ACTIVATION_CASES))
def test_activation_matches_onnxruntime(case, tmp_path):
    act = ACTIVATION_CASES[case]
    check(act, wide, tmp_path)
    # and as a Dense layer's activation, by name or with its options
    dense = nn.Dense(8, 6, activation=act, generator=0)
    check(dense, one(normal(8, scale=4.0)), tmp_path)


def test_every_activation_of_the_registry_is_exported_and_tested():
    tested = {type(a) for a in ACTIVATION_CASES.values()}
    missing = [name for name, cls in nn.ACTIVATIONS.items() if cls not in tested]
    assert not missing, f"activations without an ONNX test case: {missing}"


NOT_EXPORTABLE: dict[str, str] = {}
"""Registered layers with no ONNX equivalent, each with the reason (none at present)."""


def test_every_registered_layer_has_an_exporter_and_a_test():
    tested = {type(build()).__name__ for build, _ in LAYER_CASES.values()} | {
        type(a).__name__ for a in ACTIVATION_CASES.values()
    }
    tested |= {"Linear", "Dropout"}  # Dropout sits inside a Sequential case; Linear is built by name above
    tested |= {"RNN", "LSTM", "GRU"}  # tests/test_onnx_recurrent.py
    tested |= {"MultiHeadAttention", "TransformerEncoderLayer", "TransformerEncoder"}  # tests/test_onnx_attention.py
    tested |= {"SinusoidalPositionalEncoding", "LearnedPositionalEmbedding"}  # tests/test_onnx_attention.py
    tested |= {"ConvEncoder", "RecurrentEncoder", "TransformerTextEncoder"}  # inside the TextClassifier cases above
    for name in LAYERS:
        if name in NOT_EXPORTABLE:
            continue
        assert name in EXPORTERS, f"layer {name} has no ONNX exporter (io/onnx_layers.py) nor a NOT_EXPORTABLE entry"
        assert name in tested, f"layer {name} has an ONNX exporter but no case in tests/test_onnx.py"


# -- opsets, options, the graph itself ------------------------------------------------------------------------------
OPSET_MODELS = ["Conv2d-fused-relu-maxpool", "GlobalAvgPool2d", "BatchNorm2d-batch-statistics", "TextClassifier"]


@pytest.mark.parametrize("opset", [18, 21])
@pytest.mark.parametrize("case", OPSET_MODELS)
def test_newer_opsets(case, opset, tmp_path):
    """From opset 18 the reductions take their axes as an input: the other path of Graph.reduce."""
    build, make = LAYER_CASES[case]
    check(build(), make, tmp_path, opset=opset)
    assert onnx.load(str(tmp_path / "model.onnx")).opset_import[0].version == opset


def test_graph_names_shapes_and_initializers(tmp_path):
    model = nn.Sequential(nn.Dense(4, 8, activation="relu", generator=0), nn.Dense(8, 3, generator=1))
    proto, _ = export(model, np.zeros((2, 4), np.float32), tmp_path)
    g = proto.graph
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["output"]
    dims = [d.dim_param or d.dim_value for d in g.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 4]
    assert [d.dim_param or d.dim_value for d in g.output[0].type.tensor_type.shape.dim] == ["batch", 3]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    assert set(inits) == {"0.weight", "0.bias", "1.weight", "1.bias"}  # the state_dict names
    np.testing.assert_array_equal(inits["1.weight"], model[1].weight.data)
    assert [n.op_type for n in g.node] == ["Gemm", "Relu", "Gemm"]
    assert proto.producer_name == "neuronkit" and proto.opset_import[0].version == 17


def test_static_batch(tmp_path):
    model = nn.Dense(4, 2, generator=0)
    proto, path = export(model, np.zeros((3, 4), np.float32), tmp_path, dynamic_batch=False)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [3, 4]
    with pytest.raises(Exception, match="[Ii]nvalid|dimension"):
        session(path).run(None, {"input": np.zeros((5, 4), np.float32)})


@pytest.mark.parametrize("case", ["ConvEncoder", "RecurrentEncoder-bilstm-max", "TransformerTextEncoder"])
def test_text_encoders_have_a_dynamic_time_axis(case, tmp_path):
    build, _ = LAYER_CASES[case]
    model = build()
    _, path = export(model, nonempty(sequences(7, 0, vocab=20))(4), tmp_path)
    sess = session(path)
    for t in (1, 3, 12):
        max_diff(model, nonempty(sequences(t, 0, vocab=20, seed=t))(5), sess)


def test_text_model_has_a_dynamic_time_axis(tmp_path):
    build, _ = LAYER_CASES["TextClassifier"]
    model = build()
    _, path = export(model, sequences(7, 0, vocab=20)(4), tmp_path)
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["tokens", "lengths"]
    for t in (1, 3, 12):
        max_diff(model, sequences(t, 0, vocab=20, seed=t)(5), sess)


def test_export_leaves_training_mode_and_weights_alone(tmp_path):
    model = nn.Sequential(nn.Dense(4, 4, generator=0), nn.Dropout(0.5), randomize_norm(nn.BatchNorm1d(4)))
    model.train()
    model[2].eval()  # a mixed state comes back as it was
    before = {k: v.copy() for k, v in model.state_dict().items()}
    check(model, one(normal(4)), tmp_path)
    assert [m.training for m in model] == [True, True, False]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_int32_lengths_are_cast_in_the_graph(tmp_path):
    model = nn.SequencePool("mean")
    make = sequences(5, 3)

    def make32(n):
        x, lengths = make(n)
        return x, lengths.astype(np.int32)

    check(model, make32, tmp_path)


# -- errors ---------------------------------------------------------------------------------------------------------
class Doubler(nn.Module):
    def forward(self, x):
        return x * 2


def test_unregistered_layer_is_one_clear_error_naming_it_and_its_path(tmp_path):
    model = nn.Sequential(nn.Dense(4, 4), nn.Sequential(nn.ReLU(), Doubler()))
    with pytest.raises(ExportError) as e:
        nk.export_onnx(model, np.zeros((2, 4), np.float32), tmp_path / "m.onnx")
    msg = str(e.value)
    assert "Doubler at '1.1'" in msg and "not in the layer registry" in msg and "\n" not in msg
    assert not (tmp_path / "m.onnx").exists()


def test_registered_layer_without_exporter_is_one_clear_error(tmp_path, monkeypatch):
    class Shifter(nn.Module):
        def forward(self, x):
            return x + 1

    monkeypatch.setattr(sys.modules[__name__], "Shifter", Shifter, raising=False)
    monkeypatch.delitem(LAYERS, "Shifter", raising=False)
    register_layer(Shifter)
    try:
        with pytest.raises(ExportError, match=r"cannot export layer Shifter at 'head': it has no ONNX equivalent"):
            nk.export_onnx(
                nn.Sequential(nn.Dense(3, 3), Shifter(), names=["body", "head"]),
                np.zeros((1, 3), np.float32),
                tmp_path / "m.onnx",
            )
    finally:
        del LAYERS["Shifter"]


@pytest.mark.parametrize(
    "kwargs, inputs, match",
    [
        ({"opset": 12}, (np.zeros((2, 3), np.float32),), "opset must be an int from 17"),
        ({"opset": 10_000}, (np.zeros((2, 3), np.float32),), "opset must be an int from 17"),
        ({}, (np.zeros((2, 3), np.float32), np.zeros(2)), r"takes 1 input\(s\) \(x\); the example input gave 2"),
        ({}, (np.float32(1.0),), "is a scalar"),
        ({}, (np.array([["a", "b", "c"]]),), "has dtype <U1"),
    ],
)
def test_bad_arguments(kwargs, inputs, match, tmp_path):
    with pytest.raises(ExportError, match=match):
        nk.export_onnx(nn.Dense(3, 2), inputs if len(inputs) > 1 else inputs[0], tmp_path / "m.onnx", **kwargs)


def test_float64_model_is_refused(tmp_path):
    with pytest.raises(ExportError, match=r"exports float32 models; this one holds \['float64'\]"):
        nk.export_onnx(nn.Dense(3, 2, dtype="float64"), np.zeros((1, 3)), tmp_path / "m.onnx")


def test_without_onnx_the_error_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'neuronkit\[onnx\]'"):
        nk.export_onnx(nn.Dense(3, 2), np.zeros((1, 3), np.float32), tmp_path / "m.onnx")


def test_importing_neuronkit_does_not_import_onnx():
    code = "import sys, neuronkit, neuronkit.cli.main; assert not {'onnx', 'onnxruntime'} & set(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the README's models on real data -------------------------------------------------------------------------------
def _mnist_test(n):
    from neuronkit.data import load_dataset

    assert (DATA / "mnist").is_dir(), f"MNIST not found under {DATA} (set NEURONKIT_DATA)"
    x = load_dataset("mnist", data_dir=DATA).x_test[:n]
    return ((x.astype(np.float32) / 255.0 - 0.1307) / 0.3081).reshape(n, 1, 28, 28)


def test_readme_mnist_mlp_and_lenet_on_real_images(tmp_path):
    from neuronkit.cli import config as C
    from neuronkit.cli.models import build_model

    images = _mnist_test(64)
    for model_name, shape in (("784-256-128-10", (784,)), ("lenet", (1, 28, 28))):
        nk.manual_seed(0)
        model = build_model(C.resolve(None, {"model": model_name, "data": "mnist"}), shape, 10)
        if model_name == "lenet":
            assert type(model[0].activation) is nn.ReLU and model[0].max_pool == 2  # the fused convolutions
        x = images.reshape(len(images), *shape)
        check(model, lambda n, x=x: (x[:n],), tmp_path, batches=(64, 5))


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "digits"
    rc, _, err = run_cli("train", "--data", "digits", "--epochs", "3", "--probe-every", "0", "--out", out)
    assert rc == 0, err
    return out


def test_cli_export_of_a_trained_digits_run_end_to_end(digits_run, tmp_path):
    from neuronkit.cli import config as C
    from neuronkit.cli import data as D

    path = tmp_path / "digits.onnx"
    rc, out, err = run_cli("export", digits_run, "--onnx", path)
    assert rc == 0, err
    assert f"wrote {path}" in out and "opset 17" in out and "checked in onnxruntime on 8 random inputs" in out
    # the whole real test split, prepared as the run's model takes it, through onnxruntime
    model = nk.load(digits_run / "model")
    cfg_doc = json.loads((digits_run / "config.json").read_text())
    loaded = D.load_data(C.resolve(C.from_mapping(cfg_doc["config"], "config")))
    x = D.prepare_inputs(loaded.x_test, cfg_doc["data"], "digits")
    sess = session(path)
    diff = max_diff(model, (x,), sess)
    pred = run(sess, (x,)).argmax(axis=1)
    accuracy = float((pred == loaded.y_test).mean())
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["accuracy"], abs=1e-12)  # the same predictions as neuronkit's
    print(f"\ndigits MLP, {len(x)} test samples: max abs difference {diff:.2g}, accuracy {accuracy:.4f}")


def test_readme_bow_text_model_on_real_texts(tmp_path):
    """The bow model of ``neuronkit train --model bow`` on the sentiment dataset, trained one epoch, exported from
    the command line and run on its real test split in length-sorted batches of different sizes and lengths."""
    out = tmp_path / "bow"
    rc, _, err = run_cli(
        "train", "--data", "sentiment", "--data-dir", DATA / "text", "--epochs", "1", "--probe-every", "0", "--out", out
    )
    assert rc == 0, err
    path = tmp_path / "bow.onnx"
    rc, stdout, err = run_cli("export", out, "--onnx", path)
    assert rc == 0, err and "inputs tokens, lengths" in stdout
    from neuronkit.cli.text import load_encoder
    from neuronkit.data.text import load_text_dataset

    model = nk.load(out / "model")
    encoder = load_encoder(type("Run", (), {"path": out})())
    splits = load_text_dataset("sentiment", data_dir=DATA / "text")
    ds = encoder.dataset(splits.test_texts)
    sess = session(path)
    order = np.argsort(ds.lengths, kind="stable")
    for lo, hi in ((0, 50), (50, 51), (300, 400), (len(order) - 37, len(order))):  # batch sizes and lengths vary
        max_diff(model, ds.get_batch(order[lo:hi]), sess)
    tokens, lengths = ds.get_batch(np.arange(len(ds)))  # every test text in one padded batch
    max_diff(model, (tokens, lengths), sess)
    accuracy = float((run(sess, (tokens, lengths)).argmax(axis=1) == splits.test_labels).mean())
    assert accuracy == pytest.approx(json.loads((out / "metrics.json").read_text())["accuracy"], abs=1e-12)


def test_cli_export_errors_are_one_line(digits_run, tmp_path, monkeypatch):
    def one_line_error(rc, err, *parts):
        assert rc == 1 and err.count("\n") == 1 and err.startswith("neuronkit: error: "), err
        for p in parts:
            assert p in err, err

    one_line_error(*run_cli("export", tmp_path / "nowhere", "--onnx", tmp_path / "m.onnx")[::2], "not found")
    one_line_error(*run_cli("export", digits_run, "--onnx", tmp_path / "no" / "m.onnx")[::2], "does not exist")
    one_line_error(*run_cli("export", digits_run, "--onnx", tmp_path)[::2], "is a directory")
    one_line_error(*run_cli("export", digits_run, "--onnx", tmp_path / "m.onnx", "--opset", "9")[::2], "opset")
    monkeypatch.setitem(sys.modules, "onnx", None)
    one_line_error(*run_cli("export", digits_run, "--onnx", tmp_path / "m.onnx")[::2], "pip install 'neuronkit[onnx]'")
    rc, _, err = run_cli("export", digits_run)
    assert rc == 2 and "--onnx" in err
