"""ONNX export of the recurrent layers (RNN tanh/relu, LSTM, GRU): every output (output, h_n, c_n) against
onnxruntime, over layers x directions x layout x lengths, at several batch sizes and lengths (dynamic axes).

The layers come from branch ``rnn``; until it is merged this module has nothing to test and says so.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.io.onnx import ExportError, export_onnx

if not hasattr(nn, "LSTM"):  # pragma: no cover
    pytest.skip("the recurrent layers (branch rnn) are not merged yet", allow_module_level=True)

ATOL = RTOL = 1e-5
KINDS = {
    "RNN-tanh": lambda **kw: nn.RNN(5, 4, nonlinearity="tanh", **kw),
    "RNN-relu": lambda **kw: nn.RNN(5, 4, nonlinearity="relu", **kw),
    "LSTM": lambda **kw: nn.LSTM(5, 4, **kw),
    "GRU": lambda **kw: nn.GRU(5, 4, **kw),
}
SHAPES = {
    "1-layer": {},
    "2-layers-bidirectional": {"num_layers": 2, "bidirectional": True, "dropout": 0.3},
    "bidirectional-no-bias": {"bidirectional": True, "bias": False},
    "3-layers": {"num_layers": 3},
}


def batch(n, t, batch_first, with_lengths, seed=0):
    rng = np.random.default_rng(seed + 10 * n + t)
    x = rng.standard_normal((n, t, 5) if batch_first else (t, n, 5)).astype(np.float32)
    if not with_lengths:
        return (x,)
    lengths = rng.integers(1, t + 1, size=n).astype(np.int64)
    lengths[0], lengths[-1] = t, 1
    return x, lengths


def reference(model, inputs):
    model.eval()
    with nk.no_grad():
        out, states = model(*[nk.Tensor(a) for a in inputs])
    states = states if isinstance(states, tuple) else (states,)
    return [out.data, *(s.data for s in states)]


@pytest.mark.parametrize("with_lengths", [True, False], ids=["lengths", "full"])
@pytest.mark.parametrize("batch_first", [True, False], ids=["batch-first", "time-major"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_recurrent_layer_matches_onnxruntime(kind, shape, batch_first, with_lengths, tmp_path):
    model = KINDS[kind](batch_first=batch_first, generator=0, **SHAPES[shape])
    path = tmp_path / "rnn.onnx"
    export_onnx(model, batch(3, 6, batch_first, with_lengths), path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert len(sess.get_outputs()) == (3 if kind == "LSTM" else 2)
    for n, t in ((3, 6), (5, 2), (1, 9)):  # other batch sizes and lengths: both axes are dynamic
        inputs = batch(n, t, batch_first, with_lengths)
        got = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), inputs)})
        for g, w in zip(got, reference(model, inputs), strict=True):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


def test_int32_lengths_and_graph_inputs(tmp_path):
    model = nn.GRU(5, 4, generator=0)
    x, lengths = batch(4, 5, True, True)
    proto = export_onnx(model, (x, lengths.astype(np.int32)), tmp_path / "gru.onnx")
    assert [i.name for i in proto.graph.input] == ["x", "lengths"]
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]
    assert [n.op_type for n in proto.graph.node].count("GRU") == 1


def test_initial_state_is_refused_in_one_line(tmp_path):
    model = nn.RNN(5, 4, generator=0)
    x, lengths = batch(2, 3, True, True)
    with pytest.raises(ExportError, match="an initial state h0 is not exported"):
        export_onnx(model, (x, lengths, np.zeros((1, 2, 4), np.float32)), tmp_path / "m.onnx")
