"""Optimizers, schedules and clipping against torch.optim (float64 trajectories to 1e-6); Lion against a NumPy
implementation of the paper's update; exact resume through state_dict; validation messages."""

import json
import math

import numpy as np
import pytest
import torch

import neuronkit as nk
import neuronkit.optim as optim

RNG = np.random.default_rng(0)
X = RNG.standard_normal((16, 3))
Y = RNG.standard_normal((16, 2))
W0 = RNG.standard_normal((3, 2))
B0 = RNG.standard_normal(2)


def nk_params():
    return [nk.tensor(W0.copy(), requires_grad=True), nk.tensor(B0.copy(), requires_grad=True)]


def nk_loss(params):
    w, b = params
    return (((nk.tensor(X) @ w + b - nk.tensor(Y)) ** 2).mean() + 0.1 * (w**4).sum()).sum()


def torch_params():
    return [torch.tensor(W0.copy(), requires_grad=True), torch.tensor(B0.copy(), requires_grad=True)]


def torch_loss(params):
    w, b = params
    return ((torch.tensor(X) @ w + b - torch.tensor(Y)) ** 2).mean() + 0.1 * (w**4).sum()


def run_nk(opt_cls, kwargs, steps=20, params=None, groups=None):
    params = params or nk_params()
    opt = opt_cls(groups(params) if groups else params, **kwargs)
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        nk_loss(params).backward()
        opt.step()
        traj.append([p.data.copy() for p in params])
    return traj, opt, params


def run_torch(opt_cls, kwargs, steps=20, groups=None):
    params = torch_params()
    opt = opt_cls(groups(params) if groups else params, **kwargs)
    traj = []
    for _ in range(steps):
        opt.zero_grad()
        torch_loss(params).backward()
        opt.step()
        traj.append([p.detach().numpy().copy() for p in params])
    return traj


def assert_traj(ours, ref):
    for i, (a, b) in enumerate(zip(ours, ref)):
        for pa, pb in zip(a, b):
            np.testing.assert_allclose(pa, pb, rtol=1e-6, atol=1e-6, err_msg=f"step {i + 1}")


CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.05)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), weight_decay=0.1)),
    ("Adam", dict(lr=0.05, amsgrad=True, eps=1e-6)),
    ("AdamW", dict(lr=0.05)),
    ("AdamW", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, alpha=0.9)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("NAdam", dict(lr=0.02)),
    ("NAdam", dict(lr=0.02, weight_decay=0.1, momentum_decay=8e-3)),
    ("NAdam", dict(lr=0.02, weight_decay=0.1, decoupled_weight_decay=True)),
]


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_follows_torch(name, kwargs):
    ours, _, _ = run_nk(getattr(optim, name), kwargs)
    ref = run_torch(getattr(torch.optim, name), kwargs)
    assert_traj(ours, ref)


def test_param_groups_with_different_lrs():
    kwargs = dict(lr=0.05, momentum=0.9)
    ours, opt, _ = run_nk(optim.SGD, kwargs, groups=lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.2}])
    ref = run_torch(torch.optim.SGD, kwargs, groups=lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": 0.2}])
    assert_traj(ours, ref)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.2]
    ours, _, _ = run_nk(
        optim.Adam, {"lr": 0.01}, groups=lambda ps: [{"params": [ps[0]], "betas": (0.5, 0.9)}, {"params": [ps[1]]}]
    )
    ref = run_torch(
        torch.optim.Adam,
        {"lr": 0.01},
        groups=lambda ps: [{"params": [ps[0]], "betas": (0.5, 0.9)}, {"params": [ps[1]]}],
    )
    assert_traj(ours, ref)


def lion_numpy(steps, lr, betas, wd):
    params = [W0.copy(), B0.copy()]
    ms = [np.zeros_like(p) for p in params]
    traj = []
    for _ in range(steps):
        ps = [nk.tensor(p, requires_grad=True) for p in params]
        nk_loss(ps).backward()
        for p, g, m in zip(params, [q.grad.data for q in ps], ms):
            p *= 1 - lr * wd
            p -= lr * np.sign(betas[0] * m + (1 - betas[0]) * g)
            m[...] = betas[1] * m + (1 - betas[1]) * g
        traj.append([p.copy() for p in params])
    return traj


@pytest.mark.parametrize("kwargs", [dict(lr=0.01), dict(lr=0.02, betas=(0.95, 0.98), weight_decay=0.5)])
def test_lion_matches_paper_update(kwargs):
    ours, opt, _ = run_nk(optim.Lion, kwargs)
    ref = lion_numpy(20, kwargs["lr"], kwargs.get("betas", (0.9, 0.99)), kwargs.get("weight_decay", 0.0))
    assert_traj(ours, ref)
    assert opt.defaults["betas"] == kwargs.get("betas", (0.9, 0.99))


def test_skips_params_without_grad_and_zero_grad():
    a, b = nk_params()
    c = nk.tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([a, b, c], lr=0.1)
    nk_loss([a, b]).backward()
    opt.step()
    np.testing.assert_array_equal(c.data, np.ones(3))
    assert c not in opt.state and a in opt.state
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.data, 0)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_leaves_grad_untouched_and_keeps_dtype():
    ps = [nk.tensor(W0.astype(np.float32), requires_grad=True), nk.tensor(B0.astype(np.float32), requires_grad=True)]
    for cls, kw in [
        (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
        (optim.Adam, dict(weight_decay=0.1)),
        (optim.RMSprop, dict(centered=True, momentum=0.9, weight_decay=0.1)),
        (optim.Adagrad, {}),
        (optim.NAdam, dict(weight_decay=0.1)),
        (optim.Lion, {}),
    ]:
        opt = cls(ps, **kw)
        for _ in range(2):
            opt.zero_grad()
            nk_loss(ps).backward()
            g = [p.grad.data.copy() for p in ps]
            opt.step()
            for p, gg in zip(ps, g):
                np.testing.assert_array_equal(p.grad.data, gg)
                assert p.data.dtype == np.float32
        for s in opt.state.values():
            for v in s.values():
                assert not isinstance(v, np.ndarray) or v.dtype == np.float32


def f32_params():
    return [nk.tensor(W0.astype(np.float32), requires_grad=True), nk.tensor(B0.astype(np.float32), requires_grad=True)]


STEP_AND_ZERO = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, weight_decay=0.1)),  # no momentum: SGD's consuming path must not take the plain branch
    (optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
    (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.05)),
    (optim.Adam, dict(lr=0.05, amsgrad=True, weight_decay=0.1)),
    (optim.AdamW, dict(lr=0.05)),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5)),
    (optim.Adagrad, dict(lr=0.1, weight_decay=0.1)),
    (optim.NAdam, dict(lr=0.05, weight_decay=0.1)),
    (optim.Lion, dict(lr=0.01)),
]


@pytest.mark.parametrize(
    "cls,kwargs", STEP_AND_ZERO, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(STEP_AND_ZERO)]
)
def test_step_and_zero_grad_equals_step_then_zero_grad(cls, kwargs):
    # The fast path (step_and_zero_grad may write an update into a dropped gradient's own array) against the plain
    # one: bit for bit, over several steps, in float32, for every optimizer; the gradients are gone afterwards
    a, b = f32_params(), f32_params()
    opt_a, opt_b = cls(a, **kwargs), cls(b, **kwargs)
    for _ in range(4):
        nk_loss(a).backward()
        opt_a.step()
        opt_a.zero_grad()
        nk_loss(b).backward()
        opt_b.step_and_zero_grad()
        assert all(p.grad is None for p in b)
        for pa, pb in zip(a, b):
            np.testing.assert_array_equal(pa.data, pb.data)


def test_step_and_zero_grad_consumes_only_gradients_nobody_else_holds():
    # Plain SGD may scale a gradient array in place instead of using its scratch buffer, but only when nothing else
    # refers to it: a kept tensor, a kept array or a view of it must come out unchanged, with the same update.
    ref = f32_params()
    opt_ref = optim.SGD(ref, lr=0.1)
    nk_loss(ref).backward()
    expected_grads = [p.grad.data.copy() for p in ref]
    opt_ref.step()

    free = f32_params()
    opt = optim.SGD(free, lr=0.1)
    nk_loss(free).backward()
    opt.step_and_zero_grad()
    assert opt._scratch_buf is None  # every gradient was free: used in place, no scratch needed
    for p, r in zip(free, ref):
        np.testing.assert_array_equal(p.data, r.data)

    for keep in ("tensor", "array", "view"):
        held = f32_params()
        opt = optim.SGD(held, lr=0.1)
        nk_loss(held).backward()
        kept = {"tensor": lambda p: p.grad, "array": lambda p: p.grad.data, "view": lambda p: p.grad.data[:1]}[keep]
        kept = [kept(p) for p in held]
        opt.step_and_zero_grad()
        assert opt._scratch_buf is not None, keep
        for k, g, p, r in zip(kept, expected_grads, held, ref):
            got = k.data if keep == "tensor" else k
            np.testing.assert_array_equal(got, g[:1] if keep == "view" else g)
            np.testing.assert_array_equal(p.data, r.data)


def json_round_trip(sd):
    """Through JSON as a checkpoint would store it: arrays as lists (float64 round-trips exactly)."""
    text = json.dumps(
        {
            "param_groups": sd["param_groups"],
            "state": {
                k: {n: (v.tolist() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                for k, s in sd["state"].items()
            },
        }
    )
    back = json.loads(text)
    back["state"] = {
        k: {n: (np.array(v) if isinstance(v, list) else v) for n, v in s.items()} for k, s in back["state"].items()
    }
    return back


RESUME = [
    (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True)),
    (optim.Adam, dict(lr=0.05, amsgrad=True)),
    (optim.AdamW, dict(lr=0.05)),
    (optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.5)),
    (optim.Adagrad, dict(lr=0.1, lr_decay=0.01)),
    (optim.NAdam, dict(lr=0.02)),
    (optim.Lion, dict(lr=0.01)),
]


@pytest.mark.parametrize("cls,kwargs", RESUME, ids=[c.__name__ for c, _ in RESUME])
@pytest.mark.parametrize("via_json", [False, True])
def test_state_dict_exact_resume(cls, kwargs, via_json):
    groups = lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]], "lr": kwargs["lr"] / 2}]
    full, _, _ = run_nk(cls, kwargs, steps=20, groups=groups)
    first, opt, params = run_nk(cls, kwargs, steps=10, groups=groups)
    sd = opt.state_dict()
    if via_json:
        sd = json_round_trip(sd)
    else:
        json.dumps(sd["param_groups"])
    fresh = [nk.tensor(p.data.copy(), requires_grad=True) for p in params]
    opt2 = cls(groups(fresh), lr=123.0)  # hyperparameters come back from the state dict
    opt2.load_state_dict(sd)
    assert [g["lr"] for g in opt2.param_groups] == [kwargs["lr"], kwargs["lr"] / 2]
    rest, _, _ = run_nk(lambda _p, **_k: opt2, {}, steps=10, params=fresh)
    for a, b in zip(first + rest, full):
        for pa, pb in zip(a, b):
            np.testing.assert_array_equal(pa, pb)


def test_state_dict_is_a_snapshot():
    _, opt, _ = run_nk(optim.Adam, dict(lr=0.05), steps=3)
    sd = opt.state_dict()
    saved = sd["state"][0]["exp_avg"].copy()
    nk_loss(opt.param_groups[0]["params"]).backward()
    opt.step()
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], saved)
    assert sd["state"][0]["step"] == 3
    assert sd["param_groups"][0]["params"] == [0, 1]


def test_load_state_dict_validates():
    _, opt, _ = run_nk(optim.Adam, dict(lr=0.05), steps=2)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match=r"expected 1 parameter group\(s\), the state dict has 2"):
        optim.Adam(nk_params()).load_state_dict({"param_groups": sd["param_groups"] * 2, "state": {}})
    with pytest.raises(ValueError, match=r"group 0 expected 1 parameter\(s\), the state dict has 2"):
        optim.Adam(nk_params()[:1]).load_state_dict(sd)
    bad = {"param_groups": sd["param_groups"], "state": {**sd["state"], 1: {**sd["state"][1]}}}
    bad["state"][1]["exp_avg_sq"] = np.zeros(5)
    with pytest.raises(ValueError, match=r"'exp_avg_sq' of parameter 1 expected shape \(2,\), got \(5,\)"):
        optim.Adam(nk_params()).load_state_dict(bad)
    partial = {k: v for k, v in sd["state"][0].items() if k != "exp_avg"}
    bad = {"param_groups": sd["param_groups"], "state": {0: partial}}
    with pytest.raises(ValueError, match=r"parameter 0 expected entries \['exp_avg', 'exp_avg_sq', 'step'\], got"):
        optim.Adam(nk_params()).load_state_dict(bad)
    with pytest.raises(ValueError, match="index 7"):
        optim.Adam(nk_params()).load_state_dict({"param_groups": sd["param_groups"], "state": {7: {}}})
    with pytest.raises(ValueError, match="expected a dict with 'param_groups' and 'state'"):
        optim.Adam(nk_params()).load_state_dict({"state": {}})


BAD = [
    (optim.SGD, dict(lr=-0.1), "SGD: lr must be >= 0.0, got -0.1"),
    (optim.SGD, dict(momentum=-0.5), "-0.5"),
    (optim.SGD, dict(weight_decay=-1e-3), "-0.001"),
    (optim.SGD, dict(nesterov=True), "momentum=0.0"),
    (optim.SGD, dict(lr=float("nan")), "nan"),
    (optim.Adam, dict(betas=(1.0, 0.999)), "got 1.0"),
    (optim.Adam, dict(betas=(0.9, -0.2)), "-0.2"),
    (optim.Adam, dict(eps=-1e-8), "-1e-08"),
    (optim.AdamW, dict(weight_decay=-0.3), "-0.3"),
    (optim.Adam, dict(betas=0.9), "got 0.9"),
    (optim.RMSprop, dict(alpha=-0.99), "-0.99"),
    (optim.RMSprop, dict(momentum=-0.1), "-0.1"),
    (optim.Adagrad, dict(lr_decay=-0.5), "-0.5"),
    (optim.Adagrad, dict(initial_accumulator_value=-2.0), "-2.0"),
    (optim.NAdam, dict(momentum_decay=-0.004), "-0.004"),
    (optim.Lion, dict(betas=(0.9, 1.5)), "1.5"),
    (optim.Lion, dict(lr="fast"), "'fast'"),
]


@pytest.mark.parametrize("cls,kwargs,needle", BAD, ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(BAD)])
def test_invalid_hyperparameters(cls, kwargs, needle):
    with pytest.raises(ValueError) as e:
        cls(nk_params(), **kwargs)
    assert needle in str(e.value)
    assert cls.__name__ in str(e.value)


def test_invalid_params():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([])
    with pytest.raises(TypeError, match="single Tensor"):
        optim.SGD(nk_params()[0])
    with pytest.raises(TypeError, match="expected a Tensor"):
        optim.SGD([np.zeros(3)])
    p = nk_params()
    with pytest.raises(ValueError, match="more than once"):
        optim.SGD([{"params": p}, {"params": [p[0]]}])
    with pytest.raises(ValueError, match="SGD: lr must be >= 0.0, got -1"):
        optim.SGD([{"params": [p[0]], "lr": -1}], lr=0.1)
    opt = optim.SGD([p[0]], lr=0.1)
    opt.add_param_group({"params": [p[1]], "lr": 0.5})
    assert opt.param_groups[1]["momentum"] == 0.0 and opt.param_groups[1]["lr"] == 0.5


# -- schedules ---------------------------------------------------------------------------------------------------
def sched_pair(nk_sched, torch_sched, steps=30, opt="SGD", kw=None):
    kw = kw if kw is not None else {"lr": 0.1, "momentum": 0.9}
    p = nk_params()
    tp = torch_params()
    o = getattr(optim, opt)([{"params": [p[0]]}, {"params": [p[1]], "lr": kw["lr"] * 3}], **kw)
    to = getattr(torch.optim, opt)([{"params": [tp[0]]}, {"params": [tp[1]], "lr": kw["lr"] * 3}], **kw)
    s, ts = nk_sched(o), torch_sched(to)
    for i in range(steps + 1):
        np.testing.assert_allclose(s.get_last_lr(), ts.get_last_lr(), rtol=1e-12, atol=1e-15, err_msg=f"step {i}")
        assert [g["lr"] for g in o.param_groups] == s.get_last_lr()
        for g, tg in zip(o.param_groups, to.param_groups):
            for key in ("momentum", "betas"):
                if key in g:
                    np.testing.assert_allclose(g[key], tg[key], rtol=1e-12, err_msg=f"{key} at step {i}")
        if i < steps:
            to.step()
            ts.step()
            s.step()
    return s, o


LS = torch.optim.lr_scheduler
SCHEDULES = [
    ("StepLR", dict(step_size=7)),
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", dict(milestones=[3, 10, 11, 25], gamma=0.3)),
    ("ExponentialLR", dict(gamma=0.9)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=25, eta_min=0.01)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=30)),
    (
        "OneCycleLR",
        dict(
            max_lr=[1.0, 2.0],
            total_steps=31,
            pct_start=0.25,
            anneal_strategy="linear",
            div_factor=10.0,
            final_div_factor=100.0,
        ),
    ),
    ("OneCycleLR", dict(max_lr=0.5, epochs=3, steps_per_epoch=10, three_phase=True, base_momentum=0.8)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=30, cycle_momentum=False)),
]


@pytest.mark.parametrize("name,kwargs", SCHEDULES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SCHEDULES)])
def test_schedules_match_torch(name, kwargs):
    sched_pair(lambda o: getattr(optim, name)(o, **kwargs), lambda o: getattr(LS, name)(o, **kwargs))


def test_onecycle_cycles_adam_beta1_and_stops_at_total():
    kw = dict(max_lr=0.01, total_steps=30)
    s, _ = sched_pair(
        lambda o: optim.OneCycleLR(o, **kw), lambda o: LS.OneCycleLR(o, **kw), opt="Adam", kw={"lr": 1e-3}
    )
    with pytest.raises(ValueError, match="stepped 31 times, but total_steps is 30"):
        s.step()  # like torch: steps 0..total_steps are valid


def test_linear_warmup_cosine_formula():
    p = nk_params()
    opt = optim.SGD([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.3}], lr=0.1)
    s = optim.LinearWarmupCosine(opt, warmup_steps=5, total_steps=25, eta_min=0.001, warmup_start_factor=0.1)
    for t in range(32):
        for base, lr in zip([0.1, 0.3], s.get_last_lr()):
            if t < 5:
                want = base * (0.1 + 0.9 * t / 5)
            elif t <= 25:
                want = 0.001 + (base - 0.001) * (1 + math.cos(math.pi * (t - 5) / 20)) / 2
            else:
                want = 0.001
            assert lr == pytest.approx(want, rel=1e-12, abs=1e-15), t
        s.step()
    s0 = optim.LinearWarmupCosine(optim.SGD(nk_params(), lr=1.0), warmup_steps=4, total_steps=8)
    assert s0.get_last_lr() == [0.0]
    with pytest.raises(ValueError, match="total_steps must be an int > warmup_steps \\(4\\), got 4"):
        optim.LinearWarmupCosine(optim.SGD(nk_params(), lr=1.0), warmup_steps=4, total_steps=4)


def test_scheduler_state_dict_resume():
    o = optim.SGD(nk_params(), lr=0.1, momentum=0.9)
    s = optim.OneCycleLR(o, max_lr=1.0, total_steps=30)
    for _ in range(10):
        s.step()
    sd = json.loads(json.dumps(s.state_dict()))
    osd = o.state_dict()
    want = []
    for _ in range(10):
        s.step()
        want.append(s.get_last_lr())
    o2 = optim.SGD(nk_params(), lr=0.1, momentum=0.9)
    o2.load_state_dict(osd)
    s2 = optim.OneCycleLR(o2, max_lr=1.0, total_steps=30)
    s2.load_state_dict(sd)
    got = []
    for _ in range(10):
        s2.step()
        got.append(s2.get_last_lr())
    assert got == want
    with pytest.raises(ValueError, match="expected keys"):
        s2.load_state_dict({"last_epoch": 3})


def test_schedule_validation():
    o = optim.SGD(nk_params(), lr=0.1)
    with pytest.raises(ValueError, match="StepLR: step_size must be an int >= 1, got 0"):
        optim.StepLR(o, step_size=0)
    with pytest.raises(ValueError, match="-0.5"):
        optim.ExponentialLR(o, gamma=-0.5)
    with pytest.raises(ValueError, match="'sin'"):
        optim.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="sin")
    with pytest.raises(ValueError, match="factor must be in \\[0.0, 1.0\\), got 1.5"):
        optim.ReduceLROnPlateau(o, factor=1.5)
    with pytest.raises(ValueError, match="cycle_momentum"):
        optim.OneCycleLR(optim.Adagrad(nk_params()), max_lr=1.0, total_steps=10)


PLATEAU = [
    dict(),
    dict(patience=2, factor=0.5),
    dict(patience=1, factor=0.5, cooldown=2, min_lr=[0.02, 0.1]),
    dict(mode="max", patience=2, factor=0.3, threshold=0.05),
    dict(mode="min", patience=0, threshold_mode="abs", threshold=0.1, min_lr=0.01),
]


@pytest.mark.parametrize("kwargs", PLATEAU)
def test_reduce_on_plateau_matches_torch(kwargs):
    metrics = [
        1.0,
        0.9,
        0.95,
        0.9,
        0.91,
        0.85,
        0.85,
        0.86,
        0.84,
        0.9,
        0.9,
        0.9,
        0.7,
        0.71,
        0.7,
        0.7,
        0.69,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
        0.8,
    ]
    p, tp = nk_params(), torch_params()
    o = optim.SGD([{"params": [p[0]]}, {"params": [p[1]], "lr": 0.3}], lr=0.1)
    to = torch.optim.SGD([{"params": [tp[0]]}, {"params": [tp[1]], "lr": 0.3}], lr=0.1)
    s, ts = optim.ReduceLROnPlateau(o, **kwargs), LS.ReduceLROnPlateau(to, **kwargs)
    seen = set()
    for i, m in enumerate(metrics):
        to.step()
        ts.step(m)
        s.step(m)
        assert s.get_last_lr() == pytest.approx(ts.get_last_lr(), rel=1e-12), i
        assert [g["lr"] for g in o.param_groups] == s.get_last_lr()
        seen.add(tuple(s.get_last_lr()))
    assert len(seen) > 1 or kwargs == {}


# -- clipping ----------------------------------------------------------------------------------------------------
def grads_pair(scale=1.0):
    rng = np.random.default_rng(3)
    gs = [rng.standard_normal((4, 5)) * scale, rng.standard_normal(7) * scale]
    ps = [nk.tensor(np.zeros_like(g), requires_grad=True) for g in gs]
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in gs]
    for p, tp, g in zip(ps, tps, gs):
        p.grad = nk.tensor(g.copy())
        tp.grad = torch.tensor(g.copy())
    extra = nk.tensor(np.ones(2), requires_grad=True)  # no grad: skipped
    return ps + [extra], tps


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf"), 0.5])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ps, tps = grads_pair()
    total = optim.clip_grad_norm(ps, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    assert total == pytest.approx(ttotal.item(), rel=1e-12)
    for p, tp in zip(ps, tps):
        np.testing.assert_allclose(p.grad.data, tp.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert ps[2].grad is None


def test_clip_grad_norm_nonfinite():
    ps, tps = grads_pair()
    ps[0].grad.data[0, 0] = np.nan
    before = [p.grad.data.copy() for p in ps[:2]]
    with pytest.raises(RuntimeError, match="nan"):
        optim.clip_grad_norm(ps, 1.0, error_if_nonfinite=True)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p.grad.data, b)
    assert math.isnan(optim.clip_grad_norm(ps, 1.0))
    ps, _ = grads_pair()
    ps[1].grad.data[0] = np.inf
    with pytest.raises(RuntimeError, match="inf"):
        optim.clip_grad_norm(ps, 1.0, norm_type=float("inf"), error_if_nonfinite=True)
    assert optim.clip_grad_norm([nk.tensor(np.ones(2), requires_grad=True)], 1.0) == 0.0
    with pytest.raises(ValueError, match="-1"):
        optim.clip_grad_norm(ps, -1)


def test_clip_grad_value_matches_torch():
    ps, tps = grads_pair()
    optim.clip_grad_value(ps, 0.5)
    torch.nn.utils.clip_grad_value_(tps, 0.5)
    for p, tp in zip(ps, tps):
        np.testing.assert_array_equal(p.grad.data, tp.grad.numpy())
    with pytest.raises(ValueError, match="-0.5"):
        optim.clip_grad_value(ps, -0.5)


def test_library_does_not_import_torch():
    import pathlib

    root = pathlib.Path(optim.__file__).parent
    for f in root.glob("*.py"):
        assert "import torch" not in f.read_text(), f


# -- float16 parameters: state and update in float32, rounded back ----------------------------------------------
FLOAT16 = [
    (optim.SGD, dict(lr=0.1)),
    (optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=1e-2, nesterov=True)),
    (optim.Adam, dict(lr=1e-3)),
    (optim.Adam, dict(lr=1e-3, amsgrad=True, weight_decay=1e-2)),
    (optim.AdamW, dict(lr=1e-3)),
    (optim.RMSprop, dict(lr=1e-3)),
    (optim.RMSprop, dict(lr=1e-3, centered=True, momentum=0.9)),
    (optim.Adagrad, dict(lr=1e-2)),
    (optim.NAdam, dict(lr=1e-3)),
    (optim.NAdam, dict(lr=1e-3, weight_decay=1e-2, decoupled_weight_decay=True)),
    (optim.Lion, dict(lr=1e-3, weight_decay=1e-2)),
]


@pytest.mark.parametrize("release", [False, True], ids=["step", "step_and_zero_grad"])
@pytest.mark.parametrize("cls,kwargs", FLOAT16, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(FLOAT16)])
def test_float16_parameters_step_in_float32_and_round_back(cls, kwargs, release):
    # The same optimizer on a float32 copy of the weights (reset to the rounded float16 weights before every step) and
    # float32 copies of the same gradients is the reference: each float16 step must equal it rounded to float16.
    # The gradients are small, so that their squares underflow in float16 (as Adam's eps 1e-8 does).
    rng = np.random.default_rng(0)
    w16 = nk.Tensor((rng.standard_normal((64, 32)) * 0.1).astype(np.float16), requires_grad=True)
    w32 = nk.Tensor(w16.data.astype(np.float32), requires_grad=True)
    opt16, opt32 = cls([w16], **kwargs), cls([w32], **kwargs)
    for _ in range(6):
        g = (rng.standard_normal((64, 32)) * 1e-3).astype(np.float16)
        w32.data[...] = w16.data
        w16.grad, w32.grad = nk.Tensor(g.copy()), nk.Tensor(g.astype(np.float32))
        if release:
            opt16.step_and_zero_grad()
        else:
            opt16.step()
        opt32.step()
        assert w16.data.dtype == np.float16 and np.isfinite(w16.data).all()
        np.testing.assert_array_equal(w16.data, w32.data.astype(np.float16))
    state = opt16.state[w16]
    assert all(v.dtype == np.float32 for v in state.values() if isinstance(v, np.ndarray))
    # exact resume: the float32 state survives state_dict / load_state_dict
    again = cls([nk.Tensor(w16.data.copy(), requires_grad=True)], **kwargs)
    again.load_state_dict(opt16.state_dict())
    loaded = next(iter(again.state.values()))
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            assert loaded[k].dtype == np.float32 and np.array_equal(loaded[k], v)


def test_float16_adam_with_default_eps_keeps_every_weight_finite():
    # the case: one Adam step on a float16 layer made 1,519 of its 2,048 weights non-finite
    layer = nk.nn.Dense(64, 32, dtype="float16", generator=0)
    opt = optim.Adam(layer.parameters())
    x = nk.Tensor(np.random.default_rng(1).standard_normal((16, 64)).astype(np.float16))
    losses = []
    for _ in range(20):
        loss = (layer(x) ** 2).mean()
        losses.append(float(loss.item()))
        loss.backward()
        opt.step()
        opt.zero_grad()
        assert all(np.isfinite(p.data).all() for p in layer.parameters())
    assert losses[-1] < 0.9 * losses[0]  # and it learns


NON_FINITE = [
    (name, cls, key, value)
    for name, cls in optim.OPTIMIZERS.items()
    for key in ("lr", "weight_decay")
    for value in (math.inf, -math.inf, math.nan)
]


@pytest.mark.parametrize("name,cls,key,value", NON_FINITE, ids=[f"{n}-{k}-{v}" for n, _, k, v in NON_FINITE])
def test_non_finite_hyperparameters_are_refused_at_construction(name, cls, key, value):
    with pytest.raises(ValueError) as e:
        cls(nk_params(), **{key: value})
    msg = str(e.value)
    assert msg.startswith(f"{cls.__name__}: {key} must be a finite real number") and msg.endswith(f"got {value!r}")
    with pytest.raises(ValueError, match=f"{key} must be a finite real number"):
        optim.make_optimizer(name, nk_params(), **{key: value})


def test_a_saved_state_with_a_non_finite_learning_rate_is_refused():
    opt = optim.SGD(nk_params(), lr=0.1)
    sd = opt.state_dict()
    sd["param_groups"][0]["lr"] = math.inf
    with pytest.raises(ValueError, match="SGD: lr must be a finite real number >= 0.0, got inf"):
        optim.SGD(nk_params(), lr=0.1).load_state_dict(sd)


def test_make_optimizer_by_name_and_its_mistakes():
    opt = optim.make_optimizer("adamw", nk_params(), lr=0.01)
    assert type(opt) is optim.AdamW and opt.param_groups[0]["lr"] == 0.01
    assert opt.param_groups[0]["weight_decay"] == 1e-2  # not given: the optimizer's own default
    assert optim.make_optimizer(opt, None) is opt
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'; known: \['adagrad', 'adam'"):
        optim.make_optimizer("adamm", nk_params())
    with pytest.raises(ValueError, match="already built"):
        optim.make_optimizer(opt, None, lr=0.1)


@pytest.mark.parametrize("cls", ["Adam", "AdamW", "NAdam"])
def test_adam_flushes_subnormal_moments_and_keeps_pytorchs_weights(cls):
    """Weights whose gradient becomes 0 (as a unit that stops firing): PyTorch shrinks their first moment into
    float32's subnormal range (below 1.2e-38) after some 700 steps and keeps it there; neuronkit sets such moments to
    0, which makes them ~100x cheaper to compute with and changes the weights by nothing measurable."""
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal((64, 70)).astype(np.float32)
    grads = rng.standard_normal((900, 64, 70)).astype(np.float32)
    grads[20:, :32] = 0  # (half the neurons lose their gradient after 20 steps)
    grads[20:, 32:40] *= np.float32(1e-19)  # (and some keep a tiny one: their squares are subnormal)
    ours = nk.Tensor(w0.copy(), requires_grad=True)
    ref = torch.tensor(w0.copy(), requires_grad=True)
    opt = getattr(optim, cls)([ours], lr=1e-3)
    topt = getattr(torch.optim, cls)([ref], lr=1e-3)
    for g in grads:
        ours.grad = nk.Tensor(g)
        ref.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
    tiny = np.finfo(np.float32).tiny
    m_torch = topt.state[ref]["exp_avg"].numpy()
    assert np.count_nonzero((m_torch != 0) & (np.abs(m_torch) < tiny)) > 1000  # (PyTorch's are subnormal)
    m = opt.state[ours]["exp_avg"]
    assert not np.any((m != 0) & (np.abs(m) < tiny)) and np.all(m[:32] == 0)
    np.testing.assert_allclose(ours.data, ref.detach().numpy(), rtol=2e-5, atol=1e-6)
