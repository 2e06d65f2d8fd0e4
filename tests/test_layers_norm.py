"""BatchNorm1d/2d, LayerNorm and Embedding against the torch.nn modules with the same parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuronkit as nk
from neuronkit import nn

DTYPES = [(np.float32, torch.float32, 1e-5), (np.float64, torch.float64, 1e-10)]


def _copy_params(ours, ref, rng, np_dt):
    """Random weights in both modules (so the affine part is really tested)."""
    for name, p in ours.named_parameters():
        v = rng.standard_normal(p.shape).astype(np_dt)
        p.data[...] = v
        with torch.no_grad():
            getattr(ref, name).copy_(torch.tensor(v))


def _step(ours, ref, x, rng, tol, check_grads=True):
    """One forward + backward through both; compares outputs and the gradients of input and parameters."""
    xo = nk.Tensor(x, requires_grad=True)
    xr = torch.tensor(x, requires_grad=True)
    yo, yr = ours(xo), ref(xr)
    assert yo.dtype == x.dtype
    np.testing.assert_allclose(yo.data, yr.detach().numpy(), rtol=tol * 10, atol=tol * 10)
    g = rng.standard_normal(yo.shape).astype(x.dtype)
    yo.backward(nk.Tensor(g))
    yr.backward(torch.tensor(g))
    if check_grads:
        np.testing.assert_allclose(xo.grad.data, xr.grad.numpy(), rtol=tol * 100, atol=tol * 100)
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(
                p.grad.data, getattr(ref, name).grad.numpy(), rtol=tol * 100, atol=tol * 100, err_msg=name
            )
    ours.zero_grad()
    ref.zero_grad()


def _buffers_match(ours, ref, tol):
    for name in ("running_mean", "running_var"):
        np.testing.assert_allclose(
            getattr(ours, name).data, getattr(ref, name).numpy(), rtol=tol * 10, atol=tol * 10, err_msg=name
        )
    assert int(ours.num_batches_tracked.data) == int(ref.num_batches_tracked)


@pytest.mark.parametrize("np_dt,t_dt,tol", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize(
    "cls,tcls,shape",
    [
        (nn.BatchNorm1d, torch.nn.BatchNorm1d, (8, 5)),
        (nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 5, 7)),
        (nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 5, 3, 6)),
    ],
    ids=["1d_NC", "1d_NCL", "2d"],
)
@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
def test_batchnorm_matches_torch_train_then_eval(cls, tcls, shape, np_dt, t_dt, tol, momentum):
    rng = np.random.default_rng(0)
    ours = cls(5, momentum=momentum, dtype=np_dt)
    ref = tcls(5, momentum=momentum, dtype=t_dt)
    _copy_params(ours, ref, rng, np_dt)
    assert ours.running_mean.dtype == np_dt
    for _ in range(4):  # several training steps: running statistics and the batch count follow torch
        x = (rng.standard_normal(shape) * 3 + 2).astype(np_dt)
        _step(ours, ref, x, rng, tol)
        _buffers_match(ours, ref, tol)
    assert int(ours.num_batches_tracked.data) == 4
    ours.eval()
    ref.eval()
    before = ours.running_mean.data.copy()
    _step(ours, ref, (rng.standard_normal(shape) * 3 + 2).astype(np_dt), rng, tol)
    np.testing.assert_array_equal(ours.running_mean.data, before)  # eval never moves the running statistics
    _buffers_match(ours, ref, tol)


@pytest.mark.parametrize("affine,track", [(False, True), (True, False), (False, False)])
def test_batchnorm_options(affine, track):
    rng = np.random.default_rng(1)
    ours = nn.BatchNorm2d(3, affine=affine, track_running_stats=track)
    ref = torch.nn.BatchNorm2d(3, affine=affine, track_running_stats=track)
    assert (ours.weight is None) == (not affine) and (ours.running_mean is None) == (not track)
    assert len(list(ours.parameters())) == (2 if affine else 0)
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(ref, mode)()
        for _ in range(2):
            _step(ours, ref, rng.standard_normal((4, 3, 2, 5)).astype(np.float32), rng, 1e-5)
    if track:
        _buffers_match(ours, ref, 1e-5)


def test_batchnorm_state_dict_has_buffers():
    bn = nn.BatchNorm1d(4)
    bn(nk.Tensor(np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)))
    sd = bn.state_dict()
    assert set(sd) == {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}
    assert sd["num_batches_tracked"] == 1
    fresh = nn.BatchNorm1d(4)
    fresh.load_state_dict(sd)
    np.testing.assert_array_equal(fresh.running_var.data, bn.running_var.data)
    bn.reset_running_stats()
    assert bn.running_mean.data.sum() == 0 and int(bn.num_batches_tracked.data) == 0


def test_batchnorm_bad_input():
    with pytest.raises(
        ValueError,
        match=r"BatchNorm2d\(16\) got input of shape \(8, 3, 28, 28\): expected 16 "
        r"channels on axis 1",
    ):
        nn.BatchNorm2d(16)(nk.zeros(8, 3, 28, 28))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) got input of shape \(8, 3\): expected 4-D"):
        nn.BatchNorm2d(3)(nk.zeros(8, 3))
    with pytest.raises(ValueError, match=r"BatchNorm1d\(3\) got input of shape \(2, 3, 4, 5\)"):
        nn.BatchNorm1d(3)(nk.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(nk.zeros(1, 3))
    nn.BatchNorm1d(3).eval()(nk.zeros(1, 3))  # a single sample is fine in evaluation
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=1.5)
    with pytest.raises(ValueError, match="num_features"):
        nn.BatchNorm1d(0)


@pytest.mark.parametrize("np_dt,t_dt,tol", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("ns,shape", [(6, (4, 6)), (6, (2, 3, 6)), ((3, 4), (5, 3, 4)), ((3, 4), (2, 2, 3, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_matches_torch(ns, shape, np_dt, t_dt, tol, affine):
    rng = np.random.default_rng(2)
    ours = nn.LayerNorm(ns, elementwise_affine=affine, dtype=np_dt)
    ref = torch.nn.LayerNorm(ns, elementwise_affine=affine, dtype=t_dt)
    _copy_params(ours, ref, rng, np_dt)
    for mode in ("train", "eval"):  # no difference between the modes
        getattr(ours, mode)()
        getattr(ref, mode)()
        _step(ours, ref, (rng.standard_normal(shape) * 2 - 1).astype(np_dt), rng, tol)


def test_layernorm_no_bias_and_errors():
    rng = np.random.default_rng(3)
    ours, ref = nn.LayerNorm(5, bias=False), torch.nn.LayerNorm(5, bias=False)
    _copy_params(ours, ref, rng, np.float32)
    assert ours.bias is None
    _step(ours, ref, rng.standard_normal((3, 5)).astype(np.float32), rng, 1e-5)
    with pytest.raises(ValueError, match=r"LayerNorm\(\(3, 4\).*got input of shape \(2, 4, 3\).*\(3, 4\)"):
        nn.LayerNorm((3, 4))(nk.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(0)


def _embedding_pair(n, d, padding_idx, np_dt, t_dt):
    ours = nn.Embedding(n, d, padding_idx=padding_idx, generator=0, dtype=np_dt)
    ref = torch.nn.Embedding(n, d, padding_idx=padding_idx, dtype=t_dt)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(ours.weight.data))
    return ours, ref


@pytest.mark.parametrize("np_dt,t_dt,tol", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
@pytest.mark.parametrize("ids_shape", [(7,), (3, 5), ()])
def test_embedding_matches_torch(np_dt, t_dt, tol, padding_idx, ids_shape):
    rng = np.random.default_rng(4)
    ours, ref = _embedding_pair(6, 4, padding_idx, np_dt, t_dt)
    if padding_idx is not None:
        assert np.all(ours.weight.data[padding_idx] == 0)
    ids = rng.integers(0, 6, size=ids_shape)  # small table: ids repeat, so gradients must accumulate
    if ids.ndim:
        ids.flat[:3] = [2, 5, 2]
    yo, yr = ours(ids), ref(torch.tensor(ids))
    assert yo.shape == ids_shape + (4,) and yo.dtype == np_dt
    np.testing.assert_array_equal(yo.data, yr.detach().numpy())
    g = rng.standard_normal(yo.shape).astype(np_dt)
    yo.backward(nk.Tensor(g))
    yr.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad.data, ref.weight.grad.numpy(), rtol=tol * 10, atol=tol * 10)
    if padding_idx is not None:
        assert np.all(ours.weight.grad.data[padding_idx] == 0)


def test_embedding_init_and_errors():
    e = nn.Embedding(1000, 50, generator=0)
    assert abs(e.weight.data.mean()) < 0.02 and abs(e.weight.data.std() - 1) < 0.02  # N(0, 1)
    np.testing.assert_array_equal(
        nn.Embedding(5, 3, generator=7).weight.data, nn.Embedding(5, 3, generator=7).weight.data
    )
    e = nn.Embedding(10, 3)
    with pytest.raises(IndexError, match=r"Embedding\(10, 3\).*index 12 is out of range for a table of 10 rows"):
        e(np.array([[1, 12], [0, 3]]))
    with pytest.raises(IndexError, match="index -1"):
        e(np.array([-1, 3]))
    with pytest.raises(TypeError, match="integer"):
        e(np.array([1.0, 2.0]))
    with pytest.raises(IndexError, match="index 10 is out of range for a table of 10 rows"):
        nk.embedding(np.array([10]), nk.zeros(10, 3))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)
    assert e(nk.Tensor(np.array([1, 2]))).shape == (2, 3)  # integer Tensor ids work too
