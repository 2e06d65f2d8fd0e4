"""The compiled kernels (``neuronkit/jit_kernels.py``, Numba, ``pip install neuronkit[fast]``) give the NumPy code's
results bit for bit: ReLU and max pooling, forward and backward, on ties, NaN, signed zeros and infinities, in both
memory layouts and both float dtypes; convolutions (im2col rows, col2im's adds) plain, strided, dilated, grouped and
fused, with the GEMMs in pieces or whole. Numba is a test dependency, so here the kernels must be on; every case also
checks that they actually ran (a comparison of the NumPy code with itself would prove nothing). The ops' comparisons
with PyTorch and float64 central differences (test_ops.py, test_layers_conv.py) run with the kernels on."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import winners as winners_ref

import neuronkit as nk
from neuronkit import backend as B
from neuronkit.ops import activation

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # (the NaN and inf inputs, on purpose)


KERNELS = ("relu_forward", "relu_backward", "max_pool_forward", "max_pool2_forward", "max_pool_backward")
KERNELS += ("im2col_rows", "col2im_add", "planes_max", "plane_grads", "planes_place", "adam_step", "winner_backward")


@pytest.fixture
def calls(monkeypatch):
    """Count the compiled kernels' calls (wrapped on the module the ops reach through ``backend.jit()``)."""
    k = B.jit()
    assert k is not None, "Numba is a test dependency: the compiled kernels must be on here"
    monkeypatch.setattr(activation, "JIT_MIN", 4096)  # (small test arrays; the threshold is a speed choice)
    monkeypatch.setattr(B, "POOL", False)  # (the kernels on the calling thread; on the pool: test_jit_pool.py)
    counts = collections.Counter()
    for name in KERNELS:
        fn = getattr(k, name)

        def counted(*args, _fn=fn, _name=name):
            counts[_name] += 1
            return _fn(*args)

        monkeypatch.setattr(k, name, counted)
    return counts


def _nhwc(a):
    return a.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)


def _values(shape, dtype, seed):
    """A coarse grid (pooling windows with ties, ReLU inputs at exactly 0) salted with -0.0, NaN and +-inf."""
    rng = np.random.default_rng(seed)
    a = (rng.integers(-4, 5, shape) / 4).astype(dtype)
    flat = a.reshape(-1)
    if flat.size < 40:
        return a
    idx = rng.choice(flat.size, size=4 * 5, replace=False).reshape(4, 5)
    flat[idx[0]], flat[idx[1]], flat[idx[2]], flat[idx[3]] = -0.0, np.nan, np.inf, -np.inf
    return a


def _run(f, x, g_seed):
    t = nk.Tensor(x.copy(order="K"), requires_grad=True)  # (keeps the layout)
    y = f(t)
    g = np.empty_like(y.data)  # (in y's memory layout, as the gradients the layers hand back)
    g[...] = _values(y.shape, y.dtype, g_seed)
    y.backward(nk.Tensor(g))
    return y.data, t.grad.data


CASES = {
    "relu": (lambda x: nk.relu(x), "relu_forward", "relu_backward"),
    "max pool 2": (lambda x: nk.max_pool2d(x, 2), "max_pool2_forward", "max_pool_backward"),
    "max pool 3 stride 3 padded": (lambda x: nk.max_pool2d(x, 3, stride=3, padding=1), "max_pool_forward", None),
    "max pool 2x3 stride 3x4": (lambda x: nk.max_pool2d(x, (2, 3), stride=(3, 4)), "max_pool_forward", None),
    "relu then max pool 2": (lambda x: nk.max_pool2d(nk.relu(x), 2), "max_pool2_forward", "relu_backward"),
}


UNPADDED_POOLS = {"max pool 2", "max pool 2x3 stride 3x4", "relu then max pool 2"}


BOTH = ("im2col_rows", "col2im_add")
FUSED = ("im2col_rows", "planes_max", "winner_backward", "relu_backward")
CONV_CASES = {  # (im2col rows need one group and unit width stride and dilation; the other layouts stay NumPy's)
    "conv kernel rows": (lambda x, w, b: nk.conv2d(x, w, b, padding=1), (6, 8, 3, 3), BOTH),
    "conv strided, height dilated": (
        lambda x, w, b: nk.conv2d(x, w, b, stride=(2, 1), dilation=(2, 1)),
        (4, 8, 3, 3),
        BOTH,
    ),
    "conv width stride 3": (lambda x, w, b: nk.conv2d(x, w, b, stride=(1, 3)), (4, 8, 3, 3), ("col2im_add",)),
    "conv groups": (lambda x, w, b: nk.conv2d(x, w, b, groups=2, padding=2), (6, 4, 5, 5), ("col2im_add",)),
    "fused relu pool 2": (lambda x, w, b: nk.conv2d(x, w, b, activation="relu", max_pool=2), (6, 8, 3, 3), FUSED),
    "fused pool 3 padded": (
        lambda x, w, b: nk.conv2d(x, w, b, activation="relu", max_pool=3, padding=1),
        (6, 8, 3, 3),
        FUSED,
    ),
    "fused pool 2, no ReLU": (lambda x, w, b: nk.conv2d(x, w, b, max_pool=2), (6, 8, 3, 3), FUSED[:-1]),
}


@pytest.mark.parametrize("values", ["normal", "grid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("gemm_pieces", [True, False])
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_convolutions_with_the_compiled_kernels_give_the_numpy_codes_bits(
    calls, monkeypatch, name, gemm_pieces, dtype, values
):
    """im2col rows, col2im's adds and the fused convolution's pooling (conv and fused conv, forward and both
    gradients), GEMMs in pieces or whole; on values off any grid (sums in another order would round differently)
    and on a coarse grid (exact sums: pooling windows with ties)."""
    f, wshape, kernels = CONV_CASES[name]
    monkeypatch.setattr(B, "GEMM_PIECES", gemm_pieces)
    rng = np.random.default_rng(4)
    shapes = ((5, 8, 13, 14), wshape, wshape[:1])
    if values == "normal":
        arrays = [rng.standard_normal(s).astype(dtype) for s in shapes]
    else:
        arrays = [(rng.integers(-2, 3, s) / 4).astype(dtype) for s in shapes]
    arrays[0] = _nhwc(arrays[0])
    results = {}
    winners = name.startswith("fused") and values == "normal"  # (grid: NaN and inf, so the NumPy code's products)
    for jit in (False, True):
        monkeypatch.setattr(B, "JIT", jit)
        ins = [nk.Tensor(a.copy(order="K"), requires_grad=True) for a in arrays]
        y = f(*ins)
        g = np.empty_like(y.data)
        g[...] = np.random.default_rng(7).standard_normal(y.shape)
        if values == "grid":  # (infinities: where a window's loser gets inf * 0, NaN must reach the gradients)
            g.flat[[3, 50, 400]] = [np.inf, -np.inf, np.nan]
        if jit and winners:  # (the exact sums, from the op's winners)
            want = winners_ref.reference(y.grad_fn, arrays[0], arrays[1], g)
        y.backward(nk.Tensor(g))
        results[jit] = [y.data] + [t.grad.data for t in ins]
        assert all(calls[k] >= 1 for k in kernels) if jit else not calls, dict(calls)
    assert calls["winner_backward"] == name.startswith("fused"), dict(calls)
    assert calls["plane_grads"] == (name.startswith("fused") and not winners), dict(calls)
    for i, (w, got) in enumerate(zip(results[False], results[True], strict=True)):
        if winners and i in (1, 2):  # (input and weight gradients from each window's winner alone: another order)
            continue
        assert np.ascontiguousarray(w).tobytes() == np.ascontiguousarray(got).tobytes(), name
    if winners:
        for i, ref in ((1, want[0]), (2, want[1])):
            winners_ref.assert_within_rounding(results[True][i], ref, f"{name}, kernels, gradient {i}")
            winners_ref.assert_within_rounding(results[False][i], ref, f"{name}, NumPy code, gradient {i}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("name", list(CASES))
def test_the_compiled_kernels_give_the_numpy_codes_bits(calls, monkeypatch, name, layout, dtype):
    f, forward, backward = CASES[name]
    x = _values((6, 5, 12, 14), dtype, seed=1)
    if layout == "nhwc" or name in UNPADDED_POOLS:
        x = _nhwc(x)  # (what a convolution returns; a pool over NCHW input without padding stays on NumPy code)
    monkeypatch.setattr(B, "JIT", False)
    want = _run(f, x, g_seed=2)
    assert not calls
    monkeypatch.setattr(B, "JIT", True)
    got = _run(f, x, g_seed=2)
    assert calls[forward] >= 1 and (backward is None or calls[backward] >= 1), dict(calls)
    for w, g in zip(want, got, strict=True):
        assert w.dtype == g.dtype and w.shape == g.shape
        assert np.ascontiguousarray(w).tobytes() == np.ascontiguousarray(g).tobytes(), name


def test_overlapping_windows_and_small_arrays_stay_on_the_numpy_code(calls):
    x = nk.Tensor(_nhwc(_values((4, 3, 9, 9), np.float32, 3)), requires_grad=True)
    nk.max_pool2d(x, 3, stride=2, padding=1).sum().backward()  # overlapping: NumPy's order of adds
    nk.relu(nk.Tensor(np.ones((4, 100), np.float32))).sum()  # 400 elements: not worth a kernel call
    assert not calls


def test_neuronkit_jit_0_turns_the_kernels_off_and_without_numba_they_are_off(monkeypatch):
    monkeypatch.setattr(B, "JIT", None)
    monkeypatch.setattr(B, "_jit_module", {})  # (as in a new process: the variable is read once)
    monkeypatch.setenv("NEURONKIT_JIT", "0")
    assert B.jit() is None
    monkeypatch.setattr(B, "JIT", True)  # (JIT overrides it)
    assert B.jit() is not None
    monkeypatch.setattr(B, "JIT", None)
    monkeypatch.setattr(B, "_jit_module", {})
    monkeypatch.delenv("NEURONKIT_JIT")
    assert B.jit() is not None
    monkeypatch.setattr(B, "_jit_module", {})
    import builtins

    real_import = builtins.__import__

    def no_numba(name, *args, **kwargs):
        if name == "numba" or name.startswith("numba."):
            raise ImportError("No module named 'numba'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_numba)
    monkeypatch.delitem(__import__("sys").modules, "neuronkit.jit_kernels")
    monkeypatch.delattr(nk, "jit_kernels")  # (else ``from . import jit_kernels`` finds the loaded one)
    assert B.jit() is None
    x = nk.Tensor(np.linspace(-1, 1, 8192, dtype=np.float32).reshape(8, 1, 32, 32), requires_grad=True)
    nk.max_pool2d(nk.relu(x), 2).sum().backward()  # the NumPy code, as on a machine without Numba
    assert x.grad.data.sum() == (x.data.reshape(8, 16, 2, 16, 2).max(axis=(2, 4)) > 0).sum()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["adam", "adam l2", "adamw"])
def test_adams_compiled_update_gives_the_numpy_codes_bits(calls, monkeypatch, kind, dtype):
    """Adam's update in one pass: the same parameters and moments, byte for byte, over several steps; with a NumPy
    scalar learning rate (NumPy's own promotion), or AMSGrad, the NumPy code runs."""
    cls, wd = {"adam": (nk.optim.Adam, 0.0), "adam l2": (nk.optim.Adam, 0.01), "adamw": (nk.optim.AdamW, 0.01)}[kind]
    results = {}
    for jit, lr, amsgrad in [(j, lr, False) for j in (False, True) for lr in (1e-3, np.float64(1e-3))] + [
        (j, 1e-3, True) for j in (False, True)
    ]:
        monkeypatch.setattr(B, "JIT", jit)
        rng = np.random.default_rng(0)
        p = nk.Tensor(rng.standard_normal((300, 70)).astype(dtype), requires_grad=True)
        opt = cls([p], lr=lr, weight_decay=wd, amsgrad=amsgrad)
        before = calls["adam_step"]
        tiny = float(np.finfo(dtype).tiny)  # (moments at and below it: flushed to 0, subnormal, and -0.0)
        for _ in range(4):
            g = rng.standard_normal(p.shape) * 10.0 ** rng.integers(-6, 3, p.shape)
            few = [tiny * 30, tiny * 9, -tiny * 4, tiny / 3, np.sqrt(tiny) / 2, -0.0]  # (the same weights each step)
            g.flat[::7] = rng.choice(few, len(g.flat[::7]))
            p.grad = nk.Tensor(g.astype(dtype))
            opt.step()
        ran = calls["adam_step"] - before
        assert ran == (4 if jit and type(lr) is float and not amsgrad else 0)
        state = opt.state[p]
        flushed = np.count_nonzero(state["exp_avg"] == 0) + np.count_nonzero(state["exp_avg_sq"] == 0)
        assert kind == "adam l2" or flushed > 1000  # (L2 adds wd * p to the gradient: no tiny ones then)
        assert not np.any((state["exp_avg"] != 0) & (np.abs(state["exp_avg"]) < tiny))
        results[jit, type(lr), amsgrad] = [p.data.copy(), state["exp_avg"], state["exp_avg_sq"]]
    for (jit, lr_type, amsgrad), got in results.items():
        for w, g in zip(results[False, lr_type, amsgrad], got, strict=True):
            assert w.tobytes() == g.tobytes(), (jit, lr_type, amsgrad)
