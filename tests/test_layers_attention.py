"""Attention layers against PyTorch's modules with copied weights, by float64 central differences, through save/load,
in the fit loop with (tokens, lengths) batches, and under the probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuronkit as nk
from neuronkit import nn, train
from neuronkit.data import SequenceDataset
from neuronkit.inspect import Probe, ProbeCallback, check_before_training, diagnose_training

TOL = {"float64": {"rtol": 1e-10, "atol": 1e-10}, "float32": {"rtol": 1e-4, "atol": 2e-5}}
GTOL = {"float64": {"rtol": 1e-9, "atol": 1e-10}, "float32": {"rtol": 1e-3, "atol": 1e-4}}
TDT = {"float64": torch.float64, "float32": torch.float32}


def _sd(module) -> dict:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def _copy(tmod, nmod):
    assert list(tmod.state_dict()) == list(nmod.state_dict()), "parameter names differ from PyTorch's"
    nmod.load_state_dict(_sd(tmod))
    return nmod


def _arr(shape, dt, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dt)


def _close(ours, ref, tol, what):
    ref = ref.detach().numpy() if isinstance(ref, torch.Tensor) else ref
    np.testing.assert_allclose(ours.data if isinstance(ours, nk.Tensor) else ours, ref, err_msg=what, **tol)


def _backward_both(out, ref, seed=9):
    g = _arr(out.shape, out.dtype, seed)
    out.backward(nk.Tensor(g))
    ref.backward(torch.tensor(g))


def _check_param_grads(nmod, tmod, dt):
    tgrads = {k: p.grad for k, p in tmod.named_parameters()}
    for k, p in nmod.named_parameters():
        assert p.grad is not None, f"{k} got no gradient"
        _close(p.grad, tgrads[k], GTOL[dt], f"gradient of {k}")


def _lengths_mask(lengths, t):
    return np.arange(t)[None, :] >= np.asarray(lengths)[:, None]  # True = padding


# -- MultiHeadAttention -----------------------------------------------------------------------------------------------
B, L, S, E, H = 3, 5, 4, 8, 2
_CAUSAL = np.triu(np.ones((L, L), bool), 1)  # PyTorch MHA convention: True = may not attend
_BOOL_MASK = np.random.default_rng(5).random((L, S)) < 0.3
_BOOL_MASK[:, 0] = False  # every query keeps a key
_FLOAT_MASK = np.random.default_rng(6).standard_normal((B * H, L, L))

MHA_CASES = {
    # name: (module options, call -> (nk args, nk kwargs, torch args, torch kwargs))
    "self": ({}, lambda x, y: ((x,), {}, (x, x, x), {})),
    "padding": ({}, lambda x, y: ((x,), {"key_padding_mask": _lengths_mask([5, 3, 1], L)}, (x, x, x), "kpm")),
    "padding_causal": (
        {},
        lambda x, y: ((x,), {"key_padding_mask": _lengths_mask([5, 3, 2], L), "is_causal": True}, (x, x, x), "causal"),
    ),
    "float_mask_per_head": ({}, lambda x, y: ((x,), {"attn_mask": _FLOAT_MASK}, (x, x, x), "float")),
    "cross_bool_mask": ({}, lambda x, y: ((x, y), {"attn_mask": _BOOL_MASK}, (x, y, y), "bool")),
    "cross_key_value": ({}, lambda x, y: ((x, y, y * 2.0), {}, (x, y, y * 2.0), {})),
    "no_bias": ({"bias": False}, lambda x, y: ((x,), {}, (x, x, x), {})),
}


def _torch_kwargs(kind, dt):
    if kind == "kpm":
        return {"key_padding_mask": torch.tensor(_lengths_mask([5, 3, 1], L))}
    if kind == "causal":
        return {"key_padding_mask": torch.tensor(_lengths_mask([5, 3, 2], L)), "attn_mask": torch.tensor(_CAUSAL)}
    if kind == "float":
        return {"attn_mask": torch.tensor(_FLOAT_MASK, dtype=TDT[dt])}
    if kind == "bool":
        return {"attn_mask": torch.tensor(_BOOL_MASK)}
    return kind


def _mha_pair(dt, seed=0, **options):
    torch.manual_seed(seed)
    tm = torch.nn.MultiheadAttention(E, H, batch_first=True, dtype=TDT[dt], **options)
    return tm, _copy(tm, nn.MultiHeadAttention(E, H, dtype=dt, **options))


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("case", list(MHA_CASES))
def test_multi_head_attention_matches_torch(case, dt):
    options, call = MHA_CASES[case]
    tm, nm = _mha_pair(dt, **options)
    xs = [_arr((B, L, E), dt, 1), _arr((B, S, E), dt, 2)]
    nx = [nk.Tensor(a, requires_grad=True) for a in xs]
    tx = [torch.tensor(a, requires_grad=True) for a in xs]
    nargs, nkw, _, _ = call(*nx)
    _, _, targs, tkw = call(*tx)
    out = nm(*nargs, **nkw)
    ref, _ = tm(*targs, need_weights=False, **_torch_kwargs(tkw, dt))
    _close(out, ref, TOL[dt], "output")
    _backward_both(out, ref)
    for i, (a, b) in enumerate(zip(nx, tx)):
        if b.grad is not None:
            _close(a.grad, b.grad, GTOL[dt], f"gradient of input {i}")
    _check_param_grads(nm, tm, dt)


@pytest.mark.parametrize("average", [True, False])
def test_attention_weights_on_request(average):
    tm, nm = _mha_pair("float64")
    x = _arr((B, L, E), "float64", 1)
    kpm = _lengths_mask([5, 3, 2], L)
    nx, tx = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, w = nm(nx, key_padding_mask=kpm, need_weights=True, average_attn_weights=average, is_causal=True)
    ref, rw = tm(
        tx,
        tx,
        tx,
        key_padding_mask=torch.tensor(kpm),
        attn_mask=torch.tensor(_CAUSAL),
        need_weights=True,
        average_attn_weights=average,
    )
    assert w.shape == ((B, L, L) if average else (B, H, L, L))
    _close(out, ref, TOL["float64"], "output")
    _close(w, rw, TOL["float64"], "weights")
    # the weights are differentiable: a loss on both outputs backpropagates as PyTorch's
    gw = _arr(w.shape, "float64", 4)
    ((out * out).sum() + (w * nk.Tensor(gw)).sum()).backward()
    ((ref * ref).sum() + (rw * torch.tensor(gw)).sum()).backward()
    _close(nx.grad, tx.grad, GTOL["float64"], "input gradient")
    _check_param_grads(nm, tm, "float64")


def test_sequence_first_and_unbatched_inputs():
    tm = torch.nn.MultiheadAttention(E, H, dtype=torch.float64)  # PyTorch's default: (L, B, E)
    nm = _copy(tm, nn.MultiHeadAttention(E, H, batch_first=False, dtype="float64"))
    x = _arr((L, B, E), "float64", 1)
    kpm = _lengths_mask([5, 3, 1], L)
    out = nm(nk.Tensor(x), key_padding_mask=kpm)
    ref, _ = tm(*[torch.tensor(x)] * 3, key_padding_mask=torch.tensor(kpm), need_weights=False)
    _close(out, ref, TOL["float64"], "sequence-first output")
    x2 = x[:, 0]  # (L, E), no batch axis
    out, w = nm(nk.Tensor(x2), need_weights=True)
    ref, rw = tm(*[torch.tensor(x2)] * 3)
    _close(out, ref, TOL["float64"], "unbatched output")
    _close(w, rw, TOL["float64"], "unbatched weights")


def test_a_query_with_every_key_masked_gets_zero_weights_not_nan():
    # Defined behaviour: such a query's attention output is 0, so the layer returns out_proj.bias there, and no
    # gradient flows through it. PyTorch's fused path does the same (its need_weights path returns NaN).
    tm, nm = _mha_pair("float64")
    with torch.no_grad():
        tm.out_proj.bias.uniform_(-1, 1)
    nm.load_state_dict(_sd(tm))
    x = _arr((B, L, E), "float64", 1)
    kpm = _lengths_mask([5, 0, 2], L)  # the second sequence is all padding
    nx, tx = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = nm(nx, key_padding_mask=kpm)
    ref, _ = tm(tx, tx, tx, key_padding_mask=torch.tensor(kpm), need_weights=False)
    assert np.isfinite(out.data).all()
    np.testing.assert_array_equal(out.data[1], np.broadcast_to(nm.out_proj.bias.data, (L, E)))
    _close(out, ref, TOL["float64"], "output")
    _backward_both(out, ref)
    assert np.isfinite(nx.grad.data).all() and not nx.grad.data[1].any()
    _close(nx.grad, tx.grad, GTOL["float64"], "input gradient")
    _, w = nm(nk.Tensor(x), key_padding_mask=kpm, need_weights=True, average_attn_weights=False)
    assert np.isfinite(w.data).all() and not w.data[1].any()
    np.testing.assert_allclose(w.data[0].sum(-1), 1.0)


def test_fused_and_composed_paths_agree_with_dropout():
    # The fused packed op (no weights asked) and the op-by-op path (weights asked) draw the same dropout mask from
    # the same generator in float64, so their outputs and gradients must agree; this checks the fused dropout
    # backward against plain ops.
    x = _arr((B, L, E), "float64", 1)
    kpm = _lengths_mask([5, 3, 2], L)
    results = []
    for need in (False, True):
        m = nn.MultiHeadAttention(E, H, dropout=0.4, generator=3, dtype="float64")
        nx = nk.Tensor(x, requires_grad=True)
        out = m(nx, key_padding_mask=kpm, need_weights=need, is_causal=True)
        out = out[0] if need else out
        (out * nk.Tensor(_arr(out.shape, "float64", 2))).sum().backward()
        results.append((out.data, nx.grad.data, m.in_proj_weight.grad.data))
    no_drop = nn.MultiHeadAttention(E, H, dropout=0.0, generator=3, dtype="float64")(nk.Tensor(x), key_padding_mask=kpm)
    assert np.abs(results[0][0] - no_drop.data).max() > 1e-3, "dropout changed nothing"
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_dropout_is_off_in_eval_and_repeatable_with_a_generator():
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(E, H, 16, dropout=0.5, batch_first=True, dtype=torch.float64).eval()
    layers = [nn.TransformerEncoderLayer(E, H, 16, dropout=0.5, generator=11, dtype="float64") for _ in range(2)]
    for layer in layers:
        _copy(tl, layer)
    x = _arr((B, L, E), "float64", 1)
    train = [layer(nk.Tensor(x)).data for layer in layers]
    np.testing.assert_array_equal(train[0], train[1])  # same seed, same masks
    again = layers[0](nk.Tensor(x)).data
    assert np.abs(again - train[0]).max() > 1e-3  # the stream moves on
    with torch.no_grad():
        ref = tl(torch.tensor(x))
    for layer in layers:
        _close(layer.eval()(nk.Tensor(x)), ref, TOL["float64"], "eval output")


# -- TransformerEncoderLayer / TransformerEncoder -------------------------------------------------------------------
def _layer_pair(dt, norm_first, activation, seed=0, dim_ff=16):
    torch.manual_seed(seed)
    tl = torch.nn.TransformerEncoderLayer(
        E, H, dim_ff, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first, dtype=TDT[dt]
    )
    nl = nn.TransformerEncoderLayer(E, H, dim_ff, dropout=0.0, activation=activation, norm_first=norm_first, dtype=dt)
    return tl, _copy(tl, nl)


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_matches_torch(norm_first, activation, dt):
    tl, nl = _layer_pair(dt, norm_first, activation)
    x = _arr((B, L, E), dt, 1)
    kpm = _lengths_mask([5, 4, 2], L)
    nx, tx = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = nl(nx, src_key_padding_mask=kpm, is_causal=True)
    ref = tl(tx, src_mask=torch.tensor(_CAUSAL), src_key_padding_mask=torch.tensor(kpm))
    _close(out, ref, TOL[dt], "output")
    _backward_both(out, ref)
    _close(nx.grad, tx.grad, GTOL[dt], "input gradient")
    _check_param_grads(nl, tl, dt)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_matches_torch(norm_first):
    tl, _ = _layer_pair("float64", norm_first, "gelu")
    te = torch.nn.TransformerEncoder(tl, 3, norm=torch.nn.LayerNorm(E, dtype=torch.float64), enable_nested_tensor=False)
    layer = nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, activation="gelu", norm_first=norm_first, dtype="float64")
    ne = _copy(te, nn.TransformerEncoder(layer, 3, norm=nn.LayerNorm(E, dtype="float64")))
    x = _arr((B, L, E), "float64", 1)
    kpm = _lengths_mask([5, 3, 1], L)
    nx, tx = nk.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = ne(nx, src_key_padding_mask=kpm)
    ref = te(tx, src_key_padding_mask=torch.tensor(kpm))
    _close(out, ref, TOL["float64"], "output")
    _backward_both(out, ref)
    _close(nx.grad, tx.grad, GTOL["float64"], "input gradient")
    _check_param_grads(ne, te, "float64")


def test_stack_copies_start_equal_and_train_apart():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, generator=0), 2)
    a, b = enc.layers[0], enc.layers[1]
    assert a is not b and a.self_attn.in_proj_weight is not b.self_attn.in_proj_weight
    np.testing.assert_array_equal(a.self_attn.in_proj_weight.data, b.self_attn.in_proj_weight.data)
    out = enc(nk.Tensor(_arr((B, L, E), "float32", 1)))
    (out * nk.Tensor(_arr(out.shape, "float32", 2))).sum().backward()
    ga, gb = a.self_attn.in_proj_weight.grad.data, b.self_attn.in_proj_weight.grad.data
    assert np.abs(ga - gb).max() > 1e-6  # different inputs reach them: different gradients


def test_sequence_first_encoder_layer():
    torch.manual_seed(0)
    tl = torch.nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, dtype=torch.float64)  # (L, B, E)
    nl = _copy(tl, nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, batch_first=False, dtype="float64"))
    x = _arr((L, B, E), "float64", 1)
    _close(nl(nk.Tensor(x)), tl(torch.tensor(x)), TOL["float64"], "output")


def test_padding_never_changes_the_real_positions():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(E, H, 16, dropout=0.0, generator=1, dtype="float64"), 2)
    x = _arr((2, 4, E), "float64", 1)
    short = enc(nk.Tensor(x), src_key_padding_mask=_lengths_mask([4, 2], 4)).data
    padded = np.concatenate([x, _arr((2, 3, E), "float64", 2) * 100], axis=1)  # junk in the padding
    long = enc(nk.Tensor(padded), src_key_padding_mask=_lengths_mask([4, 2], 7)).data
    np.testing.assert_allclose(long[0, :4], short[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(long[1, :2], short[1, :2], rtol=1e-12, atol=1e-12)


# -- float64 central differences ---------------------------------------------------------------------------------
def _check_params_by_differences(fn, module, per_param=6, seed=0):
    """Sampled entries of every parameter: backprop of sum(fn() * G) against float64 central differences."""
    out = fn()
    weights = nk.Tensor(_arr(out.shape, "float64", 7))
    module.zero_grad()
    (out * weights).sum().backward()
    rng = np.random.default_rng(seed)
    for name, p in module.named_parameters():
        flat = p.data.reshape(-1)
        for j in rng.choice(flat.size, size=min(per_param, flat.size), replace=False):
            orig = flat[j]
            flat[j] = orig + 1e-6
            plus = float((fn().data * weights.data).sum())
            flat[j] = orig - 1e-6
            minus = float((fn().data * weights.data).sum())
            flat[j] = orig
            num, ana = (plus - minus) / 2e-6, float(p.grad.data.reshape(-1)[j])
            assert abs(num - ana) <= 1e-7 + 1e-5 * abs(num), f"{name}[{j}]: backprop {ana}, differences {num}"


def test_gradcheck_multi_head_attention():
    m = nn.MultiHeadAttention(4, 2, generator=0, dtype="float64")
    kpm = _lengths_mask([3, 2], 3)
    x = nk.Tensor(_arr((2, 3, 4), "float64", 1), requires_grad=True)
    assert nk.gradcheck(lambda t: m(t, key_padding_mask=kpm, is_causal=True), x).ok
    assert nk.gradcheck(lambda t: m(t, need_weights=True, average_attn_weights=False)[1], x).ok
    q, kv = (nk.Tensor(_arr(s, "float64", i), requires_grad=True) for i, s in enumerate([(2, 3, 4), (2, 2, 4)]))
    assert nk.gradcheck(lambda a, b: m(a, b, b * 0.5), q, kv).ok
    _check_params_by_differences(lambda: m(x, key_padding_mask=kpm), m)


@pytest.mark.parametrize("norm_first", [False, True])
def test_gradcheck_encoder_layer(norm_first):
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, activation="gelu", norm_first=norm_first, generator=0)
    layer = _copy_to_float64(layer)
    kpm = _lengths_mask([3, 1], 3)
    x = nk.Tensor(_arr((2, 3, 4), "float64", 1), requires_grad=True)
    assert nk.gradcheck(lambda t: layer(t, src_key_padding_mask=kpm), x).ok
    _check_params_by_differences(lambda: layer(x, src_key_padding_mask=kpm), layer)


def _copy_to_float64(layer):
    twin = type(layer)(**{**layer.get_config(), "dtype": "float64"})
    twin.load_state_dict({k: v.astype(np.float64) for k, v in layer.state_dict().items()})
    return twin


# -- positional encodings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("d", [8, 7])
def test_sinusoidal_table_is_the_published_formula(d):
    # the PyTorch tutorial's construction, in torch
    pos = torch.arange(40, dtype=torch.float64)[:, None]
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float64) * (-np.log(10000.0) / d))
    pe = torch.zeros(40, d, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div)[:, : d // 2]
    layer = nn.SinusoidalPositionalEncoding(d, max_len=40)
    x = _arr((2, 30, d), "float64", 1)
    np.testing.assert_allclose(layer(nk.Tensor(x)).data, x + pe[:30].numpy(), rtol=1e-13, atol=1e-13)
    x = _arr((2, 40, d), "float32", 1)  # a longer sequence afterwards: the table grows, float32 from float64
    np.testing.assert_allclose(layer(nk.Tensor(x)).data, x + pe.numpy().astype(np.float32), rtol=1e-6, atol=1e-6)
    t = nk.Tensor(_arr((2, 3, d), "float64", 2), requires_grad=True)
    assert nk.gradcheck(layer, t).ok


def test_learned_positions_add_their_rows_and_train_only_those_seen():
    layer = nn.LearnedPositionalEmbedding(4, max_len=6, generator=0, dtype="float64")
    assert layer.weight.shape == (6, 4) and 0.005 < layer.weight.data.std() < 0.05
    x = _arr((3, 5, 4), "float64", 1)
    out = layer(nk.Tensor(x))
    np.testing.assert_array_equal(out.data, x + layer.weight.data[:5])
    g = _arr(out.shape, "float64", 2)
    out.backward(nk.Tensor(g))
    np.testing.assert_allclose(layer.weight.grad.data[:5], g.sum(0))
    assert not layer.weight.grad.data[5].any()
    t = nk.Tensor(_arr((2, 6, 4), "float64", 3), requires_grad=True)
    assert nk.gradcheck(layer, t).ok
    _check_params_by_differences(lambda: layer(t), layer)


@pytest.mark.parametrize("cls", [nn.SinusoidalPositionalEncoding, nn.LearnedPositionalEmbedding])
def test_too_long_a_sequence_is_one_clear_error(cls):
    layer = cls(4, max_len=6)
    with pytest.raises(ValueError, match=r"got a sequence of 7 positions .* at most max_len=6: raise max_len"):
        layer(nk.Tensor(np.zeros((2, 7, 4), np.float32)))


# -- errors --------------------------------------------------------------------------------------------------------
def test_bad_arguments_and_shapes_say_what_was_expected():
    with pytest.raises(ValueError, match=r"embed_dim \(6\) must be divisible by num_heads \(4\)"):
        nn.MultiHeadAttention(6, 4)
    with pytest.raises(ValueError, match="dropout must be a number in"):
        nn.TransformerEncoderLayer(8, 2, dropout=1.0)
    with pytest.raises(ValueError, match="activation must be a name"):
        nn.TransformerEncoderLayer(8, 2, activation="sin")
    m = nn.MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"got query, key and value of shapes .*\(2, 3, 5\).* with E = 8"):
        m(nk.Tensor(np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \(2, 3\)"):
        m(nk.Tensor(np.zeros((2, 3, 8), np.float32)), key_padding_mask=np.zeros((2, 4), bool))
    with pytest.raises(ValueError, match="attn_mask must have shape"):
        m(nk.Tensor(np.zeros((2, 3, 8), np.float32)), attn_mask=np.zeros((4, 4), bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        nk.scaled_dot_product_attention(*[nk.Tensor(np.zeros((2, 3, 4)))] * 3, attn_mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match="does not fit in max_len"):
        nn.padding_mask(np.array([2, 5]), max_len=4)


# -- lengths, the fit loop, save/load and the probes ---------------------------------------------------------------
def test_padding_mask_from_a_sequence_dataset_batch():
    ds = SequenceDataset([np.array([5, 6, 7]), np.array([8]), np.array([], np.int64)], labels=[0, 1, 0], pad_value=0)
    tokens, lengths, _ = ds.get_batch([0, 1, 2])
    mask = nn.padding_mask(nk.Tensor(lengths), tokens.shape[1])
    np.testing.assert_array_equal(mask.data, [[False, False, False], [False, True, True], [True, True, True]])
    np.testing.assert_array_equal(nn.padding_mask(lengths).data, mask.data)


class TinyTextModel(nn.Module):
    """Embedding + positions + a transformer encoder + masked mean over the real tokens + a linear classifier."""

    def __init__(self, vocab=12, d=16, learned=True, dropout=0.1, seed=0):
        super().__init__()
        self.embed = nn.Embedding(vocab, d, padding_idx=0, generator=seed)
        self.pos = (
            nn.LearnedPositionalEmbedding(d, 32, generator=seed) if learned else nn.SinusoidalPositionalEncoding(d)
        )
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=dropout, generator=seed)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(d, 2, generator=seed)

    def forward(self, tokens, lengths):
        mask = nn.padding_mask(lengths, tokens.shape[1])
        h = self.encoder(self.pos(self.embed(tokens)), src_key_padding_mask=mask)  # (B, T, d)
        return self.head(nk.masked_mean_pool(h, lengths))


def _contains_three(n=320, seed=0):
    """Sequences of 1..9 tokens from 1..11; the label says whether token 3 occurs."""
    rng = np.random.default_rng(seed)
    seqs = [rng.integers(1, 12, rng.integers(1, 10)) for _ in range(n)]
    return SequenceDataset(seqs, labels=[int(3 in s) for s in seqs])


@pytest.mark.parametrize("learned", [True, False])
def test_a_text_model_trains_in_fit_on_tokens_and_lengths(learned):
    ds = _contains_three()
    model = TinyTextModel(learned=learned)
    base = train.evaluate(model, ds)["loss"]
    probe_cb = ProbeCallback(every=5)
    history = train.fit(model, ds, epochs=4, batch_size=32, lr=3e-3, seed=0, progress=False, callbacks=[probe_cb])
    after = train.evaluate(model, ds)
    assert after["loss"] < 0.6 * base and after["accuracy"] > 0.85, (base, after)
    # the probes saw the dense layers inside attention and the feed-forward blocks (3-D outputs), all finite
    hist = probe_cb.probe.history("encoder.layers.0.linear1")
    assert hist["step"].size >= 4 and np.isfinite(hist["out_mean"]).all() and np.isfinite(hist["grad_norm"]).all()
    assert "encoder.layers.1.self_attn.out_proj" in probe_cb.probe.layers
    diagnose_training(history, probe_cb.probe)


def test_probe_statistics_of_a_3d_layer_equal_direct_numpy():
    model = TinyTextModel(dropout=0.0)
    tokens, lengths, y = _contains_three(32).get_batch(np.arange(32))
    layer = model.encoder.layers[1].linear1  # (B, T, d) -> (B, T, 32), ReLU: each of the B*T tokens is a sample
    seen = {}
    handle = layer.register_forward_hook(lambda m, i, o: seen.update(x=i[0].data.astype(np.float64)))
    probe = Probe(model, every=1)
    probe.begin(1)
    nk.cross_entropy(model(nk.Tensor(tokens), nk.Tensor(lengths)), y).backward()
    probe.commit()
    handle.remove()
    z = seen["x"].reshape(-1, 16) @ layer.weight.data.astype(np.float64).T + layer.bias.data
    rec = probe.history("encoder.layers.1.linear1")
    tol = {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(rec["pre_mean"][0], z.mean(0), **tol)
    np.testing.assert_allclose(rec["pre_std"][0], z.std(0), **tol)
    np.testing.assert_allclose(rec["out_mean"][0], np.maximum(z, 0).mean(0), **tol)
    np.testing.assert_allclose(rec["active_frac"][0], (z > 0).mean(0))
    g = layer.weight.grad.data.astype(np.float64)
    np.testing.assert_allclose(rec["grad_norm"][0], np.linalg.norm(g, axis=1), rtol=1e-6)
    assert np.isfinite(rec["out_grad_norm"][0]) and rec["out_grad_norm"][0] > 0


def test_check_before_training_on_a_sequence_model():
    class MeanOverTime(nn.Module):
        def forward(self, x):
            return x.mean(axis=1)

    model = nn.Sequential(
        nn.Linear(6, 8, generator=0),
        nn.SinusoidalPositionalEncoding(8),
        nn.MultiHeadAttention(8, 2, generator=0),
        nn.TransformerEncoderLayer(8, 2, 16, generator=0),
        MeanOverTime(),
        nn.Linear(8, 3, generator=1),
    )
    x = _arr((16, 5, 6), "float32", 1)
    findings = check_before_training(model, (x, np.arange(16) % 3))
    assert isinstance(findings, list)


def test_save_load_round_trip_with_masks(tmp_path):
    layer = nn.TransformerEncoderLayer(8, 2, 16, activation="gelu", norm_first=True, generator=0)
    model = nn.TransformerEncoder(layer, 2, norm=nn.LayerNorm(8))
    nk.save(model, tmp_path / "m")
    loaded = nk.load(tmp_path / "m").eval()
    x, kpm = nk.Tensor(_arr((2, 5, 8), "float32", 1)), _lengths_mask([5, 2], 5)
    a = model.eval()(x, src_key_padding_mask=kpm, is_causal=True).data
    np.testing.assert_array_equal(loaded(x, src_key_padding_mask=kpm, is_causal=True).data, a)
    assert loaded.get_config() == model.get_config() and repr(loaded) == repr(model)
