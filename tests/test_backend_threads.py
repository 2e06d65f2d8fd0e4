"""The memory-bound kernels split over threads and pieces (``backend.parallel_for``) give the one-thread results.

Every chunk computes its part of the output by the same operations in the same order, so values and gradients must
be bit-identical for any thread count, including uneven chunks (3 threads) and more threads than images.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import backend as B


@pytest.fixture
def threads(monkeypatch):
    """Set the pool size for one test (and split even small arrays); the default comes back afterwards."""
    before = B.num_threads()
    monkeypatch.setattr(B, "PARALLEL_MIN", 0)
    monkeypatch.setitem(B._threads, "set", B._threads["set"])  # (whether a count was given comes back too)
    yield B.set_num_threads
    B.set_num_threads(before)


def _record(n, work, grain=None):
    """The (lo, hi, thread id) of every piece one ``parallel_for`` over ``range(n)`` runs."""
    seen, lock = [], threading.Lock()

    def fn(lo, hi):
        with lock:
            seen.append((lo, hi, threading.get_ident()))

    B.parallel_for(n, fn, work=work, grain=grain)
    return seen


def test_parallel_for_covers_the_range_once_in_pieces_two_per_thread(threads):
    threads(3)
    seen = _record(12, work=12)
    assert sorted((lo, hi) for lo, hi, _ in seen) == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10), (10, 12)]


def test_the_pool_threads_take_pieces_too(monkeypatch):
    # Pieces that wait on each other can only all finish when at least two threads run them at once.
    before = B.num_threads()
    monkeypatch.setitem(B._threads, "set", B._threads["set"])
    B.set_num_threads(2)
    try:
        both = threading.Barrier(2, timeout=10)
        B.parallel_for(2, lambda lo, hi: both.wait(), work=1 << 40)
    finally:
        B.set_num_threads(before)


def test_small_work_one_thread_and_nested_calls_stay_on_the_calling_thread(threads, monkeypatch):
    threads(2)
    monkeypatch.setattr(B, "PARALLEL_MIN", 100)
    assert [(lo, hi) for lo, hi, _ in _record(8, work=99)] == [(0, 8)]
    assert [(lo, hi) for lo, hi, _ in _record(8, work=99, grain=3)] == [(0, 3), (3, 6), (6, 8)]
    monkeypatch.setattr(B, "PARALLEL_MIN", 0)
    threads(1)
    assert [(lo, hi) for lo, hi, _ in _record(8, work=10)] == [(0, 8)]
    threads(2)
    inner = []

    def outer(lo, hi):
        inner.append((threading.get_ident(), [(a, b) for a, b, _ in _record(4, work=10)]))

    B.parallel_for(4, outer, work=10)
    assert [pieces for _, pieces in inner] == [[(0, 4)]] * 4  # each piece ran its inner loop itself, whole


def test_an_error_in_any_piece_reaches_the_caller_after_all_pieces_finish(threads):
    threads(2)
    done, lock = [], threading.Lock()

    def fn(lo, hi):
        if lo == 6:
            raise ValueError(f"piece {lo}:{hi} failed")
        with lock:
            done.append(lo)

    with pytest.raises(ValueError, match="piece 6:9 failed"):
        B.parallel_for(10, fn, work=10, grain=3)
    assert sorted(done) == [0, 3, 9]


def test_gemms_run_in_pieces_only_where_the_environment_keeps_blas_on_one_thread(monkeypatch):
    monkeypatch.setattr(B, "GEMM_PIECES", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    assert B.gemm_in_pieces()
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    assert not B.gemm_in_pieces()
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert B.gemm_in_pieces()
    monkeypatch.setattr(B, "GEMM_PIECES", False)
    assert not B.gemm_in_pieces()


def test_set_num_threads_rejects_what_is_not_a_positive_int():
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="set_num_threads: expected a positive int, got"):
            B.set_num_threads(bad)


@pytest.mark.parametrize("env, expected", [({"NEURONKIT_THREADS": "3"}, 3), ({}, 1), ({"NEURONKIT_THREADS": "0"}, 1)])
def test_the_default_thread_count_is_neuronkit_threads_else_one(env, expected):
    clean = {k: v for k, v in os.environ.items() if k != "NEURONKIT_THREADS"}
    code = "from neuronkit import backend; print(backend.num_threads())"
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    assert int(out.stdout) == expected


def _nhwc(a):
    return a.transpose(0, 2, 3, 1).copy().transpose(0, 3, 1, 2)


CASES = {
    "conv few channels": (lambda x, w, b: nk.conv2d(x, w, b), [(7, 1, 12, 12), (4, 1, 3, 3), (4,)]),
    "conv kernel rows": (lambda x, w, b: nk.conv2d(x, w, b, padding=1), [(7, 8, 9, 9), (6, 8, 3, 3), (6,)]),
    "conv strided dilated": (
        lambda x, w, b: nk.conv2d(x, w, b, stride=2, padding=1, dilation=(1, 2)),
        [(5, 3, 11, 11), (4, 3, 3, 3), (4,)],
    ),
    "conv groups": (lambda x, w: nk.conv2d(x, w, groups=2, padding=2), [(5, 4, 10, 10), (6, 2, 5, 5)]),
    "fused relu pool 2": (
        lambda x, w, b: nk.conv2d(x, w, b, activation="relu", max_pool=2),
        [(7, 8, 11, 11), (6, 8, 3, 3), (6,)],
    ),
    "fused few channels pool 3": (
        lambda x, w, b: nk.conv2d(x, w, b, activation="relu", max_pool=3, padding=1),
        [(5, 2, 10, 10), (3, 2, 3, 3), (3,)],
    ),
    "fused relu only": (lambda x, w: nk.conv2d(x, w, activation="relu"), [(5, 8, 7, 7), (4, 8, 3, 3)]),
    "max pool tiled": (lambda x: nk.max_pool2d(x, 2), [(7, 3, 8, 8)]),
    "max pool overlapping padded": (lambda x: nk.max_pool2d(x, 3, stride=2, padding=1), [(7, 3, 9, 9)]),
    "avg pool tiled": (lambda x: nk.avg_pool2d(x, 2), [(7, 3, 8, 8)]),
    "avg pool overlapping padded": (lambda x: nk.avg_pool2d(x, 3, stride=2, padding=1), [(7, 3, 9, 9)]),
    "relu then flatten": (lambda x: nk.flatten(nk.max_pool2d(nk.relu(x), 2), 1), [(7, 3, 8, 8)]),
}


# Piece sizes (BLOCK_BYTES): the whole batch as one piece, one image per piece (grain 1: every kernel's pieces spread
# over the threads), a few images per piece. For a fixed piece size, any thread count must give the same bits.
BLOCKS = [1 << 40, 1, 3000]
THREADS = [1, 2, 3, 16]
# Kernels with no GEMM inside a piece also give the same bits for any piece size. (A convolution's GEMMs run per
# piece: on OpenBLAS's Haswell, SkylakeX and Zen kernels a row's value does not depend on the GEMM's height, but on
# older ones such as Nehalem it can, so there the pieces, which depend on the shapes only, may move the last bit.)
NO_GEMM = {"max pool tiled", "max pool overlapping padded", "avg pool tiled", "avg pool overlapping padded"}
NO_GEMM |= {"relu then flatten"}


def _run(f, arrays, grad_seed):
    ins = [nk.Tensor(a.copy(), requires_grad=True) for a in arrays]
    y = f(*ins)
    y.backward(nk.Tensor(np.random.default_rng(grad_seed).standard_normal(y.shape).astype(y.dtype)))
    return [y.data] + [t.grad.data for t in ins]


@pytest.mark.parametrize("gemm_pieces", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("name", list(CASES))
def test_threaded_kernels_equal_the_single_thread_ones_bit_for_bit(
    threads, monkeypatch, name, layout, dtype, gemm_pieces
):
    monkeypatch.setattr(B, "GEMM_PIECES", gemm_pieces)  # GEMMs piece by piece, or one per layer
    f, shapes = CASES[name]
    rng = np.random.default_rng(3)
    # Values on a coarse grid so that pooling windows hold ties (the first maximal element must win either way).
    arrays = [(rng.integers(-4, 5, s) / 4).astype(dtype) for s in shapes]
    if layout == "nhwc":
        arrays = [_nhwc(a) if a.ndim == 4 else a for a in arrays]
    results = {}
    for block in BLOCKS:
        monkeypatch.setattr(B, "BLOCK_BYTES", block)
        for n in THREADS:
            threads(n)
            results[n, block] = _run(f, arrays, grad_seed=7)
    for (n, block), got in results.items():
        ref = results[1, BLOCKS[0] if name in NO_GEMM else block]
        for one, many in zip(ref, got, strict=True):
            assert one.dtype == many.dtype and one.shape == many.shape
            same = np.ascontiguousarray(one).tobytes() == np.ascontiguousarray(many).tobytes()
            assert same, f"{name}: {n} threads, BLOCK_BYTES {block}"


def test_with_a_grain_the_pieces_are_the_same_for_any_thread_count(threads):
    for n in (1, 2, 3, 4):
        threads(n)
        assert sorted((lo, hi) for lo, hi, _ in _record(11, work=11, grain=3)) == [(0, 3), (3, 6), (6, 9), (9, 11)]
