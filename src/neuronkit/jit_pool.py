"""One pool of threads for a step's GEMMs and memory-bound kernels: Numba's.

On 2 cores, OpenBLAS's threads (the GEMMs) and any second pool (the kernels) spin between calls and fight over the
cores (a CNN step 13.3 -> 51.5 ms, benchmarks/RESULTS.md). PyTorch runs both on one OpenMP pool; so does this module.
While it is on, NumPy's OpenBLAS runs on one thread, and the GEMMs of the ops (``gemm``; ``conv_forward`` and
``col2im`` with their im2col and adds) are cut into row blocks that Numba's threads hand to that single-threaded
OpenBLAS, calling NumPy's own library (``cblas_?gemm``, found through threadpoolctl), so each output row is computed
by the same kernel as in one whole GEMM: the same values, bit for bit, on OpenBLAS's SkylakeX float32 kernel; its
float64 kernel and Haswell's float32 one can round a block's edge tiles otherwise, in the last bit, as OpenBLAS's own
threads already do (tests/test_jit_pool.py, benchmarks/RESULTS.md). The memory-bound kernels are those of
``jit_kernels`` on slices of the batch. It starts with the first convolution (``backend.pool``'s ``start``).

Reached only through ``backend.pool(work)``, which decides whether it is on (Numba, NumPy's OpenBLAS found, more
than one thread, not a forked child). Every entry point returns False instead of running when another thread is
inside the pool (Numba's workqueue layer cannot take two callers at once); the caller then runs its own code.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numba
import numpy as np
from numba import prange

from . import jit_kernels as _k

# The serial kernels, bound here: a wrapper a test puts on jit_kernels' functions does not reach compiled code.
k_col2im_add = _k.col2im_add
k_im2col_rows = _k.im2col_rows
k_im2col_t = _k.im2col_t
k_max_pool2_forward = _k.max_pool2_forward
k_max_pool_backward = _k.max_pool_backward
k_max_pool_forward = _k.max_pool_forward
k_plane_grads = _k.plane_grads
k_planes_max = _k.planes_max
k_planes_place = _k.planes_place
k_relu_backward = _k.relu_backward
k_relu_forward = _k.relu_forward
k_winner_grads = _k.winner_grads

_par = numba.njit(parallel=True, nogil=True, cache=True)
_lock = threading.Lock()
_ROW, _N, _T = 101, 111, 112  # CBLAS: row-major order, no transpose, transpose
THREADS = 2
"""Threads the entry points split their work over (set by ``backend.pool``)."""

SMALL = 1_000_000
"""OpenBLAS's SkylakeX kernels take GEMMs of up to M*N*K = 1e6 through small-matrix code that sums over K in one run,
where larger ones sum in blocks of K: the values can differ. So a GEMM is cut only into pieces above this, and a
whole one at or below it stays whole (tests/test_jit_pool.py checks the plan of ``gemm``)."""


def _blocks(n, grain, per_image):
    """How many blocks of about ``grain`` images to cut ``n`` images into for GEMMs of ``per_image`` multiply-adds
    per image: fewer where needed so that each block's GEMM is above ``SMALL`` when the whole one is; one block when
    the whole one is not. (The blocks are ``t*n//blocks`` to ``(t+1)*n//blocks``: none smaller than ``n // blocks``.)"""
    if n * per_image <= SMALL:
        return 1
    least = SMALL // max(per_image, 1) + 1  # (images of a block above SMALL)
    return max(1, min(-(-n // max(grain, 1)), n // least))


def _find_blas():
    """NumPy's OpenBLAS as ``(sgemm, dgemm, set_num_threads, get_num_threads)`` ctypes functions, or None."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    np_dir = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))  # (site-packages: numpy.libs is there)
    for info in threadpool_info():
        path = info.get("filepath") or ""
        if info.get("internal_api") != "openblas" or not path.startswith(np_dir) or "numpy" not in path.lower():
            continue
        lib = ctypes.CDLL(path)
        for pre, suf, ip in (("scipy_", "64_", ctypes.c_int64), ("scipy_", "", ctypes.c_int), ("", "", ctypes.c_int)):
            names = (f"{pre}cblas_sgemm{suf}", f"{pre}cblas_dgemm{suf}")
            threads = (f"{pre}openblas_set_num_threads{suf}", f"{pre}openblas_get_num_threads{suf}")
            if not all(hasattr(lib, s) for s in (*names, *threads)):
                continue
            i, p = ctypes.c_int, ctypes.c_void_p
            out = []
            for name, real in zip(names, (ctypes.c_float, ctypes.c_double)):
                proto = ctypes.CFUNCTYPE(None, i, i, i, ip, ip, ip, real, p, ip, p, ip, real, p, ip)
                out.append(proto((name, lib)))
            out.append(ctypes.CFUNCTYPE(None, i)((threads[0], lib)))
            out.append(ctypes.CFUNCTYPE(i)((threads[1], lib)))
            return tuple(out)
    return None


BLAS = _find_blas()
"""``(sgemm, dgemm, set_num_threads, get_num_threads)`` of NumPy's OpenBLAS, or None (then the pool stays off)."""


def _gemm_fn(dtype):
    return BLAS[0] if dtype == np.float32 else BLAS[1]


def _operand(a):
    """CBLAS ``(trans, ld)`` of a 2-D array in row-major terms, or None if neither axis has unit stride."""
    item = a.itemsize
    r, c = a.strides
    if c == item and r % item == 0 and r // item >= max(1, a.shape[1]):
        return _N, r // item
    if r == item and c % item == 0 and c // item >= max(1, a.shape[0]):
        return _T, c // item
    return None


def _call(kernel, *args):
    """Run ``kernel(*args)`` on the pool unless another thread is in it (then False)."""
    if not _lock.acquire(blocking=False):
        return False
    try:
        kernel(*args)
    finally:
        _lock.release()
    return True


@_par
def _gemm(fn, pieces, by_rows, ta, tb, m, n, k, a, lda, sa, b, ldb, sb, c, ldc, sc):
    """C (m, n) = op(A) @ op(B) in ``pieces`` blocks of rows (``by_rows``) or of columns, one BLAS call each.
    ``a``, ``b``, ``c`` are addresses; ``sa``/``sc`` the bytes from one row of op(A)/C to the next, ``sb``/``sc`` (by
    columns) from one column of op(B)/C to the next."""
    for t in prange(pieces):
        size = m if by_rows else n
        lo, hi = t * size // pieces, (t + 1) * size // pieces
        if hi > lo:
            if by_rows:
                fn(_ROW, ta, tb, hi - lo, n, k, 1.0, a + lo * sa, lda, b, ldb, 0.0, c + lo * sc, ldc)
            else:
                fn(_ROW, ta, tb, m, hi - lo, k, 1.0, a, lda, b + lo * sb, ldb, 0.0, c + lo * sc, ldc)


def plan(m, n, k):
    """``(by_rows, pieces)``: how ``gemm`` cuts an (m, k) @ (k, n) product, into ``pieces`` blocks of rows or of
    columns (``t * size // pieces`` to ``(t + 1) * size // pieces``), each above ``SMALL``; fewer than 2: whole."""
    by_rows = m >= n
    return by_rows, min(THREADS, (m if by_rows else n) // (SMALL // max((n if by_rows else m) * k, 1) + 1))


def gemm(a, b, out):
    """``out[...] = a @ b`` for 2-D float32/float64 arrays of one dtype, ``out`` C-contiguous; False (nothing done)
    where the operands do not suit BLAS as they are or the pool is busy."""
    oa, ob = _operand(a), _operand(b)
    m, k = a.shape
    n = b.shape[1]
    if oa is None or ob is None or not out.flags.c_contiguous or min(m, n, k) < 1:
        return False
    by_rows, pieces = plan(m, n, k)
    if pieces < 2 or min(m, n, k) < 2:  # (NumPy takes vectors elsewhere: GEMV)
        return False
    if oa[0] == _T and ob[0] == _T and m * n <= 1 << 16:  # (a weight gradient of few channels: C.T = B.T @ A.T
        tmp = np.empty((n, m), dtype=out.dtype)  # with both untransposed reads faster, 0.63 vs 1.02 ms on
        if not gemm(b.T, a.T, tmp):  # conv1's (16, 86528) @ (86528, 9); the same sums)
            return False
        out[...] = tmp.T
        return True
    sa, sb = a.strides[0], b.strides[1]
    sc = out.strides[0] if by_rows else out.itemsize
    fn = _gemm_fn(out.dtype)
    args = (fn, pieces, by_rows, oa[0], ob[0], m, n, k, a.ctypes.data, oa[1], sa, b.ctypes.data, ob[1], sb)
    return _call(_gemm, *args, out.ctypes.data, max(1, n), sc)


@_par
def _conv_forward(fn, cols, xn, w, bias, out, kh, kw, sh, sw, dh, blocks):
    n, oh, ow = cols.shape[0], cols.shape[1], cols.shape[2]
    kk, o, rows, item = cols.shape[3] * cols.shape[4], w.shape[0], oh * ow, cols.itemsize
    for t in prange(blocks):
        lo, hi = t * n // blocks, (t + 1) * n // blocks
        k_im2col_rows(cols[lo:hi], xn[lo:hi], kh, kw, sh, sw, dh)
        a, c = cols.ctypes.data + lo * rows * kk * item, out.ctypes.data + lo * rows * o * item
        fn(_ROW, _N, _T, (hi - lo) * rows, o, kk, 1.0, a, kk, w.ctypes.data, kk, 0.0, c, o)
        if bias.shape[0]:
            for r in range(lo * rows, hi * rows):
                for j in range(o):
                    out[r, j] += bias[j]


def conv_forward(cols, xn, w, bias, out, kh, kw, sh, sw, dh, grain):
    """A one-group convolution's im2col rows (``jit_kernels.im2col_rows`` into ``cols`` (N, oh, ow, kh, kw*C)), its
    GEMM ``out = cols @ w.T`` (``w`` (O, K) C-contiguous, ``out`` (N*oh*ow, O)) and its bias (or an empty array),
    ``grain`` images at a time (each block's passes in cache), the blocks over the threads."""
    if min(w.shape) < 2:  # (NumPy takes vectors to GEMV)
        return False
    blocks = _blocks(cols.shape[0], grain, cols[0].size * w.shape[0])
    return _call(_conv_forward, _gemm_fn(out.dtype), cols, xn, w, bias, out, kh, kw, sh, sw, dh, blocks)


@_par
def _col2im(fn, gpad, gm, wm, kh, kw, sh, sw, dh, dw, oh, ow, blocks):
    n, c, o = gpad.shape[0], gpad.shape[3], gm.shape[1]
    rows, kc, item = oh * ow, kh * kw * c, gm.itemsize
    for t in prange(blocks):
        lo, hi = t * n // blocks, (t + 1) * n // blocks
        buf = np.empty((kh * kw, hi - lo, oh, ow, c), dtype=gm.dtype)
        a = gm.ctypes.data + lo * rows * o * item
        for q in range(kh * kw):  # one GEMM per kernel offset, as the NumPy code's batched matmul
            fn(_ROW, _N, _N, (hi - lo) * rows, c, o, 1.0, a, o, wm.ctypes.data + q * c * item, kc, 0.0,
               buf.ctypes.data + q * (hi - lo) * rows * c * item, c)  # fmt: skip
        k_col2im_add(gpad[lo:hi], buf, 0, kh, kw, sh, sw, dh, dw)


def col2im(gpad, gm, wm, kh, kw, sh, sw, dh, dw, oh, ow, grain):
    """``ops/im2col.col2im`` for one group: ``gpad`` (N, Hp, Wp, C) gets the input gradient of ``gm`` (N*oh*ow, O)
    through ``wm`` (O, kh*kw*C) C-contiguous, ``grain`` images at a time."""
    if min(gpad.shape[3], gm.shape[1]) < 2:  # (NumPy takes vectors to GEMV)
        return False
    blocks = _blocks(gpad.shape[0], grain, oh * ow * gpad.shape[3] * gm.shape[1])  # (per kernel offset)
    return _call(_col2im, _gemm_fn(gm.dtype), gpad, gm, wm, kh, kw, sh, sw, dh, dw, oh, ow, blocks)


@_par
def _relu_forward(x, y, pieces):
    for t in prange(pieces):
        lo, hi = t * x.shape[0] // pieces, (t + 1) * x.shape[0] // pieces
        k_relu_forward(x[lo:hi], y[lo:hi])


@_par
def _relu_backward(g, y, out, pieces):
    for t in prange(pieces):
        lo, hi = t * g.shape[0] // pieces, (t + 1) * g.shape[0] // pieces
        k_relu_backward(g[lo:hi], y[lo:hi], out[lo:hi])


def relu_forward(x, y):
    return _call(_relu_forward, x, y, THREADS)


def relu_backward(g, y, out):
    return _call(_relu_backward, g, y, out, THREADS)


@_par
def _max_pool_forward(xn, out, arg, kh, kw, sh, sw, pieces):
    n = xn.shape[0]
    for t in prange(pieces):
        lo, hi = t * n // pieces, (t + 1) * n // pieces
        if kh == 2 and kw == 2 and sh == 2 and sw == 2:
            k_max_pool2_forward(xn[lo:hi], out[lo:hi], arg[lo:hi])
        else:
            k_max_pool_forward(xn[lo:hi], out[lo:hi], arg[lo:hi], kh, kw, sh, sw)


@_par
def _max_pool_backward(g, arg, gpad, kh, kw, sh, sw, zero, pieces):
    n = g.shape[0]
    for t in prange(pieces):
        lo, hi = t * n // pieces, (t + 1) * n // pieces
        k_max_pool_backward(g[lo:hi], arg[lo:hi], gpad[lo:hi], kh, kw, sh, sw, zero)


def max_pool_forward(xn, out, arg, kh, kw, sh, sw):
    return _call(_max_pool_forward, xn, out, arg, kh, kw, sh, sw, THREADS)


def max_pool_backward(g, arg, gpad, kh, kw, sh, sw, zero):
    return _call(_max_pool_backward, g, arg, gpad, kh, kw, sh, sw, zero, THREADS)


@_par
def _fill_planes(cols, xn, kh, kw, sh, sw, dh, k, grain):
    n = xn.shape[0]
    for t in prange((n + grain - 1) // grain):
        lo, hi = t * grain, min(n, (t + 1) * grain)
        for a in range(k):
            for b in range(k):
                k_im2col_rows(cols[a, b, lo:hi], xn[lo:hi, a * sh :, b * sw :], kh, kw, k * sh, k * sw, dh)


@_par
def _fill_planes_t(cols, x, sh, sw, dh, dw, k, grain):
    n = x.shape[0]
    for t in prange((n + grain - 1) // grain):
        lo, hi = t * grain, min(n, (t + 1) * grain)
        for a in range(k):
            for b in range(k):
                k_im2col_t(cols[:, :, :, a, b, lo:hi], x[lo:hi, :, a * sh :, b * sw :], k * sh, k * sw, dh, dw)


def fill_planes(cols, xn, kh, kw, sh, sw, dh, dw, k, grain):
    """im2col of a convolution whose output is cut into k*k pooling planes (``ops/im2col.planes_patches``; k = 1:
    plain im2col), ``grain`` images at a time: ``cols`` (k, k, N, ph, pw, kh, kw*C) from ``xn`` (N, Hp, Wp, C), or
    transposed, ``cols`` (kh, kw, C, k, k, N, ph, pw) from ``xn`` (N, C, Hp, Wp)."""
    if cols.ndim == 8:
        return _call(_fill_planes_t, cols, xn, sh, sw, dh, dw, k, grain)
    return _call(_fill_planes, cols, xn, kh, kw, sh, sw, dh, k, grain)


@_par
def _add_rows(rows, vector, grain):
    for t in prange((rows.shape[0] + grain - 1) // grain):
        for r in range(t * grain, min(rows.shape[0], (t + 1) * grain)):
            for j in range(rows.shape[1]):
                rows[r, j] += vector[j]


def add_rows(rows, vector, grain):
    """``rows += vector`` for a 2-D ``rows`` (``ops/im2col.add_bias_rows``), ``grain`` rows at a time."""
    return _call(_add_rows, rows, vector, grain)


@_par
def _planes_max(planes, y, arg, bias, relu, grain):
    for t in prange((y.shape[0] + grain - 1) // grain):
        k_planes_max(planes, y, arg, bias, relu, t * grain, min(y.shape[0], (t + 1) * grain))


def planes_max(planes, y, arg, bias, relu, grain):
    return _call(_planes_max, planes, y, arg, bias, relu, grain)


@_par
def _plane_grads(gy, arg, gz, pieces):
    n = gy.shape[0]
    for t in prange(pieces):
        lo, hi = t * n // pieces, (t + 1) * n // pieces
        k_plane_grads(gy[lo:hi], arg[lo:hi], gz[:, lo:hi])


def plane_grads(gy, arg, gz):
    return _call(_plane_grads, gy, arg, gz, THREADS)


@_par
def _planes_place(full, planes, zero, pieces):
    n = full.shape[0]
    for t in prange(pieces):
        lo, hi = t * n // pieces, (t + 1) * n // pieces
        k_planes_place(full[lo:hi], planes[:, :, lo:hi], zero)


def planes_place(full, planes, zero):
    return _call(_planes_place, full, planes, zero, THREADS)


@_par
def _winner_backward(gy, arg, cols, wmat, parts, gpad, k, ph, pw, kh, kw, sh, sw, dh, dw, per, ok):
    n = gy.shape[0] // (ph * pw)
    for t in prange((n + per - 1) // per):
        gw = parts[0] if parts.shape[0] == 1 else parts[t]
        lo, hi = t * per, min(n, t * per + per)
        ok[t] = k_winner_grads(gy, arg, cols, wmat, gw, gpad, k, ph, pw, kh, kw, sh, sw, dh, dw, lo, hi)


def winner_backward(gy, arg, cols, wmat, parts, gpad, k, ph, pw, kh, kw, sh, sw, dh, dw, per):
    """``jit_kernels.winner_backward`` with the chunks over the pool's threads: the same chunks and sums, the same
    values. None where the pool was busy; else False on a NaN or infinite gradient."""
    ok = np.ones(-(-(gy.shape[0] // (ph * pw)) // per), dtype=np.bool_)
    if not _call(_winner_backward, gy, arg, cols, wmat, parts, gpad, k, ph, pw, kh, kw, sh, sw, dh, dw, per, ok):
        return None
    return bool(ok.all())
