"""Tests for neuronkit.nn: Module, Parameter, summary, Dense/Linear, activation modules, Flatten/Dropout/Sequential,
initialisers and the Neuron view. PyTorch (CPU) is the reference for layers, activations and init constants."""

from __future__ import annotations

import math
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

import neuronkit as nk
from neuronkit import nn
from neuronkit.nn import init as I

FWD32 = {"atol": 1e-6, "rtol": 1e-3}
GRAD32 = {"atol": 1e-4, "rtol": 1e-3}
TIGHT64 = {"atol": 1e-12, "rtol": 1e-10}


def arr(shape, seed=0, dtype=np.float64, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def leaf(a):
    return nk.Tensor(np.array(a, copy=True), requires_grad=True)


def tleaf(a):
    return torch.tensor(np.array(a, copy=True), requires_grad=True)


# ---------------------------------------------------------------------------------------------------------------------
# Module: registration, traversal, modes, gradients, state, hooks, repr
# ---------------------------------------------------------------------------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(4, 8, activation="relu", generator=1)
        self.scale = nn.Parameter(np.ones(8, dtype=np.float32))
        self.register_buffer("count", np.zeros(3, dtype=np.float32))

    def forward(self, x):
        return self.fc(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.drop = nn.Dropout(0.5, generator=0)
        self.head = nn.Linear(8, 3, generator=2)

    def forward(self, x):
        return self.head(self.drop(self.block(x)))


def mlp():
    return nn.Sequential(nn.Dense(4, 8, activation="relu", generator=0), nn.Dense(8, 2, generator=1))


def test_parameters_register_with_dotted_names():
    m = mlp()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert all(isinstance(p, nn.Parameter) for p in m.parameters())
    assert m[0].weight is dict(m.named_parameters())["0.weight"]
    assert m.num_parameters() == 4 * 8 + 8 + 8 * 2 + 2


def test_subclass_model_with_nested_submodules():
    net = Net()
    names = [n for n, _ in net.named_parameters()]
    assert names == ["block.scale", "block.fc.weight", "block.fc.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_buffers()] == ["block.count"]
    assert [n for n, _ in net.named_children()] == ["block", "drop", "head"]
    assert list(net.children()) == [net.block, net.drop, net.head]
    mod_names = [n for n, _ in net.named_modules()]
    assert mod_names == ["", "block", "block.fc", "block.fc.activation", "drop", "head", "head.activation"]
    assert next(iter(net.modules())) is net
    assert [n for n, _ in net.named_parameters(recurse=False)] == []
    net.eval()
    out = net(nk.Tensor(arr((5, 4), dtype=np.float32)))
    assert out.shape == (5, 3)


def test_shared_parameter_appears_once():
    m = nn.Module()
    m.a = nn.Linear(3, 3, generator=0)
    m.b = nn.Linear(3, 3, generator=1)
    m.b.weight = m.a.weight
    params = list(m.parameters())
    assert len(params) == 3  # a.weight, a.bias, b.bias
    assert [n for n, _ in m.named_parameters()] == ["a.weight", "a.bias", "b.bias"]
    # A module used twice is walked once too.
    shared = nn.Linear(2, 2)
    s = nn.Sequential(shared, shared)
    assert len(list(s.parameters())) == 2
    assert len(list(s.modules())) == 3  # Sequential, Linear, its Identity activation


def test_reassigning_parameter_to_plain_value_unregisters_it():
    m = nn.Module()
    m.w = nn.Parameter(np.ones(3))
    assert [n for n, _ in m.named_parameters()] == ["w"]
    m.w = 5
    assert m.w == 5
    assert list(m.named_parameters()) == []
    m.w = nn.Parameter(np.zeros(2))
    assert [n for n, _ in m.named_parameters()] == ["w"]
    del m.w
    assert list(m.named_parameters()) == []
    with pytest.raises(AttributeError):
        _ = m.w
    m.sub = nn.Linear(2, 2)
    m.sub = None
    assert list(m.children()) == []


def test_plain_attributes_and_tensors_are_not_parameters():
    m = nn.Module()
    m.t = nk.Tensor(np.ones(3), requires_grad=True)  # a plain Tensor is not a Parameter
    m.n = 3
    assert list(m.parameters()) == []
    with pytest.raises(AttributeError, match="nope"):
        _ = m.nope


def test_missing_super_init_gives_clear_error():
    class Bad(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"Bad: call super\(\).__init__\(\)"):
        Bad()


def test_train_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    assert net.train() is net
    assert all(m.training for m in net.modules())
    net.train(False)
    assert not net.block.fc.training and not net.drop.training


def _backward_once(m):
    out = m(nk.Tensor(arr((3, 4), dtype=np.float32)))
    out.sum().backward()


def test_zero_grad_set_to_none():
    m = mlp()
    _backward_once(m)
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    m.zero_grad()  # with no gradients: fine


def test_zero_grad_in_place():
    m = mlp()
    _backward_once(m)
    grads = [p.grad for p in m.parameters()]
    arrays = [g.data for g in grads]
    m.zero_grad(set_to_none=False)
    for p, g, a in zip(m.parameters(), grads, arrays):
        assert p.grad is g and p.grad.data is a
        assert not np.any(p.grad.data)
        assert p.grad.shape == p.shape


def test_state_dict_round_trip_copies_in_place():
    a, b = Net(), Net()
    for p in b.parameters():
        p.data[...] = 0
    a.block.count.data[...] = [1, 2, 3]
    sd = a.state_dict()
    assert list(sd) == ["block.scale", "block.count", "block.fc.weight", "block.fc.bias", "head.weight", "head.bias"]
    assert "block.count" in sd and np.array_equal(sd["block.count"], [1, 2, 3])
    # A snapshot, not a view.
    sd["head.bias"][...] = 123
    assert not np.any(a.head.bias.data == 123)
    sd = a.state_dict()
    arrays_before = {n: t.data for n, t in list(b.named_parameters()) + list(b.named_buffers())}
    missing, unexpected = b.load_state_dict(sd)
    assert missing == [] and unexpected == []
    for n, t in list(b.named_parameters()) + list(b.named_buffers()):
        assert t.data is arrays_before[n], f"{n} was replaced, not copied into"
        np.testing.assert_array_equal(t.data, sd[n])
    # Loaded values are copies: changing the dict afterwards does not change the model.
    sd["head.weight"][...] = 7
    assert not np.any(b.head.weight.data == 7)
    x = nk.Tensor(arr((2, 4), dtype=np.float32))
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).data, b(x).data)


def test_load_state_dict_accepts_tensors():
    a, b = mlp(), nn.Sequential(nn.Dense(4, 8, activation="relu", generator=5), nn.Dense(8, 2, generator=6))
    b.load_state_dict({k: nk.Tensor(v) for k, v in a.state_dict().items()})
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)


def test_load_state_dict_strict_missing_key():
    m = mlp()
    sd = m.state_dict()
    del sd["1.bias"]
    with pytest.raises(KeyError, match=re.escape("1.bias")):
        m.load_state_dict(sd)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["1.bias"] and unexpected == []


def test_load_state_dict_strict_unexpected_key():
    m = mlp()
    sd = m.state_dict()
    sd["2.weight"] = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(KeyError, match=re.escape("2.weight")):
        m.load_state_dict(sd)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == [] and unexpected == ["2.weight"]


def test_load_state_dict_shape_mismatch_names_key_and_shapes():
    m = mlp()
    before = m[0].weight.data.copy()
    sd = m.state_dict()
    sd["0.weight"] = np.zeros((8, 5), dtype=np.float32)
    for strict in (True, False):
        with pytest.raises(ValueError) as e:
            m.load_state_dict(sd, strict=strict)
        msg = str(e.value)
        assert "0.weight" in msg and "(8, 5)" in msg and "(8, 4)" in msg
    np.testing.assert_array_equal(m[0].weight.data, before)  # nothing was half-loaded


def test_register_buffer():
    m = nn.Module()
    m.register_buffer("running_mean", np.arange(3.0))
    assert isinstance(m.running_mean, nk.Tensor)
    assert list(m.parameters()) == []
    assert [n for n, _ in m.named_buffers()] == ["running_mean"]
    assert list(m.state_dict()) == ["running_mean"]
    m.running_mean = nk.Tensor(np.ones(3))  # reassigning a tensor keeps it a buffer
    np.testing.assert_array_equal(m.state_dict()["running_mean"], np.ones(3))
    m.load_state_dict({"running_mean": np.full(3, 4.0)})
    np.testing.assert_array_equal(m.running_mean.data, np.full(3, 4.0))


def test_forward_pre_hook_sees_and_replaces_inputs():
    layer = nn.Linear(3, 2, dtype="float64", generator=0)
    x = nk.Tensor(arr((4, 3)))
    seen = []

    def record(mod, inputs):
        seen.append((mod, inputs))

    h = layer.register_forward_pre_hook(record)
    layer(x)
    assert seen[0][0] is layer and seen[0][1][0] is x
    h.remove()
    layer(x)
    assert len(seen) == 1
    h = layer.register_forward_pre_hook(lambda mod, inputs: (inputs[0] * 2.0,))
    np.testing.assert_allclose(layer(x).data, layer.forward(x * 2.0).data, **TIGHT64)
    h.remove()
    np.testing.assert_allclose(layer(x).data, layer.forward(x).data, **TIGHT64)


def test_forward_hook_sees_and_replaces_output():
    layer = nn.Linear(3, 2, dtype="float64", generator=0)
    x = nk.Tensor(arr((4, 3)))
    seen = []
    h1 = layer.register_forward_hook(lambda mod, inputs, out: seen.append((mod, inputs[0], out.data.copy())))
    y = layer(x)
    assert seen[0][0] is layer and seen[0][1] is x
    np.testing.assert_array_equal(seen[0][2], y.data)
    h2 = layer.register_forward_hook(lambda mod, inputs, out: out * 0.0)
    assert not np.any(layer(x).data)
    h2.remove()
    np.testing.assert_array_equal(layer(x).data, y.data)
    h1.remove()
    layer(x)
    assert len(seen) == 3


def test_hooks_on_submodule_fire_inside_model():
    net = mlp()
    shapes = []
    h = net[0].register_forward_hook(lambda mod, inputs, out: shapes.append(out.shape))
    net(nk.Tensor(arr((5, 4), dtype=np.float32)))
    assert shapes == [(5, 8)]
    h.remove()


def test_hooks_on_a_dense_layers_activation_fire():
    # Dense calls a plain activation's function directly; with a hook on the activation it must go through the module
    layer = nn.Dense(3, 2, activation="relu")
    x = nk.tensor(np.array([[1.0, -2.0, 0.5], [-3.0, 1.0, -1.0]], dtype=np.float32))
    plain = layer(x).data.copy()
    seen = []
    h = layer.activation.register_forward_hook(lambda mod, inputs, out: seen.append(out.data.copy()) or out * 2.0)
    np.testing.assert_array_equal(layer(x).data, 2 * plain)
    np.testing.assert_array_equal(seen[0], plain)
    h.remove()
    np.testing.assert_array_equal(layer(x).data, plain)
    z = nk.linear(x, layer.weight, layer.bias).data
    np.testing.assert_array_equal(plain, np.maximum(z, 0))
    layer.activation = nn.LeakyReLU(negative_slope=0.5)  # a swapped activation module, with options: it applies
    np.testing.assert_array_equal(layer(x).data, np.where(z > 0, z, 0.5 * z))


def test_backward_hook_receives_and_replaces_grad_output():
    layer = nn.Linear(3, 2, dtype="float64", generator=0)
    xa = arr((4, 3))
    g = arr((4, 2), seed=1)
    seen = []

    def record(mod, grad_output):
        seen.append((mod, np.array(grad_output.data, copy=True)))

    h = layer.register_backward_hook(record)
    layer(nk.Tensor(xa)).backward(nk.Tensor(g))
    assert len(seen) == 1 and seen[0][0] is layer
    np.testing.assert_array_equal(seen[0][1], g)
    np.testing.assert_allclose(layer.weight.grad.data, g.T @ xa, **TIGHT64)
    h.remove()

    layer.zero_grad()
    h = layer.register_backward_hook(lambda mod, grad_output: grad_output * 3.0)
    x = leaf(xa)
    layer(x).backward(nk.Tensor(g))
    np.testing.assert_allclose(layer.weight.grad.data, 3.0 * g.T @ xa, **TIGHT64)
    np.testing.assert_allclose(layer.bias.grad.data, 3.0 * g.sum(0), **TIGHT64)
    np.testing.assert_allclose(x.grad.data, 3.0 * g @ layer.weight.data, **TIGHT64)
    h.remove()
    layer.zero_grad()
    layer(nk.Tensor(xa)).backward(nk.Tensor(g))
    np.testing.assert_allclose(layer.weight.grad.data, g.T @ xa, **TIGHT64)
    assert len(seen) == 1


def test_repr_is_readable():
    m = nn.Sequential(nn.Flatten(), nn.Dense(4, 8, activation="relu"), nn.Dropout(0.2), nn.Linear(8, 2, bias=False))
    assert repr(m) == (
        "Sequential(\n"
        "  (0): Flatten(start_axis=1, end_axis=-1)\n"
        "  (1): Dense(4 -> 8, activation='relu')\n"
        "  (2): Dropout(p=0.2)\n"
        "  (3): Linear(8 -> 2, bias=False)\n"
        ")"
    )
    r = repr(Net())
    assert r.startswith("Net(\n  (block): Block(\n    (fc): Dense(4 -> 8, activation='relu')\n  )")
    assert "(head): Linear(8 -> 3)" in r
    assert repr(nn.LeakyReLU(negative_slope=0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Parameter(np.zeros(2))).startswith("Parameter(")


def test_parameter_wraps_without_copy_and_requires_grad():
    a = np.ones(3)
    p = nn.Parameter(a)
    assert p.data is a and p.requires_grad and p.is_leaf
    assert nn.Parameter(nk.Tensor(a)).data is a
    assert not nn.Parameter(a, requires_grad=False).requires_grad


# ---------------------------------------------------------------------------------------------------------------------
# summary()
# ---------------------------------------------------------------------------------------------------------------------
def test_summary_sequential_mlp():
    model = nn.Sequential(nn.Flatten(), nn.Dense(784, 128, activation="relu"), nn.Dropout(0.2), nn.Dense(128, 10))
    s = model.summary((32, 1, 28, 28))
    assert s.total_params == sum(p.size for p in model.parameters()) == 784 * 128 + 128 + 128 * 10 + 10
    assert s.trainable_params == s.total_params
    assert [(r[0], r[1], r[2]) for r in s.rows] == [
        ("0", "Flatten", (32, 784)),
        ("1", "Dense", (32, 128)),
        ("2", "Dropout", (32, 128)),
        ("3", "Dense", (32, 10)),
    ]
    assert [r[3] for r in s.rows] == [0, 784 * 128 + 128, 0, 128 * 10 + 10]
    assert sum(r[3] for r in s.rows) == s.total_params
    text = str(s)
    assert "output shape" in text and "params" in text
    assert "1 (Dense)" in text and "(32, 128)" in text and "100,480" in text
    assert f"{s.total_params:,}" in text
    assert model.training  # restored


def test_summary_subclass_model():
    net = Net()
    net.head.weight.requires_grad_(False)
    s = net.summary((2, 4))
    assert s.total_params == sum(p.size for p in net.parameters())
    assert s.trainable_params == s.total_params - net.head.weight.size
    shapes = {r[0]: r[2] for r in s.rows}
    assert shapes == {"block": (2, 8), "drop": (2, 8), "head": (2, 3)}
    # The rows account for every parameter (a module's row counts the submodules it stands for).
    assert sum(r[3] for r in s.rows) == s.total_params
    assert "block (Block)" in str(s)


def test_summary_leaves_modes_and_hooks_as_they_were():
    net = Net()
    net.drop.eval()
    net.summary((2, 4))
    assert net.training and net.block.training and not net.drop.training
    assert all(not m._forward_hooks for m in net.modules())


# ---------------------------------------------------------------------------------------------------------------------
# Dense / Linear against torch.nn.Linear
# ---------------------------------------------------------------------------------------------------------------------
def torch_copy(layer):
    t = torch.nn.Linear(
        layer.in_features,
        layer.out_features,
        bias=layer.bias is not None,
        dtype=torch.float64 if layer.weight.dtype == np.float64 else torch.float32,
    )
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(layer.weight.data.copy()))
        if layer.bias is not None:
            t.bias.copy_(torch.from_numpy(layer.bias.data.copy()))
    return t


TORCH_ACT = {None: lambda z: z, "relu": torch.relu, "tanh": torch.tanh}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 5, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("activation", [None, "relu", "tanh"])
def test_dense_matches_torch_linear(dtype, shape, bias, activation):
    np_dt = np.dtype(dtype)
    layer = nn.Dense(5, 7, bias=bias, activation=activation, generator=3, dtype=dtype)
    assert layer.weight.dtype == np_dt
    ref = torch_copy(layer)
    xa = arr(shape, seed=1, dtype=np_dt)
    ga = arr(shape[:-1] + (7,), seed=2, dtype=np_dt)
    x, xt = leaf(xa), tleaf(xa)
    y = layer(x)
    yt = TORCH_ACT[activation](ref(xt))
    y.backward(nk.Tensor(ga))
    yt.backward(torch.from_numpy(ga))
    fwd, grad = (FWD32, GRAD32) if dtype == "float32" else (TIGHT64, TIGHT64)
    assert y.dtype == np_dt and y.shape == tuple(yt.shape)
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **fwd)
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), **grad)
    np.testing.assert_allclose(layer.weight.grad.data, ref.weight.grad.numpy(), **grad)
    if bias:
        np.testing.assert_allclose(layer.bias.grad.data, ref.bias.grad.numpy(), **grad)
    else:
        assert layer.bias is None
        assert [n for n, _ in layer.named_parameters()] == ["weight"]


def test_linear_is_dense_without_activation():
    lin = nn.Linear(3, 4, generator=0)
    assert isinstance(lin, nn.Dense) and isinstance(lin.activation, nn.Identity)
    d = nn.Dense(3, 4, generator=0)
    np.testing.assert_array_equal(lin.weight.data, d.weight.data)
    assert isinstance(nn.Dense(3, 4, activation=nn.Tanh()).activation, nn.Tanh)


def test_dense_accepts_array_input():
    layer = nn.Linear(3, 2, generator=0, dtype="float64")
    xa = arr((4, 3))
    np.testing.assert_allclose(layer(xa).data, xa @ layer.weight.data.T + layer.bias.data, **TIGHT64)


def test_dense_wrong_input_width_message():
    layer = nn.Dense(784, 128)
    with pytest.raises(
        ValueError, match=re.escape("Dense(784 -> 128) got input of shape (32, 785): expected last axis 784")
    ):
        layer(nk.zeros(32, 785))
    with pytest.raises(ValueError, match=re.escape("Linear(3 -> 2) got input of shape ()")):
        nn.Linear(3, 2)(nk.Tensor(np.float32(1.0)))


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, "3"])
def test_dense_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        nn.Dense(bad, 3)
    with pytest.raises(ValueError, match="out_features must be a positive int"):
        nn.Dense(3, bad)


def test_dense_default_init_range_and_seeds():
    layer = nn.Dense(300, 200, generator=7)
    bound = 1 / math.sqrt(300)
    w, b = layer.weight.data, layer.bias.data
    assert w.dtype == np.float32 and w.shape == (200, 300) and b.shape == (200,)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(w).max() > 0.98 * bound  # uses the whole range
    np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.05)
    same = nn.Dense(300, 200, generator=7)
    np.testing.assert_array_equal(same.weight.data, w)
    np.testing.assert_array_equal(same.bias.data, b)
    other = nn.Dense(300, 200, generator=8)
    assert not np.array_equal(other.weight.data, w) and not np.array_equal(other.bias.data, b)
    g1, g2 = np.random.default_rng(11), np.random.default_rng(11)
    np.testing.assert_array_equal(nn.Dense(4, 3, generator=g1).weight.data, nn.Dense(4, 3, generator=g2).weight.data)


def test_dense_seeded_bias_is_not_a_copy_of_the_weights():
    # One seed seeds one stream: the bias must not repeat the first weight draws.
    layer = nn.Dense(6, 4, generator=3)
    assert not np.allclose(layer.bias.data, layer.weight.data.ravel()[:4])


def test_dense_named_initializer_and_reset():
    layer = nn.Dense(50, 40, init="xavier_uniform", generator=1)
    a = math.sqrt(6 / 90)
    assert np.abs(layer.weight.data).max() <= a
    w0 = layer.weight.data.copy()
    arr_id = layer.weight.data
    layer.reset_parameters(generator=1)
    assert layer.weight.data is arr_id
    np.testing.assert_array_equal(layer.weight.data, w0)
    layer.reset_parameters(generator=2)
    assert not np.array_equal(layer.weight.data, w0)


# ---------------------------------------------------------------------------------------------------------------------
# Activation modules against torch.nn
# ---------------------------------------------------------------------------------------------------------------------
# (registry name, options, torch module, input shape)
ACT_CASES = [
    ("relu", {}, lambda: torch.nn.ReLU(), (4, 6)),
    ("leaky_relu", {}, lambda: torch.nn.LeakyReLU(), (4, 6)),
    ("leaky_relu", {"negative_slope": 0.2}, lambda: torch.nn.LeakyReLU(negative_slope=0.2), (4, 6)),
    ("elu", {}, lambda: torch.nn.ELU(), (4, 6)),
    ("elu", {"alpha": 0.5}, lambda: torch.nn.ELU(alpha=0.5), (4, 6)),
    ("selu", {}, lambda: torch.nn.SELU(), (4, 6)),
    ("gelu", {}, lambda: torch.nn.GELU(), (4, 6)),
    ("gelu", {"approximate": "tanh"}, lambda: torch.nn.GELU(approximate="tanh"), (4, 6)),
    ("silu", {}, lambda: torch.nn.SiLU(), (4, 6)),
    ("swish", {}, lambda: torch.nn.SiLU(), (4, 6)),
    ("mish", {}, lambda: torch.nn.Mish(), (4, 6)),
    ("sigmoid", {}, lambda: torch.nn.Sigmoid(), (4, 6)),
    ("tanh", {}, lambda: torch.nn.Tanh(), (4, 6)),
    ("softplus", {}, lambda: torch.nn.Softplus(), (4, 6)),
    ("softplus", {"beta": 2.0, "threshold": 5.0}, lambda: torch.nn.Softplus(beta=2.0, threshold=5.0), (4, 6)),
    ("softsign", {}, lambda: torch.nn.Softsign(), (4, 6)),
    ("hard_sigmoid", {}, lambda: torch.nn.Hardsigmoid(), (4, 6)),
    ("hard_tanh", {}, lambda: torch.nn.Hardtanh(), (4, 6)),
    ("hard_tanh", {"min_val": -2.0, "max_val": 0.5}, lambda: torch.nn.Hardtanh(min_val=-2.0, max_val=0.5), (4, 6)),
    ("relu6", {}, lambda: torch.nn.ReLU6(), (4, 6)),
    ("softmax", {}, lambda: torch.nn.Softmax(dim=-1), (4, 6)),
    ("softmax", {"axis": 0}, lambda: torch.nn.Softmax(dim=0), (4, 6)),
    ("softmax", {"axis": 1}, lambda: torch.nn.Softmax(dim=1), (2, 3, 4)),
    ("log_softmax", {}, lambda: torch.nn.LogSoftmax(dim=-1), (4, 6)),
    ("log_softmax", {"axis": 0}, lambda: torch.nn.LogSoftmax(dim=0), (4, 6)),
    ("linear", {}, lambda: torch.nn.Identity(), (4, 6)),
    ("identity", {}, lambda: torch.nn.Identity(), (4, 6)),
]
KINKS = np.array([-3.0, -2.0, -1.0, 0.0, 0.5, 1.0, 2.5, 3.0, 6.0])  # relu, hard_*, relu6, softplus threshold


def act_input(shape, dtype):
    x = np.random.default_rng(5).uniform(-7, 7, size=shape)
    near = np.abs(x[..., None] - KINKS).min(-1) < 0.05
    return np.where(near, x + 0.1, x).astype(dtype)


def test_activation_cases_cover_the_registry():
    assert set(nn.ACTIVATIONS) == {c[0] for c in ACT_CASES}
    # Every option of every activation is exercised somewhere.
    for name, cls in nn.ACTIVATIONS.items():
        defaults = set(cls().kwargs)
        tried = set().union(*[set(c[1]) for c in ACT_CASES if c[0] == name])
        assert defaults == tried, f"{name}: options {defaults - tried} are never tested"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", ACT_CASES, ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in ACT_CASES])
def test_activation_module_matches_torch(case, dtype):
    name, opts, make_ref, shape = case
    mod = nn.get_activation(name)
    assert isinstance(mod, nn.ACTIVATIONS[name]) and isinstance(mod, nn.Activation)
    if opts:
        mod = nn.ACTIVATIONS[name](**opts)
        assert all(mod.kwargs[k] == v for k, v in opts.items())
    xa = act_input(shape, np.dtype(dtype))
    ga = arr(shape, seed=9, dtype=np.dtype(dtype))
    x, xt = leaf(xa), tleaf(xa)
    y, yt = mod(x), make_ref()(xt)
    y.backward(nk.Tensor(ga))
    yt.backward(torch.from_numpy(ga))
    fwd, grad = (FWD32, GRAD32) if dtype == "float32" else ({"atol": 1e-12, "rtol": 1e-9},) * 2
    if name == "hard_sigmoid" and dtype == "float64":
        grad = {"atol": 1e-12, "rtol": 1e-7}  # torch's float64 hardsigmoid backward uses a float32 1/6 constant
    assert y.dtype == xa.dtype and y.shape == shape
    np.testing.assert_allclose(y.data, yt.detach().numpy(), **fwd)
    np.testing.assert_allclose(x.grad.data, xt.grad.numpy(), **grad)


def test_get_activation():
    assert isinstance(nn.get_activation(None), nn.Identity)
    r = nn.ReLU()
    assert nn.get_activation(r) is r
    assert nn.get_activation("relu") is not nn.get_activation("relu")  # a new module each time
    assert nn.get_activation("tanh").name == "tanh"
    with pytest.raises(ValueError) as e:
        nn.get_activation("relu7")
    msg = str(e.value)
    assert "relu7" in msg and all(n in msg for n in nn.ACTIVATIONS)
    with pytest.raises(ValueError):
        nn.get_activation(3)
    with pytest.raises(TypeError, match="negative_slope"):
        nn.LeakyReLU(slope=0.1)


# ---------------------------------------------------------------------------------------------------------------------
# Flatten, Dropout, Sequential
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start,end", [(1, -1), (0, -1), (2, 3), (1, 2)])
def test_flatten_matches_torch(start, end):
    xa = arr((2, 3, 4, 5))
    x, xt = leaf(xa), tleaf(xa)
    y, yt = nn.Flatten(start, end)(x), torch.flatten(xt, start, end)
    assert y.shape == tuple(yt.shape)
    np.testing.assert_array_equal(y.data, yt.detach().numpy())
    g = arr(y.shape, seed=3)
    y.backward(nk.Tensor(g))
    yt.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(x.grad.data, xt.grad.numpy())
    assert nn.Flatten()(nk.zeros(32, 1, 28, 28)).shape == (32, 784)


def test_dropout_eval_is_identity():
    d = nn.Dropout(0.5, generator=0).eval()
    x = nk.Tensor(arr((10, 10), dtype=np.float32))
    assert d(x) is x
    assert nn.Dropout(0.0)(x) is x


def test_dropout_train_statistics_and_scale():
    p = 0.3
    d = nn.Dropout(p, generator=1)
    assert d.training
    x = nk.ones(1000, 1000)
    y = d(x).data
    assert y.dtype == np.float32
    frac = np.mean(y == 0)
    assert abs(frac - p) < 0.005
    np.testing.assert_allclose(y[y != 0], 1 / (1 - p), rtol=1e-6)
    # float64 keeps its dtype too.
    y64 = nn.Dropout(0.5, generator=2)(nk.Tensor(np.ones((100, 100)))).data
    assert y64.dtype == np.float64 and set(np.unique(y64)) <= {0.0, 2.0}


def test_dropout_same_seed_same_mask():
    x = nk.Tensor(arr((50, 40), dtype=np.float32))
    a, b = nn.Dropout(0.5, generator=4), nn.Dropout(0.5, generator=4)
    ya1, yb1 = a(x).data, b(x).data
    np.testing.assert_array_equal(ya1, yb1)
    np.testing.assert_array_equal(a(x).data, b(x).data)
    assert not np.array_equal(a(x).data, ya1)  # the stream moves on between calls
    assert not np.array_equal(nn.Dropout(0.5, generator=5)(x).data, ya1)
    ga = np.random.default_rng(3)
    gb = np.random.default_rng(3)
    np.testing.assert_array_equal(nn.Dropout(0.5, generator=ga)(x).data, nn.Dropout(0.5, generator=gb)(x).data)


def test_dropout_gradient_is_mask_over_keep():
    p = 0.25
    xa = arr((30, 20)) + 10.0  # no zeros in x, so y == 0 marks the mask exactly
    x = leaf(xa)
    y = nn.Dropout(p, generator=0)(x)
    g = arr((30, 20), seed=1)
    y.backward(nk.Tensor(g))
    mask = (y.data != 0).astype(np.float64)
    np.testing.assert_allclose(y.data, xa * mask / (1 - p), **TIGHT64)
    np.testing.assert_allclose(x.grad.data, g * mask / (1 - p), **TIGHT64)


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=re.escape(str(p))):
        nn.Dropout(p)


def test_sequential_container():
    a, b, c = nn.Linear(4, 8, generator=0), nn.ReLU(), nn.Linear(8, 2, generator=1)
    s = nn.Sequential(a, b, c)
    assert len(s) == 3 and list(s) == [a, b, c]
    assert s[0] is a and s[-1] is c and s[1] is b
    with pytest.raises(IndexError):
        s[3]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert s[:2][1] is b and len(s[::2]) == 2
    x = nk.Tensor(arr((3, 4), dtype=np.float32))
    np.testing.assert_allclose(s(x).data, c(b(a(x))).data, rtol=1e-6)
    np.testing.assert_allclose(s(x).data, sub(s[0](x)).data, rtol=1e-6)
    d = nn.Sigmoid()
    assert s.append(d) is s
    assert len(s) == 4 and s[3] is d and [n for n, _ in s.named_children()] == ["0", "1", "2", "3"]
    assert s(x).shape == (3, 2) and np.all((s(x).data > 0) & (s(x).data < 1))
    named = nn.Sequential(OrderedDict([("hidden", nn.Linear(4, 3)), ("act", nn.Tanh())]))
    assert [n for n, _ in named.named_parameters()] == ["hidden.weight", "hidden.bias"]
    assert isinstance(named[1], nn.Tanh) and named.hidden is named[0]
    assert len(nn.Sequential()) == 0
    with pytest.raises(TypeError):
        nn.Sequential(lambda x: x)


# ---------------------------------------------------------------------------------------------------------------------
# Initialisers
# ---------------------------------------------------------------------------------------------------------------------
def blank(shape=(400, 300), dtype=np.float64):
    return nn.Parameter(np.full(shape, np.nan, dtype=dtype))


FAN_IN, FAN_OUT = 300, 400


def _fills_in_place(fn, *args, **kwargs):
    t = blank()
    a = t.data
    assert fn(t, *args, **kwargs) is t
    assert t.data is a and not np.any(np.isnan(a))
    return a


@pytest.mark.parametrize(
    "fn,bound",
    [
        (lambda t, **k: I.xavier_uniform_(t, **k), math.sqrt(6 / (FAN_IN + FAN_OUT))),
        (lambda t, **k: I.xavier_uniform_(t, gain=2.0, **k), 2 * math.sqrt(6 / (FAN_IN + FAN_OUT))),
        (lambda t, **k: I.kaiming_uniform_(t, **k), math.sqrt(2) * math.sqrt(3 / FAN_IN)),
        (lambda t, **k: I.kaiming_uniform_(t, mode="fan_out", nonlinearity="relu", **k), math.sqrt(6 / FAN_OUT)),
        (lambda t, **k: I.lecun_uniform_(t, **k), math.sqrt(3 / FAN_IN)),
        (lambda t, **k: I.uniform_(t, -0.5, 0.5, **k), 0.5),
    ],
)
def test_uniform_initialisers(fn, bound):
    w = _fills_in_place(fn, generator=0)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.mean()) < 0.01 * bound
    np.testing.assert_allclose(w.var(), bound**2 / 3, rtol=0.03)


@pytest.mark.parametrize(
    "fn,std",
    [
        (lambda t, **k: I.xavier_normal_(t, **k), math.sqrt(2 / (FAN_IN + FAN_OUT))),
        (lambda t, **k: I.kaiming_normal_(t, **k), math.sqrt(2 / FAN_IN)),
        (lambda t, **k: I.kaiming_normal_(t, mode="fan_out", **k), math.sqrt(2 / FAN_OUT)),
        (lambda t, **k: I.kaiming_normal_(t, nonlinearity="tanh", **k), 5 / 3 / math.sqrt(FAN_IN)),
        (lambda t, **k: I.lecun_normal_(t, **k), math.sqrt(1 / FAN_IN)),
        (lambda t, **k: I.normal_(t, 0.0, 0.02, **k), 0.02),
    ],
)
def test_normal_initialisers(fn, std):
    w = _fills_in_place(fn, generator=0)
    assert abs(w.mean()) < 0.02 * std
    np.testing.assert_allclose(w.std(), std, rtol=0.02)


def test_normal_mean():
    w = _fills_in_place(I.normal_, 3.0, 0.5, generator=0)
    np.testing.assert_allclose([w.mean(), w.std()], [3.0, 0.5], rtol=0.01)


@pytest.mark.parametrize("shape", [(300, 400), (400, 300), (50, 50), (8, 3, 3, 3), (64, 3, 3, 3)])
def test_orthogonal(shape):
    t = blank(shape)
    a = t.data
    assert I.orthogonal_(t, generator=0) is t and t.data is a
    w = a.reshape(shape[0], -1)
    rows, cols = w.shape
    if rows <= cols:
        np.testing.assert_allclose(w @ w.T, np.eye(rows), atol=1e-10)
    else:
        np.testing.assert_allclose(w.T @ w, np.eye(cols), atol=1e-10)
    t2 = blank(shape)
    I.orthogonal_(t2, gain=3.0, generator=0)
    np.testing.assert_allclose(t2.data, 3.0 * a, rtol=1e-12)
    with pytest.raises(ValueError):
        I.orthogonal_(blank((5,)))


def test_orthogonal_float32():
    t = blank((20, 30), dtype=np.float32)
    I.orthogonal_(t, generator=1)
    assert t.dtype == np.float32
    np.testing.assert_allclose(t.data @ t.data.T, np.eye(20), atol=1e-5)


def test_constant_zeros_ones():
    for fn, args, value in ((I.constant_, (2.5,), 2.5), (I.zeros_, (), 0.0), (I.ones_, (), 1.0)):
        t = blank((3, 4))
        a = t.data
        assert fn(t, *args) is t and t.data is a
        assert np.all(a == value)


ALL_RANDOM = [
    I.uniform_,
    I.normal_,
    I.xavier_uniform_,
    I.xavier_normal_,
    I.kaiming_uniform_,
    I.kaiming_normal_,
    I.lecun_uniform_,
    I.lecun_normal_,
    I.orthogonal_,
]


@pytest.mark.parametrize("fn", ALL_RANDOM, ids=lambda f: f.__name__)
def test_initialiser_seeds_reproduce(fn):
    def draw(gen):
        t = blank((20, 30))
        fn(t, generator=gen)
        return t.data

    np.testing.assert_array_equal(draw(42), draw(42))
    np.testing.assert_array_equal(draw(np.random.default_rng(42)), draw(np.random.default_rng(42)))
    assert not np.array_equal(draw(42), draw(43))
    nk.manual_seed(1)
    a = draw(None)
    nk.manual_seed(1)
    np.testing.assert_array_equal(draw(None), a)


def test_initializer_registry():
    assert I.get_initializer("he_normal") is I.kaiming_normal_
    assert I.get_initializer("glorot_uniform") is I.xavier_uniform_
    assert I.get_initializer(I.ones_) is I.ones_
    with pytest.raises(ValueError, match="nope"):
        I.get_initializer("nope")


@pytest.mark.parametrize(
    "args",
    [
        ("linear",),
        ("sigmoid",),
        ("tanh",),
        ("relu",),
        ("selu",),
        ("leaky_relu",),
        ("leaky_relu", 0.2),
        ("leaky_relu", 0.0),
        ("conv1d",),
        ("conv2d",),
        ("conv3d",),
        ("conv_transpose1d",),
        ("conv_transpose2d",),
        ("conv_transpose3d",),
    ],
)
def test_calculate_gain_matches_torch(args):
    assert I.calculate_gain(*args) == pytest.approx(torch.nn.init.calculate_gain(*args), rel=1e-12)


def test_calculate_gain_unknown():
    with pytest.raises(ValueError, match="softmax2"):
        I.calculate_gain("softmax2")


@pytest.mark.parametrize("shape", [(5, 3), (16, 3, 3, 3), (32, 16, 5, 5), (8, 4, 7), (2, 3, 2, 2, 2)])
def test_fans_match_torch(shape):
    assert I.fans(shape) == torch.nn.init._calculate_fan_in_and_fan_out(torch.empty(shape))


def test_conv_shaped_kaiming_uses_receptive_field():
    t = blank((64, 32, 3, 3))
    I.kaiming_normal_(t, nonlinearity="relu", generator=0)
    np.testing.assert_allclose(t.data.std(), math.sqrt(2 / (32 * 9)), rtol=0.02)


# ---------------------------------------------------------------------------------------------------------------------
# The Neuron view
# ---------------------------------------------------------------------------------------------------------------------
NEURON_TOL = {"float64": {"atol": 1e-12, "rtol": 0}, "float32": {"atol": 1e-6, "rtol": 0}}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", [None, "tanh", "relu", "sigmoid"])
def test_neuron_output_matches_layer_column(dtype, activation):
    layer = nn.Dense(6, 4, activation=activation, generator=0, dtype=dtype)
    tol = NEURON_TOL[dtype]
    xv = arr((6,), seed=1, dtype=np.dtype(dtype))
    xb = arr((5, 6), seed=2, dtype=np.dtype(dtype))
    xbb = arr((2, 3, 6), seed=3, dtype=np.dtype(dtype))
    for i in range(4):
        n = layer.neuron(i)
        for x in (xv, xb, xbb):
            out = n(nk.Tensor(x))
            assert out.shape == x.shape[:-1] and out.dtype == np.dtype(dtype)
            np.testing.assert_allclose(out.data, layer(nk.Tensor(x)).data[..., i], **tol)
        np.testing.assert_allclose(n(xv).data, layer(xv).data[i], **tol)  # plain arrays work too


def test_neuron_weights_are_a_live_view():
    layer = nn.Dense(5, 3, activation="tanh", generator=0, dtype="float64")
    n = layer.neuron(1)
    np.testing.assert_array_equal(n.weights, layer.weight.data[1])
    assert n.bias == layer.bias.data[1]
    assert n.activation == "tanh" and layer.neuron(0).activation == "tanh"
    assert nn.Linear(2, 2).neuron(0).activation == "linear"
    x = nk.Tensor(arr((5,)))
    before = layer(x).data.copy()
    n.weights = np.zeros(5)
    n.bias = 0.25
    np.testing.assert_array_equal(layer.weight.data[1], np.zeros(5))
    assert layer.bias.data[1] == 0.25 and n.bias == 0.25
    after = layer(x).data
    np.testing.assert_allclose(after[1], np.tanh(0.25), rtol=1e-12)
    np.testing.assert_array_equal(after[[0, 2]], before[[0, 2]])
    n.weights[2] = 4.0  # writing into the view writes the layer
    assert layer.weight.data[1, 2] == 4.0
    n.weights = nk.Tensor(np.arange(5.0))
    np.testing.assert_array_equal(layer.weight.data[1], np.arange(5.0))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        n.weights = np.zeros(4)


def test_neuron_negative_index_and_out_of_range():
    layer = nn.Dense(3, 4)
    assert layer.neuron(-1).index == 3
    for bad in (4, -5, 100):
        with pytest.raises(IndexError, match="out of range"):
            layer.neuron(bad)
    with pytest.raises(IndexError):
        layer.neuron(1.0)


def test_neuron_without_bias():
    layer = nn.Dense(3, 2, bias=False, generator=0, dtype="float64")
    n = layer.neuron(0)
    assert n.bias == 0.0 and n.bias_grad is None
    with pytest.raises(AttributeError, match="bias=False"):
        n.bias = 1.0
    x = arr((3,))
    np.testing.assert_allclose(n(x).data, layer(x).data[0], atol=1e-12)
    e = n.explain(x)
    assert e.bias == 0.0 and e.pre_activation == pytest.approx(e.weighted_sum, abs=1e-12)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid"])
def test_neuron_explain_is_consistent(dtype, activation):
    layer = nn.Dense(6, 3, activation=activation, generator=4, dtype=dtype)
    tol = NEURON_TOL[dtype]
    x = arr((6,), seed=8, dtype=np.dtype(dtype))
    ref_act = {
        None: lambda z: z,
        "relu": lambda z: max(z, 0.0),
        "tanh": math.tanh,
        "sigmoid": lambda z: 1 / (1 + math.exp(-z)),
    }[activation]
    layer_out = layer(x).data
    for i in range(3):
        e = layer.neuron(i).explain(x)
        np.testing.assert_array_equal(e.inputs, x)
        np.testing.assert_array_equal(e.weights, layer.weight.data[i])
        np.testing.assert_allclose(e.products, x * layer.weight.data[i], **tol)
        assert e.weighted_sum == pytest.approx(float(np.sum(e.products)), abs=tol["atol"])
        assert e.bias == float(layer.bias.data[i])
        assert e.pre_activation == pytest.approx(e.weighted_sum + e.bias, abs=tol["atol"])
        assert e.output == pytest.approx(ref_act(e.pre_activation), abs=tol["atol"])
        assert e.output == pytest.approx(float(layer_out[i]), abs=tol["atol"])
        assert e.activation == layer.activation.name
        text = str(e)
        assert "weighted sum" in text and "pre-activation" in text and len(text.splitlines()) == 6 + 1 + 4
    # explain() is a snapshot: changing the layer afterwards does not change it
    e = layer.neuron(0).explain(x)
    w = e.weights.copy()
    layer.weight.data[0] += 1
    np.testing.assert_array_equal(e.weights, w)
    with pytest.raises(ValueError, match=r"\(6,\)"):
        layer.neuron(0).explain(np.zeros((2, 6)))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_neuron_grads_are_rows_of_layer_grads(dtype):
    layer = nn.Dense(5, 3, activation="tanh", generator=0, dtype=dtype)
    n = layer.neuron(2)
    assert n.weight_grad is None and n.bias_grad is None
    xa = arr((4, 5), dtype=np.dtype(dtype))
    layer(nk.Tensor(xa)).backward(nk.Tensor(arr((4, 3), seed=1, dtype=np.dtype(dtype))))
    np.testing.assert_array_equal(n.weight_grad, layer.weight.grad.data[2])
    assert n.bias_grad == float(layer.bias.grad.data[2])


@pytest.mark.parametrize("activation", [None, "tanh"])
def test_gradients_flow_through_neuron_call(activation):
    layer = nn.Dense(5, 3, activation=activation, generator=0, dtype="float64")
    n = layer.neuron(1)
    xa = arr((4, 5))
    x = leaf(xa)
    n(x).sum().backward()
    # Reference: the same loss through the whole layer, keeping column 1 only.
    ref = nn.Dense(5, 3, activation=activation, generator=0, dtype="float64")
    xr = leaf(xa)
    (ref(xr) * nk.Tensor(np.array([0.0, 1.0, 0.0]))).sum().backward()
    np.testing.assert_allclose(layer.weight.grad.data, ref.weight.grad.data, atol=1e-12)
    np.testing.assert_allclose(layer.bias.grad.data, ref.bias.grad.data, atol=1e-12)
    np.testing.assert_allclose(x.grad.data, xr.grad.data, atol=1e-12)
    assert not np.any(layer.weight.grad.data[[0, 2]])
    np.testing.assert_allclose(n.weight_grad, ref.weight.grad.data[1], atol=1e-12)
    assert n.bias_grad == pytest.approx(float(ref.bias.grad.data[1]), abs=1e-12)


def test_neuron_repr_and_wrong_input():
    layer = nn.Dense(3, 2, activation="relu")
    r = repr(layer.neuron(1))
    assert r.startswith("Neuron(1 of Dense(3 -> 2)") and "relu" in r
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        layer.neuron(0)(np.zeros((2, 4), dtype=np.float32))
