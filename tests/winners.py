"""A reference for the fused convolution's gradients (``conv2d(..., max_pool=k)``) in extended precision, and the
bound any order of summation must keep to it.

The compiled backward (``jit_kernels.winner_grads``) sums each pooling window's winner alone, in window order; the
NumPy code multiplies the losers' zeros too and sums in BLAS's order. Neither order is the exact sum, so they agree
only within rounding: each result must lie within ``gamma(m + 1) * sum |terms|`` of the exact sum (Higham,
*Accuracy and Stability of Numerical Algorithms*, 2nd ed., eq. 4.4, any order of m additions; the +1 covers each
product's own rounding), with ``m`` the element's number of terms. The reference takes the winners from the op
(``fn.arg``): which element wins a near-tie is the forward's business, checked against PyTorch elsewhere.
"""

from __future__ import annotations

import numpy as np

L = np.longdouble  # (x86: 64-bit mantissa, 2048x finer than float64)


def reference(fn, x, w, g):
    """``(gx, gw)``, each as ``(value, sum of |terms|, number of terms)`` in long double, from the op's node ``fn``,
    its input ``x`` (N, C, H, W), weight ``w`` (O, C, kh, kw) and the pooled output's gradient ``g``."""
    kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k = fn.geom
    n, c = x.shape[:2]
    o = w.shape[0]
    xn = np.pad(x.astype(L), ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w))).transpose(0, 2, 3, 1)
    gy = g.astype(L)
    if fn.y is not None:  # (ReLU's mask)
        gy = gy * (fn.y.reshape(n, ph, pw, o).transpose(0, 3, 1, 2) > 0)
    arg = fn.arg.reshape(n, ph, pw, o).transpose(0, 3, 1, 2).astype(np.int64)
    images = np.arange(n)[:, None, None, None] + np.zeros_like(arg)
    y0 = (k * np.arange(ph)[None, None, :, None] + arg // k) * sh
    x0 = (k * np.arange(pw)[None, None, None, :] + arg % k) * sw
    out = {}
    for name, f in (("value", lambda a: a), ("size", np.abs)):
        gw = np.zeros(w.shape, dtype=L)
        gxn = np.zeros(xn.shape, dtype=L)
        for r in range(kh):
            for s in range(kw):
                rows, cols = y0 + r * dh, x0 + s * dw
                gw[:, :, r, s] = np.einsum("noij,noijc->oc", f(gy), f(xn[images, rows, cols]))
                wrs = f(w[:, :, r, s].astype(L))[None, :, None, None, :]  # (1, O, 1, 1, C)
                np.add.at(gxn, (images, rows, cols), f(gy)[..., None] * wrs)
        out[name] = (gxn, gw)
    count = np.zeros(xn.shape, dtype=np.int64)
    for r in range(kh):
        for s in range(kw):
            np.add.at(count, (images, y0 + r * dh, x0 + s * dw), 1)
    crop = (slice(None), slice(pad_h, xn.shape[1] - pad_h), slice(pad_w, xn.shape[2] - pad_w))
    gx = [a[crop].transpose(0, 3, 1, 2) for a in (out["value"][0], out["size"][0], count)]
    return tuple(gx), (out["value"][1], out["size"][1], n * ph * pw)


def assert_within_rounding(got, want, what=""):
    """``got`` within ``gamma(m + 1) * sum |terms|`` of the reference ``want`` = ``(value, size, m)``."""
    value, size, m = want
    u = float(np.finfo(got.dtype).eps) / 2
    mm = np.asarray(m, dtype=np.float64) + 1
    gamma = mm * u / (1 - mm * u)
    err = np.abs(got.astype(L) - value)
    bound = gamma * size + float(np.finfo(L).eps) * size  # (+ the reference's own rounding)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert (err <= bound).all(), f"{what}: off by {float(err[worst]):.3g} at {worst}, bound {float(bound[worst]):.3g}"
