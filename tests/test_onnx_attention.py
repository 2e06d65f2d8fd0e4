"""ONNX export of the attention layers: MultiHeadAttention (self and cross attention, key padding and attention masks,
both layouts), TransformerEncoderLayer/Encoder (post- and pre-norm, relu and gelu) and the positional layers, against
onnxruntime at several batch sizes and lengths (dynamic axes).

The layers come from branch ``attention``; until it is merged this module has nothing to test and says so.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.io.onnx import ExportError, export_onnx

if not hasattr(nn, "MultiHeadAttention"):  # pragma: no cover
    pytest.skip("the attention layers (branch attention) are not merged yet", allow_module_level=True)

ATOL = RTOL = 1e-5
E = 8


def seq(n, t, batch_first=True, seed=0):
    x = np.random.default_rng(seed + 10 * n + t).standard_normal((n, t, E)).astype(np.float32)
    return x if batch_first else np.ascontiguousarray(x.swapaxes(0, 1))


def padding(n, t, seed=0):
    """(B, T) True at padding: one full row, one row of length 1, the rest random."""
    lengths = np.random.default_rng(seed + n + t).integers(1, t + 1, size=n)
    lengths[0], lengths[-1] = t, 1
    return np.arange(t)[None, :] >= lengths[:, None]


def reference(model, inputs):
    model.eval()
    with nk.no_grad():
        return model(*[None if a is None else nk.Tensor(a) for a in inputs]).data


def check(model, make, tmp_path, sizes=((3, 5), (4, 2), (1, 7))):
    path = tmp_path / "att.onnx"
    export_onnx(model, make(*sizes[0]), path)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for n, t in sizes:
        inputs = make(n, t)
        given = [a for a in inputs if a is not None]  # a None is an optional input left out: no graph input
        (got,) = sess.run(None, {i.name: a for i, a in zip(sess.get_inputs(), given, strict=True)})
        want = reference(model, inputs)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=RTOL)


CASES = {
    "mha-self": (lambda: nn.MultiHeadAttention(E, 2, generator=0), lambda n, t: (seq(n, t),)),
    "mha-self-dropout-no-bias": (
        lambda: nn.MultiHeadAttention(E, 4, dropout=0.5, bias=False, generator=0),
        lambda n, t: (seq(n, t),),
    ),
    "mha-cross": (
        lambda: nn.MultiHeadAttention(E, 2, generator=0),
        lambda n, t: (seq(n, t), seq(n, t + 2, seed=1), seq(n, t + 2, seed=2)),
    ),
    "mha-key-padding": (
        lambda: nn.MultiHeadAttention(E, 2, generator=0),
        lambda n, t: (seq(n, t), seq(n, t), seq(n, t), padding(n, t)),
    ),
    "mha-a-query-with-every-key-masked": (  # zero weights and output as neuronkit, not ONNX Softmax's NaN
        lambda: nn.MultiHeadAttention(E, 2, generator=0),
        lambda n, t: (seq(n, t), seq(n, t), seq(n, t), np.vstack([np.ones((1, t), bool), padding(n - 1 or 1, t)])[:n]),
    ),
    "mha-key-padding-float": (
        lambda: nn.MultiHeadAttention(E, 2, generator=0),
        lambda n, t: (seq(n, t), seq(n, t), seq(n, t), np.where(padding(n, t), -np.inf, 0.0).astype(np.float32)),
    ),
    "mha-time-major": (
        lambda: nn.MultiHeadAttention(E, 2, batch_first=False, generator=0),
        lambda n, t: (seq(n, t, False), seq(n, t, False, 1), seq(n, t, False, 2), padding(n, t)),
    ),
    "encoder-layer-post-norm": (
        lambda: nn.TransformerEncoderLayer(E, 2, dim_feedforward=16, generator=0),
        lambda n, t: (seq(n, t),),
    ),
    "encoder-layer-pre-norm-gelu-masks": (
        lambda: nn.TransformerEncoderLayer(E, 2, 16, activation="gelu", norm_first=True, generator=0),
        lambda n, t: (seq(n, t), np.triu(np.ones((t, t), bool), 1), padding(n, t)),  # causal (L, L) + padding
    ),
    "encoder-layer-time-major-no-bias": (
        lambda: nn.TransformerEncoderLayer(E, 4, 16, batch_first=False, bias=False, generator=0),
        lambda n, t: (seq(n, t, False), None, padding(n, t)),
    ),
    "encoder-stack-with-norm": (
        lambda: nn.TransformerEncoder(
            nn.TransformerEncoderLayer(E, 2, 16, norm_first=True, generator=0), 2, norm=nn.LayerNorm(E)
        ),
        lambda n, t: (seq(n, t), None, padding(n, t)),
    ),
    "sinusoidal-positions": (lambda: nn.SinusoidalPositionalEncoding(E, max_len=64), lambda n, t: (seq(n, t),)),
    "learned-positions": (lambda: nn.LearnedPositionalEmbedding(E, max_len=16, generator=0), lambda n, t: (seq(n, t),)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_attention_layer_matches_onnxruntime(case, tmp_path):
    build, make = CASES[case]
    check(build(), make, tmp_path)


def test_unbatched_attention_is_refused(tmp_path):
    with pytest.raises(ExportError, match="only batched"):
        export_onnx(nn.MultiHeadAttention(E, 2), np.zeros((3, E), np.float32), tmp_path / "m.onnx")
