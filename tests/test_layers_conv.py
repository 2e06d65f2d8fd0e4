"""Convolution and pooling layers against torch.nn with the same weights, the Filter view, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import neuronkit as nk
from neuronkit import nn

CONV2D_CASES = [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=2, padding=1, groups=2),
    dict(in_channels=2, out_channels=3, kernel_size=3, dilation=2, padding=2, bias=False),
    dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4),  # depthwise
]


def _to_torch(layer, tlayer):
    with torch.no_grad():
        tlayer.weight.copy_(torch.tensor(layer.weight.data))
        if layer.bias is not None:
            tlayer.bias.copy_(torch.tensor(layer.bias.data))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", CONV2D_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_conv2d_matches_torch(cfg, dtype):
    layer = nn.Conv2d(**cfg, generator=0, dtype=dtype)
    tlayer = torch.nn.Conv2d(**cfg, dtype=getattr(torch, dtype))
    _to_torch(layer, tlayer)
    x = np.random.default_rng(1).standard_normal((2, cfg["in_channels"], 9, 8)).astype(dtype)
    xs, xt = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = layer(xs), tlayer(xt)
    g = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    y.backward(nk.Tensor(g))
    yt.backward(torch.tensor(g))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.weight.grad.data, tlayer.weight.grad.numpy(), **tol)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad.data, tlayer.bias.grad.numpy(), **tol)
    assert y.dtype == dtype and layer.weight.grad.dtype == dtype


def test_conv1d_matches_torch():
    layer = nn.Conv1d(3, 5, 4, stride=2, padding=1, generator=0, dtype="float64")
    tlayer = torch.nn.Conv1d(3, 5, 4, stride=2, padding=1, dtype=torch.float64)
    _to_torch(layer, tlayer)
    x = np.random.default_rng(1).standard_normal((2, 3, 11))
    xs, xt = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    layer(xs).sum().backward()
    tlayer(xt).sum().backward()
    np.testing.assert_allclose(layer(xs).data, tlayer(xt).detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(layer.weight.grad.data, tlayer.weight.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (lambda: nn.MaxPool2d(2), lambda: torch.nn.MaxPool2d(2)),
        (lambda: nn.MaxPool2d(3, stride=2, padding=1), lambda: torch.nn.MaxPool2d(3, stride=2, padding=1)),
        (lambda: nn.AvgPool2d(2), lambda: torch.nn.AvgPool2d(2)),
        (lambda: nn.AvgPool2d(3, stride=1, padding=1), lambda: torch.nn.AvgPool2d(3, stride=1, padding=1)),
        (lambda: nn.GlobalAvgPool2d(), lambda: torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())),
    ],
    ids=["max2", "max3s2p1", "avg2", "avg3s1p1", "global_avg"],
)
def test_pool_layers_match_torch(ours, theirs):
    x = np.random.default_rng(3).standard_normal((2, 3, 7, 6))
    xs, xt = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours()(xs), theirs()(xt)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    g = np.random.default_rng(4).standard_normal(y.shape)
    y.backward(nk.Tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_lenet_style_stack_output_shapes_and_summary():
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, generator=0), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, generator=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dense(800, 10, generator=2),
    )  # fmt: skip
    assert model(nk.zeros(4, 1, 28, 28)).shape == (4, 10)
    s = model.summary((4, 1, 28, 28))
    assert s.total_params == 16 * 9 + 16 + 32 * 16 * 9 + 32 + 800 * 10 + 10
    shapes = [r[2] for r in s.rows]
    assert shapes[:3] == [(4, 16, 26, 26), (4, 16, 26, 26), (4, 16, 13, 13)] and shapes[-1] == (4, 10)


def test_default_init_and_seeds():
    a, b, c = nn.Conv2d(4, 8, 3, generator=5), nn.Conv2d(4, 8, 3, generator=5), nn.Conv2d(4, 8, 3, generator=6)
    bound = 1 / math.sqrt(4 * 9)
    assert np.abs(a.weight.data).max() <= bound and np.abs(a.bias.data).max() <= bound
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_filter_view_reads_and_writes_the_layer():
    layer = nn.Conv2d(2, 3, 3, generator=0, dtype="float64")
    f = layer.filter(1)
    np.testing.assert_array_equal(f.weights, layer.weight.data[1])
    f.weights[...] = 0.0
    f.bias = 2.5
    y = layer(nk.randn(1, 2, 5, 5, generator=1, dtype="float64"))
    np.testing.assert_allclose(y.data[0, 1], 2.5)
    y.sum().backward()
    np.testing.assert_array_equal(f.weight_grad, layer.weight.grad.data[1])
    with pytest.raises(IndexError, match="out of range"):
        layer.filter(3)
    assert "Filter(1" in repr(f)


@pytest.mark.parametrize(
    "make,shape,match",
    [
        (lambda: nn.Conv2d(3, 8, 3), (2, 4, 9, 9), r"Conv2d\(3 -> 8\) got input of shape \(2, 4, 9, 9\)"),
        (lambda: nn.Conv2d(3, 8, 3), (2, 3, 9), "expected"),
        (lambda: nn.Conv2d(3, 8, 5), (1, 3, 3, 3), "does not fit"),
        (lambda: nn.Conv1d(2, 4, 3), (2, 3, 10), r"Conv1d\(2 -> 4\)"),
        (lambda: nn.MaxPool2d(4), (1, 1, 3, 3), "does not fit"),
    ],
)
def test_bad_input_names_layer_and_shapes(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make()(nk.zeros(*shape))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="groups=3"):
        nn.Conv2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(4, 6, 0)
    with pytest.raises(ValueError, match="in_channels"):
        nn.Conv2d(0, 6, 3)
