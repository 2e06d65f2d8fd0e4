"""RNN, LSTM and GRU layers against torch.nn with a copied state_dict, float64 finite differences, and bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import neuronkit as nk
from neuronkit import nn
from neuronkit.io import load, save

B, T, IN, HID = 4, 6, 3, 5
LENGTHS = np.array([4, 6, 1, 4])  # a tie, the full length and a single step

CLASSES = {
    "RNN_tanh": (nn.RNN, torch.nn.RNN, {}),
    "RNN_relu": (nn.RNN, torch.nn.RNN, {"nonlinearity": "relu"}),
    "LSTM": (nn.LSTM, torch.nn.LSTM, {}),
    "GRU": (nn.GRU, torch.nn.GRU, {}),
}


def _pair(kind, dtype="float64", **cfg):
    """Our layer and torch's with the same weights: torch's state_dict copied into ours."""
    ours_cls, torch_cls, extra = CLASSES[kind]
    cfg = {**extra, **cfg}
    theirs = torch_cls(IN, HID, dtype=getattr(torch, dtype), **cfg)
    ours = ours_cls(IN, HID, dtype=dtype, generator=0, **cfg)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # names and order
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _states(kind, layers, dirs, dtype, seed):
    rng = np.random.default_rng(seed)
    n = 2 if kind == "LSTM" else 1
    return [rng.standard_normal((layers * dirs, B, HID)).astype(dtype) for _ in range(n)]


def _torch_forward(theirs, x, lengths, hx, batch_first):
    if lengths is None:
        return theirs(x, hx)
    packed = pack_padded_sequence(x, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    out, hn = theirs(packed, hx)
    return pad_packed_sequence(out, batch_first=batch_first, total_length=T)[0], hn


def _compare(kind, layers, bidirectional, batch_first, lengths, with_h0, dtype, tol, **cfg):
    """Outputs, final states, and the gradients of the input, the initial states and every parameter."""
    ours, theirs = _pair(kind, dtype, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, **cfg)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, IN) if batch_first else (T, B, IN)).astype(dtype)
    states = _states(kind, layers, 2 if bidirectional else 1, dtype, 2) if with_h0 else []
    xs, xt = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ss = [nk.Tensor(s, requires_grad=True) for s in states]
    st = [torch.tensor(s, requires_grad=True) for s in states]
    pack = (lambda s: tuple(s)) if kind == "LSTM" else (lambda s: s[0])
    out, hn = ours(xs, lengths=lengths, h0=pack(ss) if states else None)
    out_t, hn_t = _torch_forward(theirs, xt, lengths, pack(st) if states else None, batch_first)
    finals, finals_t = (hn, hn_t) if kind == "LSTM" else ((hn,), (hn_t,))
    np.testing.assert_allclose(out.data, out_t.detach().numpy(), **tol, err_msg="output")
    for a, b in zip(finals, finals_t, strict=True):
        np.testing.assert_allclose(a.data, b.detach().numpy(), **tol, err_msg="final state")
    # one backward through everything the layer returns, with random upstream gradients
    loss, loss_t = 0.0, 0.0
    for a, b in zip((out, *finals), (out_t, *finals_t)):
        g = rng.standard_normal(a.shape).astype(dtype)
        loss, loss_t = loss + (a * nk.Tensor(g)).sum(), loss_t + (b * torch.tensor(g)).sum()
    loss.backward()
    loss_t.backward()
    np.testing.assert_allclose(xs.grad.data, xt.grad.numpy(), **tol, err_msg="input gradient")
    for a, b in zip(ss, st):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), **tol, err_msg="initial state gradient")
    tparams = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.data, tparams[name].grad.numpy(), **tol, err_msg=name)
        assert p.grad.dtype == dtype
    assert out.dtype == dtype
    if lengths is not None:  # padded positions are zero, as pad_packed_sequence gives
        steps = np.arange(T)[None, :] < np.asarray(lengths)[:, None]  # (B, T)
        valid = steps if batch_first else steps.T
        assert not out.data[~valid].any()


GRID = list(itertools.product(CLASSES, [1, 2], [False, True], [True, False], [None, LENGTHS]))


@pytest.mark.parametrize(
    "kind,layers,bidirectional,batch_first,lengths",
    GRID,
    ids=[
        f"{k}-L{n}-{'bi' if b else 'uni'}-{'bf' if f else 'tm'}-{'var' if ln is not None else 'full'}"
        for k, n, b, f, ln in GRID
    ],
)
def test_matches_torch_float64(kind, layers, bidirectional, batch_first, lengths):
    _compare(kind, layers, bidirectional, batch_first, lengths, True, "float64", dict(rtol=1e-10, atol=1e-10))


@pytest.mark.parametrize("kind", list(CLASSES))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_torch_float32(kind, bidirectional):
    _compare(kind, 2, bidirectional, True, LENGTHS, False, "float32", dict(rtol=1e-4, atol=2e-5))


@pytest.mark.parametrize("kind", ["RNN_relu", "LSTM", "GRU"])
def test_no_bias_matches_torch(kind):
    _compare(kind, 2, True, True, LENGTHS, False, "float64", dict(rtol=1e-10, atol=1e-10), bias=False)
    assert not any("bias" in k for k in _pair(kind, bias=False)[0].state_dict())


@pytest.mark.parametrize("kind", ["RNN_tanh", "RNN_relu", "LSTM", "GRU"])
def test_float64_gradients_against_central_differences(kind):
    """Every parameter, the input and the initial states, through two bidirectional layers with variable lengths."""
    layer = {"RNN_tanh": nn.RNN, "RNN_relu": nn.RNN, "LSTM": nn.LSTM, "GRU": nn.GRU}[kind](
        2, 2, num_layers=2, bidirectional=True, dtype="float64", generator=3, **CLASSES[kind][2]
    )
    names = [n for n, _ in layer.named_parameters()]
    lengths = np.array([3, 1])
    rng = np.random.default_rng(4)
    x = nk.Tensor(rng.standard_normal((2, 3, 2)), requires_grad=True)
    states = [nk.Tensor(rng.standard_normal((4, 2, 2)), requires_grad=True) for _ in range(2 if kind == "LSTM" else 1)]
    params = [nk.Tensor(p.data.copy(), requires_grad=True) for p in layer.parameters()]

    def fn(x, *rest):
        st, ps = rest[: len(states)], rest[len(states) :]
        for name, p in zip(names, ps):
            layer._parameters[name] = p  # the gradcheck's float64 copies stand in for the parameters
        out, hn = layer(x, lengths=lengths, h0=tuple(st) if kind == "LSTM" else st[0])
        finals = hn if kind == "LSTM" else (hn,)
        return nk.concatenate([t.reshape(-1) for t in (out, *finals)], axis=0)

    res = nk.gradcheck(fn, x, *states, *params)
    assert res.ok, (res.max_abs_error, res.max_rel_error)


def test_padding_never_changes_a_state_or_an_output():
    layer = nn.LSTM(IN, HID, num_layers=2, bidirectional=True, generator=0, dtype="float64")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, T, IN))
    noisy = x.copy()
    for i, n in enumerate(LENGTHS):
        noisy[i, n:] = rng.standard_normal((T - n, IN)) * 100  # garbage in the padding
    xs = nk.Tensor(noisy, requires_grad=True)
    a, (ha, ca) = layer(nk.Tensor(x), lengths=LENGTHS)
    b, (hb, cb) = layer(xs, lengths=LENGTHS)
    for u, v in ((a, b), (ha, hb), (ca, cb)):
        np.testing.assert_array_equal(u.data, v.data)
    (b.sum() + hb.sum() + cb.sum()).backward()
    for i, n in enumerate(LENGTHS):
        assert not xs.grad.data[i, n:].any()  # no gradient reaches a padded position
    # each sequence alone, unpadded, gives the same output and final states
    for i, n in enumerate(LENGTHS):
        o, (h, c) = layer(nk.Tensor(x[i : i + 1, :n]))
        np.testing.assert_allclose(o.data[0], a.data[i, :n], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h.data[:, 0], ha.data[:, i], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(c.data[:, 0], ca.data[:, i], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "lengths,message",
    [
        ([4, 0, 2, 1], r"lengths\[1\] is 0: each length must be in \[1, 6\]"),
        ([4, 7, 2, 1], r"lengths\[1\] is 7: each length must be in \[1, 6\]"),
        ([4, -1, 2, 1], r"lengths\[1\] is -1"),
        ([4, 3, 2], r"lengths must have shape \(4,\), one per sequence, got shape \(3,\)"),
        ([[4, 3, 2, 1]], r"lengths must have shape \(4,\)"),
        (np.array([4.0, 3.0, 2.0, 1.0]), r"lengths must be integers, got dtype float64"),
    ],
)
def test_invalid_lengths_are_one_clear_error(lengths, message):
    layer = nn.GRU(IN, HID, generator=0)
    x = nk.Tensor(np.zeros((B, T, IN), np.float32))
    with pytest.raises((ValueError, TypeError), match=r"^GRU\(3, 5\): " + message) as info:
        layer(x, lengths=lengths)
    assert "\n" not in str(info.value)


def test_lengths_as_a_tensor_or_a_list():
    layer = nn.RNN(IN, HID, generator=0)
    x = nk.Tensor(np.random.default_rng(0).standard_normal((B, T, IN)).astype(np.float32))
    a = layer(x, lengths=LENGTHS)[0].data
    np.testing.assert_array_equal(a, layer(x, lengths=nk.Tensor(LENGTHS))[0].data)
    np.testing.assert_array_equal(a, layer(x, lengths=LENGTHS.tolist())[0].data)


@pytest.mark.parametrize(
    "make_input,message",
    [
        (lambda: np.zeros((B, T, IN + 1), np.float32), r"got input of shape \(4, 6, 4\): expected \(batch, time"),
        (lambda: np.zeros((T, IN), np.float32), r"got input of shape \(6, 3\)"),
        (lambda: np.zeros((B, 0, IN), np.float32), r"got input of shape \(4, 0, 3\)"),
        (lambda: np.zeros((B, T, IN), np.int64), r"dtype int64: expected float32.*Embedding"),
        (lambda: np.zeros((B, T, IN), np.float64), r"dtype float64: expected float32"),
    ],
)
def test_bad_input_is_one_clear_error(make_input, message):
    layer = nn.LSTM(IN, HID, generator=0)
    with pytest.raises((ValueError, TypeError), match=message) as info:
        layer(nk.Tensor(make_input()))
    assert "\n" not in str(info.value)


def test_bad_initial_states():
    layer = nn.LSTM(IN, HID, num_layers=2, generator=0)
    x = nk.Tensor(np.zeros((B, T, IN), np.float32))
    good = np.zeros((2, B, HID), np.float32)
    with pytest.raises(ValueError, match=r"h0 must be a pair \(h0, c0\)"):
        layer(x, h0=good)
    with pytest.raises(ValueError, match=r"c0 must have shape \(2, 4, 5\) .* got \(1, 4, 5\)"):
        layer(x, h0=(good, good[:1]))
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 4, 5\)"):
        nn.GRU(IN, HID, num_layers=2, generator=0)(x, h0=np.zeros((2, B, HID + 1), np.float32))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(hidden_size=0), "hidden_size must be a positive int"),
        (dict(num_layers=0), "num_layers must be a positive int"),
        (dict(dropout=1.0), r"dropout must be a number in \[0, 1\)"),
        (dict(bidirectional=1), "bidirectional must be True or False"),
        (dict(nonlinearity="sigmoid"), "nonlinearity must be 'tanh' or 'relu'"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    args = {"input_size": IN, "hidden_size": HID, **kwargs}
    with pytest.raises(ValueError, match=message):
        nn.RNN(**args)


def test_default_init_is_pytorchs_uniform_and_seeded():
    layer = nn.LSTM(IN, 16, num_layers=2, bidirectional=True, generator=5)
    bound = 1 / np.sqrt(16)
    values = np.concatenate([p.data.ravel() for p in layer.parameters()])
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.95 * bound
    assert abs(values.mean()) < 0.02 and abs(values.std() - bound / np.sqrt(3)) < 0.01  # U(-a, a): std a / sqrt 3
    again = nn.LSTM(IN, 16, num_layers=2, bidirectional=True, generator=5)
    other = nn.LSTM(IN, 16, num_layers=2, bidirectional=True, generator=6)
    for (k, a), b, c in zip(layer.state_dict().items(), again.state_dict().values(), other.state_dict().values()):
        assert np.array_equal(a, b) and not np.array_equal(a, c), k


def test_dropout_between_layers_only_in_training():
    rng = np.random.default_rng(0)
    x = nk.Tensor(rng.standard_normal((B, T, IN)).astype(np.float32))
    plain = nn.GRU(IN, HID, num_layers=2, generator=1)
    drop = nn.GRU(IN, HID, num_layers=2, dropout=0.5, generator=1)
    np.testing.assert_array_equal(plain.state_dict()["weight_ih_l1"], drop.state_dict()["weight_ih_l1"])
    ref = plain(x, lengths=LENGTHS)[0].data
    np.testing.assert_array_equal(drop.eval()(x, lengths=LENGTHS)[0].data, ref)  # off in eval
    drop.train()
    a, b = drop(x, lengths=LENGTHS)[0].data, drop(x, lengths=LENGTHS)[0].data
    assert not np.allclose(a, ref) and not np.allclose(a, b)  # a fresh mask every call
    seeded = [nn.GRU(IN, HID, num_layers=2, dropout=0.5, generator=1)(x, lengths=LENGTHS)[0].data for _ in range(2)]
    np.testing.assert_array_equal(seeded[0], seeded[1])  # the generator makes it repeatable
    np.testing.assert_array_equal(seeded[0], a)
    # one layer: nothing to drop between layers, so dropout changes nothing even in training
    one = nn.GRU(IN, HID, dropout=0.5, generator=1)
    np.testing.assert_array_equal(one(x)[0].data, nn.GRU(IN, HID, generator=1)(x)[0].data)


def test_dropout_scales_kept_values():
    """Between layers each value is zeroed with probability p or scaled by 1 / (1 - p): the second layer of a
    linear-identity RNN shows the mask directly."""
    layer = nn.RNN(2, 2, num_layers=2, nonlinearity="relu", bias=False, dropout=0.25, generator=0, dtype="float64")
    with nk.no_grad():
        for name, p in layer.named_parameters():
            p.data[...] = np.eye(2) if "ih" in name else 0.0  # h_t = relu(x_t): each layer passes its input on
    x = np.abs(np.random.default_rng(0).standard_normal((200, 5, 2))) + 0.1
    out = layer(nk.Tensor(x))[0].data
    ratio = out / x
    assert set(np.unique(np.round(ratio, 12))) <= {0.0, round(1 / 0.75, 12)}
    assert 0.2 < (ratio == 0).mean() < 0.3


def test_gate_hooks_report_the_gates_and_nothing_when_absent():
    layer = nn.LSTM(IN, HID, bidirectional=True, generator=0, dtype="float64")
    x = nk.Tensor(np.random.default_rng(0).standard_normal((B, T, IN)))
    seen = []
    handle = layer.register_gate_hook(lambda m, gates, mask: seen.append((m, gates, mask)))
    out, _ = layer(x, lengths=LENGTHS)
    ((m, gates, mask),) = seen
    assert m is layer and set(gates) == {"l0", "l0_reverse"}
    np.testing.assert_array_equal(mask, np.arange(T)[None, :] < LENGTHS[:, None])
    for d, key in enumerate(("l0", "l0_reverse")):
        g = gates[key]
        assert set(g) == {"input", "forget", "cell", "output", "cell_state", "hidden"}
        assert all(a.shape == (B, T, HID) for a in g.values())
        for name in ("input", "forget", "output"):
            valid = g[name][mask]
            assert ((valid > 0) & (valid < 1)).all() and not g[name][~mask].any()
        np.testing.assert_allclose(g["hidden"], out.data[..., d * HID : (d + 1) * HID], atol=1e-15)
        np.testing.assert_allclose(g["hidden"], g["output"] * np.tanh(g["cell_state"]), atol=1e-15)
    handle.remove()
    layer(x, lengths=LENGTHS)
    assert len(seen) == 1


def test_gru_and_rnn_gate_hooks():
    for layer, names in (
        (nn.GRU(IN, HID, num_layers=2, generator=0), {"reset", "update", "new", "hidden"}),
        (nn.RNN(IN, HID, generator=0), {"hidden"}),
    ):
        seen = []
        layer.register_gate_hook(lambda m, gates, mask: seen.append(gates))
        layer(nk.Tensor(np.ones((B, T, IN), np.float32)))
        assert all(set(g) == names for g in seen[0].values())
        assert len(seen[0]) == layer.num_layers


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_save_load_round_trip(cls, tmp_path):
    layer = cls(IN, HID, num_layers=2, bidirectional=True, batch_first=False, dropout=0.1, generator=0)
    save(layer, tmp_path / "m")
    loaded = load(tmp_path / "m")
    assert type(loaded) is cls and loaded.get_config() == layer.get_config() and repr(loaded) == repr(layer)
    x = nk.Tensor(np.random.default_rng(0).standard_normal((T, B, IN)).astype(np.float32))
    a, b = layer.eval()(x, lengths=LENGTHS)[0], loaded.eval()(x, lengths=LENGTHS)[0]
    assert a.data.tobytes() == b.data.tobytes()


def test_repr_and_config():
    layer = nn.RNN(3, 4, num_layers=2, nonlinearity="relu", bias=False, dropout=0.2, bidirectional=True)
    assert repr(layer) == "RNN(3, 4, num_layers=2, nonlinearity='relu', bias=False, dropout=0.2, bidirectional=True)"
    assert layer.get_config() == {
        "input_size": 3,
        "hidden_size": 4,
        "num_layers": 2,
        "bias": False,
        "batch_first": True,
        "dropout": 0.2,
        "bidirectional": True,
        "dtype": "float32",
        "nonlinearity": "relu",
    }
    assert nn.RNN.config_cost(layer.get_config()) == sum(p.size for p in layer.parameters())
    big = nn.LSTM(3, 4, num_layers=3, bidirectional=True)
    assert nn.LSTM.config_cost(big.get_config()) == sum(p.size for p in big.parameters())


class _TextNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 4, generator=0)
        self.lstm = nn.LSTM(4, 6, bidirectional=True, generator=1)
        self.per_step = nn.Dense(12, 5, activation="tanh", generator=2)  # on the (B, T, 12) outputs
        self.head = nn.Dense(5, 2, generator=3)

    def forward(self, ids, lengths):
        out, _ = self.lstm(self.emb(ids), lengths=lengths)
        return self.head(nk.sum(self.per_step(out), axis=1))


def test_probes_run_on_a_model_with_a_recurrent_layer():
    from neuronkit.inspect import Probe

    model = _TextNet()
    probe = Probe(model, every=1)
    ids = np.random.default_rng(0).integers(0, 20, (B, T))
    probe.begin(1)
    loss = nk.cross_entropy(model(ids, LENGTHS), np.array([0, 1, 1, 0]))
    loss.backward()
    assert probe.commit(lr=0.1) == ["per_step", "head"]
    h = probe.history("per_step")
    assert h["out_mean"].shape == (1, 5) and np.isfinite(h["grad_norm"]).all()
    assert model.lstm.weight_hh_l0.grad is not None


def test_summary_lists_a_recurrent_layer():
    model = nn.LSTM(IN, HID, generator=0)
    s = model.summary((B, T, IN))
    assert s.total_params == sum(p.size for p in model.parameters())


def test_gradient_per_time_step_through_plain_hooks():
    """What a probe of gradients through time needs comes from the ordinary hooks: a forward pre-hook sees the
    input tensor and registers a gradient hook on it, giving dL/dx_t for every step (zero in the padding)."""
    layer = nn.LSTM(IN, HID, generator=0, dtype="float64")
    grads = []

    def watch_input(module, inputs):
        inputs[0].register_hook(lambda g: grads.append(g.data))

    layer.register_forward_pre_hook(watch_input)
    x = nk.Tensor(np.random.default_rng(0).standard_normal((B, T, IN)), requires_grad=True)
    out, _ = layer(x, lengths=LENGTHS)
    out[:, 0].sum().backward()  # a loss on the first step only: later inputs cannot influence it
    (g,) = grads
    np.testing.assert_array_equal(g, x.grad.data)
    per_step = np.linalg.norm(g, axis=2)  # (B, T)
    assert (per_step[:, 0] > 0).all() and not per_step[:, 1:].any()


def test_backward_twice_with_a_retained_graph():
    layer = nn.GRU(IN, HID, bidirectional=True, generator=0, dtype="float64")
    x = nk.Tensor(np.random.default_rng(0).standard_normal((B, T, IN)), requires_grad=True)
    out, hn = layer(x, lengths=LENGTHS)
    loss = (out * out).sum() + hn.sum()
    loss.backward(retain_graph=True)
    first = {n: p.grad.data.copy() for n, p in layer.named_parameters()}
    gx = x.grad.data.copy()
    loss.backward()  # the saved activations were not overwritten by the first backward
    np.testing.assert_allclose(x.grad.data, 2 * gx, rtol=1e-12)
    for n, p in layer.named_parameters():
        np.testing.assert_allclose(p.grad.data, 2 * first[n], rtol=1e-12, atol=1e-15)
