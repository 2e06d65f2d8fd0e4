"""Every op, one line each: forward and gradients against PyTorch in float32, then a float64 gradcheck.

The last tests walk the op registry and fail if any op has no line here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from optest import OpSpec, check_op

import neuronkit as nk
from neuronkit.ops import DIFFERENTIABLE, NON_DIFFERENTIABLE

BINARY = [((3, 4), (3, 4)), ((3, 4), (4,)), ((2, 1, 4), (3, 1)), ((), (3,)), ((), ()), ((1,), (2, 3))]
UNARY = [((3, 4),), ((2, 3, 4),), ((),), ((1, 5),)]
MAT = [((3, 4),), ((2, 3, 4),), ((1, 5),)]  # at least 1-D
ROWS = [((4, 5),), ((2, 3, 4),), ((1, 6),), ((5,),)]

_cond = np.array([[True, False, True, False]] * 3)
_lab = np.array([2, 0, 4, 1, 4])
_probs = np.random.default_rng(1).dirichlet(np.ones(5), size=5)
_int_idx = np.array([0, 2, 2, 1])
_rm = np.array([0.3, -0.5, 1.0], np.float32)  # running statistics for batch_norm: constants, copied per call
_rv = np.array([0.8, 1.5, 0.6], np.float32)
_emb_idx = np.array([[1, 3, 1], [0, 3, 3]])  # repeated indices: their gradients must accumulate
_attn_mask = np.random.default_rng(2).random((2, 1, 4, 6)) > 0.4  # sdpa convention: True = may attend
_attn_mask[0, 0, 1] = False  # a query with no key left: zero weights, zero output, no gradient
_fmask = np.random.default_rng(3).standard_normal((4, 6))  # an additive float mask
_kpm = np.array([[True] * 5, [True] * 3 + [False] * 2])[:, None, None, :]  # key padding of lengths 5 and 3


def _keep(shape, p, seed):
    """The dropout mask neuronkit draws from ``default_rng(seed)``: raw 32-bit words >= round(p * 2^32)."""
    n = int(np.prod(shape))
    words = np.random.default_rng(seed).bit_generator.random_raw((n + 1) // 2).view(np.uint32)[:n]
    return T((words >= round(p * 2**32)).reshape(shape))


def _sdpa_dropout_ref(q, k, v, p=0.3, seed=7):
    """softmax(q k^T / sqrt(D)) with the dropout mask nk draws from the same seed, times v (torch ops)."""
    w = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1)
    return (w * _keep((*q.shape[:-1], k.shape[-2]), p, seed).to(q.dtype) / (1 - p)) @ v


def _packed_ref(qkv, heads, mask=None, causal=False):
    """PyTorch's multi-head attention core on packed (B, L, 3E) projections."""
    b, n, e = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
    q, k, v = (t.unflatten(-1, (heads, e // heads)).transpose(1, 2) for t in qkv.split(e, -1))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=None if mask is None else T(mask), is_causal=causal)
    return out.transpose(1, 2).reshape(b, n, e)


# sequence lengths by batch size: a full row, a padded row and an empty one (which pools to zeros)
_seq_len = {3: np.array([5, 2, 0]), 2: np.array([1, 4])}


def _len_of(x):
    return _seq_len[x.shape[0]]


def _torch_masked(x, fill):
    lengths = T(_len_of(x))
    mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None])[:, :, None]  # (B, T, 1)
    return torch.where(mask, x, torch.tensor(fill, dtype=x.dtype)), lengths


def _torch_mean_pool(x):
    xm, lengths = _torch_masked(x, 0.0)
    return xm.sum(1) / lengths.clamp(min=1)[:, None].to(x.dtype)


def _torch_max_pool(x):
    xm, lengths = _torch_masked(x, float("-inf"))
    out = xm.max(dim=1).values
    return torch.where((lengths > 0)[:, None], out, torch.zeros((), dtype=x.dtype))


def T(x):
    return torch.tensor(x)


OPS = [
    # elementwise arithmetic
    OpSpec("add", BINARY, lambda a, b: a + b, lambda a, b: a + b),
    OpSpec("sub", BINARY, lambda a, b: a - b, lambda a, b: a - b),
    OpSpec("mul", BINARY, lambda a, b: a * b, lambda a, b: a * b),
    OpSpec("div", BINARY, lambda a, b: a / b, lambda a, b: a / b, domain="positive"),
    OpSpec("pow", BINARY, lambda a, b: a**b, lambda a, b: a**b, domain="positive"),
    OpSpec("pow", UNARY, lambda a: a**3, lambda a: a**3, id="pow_scalar_exponent"),
    OpSpec("pow", UNARY, lambda a: 2.0**a, lambda a: 2.0**a, id="pow_scalar_base"),
    OpSpec("maximum", BINARY, nk.maximum, torch.maximum),
    OpSpec("minimum", BINARY, nk.minimum, torch.minimum),
    OpSpec("neg", UNARY, lambda a: -a, lambda a: -a),
    OpSpec("exp", UNARY, nk.exp, torch.exp),
    OpSpec("log", UNARY, nk.log, torch.log, domain="positive"),
    OpSpec("sqrt", UNARY, nk.sqrt, torch.sqrt, domain="positive"),
    OpSpec("abs", UNARY, nk.abs, torch.abs, domain="away"),
    OpSpec("clip", UNARY, lambda a: nk.clip(a, -0.5, 1.0), lambda a: torch.clamp(a, -0.5, 1.0)),
    OpSpec("clip", UNARY, lambda a: nk.clip(a, max=0.3), lambda a: torch.clamp(a, max=0.3), id="clip_max_only"),
    OpSpec(
        "where",
        [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (3, 1))],
        lambda a, b: nk.where(nk.Tensor(_cond), a, b),
        lambda a, b: torch.where(T(_cond), a, b),
    ),
    OpSpec(
        "astype",
        UNARY,
        lambda a: nk.astype(a, "float64") * 2,
        lambda a: a.to(torch.float64) * 2,
        out_dtype="float64",
        id="astype_up",
    ),
    # reductions
    OpSpec("sum", UNARY, nk.sum, torch.sum),
    OpSpec("sum", MAT, lambda a: a.sum(axis=-1), lambda a: a.sum(dim=-1), id="sum_last"),
    OpSpec(
        "sum",
        [((2, 3, 4),)],
        lambda a: a.sum(axis=(0, 2), keepdims=True),
        lambda a: a.sum(dim=(0, 2), keepdim=True),
        id="sum_axes_keepdims",
    ),
    OpSpec("mean", UNARY, nk.mean, torch.mean),
    OpSpec("mean", [((2, 3, 4),)], lambda a: a.mean(axis=1), lambda a: a.mean(dim=1), id="mean_axis"),
    OpSpec("max", UNARY, nk.max, torch.amax),
    OpSpec(
        "max",
        [((2, 3, 4),)],
        lambda a: a.max(axis=(0, 2), keepdims=True),
        lambda a: a.amax(dim=(0, 2), keepdim=True),
        id="max_axes",
    ),
    OpSpec(
        "max",
        [((3, 4),)],
        lambda a: nk.max(nk.Tensor(np.ones((3, 4), np.float32)) * 0 + a.clip(max=0.0) + 1),
        lambda a: torch.amax(a.clamp(max=0.0) + 1),
        gradcheck=False,
        id="max_ties",
    ),
    OpSpec("min", UNARY, nk.min, torch.amin),
    OpSpec("min", [((2, 3, 4),)], lambda a: a.min(axis=-1), lambda a: a.amin(dim=-1), id="min_axis"),
    OpSpec("var", MAT, nk.var, torch.var),
    OpSpec(
        "var",
        [((2, 3, 4),)],
        lambda a: a.var(axis=(1, 2), correction=0, keepdims=True),
        lambda a: a.var(dim=(1, 2), correction=0, keepdim=True),
        id="var_population",
    ),
    OpSpec("std", MAT, nk.std, torch.std),
    OpSpec("std", [((2, 3, 4),)], lambda a: a.std(axis=0), lambda a: a.std(dim=0), id="std_axis"),
    OpSpec("logsumexp", MAT, lambda a: a.logsumexp(axis=-1), lambda a: a.logsumexp(dim=-1)),
    OpSpec("logsumexp", UNARY, nk.logsumexp, lambda a: a.reshape(-1).logsumexp(dim=0), id="logsumexp_all"),
    # linear algebra
    OpSpec(
        "matmul",
        [
            ((3, 4), (4, 5)),
            ((2, 3, 4), (4, 2)),
            ((2, 1, 3, 4), (3, 4, 2)),
            ((4,), (4, 3)),
            ((3, 4), (4,)),
            ((4,), (4,)),
        ],
        lambda a, b: a @ b,
        lambda a, b: a @ b,
    ),
    OpSpec("linear", [((5, 4), (3, 4), (3,)), ((2, 5, 4), (3, 4), (3,)), ((4,), (3, 4), (3,))], nk.linear, F.linear),
    OpSpec("linear", [((5, 4), (3, 4))], nk.linear, F.linear, id="linear_no_bias"),
    OpSpec("linear", [((5, 4), (3, 4), (3,))], nk.linear, F.linear, grad=(1, 2), id="linear_input_no_grad"),
    OpSpec(
        "linear",
        [((5, 4), (3, 4), (3,)), ((2, 5, 4), (3, 4), (3,)), ((4,), (3, 4), (3,))],
        lambda x, w, b: nk.linear(x, w, b, activation="relu"),
        lambda x, w, b: F.relu(F.linear(x, w, b)),
        id="linear_relu",
    ),
    OpSpec(
        "linear",
        [((6, 5), (4, 5))],
        lambda x, w: nk.linear(x, w, activation="relu"),
        lambda x, w: F.relu(F.linear(x, w)),
        grad=(1,),
        id="linear_relu_no_bias_input_no_grad",
    ),
    OpSpec(
        "linear",
        [((5, 4), (3, 4), (3,)), ((2, 5, 4), (3, 4), (3,))],
        lambda x, w, b: nk.linear(x, w, b, activation="tanh"),
        lambda x, w, b: torch.tanh(F.linear(x, w, b)),
        id="linear_tanh",
    ),
    OpSpec(
        "linear",
        [((5, 4), (3, 4), (3,)), ((4,), (3, 4), (3,))],
        lambda x, w, b: nk.linear(x, w, b, activation="sigmoid"),
        lambda x, w, b: torch.sigmoid(F.linear(x, w, b)),
        id="linear_sigmoid",
    ),
    OpSpec(
        "linear",
        [((6, 5), (4, 5))],
        lambda x, w: nk.linear(x, w, activation="sigmoid"),
        lambda x, w: torch.sigmoid(F.linear(x, w)),
        grad=(0,),
        id="linear_sigmoid_no_bias_weight_no_grad",
    ),
    # shape
    OpSpec("reshape", [((3, 4),)], lambda a: a.reshape(2, 6) * 2, lambda a: a.reshape(2, 6) * 2),
    OpSpec("reshape", [((),)], lambda a: a.reshape(1, 1), lambda a: a.reshape(1, 1), id="reshape_0d"),
    OpSpec("transpose", [((3, 4),)], lambda a: a.T, lambda a: a.T),
    OpSpec("transpose", [((2, 3, 4),)], lambda a: a.permute(2, 0, 1), lambda a: a.permute(2, 0, 1), id="permute"),
    OpSpec(
        "broadcast_to",
        [((3, 1),), ((),), ((4,),)],
        lambda a: nk.broadcast_to(a, (2, 3, 4)),
        lambda a: torch.broadcast_to(a, (2, 3, 4)),
    ),
    OpSpec("squeeze", [((3, 1, 4, 1),)], lambda a: a.squeeze(), lambda a: a.squeeze()),
    OpSpec("squeeze", [((3, 1, 4, 1),)], lambda a: a.squeeze(1), lambda a: a.squeeze(1), id="squeeze_axis"),
    OpSpec("unsqueeze", [((3, 4),), ((),)], lambda a: a.unsqueeze(-1), lambda a: a.unsqueeze(-1)),
    OpSpec("flatten", [((2, 3, 4),)], lambda a: a.flatten(1), lambda a: a.flatten(1)),
    OpSpec("flatten", [((2, 3, 4, 5),), ((),)], nk.flatten, torch.flatten, id="flatten_all"),
    OpSpec(
        "concatenate", [((2, 3), (4, 3), (1, 3))], lambda *t: nk.concatenate(t, axis=0), lambda *t: torch.cat(t, dim=0)
    ),
    OpSpec(
        "concatenate",
        [((2, 3), (2, 1))],
        lambda *t: nk.concatenate(t, axis=-1),
        lambda *t: torch.cat(t, dim=-1),
        id="concatenate_last",
    ),
    OpSpec("stack", [((2, 3), (2, 3), (2, 3)), ((), ())], lambda *t: nk.stack(t, axis=0), lambda *t: torch.stack(t)),
    OpSpec(
        "stack", [((2, 3), (2, 3))], lambda *t: nk.stack(t, axis=-1), lambda *t: torch.stack(t, dim=-1), id="stack_last"
    ),
    OpSpec(
        "split",
        [((5, 4),)],
        lambda a: nk.concatenate([p * (i + 1) for i, p in enumerate(nk.split(a, 2, axis=0))], 0),
        lambda a: torch.cat([p * (i + 1) for i, p in enumerate(torch.split(a, 2, dim=0))], 0),
    ),
    OpSpec(
        "split",
        [((3, 6),)],
        lambda a: nk.concatenate([p * (i + 1) for i, p in enumerate(nk.split(a, [1, 3, 2], axis=1))], 1),
        lambda a: torch.cat([p * (i + 1) for i, p in enumerate(torch.split(a, [1, 3, 2], dim=1))], 1),
        id="split_sizes",
    ),
    OpSpec(
        "pad",
        [((2, 3),)],
        lambda a: nk.pad(a, ((1, 0), (2, 1)), value=0.5),
        lambda a: F.pad(a, (2, 1, 1, 0), value=0.5),
    ),
    OpSpec(
        "pad",
        [((1, 2, 3, 3),)],
        lambda a: nk.pad(a, ((0, 0), (0, 0), (1, 1), (1, 1))),
        lambda a: F.pad(a, (1, 1, 1, 1)),
        id="pad_image",
    ),
    # indexing
    OpSpec("getitem", [((4, 5),)], lambda a: a[1:3, ::2], lambda a: a[1:3, ::2]),
    OpSpec("getitem", [((4, 5),)], lambda a: a[2], lambda a: a[2], id="getitem_int"),
    OpSpec("getitem", [((2, 3, 4),)], lambda a: a[..., None, 1], lambda a: a[..., None, 1], id="getitem_ellipsis"),
    OpSpec("getitem", [((4, 5),)], lambda a: a[_int_idx], lambda a: a[T(_int_idx)], id="getitem_repeated_ints"),
    OpSpec(
        "getitem",
        [((4, 5),)],
        lambda a: a[_int_idx, _int_idx],
        lambda a: a[T(_int_idx), T(_int_idx)],
        id="getitem_int_pairs",
    ),
    OpSpec("getitem", [((3, 4),)], lambda a: a[nk.Tensor(_cond)], lambda a: a[T(_cond)], id="getitem_mask"),
    OpSpec("getitem", [((4, 5),)], lambda a: a[1:, [0, 0, 3]], lambda a: a[1:, [0, 0, 3]], id="getitem_mixed"),
    # activations
    OpSpec("relu", UNARY, nk.relu, F.relu, domain="away"),
    OpSpec("leaky_relu", UNARY, lambda a: nk.leaky_relu(a, 0.1), lambda a: F.leaky_relu(a, 0.1), domain="away"),
    OpSpec("elu", UNARY, lambda a: nk.elu(a, 0.7), lambda a: F.elu(a, 0.7), domain="away"),
    OpSpec("selu", UNARY, nk.selu, F.selu, domain="away"),
    OpSpec("gelu", UNARY, nk.gelu, F.gelu),
    OpSpec(
        "gelu", UNARY, lambda a: nk.gelu(a, approximate="tanh"), lambda a: F.gelu(a, approximate="tanh"), id="gelu_tanh"
    ),
    OpSpec("silu", UNARY, nk.silu, F.silu),
    OpSpec("mish", UNARY, nk.mish, F.mish),
    OpSpec("sigmoid", UNARY, nk.sigmoid, torch.sigmoid),
    OpSpec("tanh", UNARY, nk.tanh, torch.tanh),
    OpSpec("softplus", UNARY, nk.softplus, F.softplus),
    OpSpec(
        "softplus",
        UNARY,
        lambda a: nk.softplus(a, beta=2.0, threshold=1.0),
        lambda a: F.softplus(a, beta=2.0, threshold=1.0),
        domain="away",
        id="softplus_beta_threshold",
    ),
    OpSpec("softsign", UNARY, nk.softsign, F.softsign),
    OpSpec("hard_sigmoid", [((3, 4),)], nk.hard_sigmoid, F.hardsigmoid),
    OpSpec(
        "hard_sigmoid",
        [((20,),)],
        lambda a: nk.hard_sigmoid(a * 3),
        lambda a: F.hardsigmoid(a * 3),
        domain="away",
        id="hard_sigmoid_wide",
    ),
    OpSpec("hard_tanh", UNARY, nk.hard_tanh, F.hardtanh, domain="away"),
    OpSpec("relu6", [((20,),), ((4, 5),)], lambda a: nk.relu6(a * 5), lambda a: F.relu6(a * 5), domain="away"),
    OpSpec("softmax", ROWS, nk.softmax, lambda a: F.softmax(a, dim=-1)),
    OpSpec(
        "softmax", [((3, 4, 2),)], lambda a: nk.softmax(a, axis=1), lambda a: F.softmax(a, dim=1), id="softmax_axis1"
    ),
    OpSpec("log_softmax", ROWS, nk.log_softmax, lambda a: F.log_softmax(a, dim=-1)),
    OpSpec(
        "log_softmax",
        [((3, 4, 2),)],
        lambda a: nk.log_softmax(a, axis=0),
        lambda a: F.log_softmax(a, dim=0),
        id="log_softmax_axis0",
    ),
    OpSpec(
        "dropout",
        [((40, 30),), ((3, 4, 5),)],
        lambda a: nk.dropout(a, 0.3, generator=np.random.default_rng(4)),
        lambda a: a * _keep(a.shape, 0.3, 4).to(a.dtype) / 0.7,
    ),
    OpSpec(
        "dropout",
        [((3, 4),), ((),)],
        lambda a: nk.dropout(a, 0.5, training=False) * 2,
        lambda a: a * 2,
        id="dropout_eval",
    ),
    # attention (fused, hand-written backward)
    OpSpec(
        "scaled_dot_product_attention",
        [((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 4)), ((3, 4), (5, 4), (5, 2))],
        nk.scaled_dot_product_attention,
        F.scaled_dot_product_attention,
    ),
    OpSpec(
        "scaled_dot_product_attention",
        [((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 4))],
        lambda q, k, v: nk.scaled_dot_product_attention(q, k, v, attn_mask=_attn_mask),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=T(_attn_mask)),
        id="sdpa_bool_mask_empty_row",
    ),
    OpSpec(
        "scaled_dot_product_attention",
        [((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 4))],
        lambda q, k, v: nk.scaled_dot_product_attention(q, k, v, attn_mask=_fmask, scale=0.3),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=T(_fmask).to(q.dtype), scale=0.3),
        id="sdpa_float_mask_scale",
    ),
    OpSpec(
        "scaled_dot_product_attention",
        [((2, 5, 3), (2, 5, 3), (2, 5, 3)), ((1, 2, 4, 3), (1, 2, 6, 3), (1, 2, 6, 2))],
        lambda q, k, v: nk.scaled_dot_product_attention(q, k, v, is_causal=True),
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        id="sdpa_causal",
    ),
    OpSpec(
        "scaled_dot_product_attention",
        [((2, 3, 4, 5), (2, 3, 6, 5), (2, 3, 6, 4))],
        lambda q, k, v: nk.scaled_dot_product_attention(q, k, v, dropout_p=0.3, generator=np.random.default_rng(7)),
        _sdpa_dropout_ref,
        id="sdpa_dropout",
    ),
    OpSpec(
        "packed_attention",
        [((2, 5, 12),), ((1, 3, 6),)],
        lambda x: nk.packed_attention(x, 2),
        lambda x: _packed_ref(x, 2),
    ),
    OpSpec(
        "packed_attention",
        [((2, 5, 12),)],
        lambda x: nk.packed_attention(x, 2, attn_mask=_kpm, is_causal=True),
        lambda x: _packed_ref(x, 2, _kpm & np.tril(np.ones((5, 5), bool))),
        id="packed_attention_padding_causal",
    ),
    OpSpec(
        "packed_attention",
        [((2, 5, 12),)],
        lambda x: nk.packed_attention(x, 4, attn_mask=np.zeros((2, 1, 1, 5), bool)),
        lambda x: _packed_ref(x, 4, np.zeros((2, 1, 1, 5), bool)),
        id="packed_attention_all_masked",
    ),
    # convolution and pooling
    OpSpec("conv2d", [((2, 3, 7, 6), (4, 3, 3, 2), (4,)), ((1, 2, 5, 5), (3, 2, 1, 1), (3,))], nk.conv2d, F.conv2d),
    OpSpec(
        "conv2d",
        [((2, 4, 8, 7), (6, 2, 3, 3))],
        lambda x, w: nk.conv2d(x, w, stride=2, padding=1, groups=2),
        lambda x, w: F.conv2d(x, w, stride=2, padding=1, groups=2),
        id="conv2d_stride_pad_groups",
    ),
    OpSpec(
        "conv2d",
        [((1, 2, 9, 9), (3, 2, 3, 3), (3,))],
        lambda x, w, b: nk.conv2d(x, w, b, dilation=2, padding=(2, 1), stride=(1, 2)),
        lambda x, w, b: F.conv2d(x, w, b, dilation=2, padding=(2, 1), stride=(1, 2)),
        id="conv2d_dilation",
    ),
    # fused bias + ReLU + max-pool (groups 1: the fused kernel, including few-channel inputs and, with 8 channels, the
    # compiled backward from each window's winner; groups 2: composed)
    OpSpec(
        "conv2d",
        [((2, 3, 9, 8), (4, 3, 3, 3), (4,)), ((3, 1, 10, 11), (5, 1, 3, 3), (5,)), ((3, 8, 9, 8), (4, 8, 3, 3), (4,))],
        lambda x, w, b: nk.conv2d(x, w, b, activation="relu", max_pool=2),
        lambda x, w, b: F.max_pool2d(F.relu(F.conv2d(x, w, b)), 2),
        id="conv2d_relu_maxpool",
    ),
    OpSpec(
        "conv2d",
        [((2, 6, 9, 10), (4, 6, 2, 3), (4,))],
        lambda x, w, b: nk.conv2d(x, w, b, stride=(1, 2), padding=1, dilation=(2, 1), max_pool=3),
        lambda x, w, b: F.max_pool2d(F.conv2d(x, w, b, stride=(1, 2), padding=1, dilation=(2, 1)), 3),
        id="conv2d_maxpool3_stride_pad_dilation",
    ),
    OpSpec(
        "conv2d",
        [((2, 3, 7, 6), (4, 3, 3, 2), (4,)), ((2, 8, 6, 6), (4, 8, 3, 3), (4,))],
        lambda x, w, b: nk.conv2d(x, w, b, padding=1, activation="relu"),
        lambda x, w, b: F.relu(F.conv2d(x, w, b, padding=1)),
        id="conv2d_relu",
    ),
    OpSpec(
        "conv2d",
        [((2, 4, 8, 7), (6, 2, 3, 3))],
        lambda x, w: nk.conv2d(x, w, groups=2, activation="relu", max_pool=2),
        lambda x, w: F.max_pool2d(F.relu(F.conv2d(x, w, groups=2)), 2),
        id="conv2d_groups_relu_maxpool",
    ),
    OpSpec(
        "conv1d",
        [((2, 3, 9), (4, 3, 3), (4,)), ((1, 4, 6), (4, 1, 2), (4,))],
        lambda x, w, b: nk.conv1d(x, w, b, padding=1, groups=x.shape[1] // w.shape[1]),
        lambda x, w, b: F.conv1d(x, w, b, padding=1, groups=x.shape[1] // w.shape[1]),
    ),
    OpSpec(
        "max_pool2d", [((2, 3, 6, 8),), ((1, 2, 7, 5),)], lambda x: nk.max_pool2d(x, 2), lambda x: F.max_pool2d(x, 2)
    ),
    OpSpec(
        "max_pool2d",
        [((2, 3, 7, 8),)],
        lambda x: nk.max_pool2d(x, 3, stride=2, padding=1),
        lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
        id="max_pool2d_overlap",
    ),
    OpSpec(
        "max_pool2d",
        [((2, 3, 6, 6),)],
        lambda x: nk.max_pool2d(nk.relu(x), 2),
        lambda x: F.max_pool2d(F.relu(x), 2),
        domain="away",
        gradcheck=False,
        id="max_pool2d_ties_after_relu",
    ),
    OpSpec(
        "max_pool2d",
        [((2, 3, 7, 8),), ((1, 2, 5, 5),)],
        lambda x: nk.max_pool2d(x, (2, 3), stride=(3, 2)),
        lambda x: F.max_pool2d(x, (2, 3), stride=(3, 2)),
        id="max_pool2d_gaps",
    ),
    OpSpec(
        "max_pool2d",
        [((2, 3, 4, 5),)],
        lambda x: nk.max_pool2d(x, 1),
        lambda x: F.max_pool2d(x, 1),
        id="max_pool2d_1x1",
    ),
    OpSpec(
        "avg_pool2d",
        [((2, 3, 7, 8),)],
        lambda x: nk.avg_pool2d(x, (2, 3), stride=(3, 2)),
        lambda x: F.avg_pool2d(x, (2, 3), stride=(3, 2)),
        id="avg_pool2d_gaps",
    ),
    OpSpec(
        "avg_pool2d", [((2, 3, 6, 8),), ((1, 2, 7, 5),)], lambda x: nk.avg_pool2d(x, 2), lambda x: F.avg_pool2d(x, 2)
    ),
    OpSpec(
        "avg_pool2d",
        [((2, 3, 7, 8),)],
        lambda x: nk.avg_pool2d(x, 3, stride=2, padding=1),
        lambda x: F.avg_pool2d(x, 3, stride=2, padding=1),
        id="avg_pool2d_overlap",
    ),
    # fused loss
    OpSpec(
        "softmax_cross_entropy",
        [((5, 5),)],
        lambda a: nk.softmax_cross_entropy(a, _lab),
        lambda a: F.cross_entropy(a, T(_lab)),
    ),
    OpSpec(
        "softmax_cross_entropy",
        [((5, 5),)],
        lambda a: nk.softmax_cross_entropy(a, _lab, label_smoothing=0.2),
        lambda a: F.cross_entropy(a, T(_lab), label_smoothing=0.2),
        id="softmax_cross_entropy_smoothing",
    ),
    OpSpec(
        "softmax_cross_entropy",
        [((5, 5),)],
        lambda a: nk.softmax_cross_entropy(a, _probs.astype(a.dtype)),
        lambda a: F.cross_entropy(a, T(_probs).to(a.dtype)),
        id="softmax_cross_entropy_probs",
    ),
    OpSpec(
        "softmax_cross_entropy",
        [((5, 5),)],
        lambda a: nk.softmax_cross_entropy(a, _probs.astype(a.dtype), label_smoothing=0.1),
        lambda a: F.cross_entropy(a, T(_probs).to(a.dtype), label_smoothing=0.1),
        id="softmax_cross_entropy_probs_smooth",
    ),
    OpSpec(
        "softmax_cross_entropy",
        [((5, 5),)],
        lambda a: nk.softmax_cross_entropy(a, _lab, reduction="sum", label_smoothing=0.1),
        lambda a: F.cross_entropy(a, T(_lab), reduction="sum", label_smoothing=0.1),
        id="softmax_cross_entropy_sum",
    ),
    OpSpec(
        "softmax_cross_entropy",
        [((5, 5),)],
        lambda a: nk.softmax_cross_entropy(a, _lab, reduction="none", label_smoothing=0.1),
        lambda a: F.cross_entropy(a, T(_lab), reduction="none", label_smoothing=0.1),
        id="softmax_cross_entropy_none",
    ),
    # normalisation and lookup
    OpSpec(
        "batch_norm",
        [((6, 3), (3,), (3,)), ((4, 3, 5), (3,), (3,)), ((2, 3, 2, 2), (3,), (3,))],
        lambda x, w, b: nk.batch_norm(x, w, b, _rm.copy(), _rv.copy(), training=True),
        lambda x, w, b: F.batch_norm(x, T(_rm), T(_rv), w, b, training=True),
    ),
    OpSpec(
        "batch_norm",
        [((5, 3), (3,), (3,)), ((2, 3, 2, 2), (3,), (3,))],
        lambda x, w, b: nk.batch_norm(x, w, b, _rm, _rv, training=False),
        lambda x, w, b: F.batch_norm(x, T(_rm), T(_rv), w, b, training=False),
        id="batch_norm_eval",
    ),
    OpSpec(
        "batch_norm",
        [((4, 3, 2),)],
        lambda x: nk.batch_norm(x, None, None, _rm.copy(), _rv.copy(), training=True),
        lambda x: F.batch_norm(x, T(_rm), T(_rv), training=True),
        id="batch_norm_no_affine",
    ),
    OpSpec(
        "batch_norm",
        [((4, 3), (3,), (3,))],
        lambda x, w, b: nk.batch_norm(x, w, b, training=True),
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        grad=(1, 2),
        id="batch_norm_params_only",
    ),
    OpSpec(
        "layer_norm",
        [((4, 5), (5,), (5,)), ((2, 3, 5), (5,), (5,))],
        lambda x, w, b: nk.layer_norm(x, 5, w, b),
        lambda x, w, b: F.layer_norm(x, (5,), w, b),
    ),
    OpSpec(
        "layer_norm",
        [((2, 3, 4), (3, 4), (3, 4))],
        lambda x, w, b: nk.layer_norm(x, (3, 4), w, b),
        lambda x, w, b: F.layer_norm(x, (3, 4), w, b),
        id="layer_norm_2d",
    ),
    OpSpec(
        "layer_norm",
        [((3, 6),)],
        lambda x: nk.layer_norm(x, 6),
        lambda x: F.layer_norm(x, (6,)),
        id="layer_norm_no_affine",
    ),
    OpSpec(
        "layer_norm",
        [((4, 5), (5,), (5,))],
        lambda x, w, b: nk.layer_norm(x, 5, w, b),
        lambda x, w, b: F.layer_norm(x, (5,), w, b),
        grad=(1, 2),
        id="layer_norm_params_only",
    ),
    OpSpec(
        "embedding", [((5, 4),), ((4, 2),)], lambda w: nk.embedding(_emb_idx, w), lambda w: F.embedding(T(_emb_idx), w)
    ),
    OpSpec(
        "embedding",
        [((5, 3),)],
        lambda w: nk.embedding(_emb_idx[0, 1], w),
        lambda w: F.embedding(T(_emb_idx[0, 1]), w),
        id="embedding_0d_index",
    ),
    # pooling over time with a length mask (padding never contributes, an empty row pools to zeros)
    OpSpec(
        "masked_mean_pool",
        [((3, 5, 4),), ((2, 4, 3),)],
        lambda x: nk.masked_mean_pool(x, _len_of(x)),
        _torch_mean_pool,
    ),
    OpSpec(
        "masked_max_pool",
        [((3, 5, 4),), ((2, 4, 3),)],
        lambda x: nk.masked_max_pool(x, _len_of(x)),
        _torch_max_pool,
    ),
    # the padding row is looked up but gets no gradient, so central differences would disagree: torch only
    OpSpec(
        "embedding",
        [((5, 3),)],
        lambda w: nk.embedding(_emb_idx, w, padding_idx=3),
        lambda w: F.embedding(T(_emb_idx), w, padding_idx=3),
        gradcheck=False,
        id="embedding_padding",
    ),
]


# -- recurrent ops: one direction of one layer each, against the same weights in torch's nn.RNN/LSTM/GRU (a
# bidirectional torch module whose forward half is left out gives the reverse direction); outputs, h_n (and c_n)
# are compared flattened into one tensor
_BS = (3, 2, 2, 1)  # packed batch_sizes: three sequences of lengths 4, 3 and 1
_LENS = np.array([2, 4, 1])  # padded (3, 4) batch: distinct lengths, so the packed order is torch's too


def _nk_rnn(op, reverse=False, packed=False, **kw):
    def ours(x, w_ih, w_hh, b_ih, b_hh, *states):
        sizes = _BS if packed else None
        out = getattr(nk, op)(x, w_ih, w_hh, b_ih, b_hh, *states, batch_sizes=sizes, reverse=reverse, **kw)
        return nk.concatenate([t.reshape(-1) for t in out], axis=0)

    return ours


def _torch_rnn(op, reverse=False, packed=False, **kw):
    def ref(x, w_ih, w_hh, b_ih, b_hh, *states):
        hid = w_hh.shape[1]
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[op]
        m = cls(w_ih.shape[1], hid, bidirectional=reverse, dtype=x.dtype, **kw)
        sfx = "_reverse" if reverse else ""
        names = [f"weight_ih_l0{sfx}", f"weight_hh_l0{sfx}", f"bias_ih_l0{sfx}", f"bias_hh_l0{sfx}"]
        batch = _BS[0] if packed else x.shape[1]
        given = list(states) + [torch.zeros(batch, hid, dtype=x.dtype)] * (1 + (op == "lstm") - len(states))
        hx = [torch.stack([torch.zeros_like(s), s]) if reverse else s[None] for s in given]
        inp = torch.nn.utils.rnn.PackedSequence(x, torch.tensor(_BS)) if packed else x
        hx = tuple(hx) if op == "lstm" else hx[0]
        out, hn = torch.func.functional_call(m, dict(zip(names, (w_ih, w_hh, b_ih, b_hh))), (inp, hx))
        out = out.data if packed else out
        parts = [out[..., hid:] if reverse else out] + [h[-1] for h in (hn if op == "lstm" else (hn,))]
        return torch.cat([p.reshape(-1) for p in parts])

    return ref


def _rnn_shapes(gates, with_states, n_states=1, feat=2, hid=3):
    """(time-major case, packed case) input shapes: x, w_ih, w_hh, b_ih, b_hh and the initial states."""
    w = [(gates * hid, feat), (gates * hid, hid), (gates * hid,), (gates * hid,)]
    tm = [(3, 2, feat), *w] + [(2, hid)] * (n_states if with_states else 0)
    packed = [(sum(_BS), feat), *w] + [(_BS[0], hid)] * (n_states if with_states else 0)
    return tuple(tm), tuple(packed)


def _rnn_specs(op, gates, n_states=1, **kw):
    """Four lines per op: time-major and packed input, forward and reverse direction, with and without states."""
    tm_h, packed_h = _rnn_shapes(gates, True, n_states)
    tm, packed = _rnn_shapes(gates, False, n_states)
    name = op if not kw else f"{op}_{kw['nonlinearity']}"
    specs = []
    for reverse, packed_input, cases in (
        (0, 0, [tm_h, tm]),
        (1, 0, [tm_h]),
        (0, 1, [packed_h, packed]),
        (1, 1, [packed_h]),
    ):
        flags = {"reverse": bool(reverse), "packed": bool(packed_input)}
        sid = name + "_packed" * packed_input + "_reverse" * reverse
        specs.append(OpSpec(op, cases, _nk_rnn(op, **flags, **kw), _torch_rnn(op, **flags, **kw), id=sid))
    return specs


def _padded(x, lens, batch_first=True):
    return torch.nn.utils.rnn.pack_padded_sequence(x, T(lens), batch_first=batch_first, enforce_sorted=False).data


def _unpadded(d, lens, batch_first=True):
    lay = nk.ops.SequenceLayout(lens, 4)
    seq = torch.nn.utils.rnn.PackedSequence(
        d, T(np.array(lay.batch_sizes)), T(lay.sorted_indices), T(lay.unsorted_indices)
    )
    return torch.nn.utils.rnn.pad_packed_sequence(seq, batch_first=batch_first, total_length=4)[0]


OPS += [
    *_rnn_specs("rnn", 1, nonlinearity="tanh"),
    *_rnn_specs("rnn", 1, nonlinearity="relu"),
    *_rnn_specs("lstm", 4, n_states=2),
    *_rnn_specs("gru", 3),
    OpSpec(
        "pack_sequence",
        [((3, 4, 2),), ((3, 4),)],
        lambda x: nk.pack_sequence(x, _LENS) * 2,
        lambda x: _padded(x, _LENS) * 2,
    ),
    OpSpec(
        "pack_sequence",
        [((4, 3, 2),)],
        lambda x: nk.pack_sequence(x, _LENS, batch_first=False) * 2,
        lambda x: _padded(x, _LENS, batch_first=False) * 2,
        id="pack_sequence_time_major",
    ),
    OpSpec(
        "pack_sequence",
        [((3, 4, 2),)],
        lambda x: nk.pack_sequence(x, None) * 2,
        lambda x: _padded(x, np.array([4, 4, 4])) * 2,
        id="pack_sequence_full_length",
    ),
    OpSpec(
        "unpack_sequence",
        [((7, 2),), ((7,),)],
        lambda d: nk.unpack_sequence(d, nk.ops.SequenceLayout(_LENS, 4)),
        lambda d: _unpadded(d, _LENS),
    ),
    OpSpec(
        "unpack_sequence",
        [((7, 2),)],
        lambda d: nk.unpack_sequence(d, nk.ops.SequenceLayout(_LENS, 4), batch_first=False),
        lambda d: _unpadded(d, _LENS, batch_first=False),
        id="unpack_sequence_time_major",
    ),
    OpSpec(
        "unpack_sequence",
        [((12, 2),)],
        lambda d: nk.unpack_sequence(d, nk.ops.SequenceLayout(None, 4, batch=3)),
        lambda d: _unpadded(d, np.array([4, 4, 4])),
        id="unpack_sequence_full_length",
    ),
]


@pytest.mark.parametrize("spec", OPS, ids=[s.id for s in OPS])
def test_op(spec):
    check_op(spec)


COMPARISONS = [
    ("eq", lambda a, b: a == b, lambda a, b: a == b),
    ("ne", lambda a, b: a != b, lambda a, b: a != b),
    ("lt", lambda a, b: a < b, lambda a, b: a < b),
    ("le", lambda a, b: a <= b, lambda a, b: a <= b),
    ("gt", lambda a, b: a > b, lambda a, b: a > b),
    ("ge", lambda a, b: a >= b, lambda a, b: a >= b),
    ("argmax", lambda a, b: nk.argmax(a + b, axis=-1), lambda a, b: torch.argmax(a + b, dim=-1)),
    ("argmin", lambda a, b: nk.argmin(a + b), lambda a, b: torch.argmin(a + b)),
]


@pytest.mark.parametrize("name,ours,ref", COMPARISONS, ids=[c[0] for c in COMPARISONS])
def test_non_differentiable(name, ours, ref):
    rng = np.random.default_rng(0)
    for sa, sb in BINARY:
        a = np.round(rng.standard_normal(sa), 1).astype(np.float32)  # rounding makes ties happen
        b = np.round(rng.standard_normal(sb), 1).astype(np.float32)
        out = ours(nk.Tensor(a, requires_grad=True), nk.Tensor(b))
        assert not out.requires_grad and out.is_leaf
        np.testing.assert_array_equal(out.data, ref(torch.tensor(a), torch.tensor(b)).numpy())


def test_every_differentiable_op_has_a_line():
    covered = {s.name for s in OPS}
    missing = sorted(set(DIFFERENTIABLE) - covered)
    assert not missing, f"ops without a line in tests/test_ops.py: {missing}"
    unknown = sorted(covered - set(DIFFERENTIABLE))
    assert not unknown, f"lines naming ops that are not registered: {unknown}"


def test_every_non_differentiable_op_has_a_line():
    covered = {c[0] for c in COMPARISONS}
    assert covered == set(NON_DIFFERENTIABLE), sorted(set(NON_DIFFERENTIABLE) ^ covered)


def test_each_op_checks_several_shapes_or_variants():
    for name in DIFFERENTIABLE:
        cases = sum(len(s.shapes) for s in OPS if s.name == name)
        assert cases >= 2, f"{name}: only {cases} case(s); add shapes (broadcasting, size-1 axes, 0-d)"
