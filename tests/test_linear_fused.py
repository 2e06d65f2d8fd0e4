"""The fused ``linear(..., activation=...)`` and ``Dense``'s use of it: the same bits as ``relu(linear(...))``,
``tanh(linear(...))`` and ``sigmoid(linear(...))``.

The op's values and gradients are checked against PyTorch and float64 central differences in ``test_ops.py``; here the
fused op must give exactly the unfused ops' bits (forward and every gradient) on each of ReLU's code paths (small
arrays, NumPy's pieces, the compiled kernel), with NaN, infinities and signed zeros in the data.
"""

from __future__ import annotations

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import nn
from neuronkit.ops.activation import JIT_MIN


def _inputs(rows, n_in, n_out, dtype, bias=True, lead=()):
    rng = np.random.default_rng(rows + n_out)
    x = rng.standard_normal((*lead, rows, n_in)).astype(dtype)
    w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(dtype)
    b = rng.standard_normal(n_out).astype(dtype) if bias else None
    x.reshape(-1, n_in)[0, :3] = (np.nan, np.inf, -np.inf)  # a row of non-finite pre-activations
    if b is not None:
        b[:2] = 0.0
    x.reshape(-1, n_in)[1] = -0.0  # with a zero bias: pre-activations of +-0.0
    return x, w, b


def _run(fused, act, x, w, b, g):
    ts = [nk.Tensor(a.copy(), requires_grad=True) for a in (x, w) + (() if b is None else (b,))]
    y = nk.linear(*ts, activation=act) if fused else getattr(nk, act)(nk.linear(*ts))
    y.backward(nk.Tensor(g))
    return [y.data] + [t.grad.data for t in ts]


def _bits(a):
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "rows,n_in,n_out,lead,bias",
    [
        (5, 7, 3, (), True),  # under 4,096 elements: NumPy's maximum
        (64, 9, 128, (), True),  # 8,192: NumPy in pieces
        (2, 9, 128, (512,), True),  # a 3-D input of JIT_MIN elements: the compiled kernel where Numba is installed
        (40, 6, 10, (), False),
    ],
)
def test_fused_linear_has_the_unfused_bits(dtype, rows, n_in, n_out, lead, bias, act):
    x, w, b = _inputs(rows, n_in, n_out, dtype, bias, lead)
    g = np.random.default_rng(1).standard_normal((*lead, rows, n_out)).astype(dtype)
    if lead:
        assert g.size == JIT_MIN
    with np.errstate(invalid="ignore"):
        fused, plain = _run(True, act, x, w, b, g), _run(False, act, x, w, b, g)
    assert np.isnan(fused[0]).any() and (fused[0] == {"sigmoid": 0.5}.get(act, 0)).any()  # (the rows of inf, -0.0)
    for what, a, r in zip(("output", "x.grad", "w.grad", "b.grad"), fused, plain):
        assert a.dtype == r.dtype and a.shape == r.shape, what
        np.testing.assert_array_equal(_bits(a), _bits(r), err_msg=what)


def test_linear_names_the_activations_it_fuses():
    x, w = nk.ones(2, 3), nk.ones(4, 3)
    with pytest.raises(ValueError, match=r"activation must be None, 'relu', 'tanh' or 'sigmoid', got 'gelu'"):
        nk.linear(x, w, activation="gelu")


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid"])
def test_dense_runs_the_fused_op_unless_its_activation_is_hooked(act):
    layer = nn.Dense(6, 4, activation=act, generator=0)
    x = nk.Tensor(np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32))
    fused = layer(x)
    assert fused.grad_fn.name == "linear_act"
    seen = []
    handle = layer.activation.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].data.copy()))
    hooked = layer(x)
    assert hooked.grad_fn.name == act and len(seen) == 1  # the hook saw the pre-activation
    np.testing.assert_array_equal(seen[0], nk.linear(x, layer.weight, layer.bias).data)
    np.testing.assert_array_equal(hooked.data, fused.data)
    handle.remove()
    assert layer(x).grad_fn.name == "linear_act"
    assert nn.Dense(6, 4, activation="gelu")(x).grad_fn.name == "gelu"  # other activations stay separate ops
