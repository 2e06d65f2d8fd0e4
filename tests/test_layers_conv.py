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


def _backward_matches(y, yt, xs, xt, layer, tlayer, g, dtype):
    """Backward ``g`` through both; outputs and input, weight and bias gradients agree with torch's."""
    y.backward(nk.Tensor(g))
    yt.backward(torch.tensor(g))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **tol)
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.weight.grad.data, tlayer.weight.grad.numpy(), **tol)
    if layer.bias is not None:
        np.testing.assert_allclose(layer.bias.grad.data, tlayer.bias.grad.numpy(), **tol)
    assert y.dtype == dtype and layer.weight.grad.dtype == dtype


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
    _backward_matches(y, yt, xs, xt, layer, tlayer, g, dtype)


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
        nn.Conv2d(1, 16, 3, generator=0),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, generator=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(800, 10, generator=2),
    )
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


FUSED_CASES = [
    dict(in_channels=1, out_channels=6, kernel_size=3, activation="relu", max_pool=2),  # few channels, as conv 1
    dict(in_channels=5, out_channels=4, kernel_size=3, padding=1, activation="relu", max_pool=2),
    dict(in_channels=8, out_channels=5, kernel_size=3, padding=1, activation="relu", max_pool=2),  # as conv 2
    dict(in_channels=4, out_channels=4, kernel_size=2, stride=2, activation="relu"),
    dict(in_channels=3, out_channels=4, kernel_size=3, bias=False, max_pool=3),
    dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, activation="relu", max_pool=2),  # composed path
]


def _exact(rng, shape, dtype, scale=4):
    """Random multiples of 1/``scale`` in [-1, 1]: sums of their products are exact in float32 in any order."""
    return (rng.integers(-scale, scale + 1, shape) / scale).astype(dtype)


def _tied_windows(y, k) -> int:
    """Pooling windows (``k`` x ``k``, stride ``k``) of ``y`` (N, C, H, W) whose positive maximum is tied."""
    n, c, h, w = y.shape
    win = y[:, :, : h // k * k, : w // k * k].reshape(n, c, h // k, k, w // k, k).transpose(0, 1, 2, 4, 3, 5)
    win = win.reshape(n, c, h // k, w // k, k * k)
    top = win.max(-1, keepdims=True)
    return int((((win == top).sum(-1) > 1) & (top[..., 0] > 0)).sum())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg", FUSED_CASES, ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_fused_conv2d_matches_torch_conv_relu_pool(cfg, dtype):
    # Inputs like images: a zero background and flat patches, so conv outputs tie within pooling windows (both at
    # zero after ReLU and at positive values) and the first-maximum rule decides where the gradient goes. Inputs,
    # weights and biases are multiples of 1/4, so every conv output is exact whatever the order of summation: a tie
    # is a tie under every BLAS kernel, never a near-tie that rounding breaks one way here and the other way in torch
    # (with random float weights, 45 of 1,404 input-gradient entries went to the other position under OpenBLAS's
    # Prescott kernel).
    plain = {k: v for k, v in cfg.items() if k not in ("activation", "max_pool")}
    layer = nn.Conv2d(**cfg, generator=0, dtype=dtype)
    rng = np.random.default_rng(3)
    layer.weight.data[...] = _exact(rng, layer.weight.shape, dtype)
    if layer.bias is not None:
        layer.bias.data[...] = _exact(rng, layer.bias.shape, dtype)
    tlayer = torch.nn.Conv2d(**plain, dtype=getattr(torch, dtype))
    _to_torch(layer, tlayer)
    x = np.zeros((3, cfg["in_channels"], 13, 12), dtype=dtype)
    x[:, :, 2:9, 3:10] = 1.0
    x[:, :, 5:7, 4:6] = _exact(rng, (3, cfg["in_channels"], 2, 2), dtype)
    xs, xt = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y = layer(xs)
    yt = tlayer(xt)
    if cfg.get("activation"):
        yt = torch.relu(yt)
    if cfg.get("max_pool"):
        assert _tied_windows(yt.detach().numpy(), cfg["max_pool"]) > 0  # the tie rule is exercised
        yt = torch.nn.functional.max_pool2d(yt, cfg["max_pool"])
    g = rng.standard_normal(y.shape).astype(dtype)
    _backward_matches(y, yt, xs, xt, layer, tlayer, g, dtype)


def test_fused_conv2d_equals_separate_ops_exactly():
    # Same graph either way: fused and separate ops agree to the last bit on a ReLU-heavy input with ties.
    rng = np.random.default_rng(0)
    x = np.zeros((4, 2, 12, 11), dtype=np.float32)
    x[:, :, 3:8, 2:9] = rng.integers(0, 3, (4, 2, 5, 7))
    w = rng.integers(-2, 3, (3, 2, 3, 3)).astype(np.float32)
    b = np.array([0.5, -1.0, 0.0], dtype=np.float32)
    res = []
    for fused in (False, True):
        xs, ws, bs = (nk.Tensor(a, requires_grad=True) for a in (x, w, b))
        if fused:
            y = nk.conv2d(xs, ws, bs, activation="relu", max_pool=2)
        else:
            y = nk.max_pool2d(nk.relu(nk.conv2d(xs, ws, bs)), 2)
        (y * nk.Tensor(np.arange(y.data.size, dtype=np.float32).reshape(y.shape))).sum().backward()
        res.append([y.data, xs.grad.data, ws.grad.data, bs.grad.data])
    for a, b_ in zip(*res):
        np.testing.assert_array_equal(a, b_)


def test_fused_conv2d_layer_config_repr_and_errors():
    layer = nn.Conv2d(1, 4, 3, activation="relu", max_pool=2)
    assert layer.get_config()["activation"] == "relu" and layer.get_config()["max_pool"] == 2
    assert "activation" not in nn.Conv2d(1, 4, 3).get_config()  # plain layers keep their old config
    assert "activation='relu', max_pool=2" in repr(layer)
    assert nn.Conv2d(**layer.get_config()).get_config() == layer.get_config()
    assert layer(nk.zeros(2, 1, 10, 9)).shape == (2, 4, 4, 3)
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        nn.Conv2d(1, 4, 3, activation="tanh")
    with pytest.raises(ValueError, match="max_pool must be"):
        nn.Conv2d(1, 4, 3, max_pool=0)
    with pytest.raises(ValueError, match="max_pool=4 does not fit"):
        nk.conv2d(nk.zeros(1, 1, 5, 5), nk.zeros(2, 1, 3, 3), max_pool=4)
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        nk.conv2d(nk.zeros(1, 1, 5, 5), nk.zeros(2, 1, 3, 3), activation="gelu")


def test_conv2d_and_dense_activations_are_modules_and_saved_models_of_both_kinds_load(tmp_path):
    import json

    conv, dense = nn.Conv2d(1, 4, 3, activation="relu", max_pool=2, generator=0), nn.Dense(3, 2, activation="relu")
    assert isinstance(conv.activation, nn.ReLU) and isinstance(dense.activation, nn.ReLU)
    assert isinstance(nn.Conv2d(1, 4, 3).activation, nn.Identity) and isinstance(nn.Dense(3, 2).activation, nn.Identity)
    assert type(nn.Conv2d(1, 4, 3, activation=nn.ReLU()).activation) is nn.ReLU
    assert repr(conv) == "Conv2d(1 -> 4, kernel 3x3, activation='relu', max_pool=2)"
    with pytest.raises(ValueError, match="activation must be None or 'relu'"):
        nn.Conv2d(1, 4, 3, activation=nn.Tanh())
    # an architecture file as saved before the activation became a module (a name string in both layers) still loads
    model = nn.Sequential(conv, nn.Flatten(), nn.Dense(64, 3, activation="tanh", generator=1))
    nk.save(model, tmp_path / "m")
    arch = json.loads((tmp_path / "m" / "architecture.json").read_text())
    text = json.dumps(arch)
    assert '"activation": "relu"' in text and '"activation": "tanh"' in text
    loaded = nk.load(tmp_path / "m")
    assert isinstance(loaded[0].activation, nn.ReLU) and isinstance(loaded[2].activation, nn.Tanh)
    x = nk.Tensor(np.random.default_rng(0).standard_normal((2, 1, 10, 10)).astype(np.float32))
    np.testing.assert_array_equal(loaded(x).data, model(x).data)


def test_hooks_on_a_fused_conv2d_activation_see_its_input_and_output():
    # Dense's activation hooks fire; a fused Conv2d's do too: the layer then runs conv, ReLU, pool apart
    rng = np.random.default_rng(1)
    x = nk.Tensor(rng.standard_normal((2, 3, 9, 9)).astype(np.float32))
    layer = nn.Conv2d(3, 4, 3, activation="relu", max_pool=2, generator=0)
    fused = layer(x).data
    seen = []
    handle = layer.activation.register_forward_hook(lambda m, inputs, out: seen.append((inputs[0].data, out.data)))
    watched = layer(x).data
    handle.remove()
    assert len(seen) == 1
    z, a = seen[0]
    assert z.shape == (2, 4, 7, 7) and a.min() >= 0 and np.array_equal(a, np.maximum(z, 0))
    np.testing.assert_allclose(watched, fused, rtol=1e-6, atol=1e-6)  # the same function (bias added before the max)
    np.testing.assert_array_equal(watched, nk.max_pool2d(nk.Tensor(a), 2).data)


@pytest.mark.parametrize(
    "layer",
    [
        lambda: nn.Conv2d(2, 3, 3, padding=1),
        lambda: nn.Conv2d(2, 3, 3, padding=1, activation="relu", max_pool=2),
        lambda: nn.Conv2d(2, 3, 3, stride=2),
        lambda: nn.Conv1d(2, 3, 3),
        lambda: nn.MaxPool2d(2),
        lambda: nn.AvgPool2d(2),
        lambda: nn.ReLU(),
    ],
)
def test_an_empty_batch_goes_forward_and_backward(layer):
    """A rank of data-parallel training may get no rows of a small last batch: every layer takes a batch of 0."""
    m = layer()
    shape = (0, 2, 6) if isinstance(m, nn.Conv1d) else (0, 2, 6, 6)
    x = nk.tensor(np.zeros(shape, dtype=np.float32), requires_grad=True)
    y = m(x)
    assert y.shape[0] == 0
    y.sum().backward()
    assert x.grad.shape == shape
    for p in m.parameters():
        assert p.grad is not None and not np.any(p.grad.data)
