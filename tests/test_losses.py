"""Losses: forward and input gradient against torch.nn.functional for every loss and reduction, float64 gradchecks,
error messages, modules and the name registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import neuronkit as nk
from neuronkit.nn import losses as L
from neuronkit.nn.losses import (
    LOSSES,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    get_loss,
    hinge_loss,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)

TOL = {
    "float32": {"fwd": {"atol": 1e-6, "rtol": 1e-4}, "grad": {"atol": 1e-6, "rtol": 1e-4}},
    "float64": {"fwd": {"atol": 1e-6, "rtol": 1e-5}, "grad": {"atol": 1e-6, "rtol": 1e-5}},
}
REDUCTIONS = ("mean", "sum", "none")
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss:UserWarning")


# -- input makers: each returns (x, c): x the differentiated input, c a dict of the other arrays ----------------------
def _regression(shape):
    def make(rng):
        return rng.standard_normal(shape) * 1.5, {"t": rng.standard_normal(shape)}

    return make


def _bce(shape, weight=False):
    def make(rng):
        c = {"t": rng.uniform(0, 1, shape)}
        c["t"][..., 0] = np.round(c["t"][..., 0])  # some hard 0/1 labels as well as soft ones
        if weight:
            c["w"] = rng.uniform(0.2, 2.0, shape[-1:])
        return rng.uniform(0.05, 0.95, shape), c

    return make


def _logits_bin(shape, weight=False, pos_weight=False):
    def make(rng):
        c = {"t": rng.uniform(0, 1, shape)}
        if weight:
            c["w"] = rng.uniform(0.2, 2.0, shape)
        if pos_weight:
            c["pw"] = rng.uniform(0.2, 3.0, shape[-1:])
        x = rng.standard_normal(shape) * 4
        x.flat[0] = 30.0  # far into the saturated region: the stable formula must hold there
        return x, c

    return make


def _classes(n, c, weight=False, ignore=None, probs=False, log_probs=False):
    def make(rng):
        x = rng.standard_normal((n, c)) * 2
        if log_probs:
            x = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
        if probs:
            p = np.exp(rng.standard_normal((n, c)))
            t = p / p.sum(axis=1, keepdims=True)
        else:
            t = rng.integers(0, c, n)
            if ignore is not None:
                t[::3] = ignore
        out = {"t": t}
        if weight:
            out["w"] = rng.uniform(0.2, 2.0, c)
        return x, out

    return make


def _kl(shape, log_target=False):
    def make(rng):
        z = rng.standard_normal(shape)
        x = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        p = np.exp(rng.standard_normal(shape))
        p.flat[1] = 0.0  # 0 log 0 = 0
        p = p / p.sum(axis=-1, keepdims=True)
        return x, {"t": np.log(p + 1e-3) if log_target else p}

    return make


# One case: (id, maker, ours(x, c, reduction), ref(x, c, reduction)); ours gets c as arrays, ref as torch tensors.
def nkt(a):
    return nk.Tensor(a)


CASES = [
    (
        "mse",
        _regression((5, 3)),
        lambda x, c, r: mse_loss(x, nkt(c["t"]), r),
        lambda x, c, r: F.mse_loss(x, c["t"], reduction=r),
    ),
    (
        "mse_1d_array_target",
        _regression((7,)),
        lambda x, c, r: mse_loss(x, c["t"], reduction=r),
        lambda x, c, r: F.mse_loss(x, c["t"], reduction=r),
    ),
    (
        "l1",
        _regression((5, 3)),
        lambda x, c, r: l1_loss(x, nkt(c["t"]), r),
        lambda x, c, r: F.l1_loss(x, c["t"], reduction=r),
    ),
    (
        "l1_1d",
        _regression((7,)),
        lambda x, c, r: l1_loss(x, nkt(c["t"]), r),
        lambda x, c, r: F.l1_loss(x, c["t"], reduction=r),
    ),
    (
        "huber",
        _regression((6, 4)),
        lambda x, c, r: huber_loss(x, nkt(c["t"]), r),
        lambda x, c, r: F.huber_loss(x, c["t"], reduction=r),
    ),
    (
        "huber_delta0.5",
        _regression((9,)),
        lambda x, c, r: huber_loss(x, nkt(c["t"]), r, delta=0.5),
        lambda x, c, r: F.huber_loss(x, c["t"], reduction=r, delta=0.5),
    ),
    (
        "smooth_l1",
        _regression((6, 4)),
        lambda x, c, r: smooth_l1_loss(x, nkt(c["t"]), r),
        lambda x, c, r: F.smooth_l1_loss(x, c["t"], reduction=r),
    ),
    (
        "smooth_l1_beta0.5",
        _regression((9,)),
        lambda x, c, r: smooth_l1_loss(x, nkt(c["t"]), r, beta=0.5),
        lambda x, c, r: F.smooth_l1_loss(x, c["t"], reduction=r, beta=0.5),
    ),
    (
        "smooth_l1_beta0",
        _regression((9,)),
        lambda x, c, r: smooth_l1_loss(x, nkt(c["t"]), r, beta=0.0),
        lambda x, c, r: F.smooth_l1_loss(x, c["t"], reduction=r, beta=0.0),
    ),
    (
        "bce",
        _bce((5, 3)),
        lambda x, c, r: binary_cross_entropy(x, nkt(c["t"]), reduction=r),
        lambda x, c, r: F.binary_cross_entropy(x, c["t"], reduction=r),
    ),
    (
        "bce_weight",
        _bce((5, 3), weight=True),
        lambda x, c, r: binary_cross_entropy(x, nkt(c["t"]), nkt(c["w"]), r),
        lambda x, c, r: F.binary_cross_entropy(x, c["t"], c["w"], reduction=r),
    ),
    (
        "bce_logits",
        _logits_bin((5, 3)),
        lambda x, c, r: binary_cross_entropy_with_logits(x, nkt(c["t"]), reduction=r),
        lambda x, c, r: F.binary_cross_entropy_with_logits(x, c["t"], reduction=r),
    ),
    (
        "bce_logits_weights",
        _logits_bin((5, 3), weight=True, pos_weight=True),
        lambda x, c, r: binary_cross_entropy_with_logits(x, nkt(c["t"]), nkt(c["w"]), nkt(c["pw"]), r),
        lambda x, c, r: F.binary_cross_entropy_with_logits(x, c["t"], c["w"], reduction=r, pos_weight=c["pw"]),
    ),
    (
        "ce",
        _classes(6, 4),
        lambda x, c, r: cross_entropy(x, c["t"], reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], reduction=r),
    ),
    (
        "ce_weight",
        _classes(6, 4, weight=True),
        lambda x, c, r: cross_entropy(x, c["t"], nkt(c["w"]), reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], c["w"], reduction=r),
    ),
    (
        "ce_ignore",
        _classes(7, 4, ignore=-100),
        lambda x, c, r: cross_entropy(x, c["t"], reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], reduction=r),
    ),
    (
        "ce_ignore_class",
        _classes(7, 4, ignore=2),
        lambda x, c, r: cross_entropy(x, c["t"], ignore_index=2, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], ignore_index=2, reduction=r),
    ),
    (
        "ce_weight_ignore",
        _classes(7, 4, weight=True, ignore=-1),
        lambda x, c, r: cross_entropy(x, c["t"], nkt(c["w"]), ignore_index=-1, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], c["w"], ignore_index=-1, reduction=r),
    ),
    (
        "ce_smooth",
        _classes(6, 5),
        lambda x, c, r: cross_entropy(x, c["t"], label_smoothing=0.1, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], label_smoothing=0.1, reduction=r),
    ),
    (
        "ce_smooth_ignore",
        _classes(7, 5, ignore=-100),
        lambda x, c, r: cross_entropy(x, c["t"], label_smoothing=0.2, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], label_smoothing=0.2, reduction=r),
    ),
    (
        "ce_smooth_weight",
        _classes(6, 5, weight=True),
        lambda x, c, r: cross_entropy(x, c["t"], nkt(c["w"]), label_smoothing=0.1, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], c["w"], label_smoothing=0.1, reduction=r),
    ),
    (
        "ce_smooth_weight_ignore",
        _classes(8, 5, weight=True, ignore=-100),
        lambda x, c, r: cross_entropy(x, c["t"], nkt(c["w"]), label_smoothing=0.3, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], c["w"], label_smoothing=0.3, reduction=r),
    ),
    (
        "ce_probs",
        _classes(6, 4, probs=True),
        lambda x, c, r: cross_entropy(x, nkt(c["t"]), reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], reduction=r),
    ),
    (
        "ce_probs_smooth",
        _classes(6, 4, probs=True),
        lambda x, c, r: cross_entropy(x, nkt(c["t"]), label_smoothing=0.15, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], label_smoothing=0.15, reduction=r),
    ),
    (
        "ce_probs_weight_smooth",
        _classes(6, 4, probs=True, weight=True),
        lambda x, c, r: cross_entropy(x, nkt(c["t"]), nkt(c["w"]), label_smoothing=0.15, reduction=r),
        lambda x, c, r: F.cross_entropy(x, c["t"], c["w"], label_smoothing=0.15, reduction=r),
    ),
    (
        "nll",
        _classes(6, 4, log_probs=True),
        lambda x, c, r: nll_loss(x, c["t"], reduction=r),
        lambda x, c, r: F.nll_loss(x, c["t"], reduction=r),
    ),
    (
        "nll_weight_ignore",
        _classes(7, 4, weight=True, ignore=-100, log_probs=True),
        lambda x, c, r: nll_loss(x, c["t"], nkt(c["w"]), reduction=r),
        lambda x, c, r: F.nll_loss(x, c["t"], c["w"], reduction=r),
    ),
    (
        "kl_div",
        _kl((4, 5)),
        lambda x, c, r: kl_div(x, nkt(c["t"]), r),
        lambda x, c, r: F.kl_div(x, c["t"], reduction=r),
    ),
    (
        "kl_div_log_target",
        _kl((3, 2, 4), log_target=True),
        lambda x, c, r: kl_div(x, nkt(c["t"]), r, log_target=True),
        lambda x, c, r: F.kl_div(x, c["t"], reduction=r, log_target=True),
    ),
    (
        "hinge",
        _classes(6, 4),
        lambda x, c, r: hinge_loss(x, c["t"], r),
        lambda x, c, r: F.multi_margin_loss(x, c["t"], reduction=r),
    ),
    (
        "hinge_margin_weight",
        _classes(6, 4, weight=True),
        lambda x, c, r: hinge_loss(x, c["t"], r, margin=0.5, weight=nkt(c["w"])),
        lambda x, c, r: F.multi_margin_loss(x, c["t"], margin=0.5, weight=c["w"], reduction=r),
    ),
]
IDS = [case[0] for case in CASES]


def _cast(c, dtype, to):
    out = {}
    for k, v in c.items():
        v = v.astype(dtype) if v.dtype.kind == "f" else v
        out[k] = v if to is None else to(v)
    return out


def _run_case(case, reduction, dtype, seed=0):
    name, make, ours, ref = case
    rng = np.random.default_rng(seed)
    x, c = make(rng)
    x = x.astype(dtype)
    xn = nk.Tensor(x.copy(), requires_grad=True)
    cn = _cast(c, dtype, None)  # ours receive arrays (wrapped by the case) and integer targets as arrays
    out = ours(xn, cn, reduction)
    xt = torch.tensor(x, requires_grad=True)
    ct = _cast(c, dtype, torch.from_numpy)
    ref_out = ref(xt, ct, reduction)
    tol = TOL[dtype]
    assert out.shape == tuple(ref_out.shape), f"{name}/{reduction}: shape {out.shape} != {tuple(ref_out.shape)}"
    assert out.dtype == np.dtype(dtype), f"{name}/{reduction}: dtype {out.dtype} != {dtype}"
    np.testing.assert_allclose(out.data, ref_out.detach().numpy(), err_msg=f"{name}/{reduction} forward", **tol["fwd"])
    g = rng.standard_normal(out.shape).astype(dtype)
    out.backward(g)
    ref_out.backward(torch.from_numpy(g))
    np.testing.assert_allclose(xn.grad.data, xt.grad.numpy(), err_msg=f"{name}/{reduction} grad", **tol["grad"])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_against_torch(case, reduction, dtype):
    _run_case(case, reduction, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [c for c in CASES if c[0].startswith("kl_div")], ids=lambda c: c[0])
def test_kl_div_batchmean(case, dtype):
    _run_case(case, "batchmean", dtype)


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradcheck(case, reduction):
    _, make, ours, _ = case
    x, c = make(np.random.default_rng(1))
    c = _cast(c, "float64", None)
    res = nk.gradcheck(lambda t: ours(t, c, reduction), nk.Tensor(x.astype(np.float64), requires_grad=True))
    assert res.ok, res


def test_cross_entropy_fast_path_uses_fused_op(monkeypatch):
    calls = []

    def spy(fused):
        def call(*args, **kwargs):
            calls.append(kwargs)
            return fused(*args, **kwargs)

        return call

    # class-index targets go straight to the fused op's node (targets are range-checked once), probabilities through
    # the public op, which checks them

    class SpyNode:
        apply = staticmethod(spy(nk.ops.nn.CrossEntropy.apply))

    monkeypatch.setattr(L.ops, "softmax_cross_entropy", spy(nk.ops.softmax_cross_entropy))
    monkeypatch.setattr(L, "CrossEntropy", SpyNode)
    x = nk.Tensor(np.zeros((3, 4), np.float32), requires_grad=True)
    cross_entropy(x, np.array([0, 1, 2]), label_smoothing=0.1)
    cross_entropy(x, np.full((3, 4), 0.25, np.float32))
    assert len(calls) == 2
    cross_entropy(x, np.array([0, -100, 2]))  # an ignored target: composed path
    cross_entropy(x, np.array([0, 1, 2]), weight=np.ones(4, np.float32))  # class weights: composed path
    assert len(calls) == 2


def test_all_ignored_mean_is_nan_like_torch():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    t = np.full(3, -100)
    with np.errstate(invalid="ignore", divide="ignore"):
        ours = cross_entropy(nk.Tensor(x), t).item()
    assert np.isnan(ours) and np.isnan(F.cross_entropy(torch.from_numpy(x), torch.from_numpy(t)).item())


def test_bce_clamps_log_at_minus_100():
    p = nk.Tensor(np.array([0.0, 1.0, 0.0, 1.0], np.float32), requires_grad=True)
    t = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
    out = binary_cross_entropy(p, t, reduction="none")
    ref = F.binary_cross_entropy(torch.from_numpy(p.data.copy()), torch.from_numpy(t), reduction="none")
    np.testing.assert_allclose(out.data, ref.numpy())
    out.sum().backward()
    assert np.isfinite(p.grad.data).all()


def test_bce_with_logits_is_stable_for_huge_logits():
    x = nk.Tensor(np.array([-500.0, 500.0, 80.0], np.float32), requires_grad=True)
    out = binary_cross_entropy_with_logits(x, np.array([1.0, 0.0, 1.0]), reduction="none")
    np.testing.assert_allclose(out.data, [500.0, 500.0, 0.0], atol=1e-6)
    out.sum().backward()
    np.testing.assert_allclose(x.grad.data, [-1.0, 1.0, 0.0], atol=1e-6)


# -- errors -----------------------------------------------------------------------------------------------------------
FUNCS = {
    "mse_loss": (mse_loss, (4, 3)),
    "l1_loss": (l1_loss, (4, 3)),
    "huber_loss": (huber_loss, (4, 3)),
    "smooth_l1_loss": (smooth_l1_loss, (4, 3)),
    "binary_cross_entropy": (binary_cross_entropy, (4, 3)),
    "binary_cross_entropy_with_logits": (binary_cross_entropy_with_logits, (4, 3)),
    "kl_div": (kl_div, (4, 3)),
}


@pytest.mark.parametrize("name", list(FUNCS))
def test_elementwise_errors(name):
    fn, shape = FUNCS[name]
    x = nk.Tensor(np.full(shape, 0.5, np.float32))
    with pytest.raises(ValueError, match=rf"^{name}: input shape \(4, 3\) and target shape \(4,\) differ$"):
        fn(x, np.full(4, 0.5, np.float32))
    with pytest.raises(ValueError, match=rf"^{name}: reduction must be one of .*, got 'avg'$"):
        fn(x, np.full(shape, 0.5, np.float32), reduction="avg")


@pytest.mark.parametrize("fn", [cross_entropy, nll_loss, hinge_loss], ids=lambda f: f.__name__)
def test_class_loss_errors(fn):
    name = fn.__name__
    x = nk.Tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=rf"^{name}: input shape \(4, 3\) and target shape \(5,\) differ"):
        fn(x, np.zeros(5, np.int64))
    with pytest.raises(ValueError, match=rf"^{name}: reduction must be one of .*, got 'avg'$"):
        fn(x, np.zeros(4, np.int64), reduction="avg")
    with pytest.raises(ValueError, match=rf"^{name}: target class 3 is out of range for 3 classes"):
        fn(x, np.array([0, 1, 3, 2]))


def test_other_option_errors():
    x = nk.Tensor(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match="kl_div: reduction must be one of .*'batchmean', got 'avg'"):
        kl_div(x, np.zeros((4, 3)), reduction="avg")
    with pytest.raises(ValueError, match="cross_entropy: input shape \\(4, 3\\) and target shape \\(4, 2\\) differ"):
        cross_entropy(x, np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="cross_entropy: weight must have shape \\(3,\\), got \\(2,\\)"):
        cross_entropy(x, np.zeros(4, np.int64), weight=np.ones(2, np.float32))
    with pytest.raises(ValueError, match="binary_cross_entropy: input values must lie in \\[0, 1\\]"):
        binary_cross_entropy(nk.Tensor(np.array([1.5], np.float32)), np.array([1.0]))
    with pytest.raises(ValueError, match="huber_loss: delta must be positive, got 0"):
        huber_loss(x, np.zeros((4, 3)), delta=0)
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing must be in \\[0, 1\\], got 1.5"):
        cross_entropy(x, np.zeros(4, np.int64), label_smoothing=1.5)
    with pytest.raises(ValueError, match="MSELoss: reduction must be one of .*, got 'avg'"):
        L.MSELoss(reduction="avg")


# -- modules and registry ---------------------------------------------------------------------------------------------
MODULE_CASES = [
    (L.MSELoss(), lambda x, t: mse_loss(x, t), "reg"),
    (L.L1Loss(reduction="sum"), lambda x, t: l1_loss(x, t, "sum"), "reg"),
    (L.HuberLoss(delta=0.5), lambda x, t: huber_loss(x, t, delta=0.5), "reg"),
    (L.SmoothL1Loss(beta=0.5, reduction="none"), lambda x, t: smooth_l1_loss(x, t, "none", beta=0.5), "reg"),
    (L.BCELoss(weight=np.full(3, 2.0, np.float32)), lambda x, t: binary_cross_entropy(x, t, np.full(3, 2.0)), "prob"),
    (
        L.BCEWithLogitsLoss(pos_weight=np.full(3, 2.0, np.float32)),
        lambda x, t: binary_cross_entropy_with_logits(x, t, pos_weight=np.full(3, 2.0, np.float32)),
        "reg",
    ),
    (
        L.CrossEntropyLoss(label_smoothing=0.1, ignore_index=0),
        lambda x, t: cross_entropy(x, t, ignore_index=0, label_smoothing=0.1),
        "cls",
    ),
    (
        L.NLLLoss(weight=np.arange(1, 4, dtype=np.float32)),
        lambda x, t: nll_loss(x, t, np.arange(1, 4, dtype=np.float32)),
        "cls",
    ),
    (L.KLDivLoss(reduction="batchmean"), lambda x, t: kl_div(x, t, "batchmean"), "prob"),
    (L.HingeLoss(margin=2.0), lambda x, t: hinge_loss(x, t, margin=2.0), "cls"),
]


def _module_id(v):
    return type(v).__name__ if isinstance(v, L.Module) else ""


@pytest.mark.parametrize("module,fn,kind", MODULE_CASES, ids=_module_id)
def test_modules_call_their_function(module, fn, kind):
    rng = np.random.default_rng(3)
    x = rng.uniform(0.1, 0.9, (5, 3)).astype(np.float32)
    if kind == "cls":
        t = rng.integers(0, 3, 5)
    else:
        t = rng.uniform(0, 1, (5, 3)).astype(np.float32)
    assert isinstance(module, L.Module)
    np.testing.assert_allclose(module(nk.Tensor(x), t).data, fn(nk.Tensor(x), t).data, rtol=1e-6)


def test_get_loss():
    assert set(LOSSES) == {
        "mse",
        "l1",
        "huber",
        "smooth_l1",
        "bce",
        "bce_with_logits",
        "cross_entropy",
        "nll",
        "kl_div",
        "hinge",
    }
    for name, cls in LOSSES.items():
        a, b = get_loss(name), get_loss(name)
        assert type(a) is cls and a is not b
    m = get_loss("cross_entropy", label_smoothing=0.2, reduction="sum")
    assert m.label_smoothing == 0.2 and m.reduction == "sum"
    assert get_loss("Huber", delta=2.0).delta == 2.0
    mod = L.MSELoss()
    assert get_loss(mod) is mod
    with pytest.raises(ValueError, match="get_loss: unknown loss 'msee'; known names: bce, bce_with_logits, .*mse"):
        get_loss("msee")
    with pytest.raises(TypeError):
        get_loss("mse", delta=1.0)


def test_losses_never_import_numpy_or_torch():
    import inspect

    src = inspect.getsource(L)
    assert "import numpy" not in src and "import torch" not in src
