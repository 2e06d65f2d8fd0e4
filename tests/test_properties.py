"""Property tests (hypothesis): broadcasting binary ops and reductions agree with NumPy and PyTorch on random shapes.

Everything runs in float64 and is compared with tight tolerances. PyTorch is a reference oracle only.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuronkit as nk

SETTINGS = settings(deadline=None, max_examples=80, suppress_health_check=[HealthCheck.too_slow])
RTOL, ATOL = 1e-7, 1e-12

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=4).map(tuple)
seeds = st.integers(0, 2**32 - 1)


@st.composite
def broadcast_pairs(draw):
    """Two broadcast-compatible shapes: start from one shape, set random axes to 1 on either side, and drop leading
    axes from one side."""
    full = draw(shapes)
    a, b = list(full), list(full)
    for i in range(len(full)):
        side = draw(st.sampled_from(["none", "a", "b"]))
        if side == "a":
            a[i] = 1
        elif side == "b":
            b[i] = 1
    drop = draw(st.integers(0, len(full)))
    if draw(st.booleans()):
        a = a[drop:]
    else:
        b = b[drop:]
    return tuple(a), tuple(b)


def _values(rng, shape, ties):
    """Random float64 values; with ``ties`` drawn from a few small integers so equal values (ties) are common."""
    if ties:
        return rng.integers(-2, 3, size=shape).astype(np.float64)
    return rng.standard_normal(shape)


def _nonzero(rng, shape, ties):
    """Values bounded away from zero (divisors)."""
    v = _values(rng, shape, ties)
    return np.where(v >= 0, 1.0, -1.0) * (0.5 + np.abs(v))


BINARY = {
    "add": (nk.add, np.add, torch.add),
    "sub": (nk.sub, np.subtract, torch.sub),
    "mul": (nk.mul, np.multiply, torch.mul),
    "div": (nk.div, np.divide, torch.div),
    "maximum": (nk.maximum, np.maximum, torch.maximum),
    "minimum": (nk.minimum, np.minimum, torch.minimum),
}


def _check_binary(name, shape_a, shape_b, seed, ties, needs=(True, True)):
    nk_fn, np_fn, torch_fn = BINARY[name]
    rng = np.random.default_rng(seed)
    a_np = _values(rng, shape_a, ties)
    b_np = _nonzero(rng, shape_b, ties) if name == "div" else _values(rng, shape_b, ties)

    a = nk.tensor(a_np, requires_grad=needs[0])
    b = nk.tensor(b_np, requires_grad=needs[1])
    out = nk_fn(a, b)
    expected = np_fn(a_np, b_np)
    assert out.shape == expected.shape
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, expected, rtol=RTOL, atol=ATOL)

    g_np = rng.standard_normal(expected.shape)
    out.backward(g_np)

    ta = torch.tensor(a_np, requires_grad=needs[0])
    tb = torch.tensor(b_np, requires_grad=needs[1])
    torch_fn(ta, tb).backward(torch.tensor(g_np))
    for t, tt, shape, need in ((a, ta, shape_a, needs[0]), (b, tb, shape_b, needs[1])):
        if not need:
            assert t.grad is None
            continue
        assert t.grad.shape == shape
        assert t.grad.dtype == np.float64
        np.testing.assert_allclose(t.grad.data, tt.grad.numpy(), rtol=RTOL, atol=ATOL)


@SETTINGS
@given(name=st.sampled_from(list(BINARY)), pair=broadcast_pairs(), seed=seeds, ties=st.booleans())
def test_binary_ops_broadcast_like_numpy_and_grads_match_pytorch(name, pair, seed, ties):
    _check_binary(name, pair[0], pair[1], seed, ties)


@SETTINGS
@given(name=st.sampled_from(list(BINARY)), pair=broadcast_pairs(), seed=seeds, first=st.booleans())
def test_binary_ops_with_one_input_not_requiring_grad(name, pair, seed, first):
    _check_binary(name, pair[0], pair[1], seed, ties=False, needs=(first, not first))


@SETTINGS
@given(name=st.sampled_from(list(BINARY)), shape=shapes, seed=seeds, ties=st.booleans())
def test_binary_ops_same_shape(name, shape, seed, ties):
    _check_binary(name, shape, shape, seed, ties)


@SETTINGS
@given(
    name=st.sampled_from(["add", "sub", "mul", "div"]),
    shape=shapes,
    seed=seeds,
    scalar=st.floats(0.5, 4.0) | st.floats(-4.0, -0.5),
    reflected=st.booleans(),
)
def test_binary_ops_with_python_scalar(name, shape, seed, scalar, reflected):
    nk_fn, np_fn, torch_fn = BINARY[name]
    rng = np.random.default_rng(seed)
    x_np = _nonzero(rng, shape, False)
    x = nk.tensor(x_np, requires_grad=True)
    tx = torch.tensor(x_np, requires_grad=True)
    if reflected:
        tscalar = torch.tensor(scalar, dtype=torch.float64)
        out, tout, expected = nk_fn(scalar, x), torch_fn(tscalar, tx), np_fn(scalar, x_np)
    else:
        out, tout, expected = nk_fn(x, scalar), torch_fn(tx, scalar), np_fn(x_np, scalar)
    assert out.dtype == np.float64 and out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=RTOL, atol=ATOL)
    g_np = rng.standard_normal(np.shape(expected))
    out.backward(g_np)
    tout.backward(torch.tensor(g_np))
    assert x.grad.shape == shape
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=RTOL, atol=ATOL)


# ---------------------------------------------------------------------------------------------------------------
# Reductions
# ---------------------------------------------------------------------------------------------------------------


@st.composite
def shape_and_axis(draw):
    """A shape and an axis spec: None, an int (possibly negative) or a non-empty tuple of distinct axes (some
    negative)."""
    shape = draw(shapes)
    nd = len(shape)
    if nd == 0:
        return shape, draw(st.sampled_from([None, 0, -1]))
    kind = draw(st.sampled_from(["none", "int", "tuple"]))
    if kind == "none":
        return shape, None
    if kind == "int":
        return shape, draw(st.integers(-nd, nd - 1))
    axes = draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True))
    signed = tuple(a - nd if draw(st.booleans()) else a for a in axes)
    return shape, signed


def _dims(shape, axis):
    """The reduced axes as a tuple of non-negative ints (all of them for None)."""
    nd = len(shape)
    if axis is None or nd == 0:
        return tuple(range(nd))
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(sorted(a % nd for a in axes))


def _count(shape, axis):
    n = 1
    for d in _dims(shape, axis):
        n *= shape[d]
    return n


def _torch_reduce(name, t, dims, keepdims):
    if t.ndim == 0:
        dims = 0 if name in ("logsumexp",) else ()
    if name == "sum":
        return torch.sum(t, dim=dims, keepdim=keepdims)
    if name == "mean":
        return torch.mean(t, dim=dims, keepdim=keepdims)
    if name == "max":
        return torch.amax(t, dim=dims, keepdim=keepdims)
    if name == "min":
        return torch.amin(t, dim=dims, keepdim=keepdims)
    if name == "var":
        return torch.var(t, dim=dims, correction=1, keepdim=keepdims)
    if name == "std":
        return torch.std(t, dim=dims, correction=1, keepdim=keepdims)
    if name == "logsumexp":
        return torch.logsumexp(t, dim=dims, keepdim=keepdims)
    raise AssertionError(name)


REDUCTIONS = ["sum", "mean", "max", "min", "var", "std", "logsumexp"]


@SETTINGS
@given(
    name=st.sampled_from(REDUCTIONS),
    sa=shape_and_axis(),
    keepdims=st.booleans(),
    seed=seeds,
    ties=st.booleans(),
    method=st.booleans(),
)
def test_reductions_match_pytorch(name, sa, keepdims, seed, ties, method):
    shape, axis = sa
    if name in ("var", "std"):
        if _count(shape, axis) <= 1:
            return  # the unbiased estimate needs at least two values
        ties = False  # constant slices would give std 0 and an infinite gradient
    rng = np.random.default_rng(seed)
    x_np = _values(rng, shape, ties and name in ("max", "min", "sum", "mean"))

    x = nk.tensor(x_np, requires_grad=True)
    fn = getattr(x, name) if method else getattr(nk, name)
    out = fn(axis=axis, keepdims=keepdims) if method else fn(x, axis=axis, keepdims=keepdims)

    tx = torch.tensor(x_np, requires_grad=True)
    tout = _torch_reduce(name, tx, _dims(shape, axis), keepdims)

    assert out.shape == tuple(tout.shape), (out.shape, tuple(tout.shape))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out.data, tout.detach().numpy(), rtol=RTOL, atol=ATOL)

    g_np = rng.standard_normal(out.shape)
    out.backward(g_np)
    tout.backward(torch.tensor(g_np))
    assert x.grad.shape == shape
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=RTOL, atol=ATOL)


@SETTINGS
@given(name=st.sampled_from(["sum", "mean", "max", "min", "logsumexp"]), sa=shape_and_axis(), seed=seeds)
def test_reduction_keepdims_is_consistent(name, sa, seed):
    shape, axis = sa
    x = nk.tensor(np.random.default_rng(seed).standard_normal(shape))
    kept = getattr(nk, name)(x, axis=axis, keepdims=True)
    dropped = getattr(nk, name)(x, axis=axis, keepdims=False)
    assert kept.ndim == len(shape)
    assert kept.size == dropped.size
    np.testing.assert_array_equal(kept.data.reshape(dropped.shape), dropped.data)


@pytest.mark.parametrize("axis", [0, -1, (0,)])
@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp"])
def test_reduction_of_0d_tensor_over_axis_0_is_identity_like_pytorch(name, axis):
    # PyTorch accepts dim 0 / -1 for a 0-d tensor (torch.amax(torch.tensor(2.), dim=0) == 2) and reduces nothing.
    x = nk.tensor(np.array(2.5), requires_grad=True)
    out = getattr(nk, name)(x, axis=axis)
    assert out.shape == ()
    np.testing.assert_allclose(out.item(), 2.5)
    out.backward()
    assert x.grad.item() == 1.0
