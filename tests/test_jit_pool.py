"""The one pool of threads (``neuronkit/jit_pool.py``): a step's GEMMs and memory-bound kernels on Numba's threads,
with NumPy's OpenBLAS on one thread meanwhile. Each GEMM block equals NumPy's GEMM of that block bit for bit on any
OpenBLAS kernel; the ops (convolutions plain and fused, in both im2col layouts, dense layers, pooling and ReLU,
float32 and float64) give the NumPy code's results bit for bit where the kernel keeps a GEMM's values in blocks
(SkylakeX float32) and within float rounding elsewhere, and their gradients match float64 central differences;
every case checks that the pool really ran them. Also: it stays off where it must (one thread, ``NEURONKIT_POOL=0``,
``POOL = False``, a forked child, kernels off, no convolution yet), gives OpenBLAS its threads back when turned off,
and two threads calling at once both get the right values (one runs in the pool, the other on its own)."""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import winners as winners_ref
from threadpoolctl import threadpool_limits

import neuronkit as nk
from neuronkit import backend as B
from neuronkit import jit_pool
from neuronkit.ops import activation

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def pooled(monkeypatch):
    """The pool on 2 threads for any size of work; counts what ran in it (by kernel name)."""
    assert B.jit() is not None and jit_pool.BLAS is not None, "Numba is a test dependency and NumPy's OpenBLAS is found"
    monkeypatch.setattr(B, "POOL_MIN", 0)
    monkeypatch.setattr(activation, "JIT_MIN", 0)  # (ReLU's kernel on small test arrays)
    monkeypatch.setattr(B, "POOL", None)
    monkeypatch.setitem(B._threads, "n", 2)
    monkeypatch.setitem(B._threads, "set", True)
    counts, lock = collections.Counter(), threading.Lock()
    call = jit_pool._call

    def counted(kernel, *args):
        done = call(kernel, *args)
        with lock:  # (two threads may count at once)
            counts[kernel.__name__] += done
        return done

    monkeypatch.setattr(jit_pool, "_call", counted)
    assert B.pool(0, start=True) is jit_pool  # (as a convolution starts it)
    yield counts
    B.pool(B.POOL_MIN)  # (leaves OpenBLAS as the pool left it for the next test: one thread)


@contextlib.contextmanager
def _reference(monkeypatch, jit):
    """The code without the pool (``jit``: the compiled kernels on the calling thread, else the NumPy code), with
    OpenBLAS on one thread as the pool runs it: with two, OpenBLAS splits the sum of a GEMM with few rows and columns
    and many terms (a weight gradient) between its threads, which rounds differently (so results depended on the
    thread count before the pool; with it they do not). Afterwards the pool is on again, as after a convolution."""
    monkeypatch.setattr(B, "JIT", jit)
    monkeypatch.setattr(B, "POOL", False)
    B.pool(1 << 30)  # (OpenBLAS gets its threads back, then one for the reference)
    with threadpool_limits(1):
        yield
    monkeypatch.setattr(B, "JIT", True)
    monkeypatch.setattr(B, "POOL", None)
    assert B.pool(0, start=True) is jit_pool


def _exact_in_blocks(dtype) -> bool:
    """Whether this machine's OpenBLAS kernel computes a GEMM of ``dtype`` cut into blocks of rows or columns with
    the whole GEMM's values. SkylakeX's float32 kernel does; its float64 kernel and Haswell's float32 one do not
    (their edge tiles sum in another order), so there the pool's values can differ from the NumPy code's in the last
    bits, as OpenBLAS's own threads already make them differ between one thread and two."""
    rng = np.random.default_rng(0)
    with threadpool_limits(1):
        for m, n, k in ((1000, 300, 100), (300, 1000, 100)):
            a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
            whole = a @ b
            rows = np.concatenate([a[: m // 2] @ b, a[m // 2 :] @ b])
            cols = np.concatenate([a @ b[:, : n // 2], a @ b[:, n // 2 :]], axis=1)
            if not (np.array_equal(rows, whole) and np.array_equal(cols, whole)):
                return False
    return True


EXACT = {np.dtype(t): _exact_in_blocks(t) for t in (np.float32, np.float64)}


def _same(want, got, what=""):
    """Bit for bit where this OpenBLAS kernel keeps a GEMM's values in blocks (``EXACT``), else within float
    rounding of the values' scale."""
    assert want.dtype == got.dtype and want.shape == got.shape, what
    if EXACT[want.dtype]:
        assert want.tobytes() == got.tobytes(), what
    else:
        eps = np.finfo(want.dtype).eps
        np.testing.assert_allclose(got, want, rtol=64 * eps, atol=64 * eps * float(np.abs(want).max()), err_msg=what)


def _nhwc(a):
    return a.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)


def _run(f, arrays, seed=7, refs=None):
    """Forward and backward; with ``refs`` (a list), the exact gradients from each pooling window's winner are
    appended to it (``winners.reference``)."""
    ins = [nk.Tensor(a.copy(order="K"), requires_grad=True) for a in arrays]
    y = f(*ins)
    g = np.empty_like(y.data)
    g[...] = np.random.default_rng(seed).standard_normal(y.shape)
    if refs is not None:
        refs.append(winners_ref.reference(y.grad_fn, arrays[0], arrays[1], g))
    y.backward(nk.Tensor(g))
    return [y.data] + [t.grad.data for t in ins]


CONV = {  # name: (op, input channels, weight shape, the pool's kernels that must run)
    "conv, im2col rows": (lambda x, w, b: nk.conv2d(x, w, b, padding=1), 8, (6, 8, 3, 3), ("_conv_forward", "_col2im")),
    "conv, transposed im2col": (lambda x, w, b: nk.conv2d(x, w, b), 1, (6, 1, 3, 3), ("_fill_planes_t", "_add_rows")),
    "conv strided, height dilated": (
        lambda x, w, b: nk.conv2d(x, w, b, stride=(2, 1), dilation=(2, 1)),
        8,
        (4, 8, 3, 3),
        ("_conv_forward", "_col2im"),
    ),
    "conv 5x5, width stride 2": (lambda x, w, b: nk.conv2d(x, w, b, stride=(1, 2)), 3, (4, 3, 5, 5), ("_add_rows",)),
    "conv, 48 channels: GEMMs of K = 432": (  # (above OpenBLAS's K block: blocks must stay above SMALL)
        lambda x, w, b: nk.conv2d(x, w, b),
        48,
        (8, 48, 3, 3),
        ("_conv_forward", "_col2im"),
    ),
    "conv, 400 output channels": (lambda x, w, b: nk.conv2d(x, w, b), 8, (400, 8, 3, 3), ("_conv_forward", "_col2im")),
    "fused relu pool 2, rows": (
        lambda x, w, b: nk.conv2d(x, w, b, activation="relu", max_pool=2),
        8,
        (6, 8, 3, 3),
        ("_fill_planes", "_planes_max", "_relu_backward", "_winner_backward"),
    ),
    "fused relu pool 2, transposed": (
        lambda x, w, b: nk.conv2d(x, w, b, activation="relu", max_pool=2),
        1,
        (16, 1, 3, 3),
        ("_fill_planes_t", "_planes_max", "_plane_grads"),
    ),
    "fused pool 3 padded, no ReLU": (
        lambda x, w, b: nk.conv2d(x, w, b, max_pool=3, padding=1),
        8,
        (6, 8, 3, 3),
        ("_fill_planes", "_planes_max", "_winner_backward"),
    ),
    "conv, relu, max pool": (
        lambda x, w, b: nk.max_pool2d(nk.relu(nk.conv2d(x, w, b)), 2),
        8,
        (6, 8, 3, 3),
        ("_conv_forward", "_relu_forward", "_relu_backward", "_max_pool_forward", "_max_pool_backward"),
    ),
    "max pool 3 stride 3 padded": (
        lambda x, w, b: nk.max_pool2d(nk.conv2d(x, w, b), 3, stride=3, padding=1),
        8,
        (6, 8, 3, 3),
        ("_max_pool_forward", "_max_pool_backward"),
    ),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(CONV))
def test_convolutions_on_the_pool_give_the_numpy_codes_values(pooled, monkeypatch, name, dtype):
    """Forward and all three gradients, against the NumPy code (kernels and pool off, whole GEMMs on OpenBLAS's one
    thread) and against the compiled kernels on the calling thread; values off any grid, so a sum in another order
    would show where the kernel keeps blocks exact. A many-channel fused convolution's input and weight gradients
    come from each window's winner alone (``jit_kernels.winner_grads``), in fixed chunks of the batch: the same bits
    on the pool as on the calling thread, and within rounding of the exact sums, as the NumPy code's."""
    f, c, wshape, kernels = CONV[name]
    rng = np.random.default_rng(3)
    arrays = [_nhwc(rng.standard_normal((5, c, 15, 14)).astype(dtype))]
    arrays += [rng.standard_normal(s).astype(dtype) for s in (wshape, wshape[:1])]
    results, refs = {}, []
    winners = "_winner_backward" in kernels
    for setting in ("numpy", "kernels"):
        with _reference(monkeypatch, setting == "kernels"):
            results[setting] = _run(f, arrays)
    assert not pooled
    monkeypatch.setattr(B, "POOL", None)
    results["pool"] = _run(f, arrays, refs=refs if winners else None)
    assert all(pooled[k] >= 1 for k in kernels), dict(pooled)
    for i, (want, kern, got) in enumerate(zip(results["numpy"], results["kernels"], results["pool"], strict=True)):
        if winners and i in (1, 2):
            assert kern.tobytes() == got.tobytes(), name
            for what, r in (("NumPy code", want), ("pool", got)):
                winners_ref.assert_within_rounding(r, refs[0][i - 1], f"{name}, {what}, gradient {i}")
            continue
        assert want.tobytes() == kern.tobytes(), name  # (no pool: the same GEMMs, whole)
        _same(want, got, name)


@pytest.mark.parametrize(
    "name", ["conv, im2col rows", "conv, transposed im2col", "fused relu pool 2, rows", "fused relu pool 2, transposed"]
)
def test_gradients_on_the_pool_against_float64_central_differences(pooled, name):
    f, c, wshape, kernels = CONV[name]
    rng = np.random.default_rng(11)
    x = nk.Tensor(_nhwc(rng.standard_normal((2, c, 9, 8))), requires_grad=True)
    w = nk.Tensor(rng.standard_normal(wshape), requires_grad=True)
    b = nk.Tensor(rng.standard_normal(wshape[:1]), requires_grad=True)
    r = nk.Tensor(rng.standard_normal(f(x, w, b).shape))
    assert nk.gradcheck(lambda x, w, b: (f(x, w, b) * r).sum(), x, w, b, raise_exception=True)
    assert all(pooled[k] >= 1 for k in kernels[:1] + tuple(k for k in kernels if k == "_winner_backward")), pooled


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_nonfinite_gradient_leaves_the_winners_alone_for_the_numpy_codes_products(pooled, monkeypatch, bad):
    """``inf * 0`` at a window's losers makes NaN in the NumPy code; the compiled backward, which skips the losers,
    stops (on any chunk) and the planes' gradients run instead: the same NaN and inf as the NumPy code's."""
    f, c, wshape, _ = CONV["fused relu pool 2, rows"]
    rng = np.random.default_rng(2)
    arrays = [_nhwc(rng.standard_normal((5, c, 15, 14)))] + [rng.standard_normal(s) for s in (wshape, wshape[:1])]

    def run():
        ins = [nk.Tensor(a.copy(order="K"), requires_grad=True) for a in arrays]
        y = f(*ins)
        g = np.random.default_rng(7).standard_normal(y.shape)
        g[4, 1, 2, 3] = bad  # (the last chunk: the first ones finish)
        y.backward(nk.Tensor(g))
        return [t.grad.data for t in ins]

    with _reference(monkeypatch, False):
        want = run()
    got = run()
    assert pooled["_winner_backward"] == 1 and pooled["_plane_grads"] == 1, dict(pooled)
    for a, b in zip(want, got, strict=True):
        assert np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(np.isinf(a), np.isinf(b))
        assert np.isfinite(a).sum() < a.size
        _same(np.nan_to_num(a), np.nan_to_num(b))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(3000, 64), (3, 1000, 64), (1, 64), (200, 64)])
def test_dense_layers_on_the_pool_give_numpys_values(pooled, monkeypatch, shape, dtype):
    """The three GEMMs of a dense layer (forward, both gradients); in blocks where each is above ``SMALL``."""
    rng = np.random.default_rng(5)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (shape, (48, 64), (48,))]
    with _reference(monkeypatch, True):
        want = _run(nk.linear, arrays)
    assert not pooled
    monkeypatch.setattr(B, "POOL", None)
    got = _run(nk.linear, arrays)
    assert pooled["_gemm"] == (3 if np.prod(shape) > 100_000 else 0), dict(pooled)
    for w, g in zip(want, got, strict=True):
        _same(w, g)


@pytest.mark.parametrize("a, b", [("c", "c"), ("c", "t"), ("t", "c"), ("t", "t")])  # (t: a transposed view)
@pytest.mark.parametrize(
    "m, n, k, blocks",
    [
        (7, 3000, 100, True),  # (blocks of columns, each 7*1500*100 above SMALL)
        (3000, 7, 100, True),
        (16, 9, 90_000, True),  # (a few-channel convolution's weight gradient; both transposed: B.T @ A.T)
        (9, 16, 900, False),  # (below SMALL: OpenBLAS's small-matrix code, which blocks would not reach)
        (7, 2000, 100, False),  # (2 blocks would be 700,000 each)
        (1, 3000, 900, False),  # (a vector: NumPy's GEMV)
        (3000, 1, 900, False),
    ],
)
def test_gemm_in_blocks_equals_numpys_matmul_in_every_layout(pooled, a, b, m, n, k, blocks):
    rng = np.random.default_rng(m * n + k)
    x = rng.standard_normal((m, k) if a == "c" else (k, m)).astype(np.float32)
    y = rng.standard_normal((k, n) if b == "c" else (n, k)).astype(np.float32)
    x, y = (x if a == "c" else x.T), (y if b == "c" else y.T)
    got = B.matmul(x, y)
    assert pooled["_gemm"] == blocks
    with threadpool_limits(1):
        _same(np.matmul(x, y), got)
        if a == b == "t" and blocks:  # (computed as (y.T @ x.T).T)
            x, y, got = y.T, x.T, got.T
        by_rows, pieces = jit_pool.plan(*got.shape, x.shape[1])
        size = got.shape[0 if by_rows else 1]
        cuts = [t * size // pieces for t in range(pieces + 1)] if blocks else [0, size]
        parts = [x[lo:hi] @ y if by_rows else x @ y[:, lo:hi] for lo, hi in zip(cuts, cuts[1:])]
        want = np.concatenate(parts, axis=0 if by_rows else 1)
    assert got.tobytes() == want.tobytes()  # (the blocks, each NumPy's GEMM: bit for bit on any kernel)


def test_operands_blas_cannot_read_in_place_keep_numpys_matmul(pooled):
    x = np.ones((40, 30, 2), np.float32)[:, :, 0]  # (no unit stride)
    w = np.ones((30, 20), np.float32)
    assert np.array_equal(B.matmul(x, w), np.full((40, 20), 30, np.float32))
    assert B.matmul(x.astype(np.int64), w.astype(np.int64)).dtype == np.int64  # (ints: NumPy's matmul)
    assert B.matmul(x, w.astype(np.float64)).dtype == np.float64  # (mixed dtypes: NumPy's promotion)
    assert not pooled


def _blas_threads():
    return jit_pool.BLAS[3]()


def test_openblas_runs_one_thread_while_the_pool_is_on_and_gets_its_threads_back(pooled, monkeypatch):
    before = B._one["blas"] or _blas_threads()
    x = np.ones((256, 256), np.float32)
    B.matmul(x, x)
    assert pooled["_gemm"] == 1 and _blas_threads() == 1
    monkeypatch.setattr(B, "POOL", False)
    B.matmul(x, x)
    assert pooled["_gemm"] == 1 and _blas_threads() == before
    monkeypatch.setattr(B, "POOL", None)
    B.matmul(x, x)  # (a GEMM alone does not start it again: a convolution does)
    assert pooled["_gemm"] == 1 and _blas_threads() == before
    nk.conv2d(nk.Tensor(np.ones((2, 8, 6, 6), np.float32)), nk.Tensor(np.ones((4, 8, 3, 3), np.float32)))
    B.matmul(x, x)
    assert pooled["_gemm"] == 2 and _blas_threads() == 1


def test_without_a_convolution_the_pool_never_starts_and_openblas_keeps_its_threads():
    """An MLP's GEMMs run faster on OpenBLAS's own threads (benchmarks/RESULTS.md); the first convolution starts the
    pool, and from then on the dense layers' GEMMs run on it too."""
    code = (
        "import numpy as np, neuronkit as nk; from neuronkit import backend as B, jit_pool as P\n"
        "x = nk.Tensor(np.ones((512, 784), np.float32)); w = nk.Tensor(np.ones((256, 784), np.float32))\n"
        "before = P.BLAS[3](); nk.relu(nk.linear(x, w)); print(B.POOL_ON, P.BLAS[3]() == before)\n"
        "nk.conv2d(nk.Tensor(np.ones((64, 8, 30, 30), np.float32)), nk.Tensor(np.ones((16, 8, 3, 3), np.float32)))\n"
        "print(B.POOL_ON, P.BLAS[3]())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code], env={**env, "OPENBLAS_NUM_THREADS": "2"}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True", "1"], out.stdout


def test_one_thread_keeps_the_pool_off(pooled, monkeypatch):
    monkeypatch.setitem(B._threads, "n", 1)
    assert B.pool(1 << 30) is None
    monkeypatch.setitem(B._threads, "set", False)
    monkeypatch.setitem(B._one, "blas", 1)  # (OpenBLAS had one thread: OPENBLAS_NUM_THREADS=1)
    assert B.pool(1 << 30) is None
    monkeypatch.setitem(B._threads, "set", True)
    monkeypatch.setitem(B._threads, "n", 2)
    assert B.pool(1 << 30) is jit_pool
    monkeypatch.setattr(B, "JIT", False)  # (the kernels off: the pool too)
    assert B.pool(1 << 30) is None


def test_neuronkit_pool_0_turns_it_off_in_a_fresh_process():
    code = "import numpy as np, neuronkit as nk; from neuronkit import backend as B; print(B.pool(1 << 30))"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "NEURONKIT_POOL": "0"}, capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.strip() == "None", out.stderr


def _child_conv(x, w, queue):
    queue.put((B.pool(1 << 30) is None, nk.conv2d(nk.Tensor(x), nk.Tensor(w)).data))


def test_a_forked_child_runs_without_the_pool_and_gets_the_same_values(pooled):
    """Numba's OpenMP threads do not survive a fork; the child's ops run on its own thread instead."""
    rng = np.random.default_rng(2)
    x, w = _nhwc(rng.standard_normal((4, 8, 12, 12)).astype(np.float32)), rng.standard_normal((6, 8, 3, 3))
    w = w.astype(np.float32)
    want = nk.conv2d(nk.Tensor(x), nk.Tensor(w)).data
    assert pooled["_conv_forward"] == 1
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_conv, args=(x, w, queue))
    child.start()
    off, got = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and off
    _same(want, got)
    assert B.pool(1 << 30) is jit_pool  # (the parent keeps it)


def test_two_threads_at_once_both_get_the_right_values(pooled):
    rng = np.random.default_rng(9)
    x = _nhwc(rng.standard_normal((16, 8, 20, 20)).astype(np.float32))
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    want = nk.conv2d(nk.Tensor(x), nk.Tensor(w), activation="relu", max_pool=2).data
    wrong = []

    def work():
        for _ in range(30):
            got = nk.conv2d(nk.Tensor(x), nk.Tensor(w), activation="relu", max_pool=2).data
            try:  # (a call that found the pool busy ran on its own thread: whole GEMMs)
                _same(want, got)
            except AssertionError:
                wrong.append(1)

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not wrong and pooled["_fill_planes"] >= 10, (len(wrong), dict(pooled))


def test_the_benchmark_cnn_epoch_is_the_same_with_and_without_the_pool(pooled, monkeypatch):
    """A few steps of the benchmark CNN at its real size (above ``POOL_MIN``): the same losses and weights with the
    pool (both convolutions, the dense layer) as with the compiled kernels on the calling thread, bit for bit where
    OpenBLAS keeps GEMM blocks exact; and within rounding of the NumPy code's."""
    rng = np.random.default_rng(0)
    x = rng.random((256, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 256)
    init = [rng.uniform(-0.3, 0.3, s).astype(np.float32) for s in ((16, 1, 3, 3), (16,), (32, 16, 3, 3), (32,))]
    init += [rng.uniform(-0.03, 0.03, s).astype(np.float32) for s in ((10, 800), (10,))]

    def two_steps():
        ps = [nk.Tensor(p.copy(), requires_grad=True) for p in init]
        losses = []
        for i in range(0, 256, 128):
            h = nk.Tensor(x[i : i + 128])
            h = nk.max_pool2d(nk.relu(nk.conv2d(h, ps[0], ps[1])), 2)
            h = nk.conv2d(h, ps[2], ps[3], activation="relu", max_pool=2)
            loss = nk.softmax_cross_entropy(nk.linear(nk.flatten(h, 1), ps[4], ps[5]), y[i : i + 128])
            loss.backward()
            for p in ps:
                p.data -= 0.05 * p.grad.data
                p.grad = None
            losses.append(loss.item())
        return losses, [p.data.copy() for p in ps]

    out = {}
    for jit in (False, True):
        with _reference(monkeypatch, jit):
            out[jit] = two_steps()
    assert not pooled
    out["pool"] = two_steps()  # (conv1's forward and weight gradient GEMMs, in blocks)
    assert pooled["_gemm"] >= 4 and pooled["_fill_planes_t"] == 2 and pooled["_fill_planes"] == 2, dict(pooled)
    assert pooled["_winner_backward"] == 2, dict(pooled)
    if EXACT[np.dtype(np.float32)]:
        assert out[True][0] == out["pool"][0]
    for a, b in zip(out[True][1], out["pool"][1], strict=True):
        _same(a, b)
    # The NumPy code sums conv2's gradients in another order (the losers' zeros too): the first loss is the same,
    # the second within rounding, and so are the weights after two steps.
    assert out[False][0][0] == out["pool"][0][0]
    np.testing.assert_allclose(out["pool"][0], out[False][0], rtol=1e-6)
    for a, b in zip(out[False][1], out["pool"][1], strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6 * float(np.abs(a).max()))
