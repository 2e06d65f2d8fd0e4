"""Compiled kernels (Numba) for memory-bound work that NumPy does in several passes: max pooling, ReLU, the im2col
rows of a convolution, col2im's adds, the fused convolution's pooling and backward, Adam's update, and the probes'
per-unit statistics.

Reached only through ``backend.jit()``, which returns this module when Numba is installed (``pip install
neuronkit[fast]``) and ``NEURONKIT_JIT`` is not ``0``, else None; the ops then run their NumPy code. Each kernel does
in one pass over memory what the NumPy code does in several, and computes every element by the same comparisons and
products, so results are bit for bit those of the NumPy code (tests/test_jit.py). Two exceptions sum in another
order and agree within rounding: ``winner_grads``, the fused convolution's backward from each pooling window's winner
alone, which skips the NumPy code's multiplications by the losers' zeros (tests/winners.py), and ``unit_stats``,
the probes' float64 statistics, summed in row order where NumPy's are pairwise (tests/test_inspect_probes.py).
Each runs on the calling thread and releases the GIL (``nogil``); ``jit_pool`` runs them on slices of the batch over
Numba's threads, together with the GEMMs, where more than one core is used. Compiled once per dtype and layout, then
cached on disk (Numba's ``cache=True``: next to this file, or in the user's cache where that is read-only).
"""

from __future__ import annotations

import numba
import numpy as np  # (inside the kernels: Numba's own np.sqrt; the engine's arrays still come through backend.py)

_jit = numba.njit(nogil=True, cache=True)


@_jit
def relu_forward(x, y):
    """``y = maximum(x, 0)`` on 1-D arrays: NaN passes, -0.0 becomes 0.0 (as ``numpy.maximum(x, 0)``)."""
    for i in range(x.shape[0]):
        v = x[i]
        if v > 0 or v != v:
            y[i] = v
        else:
            y[i] = 0


@_jit
def relu_backward(g, y, out):
    """``out = g * (y > 0)`` on 1-D arrays, with the product's signed zeros and NaNs (as NumPy's)."""
    for i in range(g.shape[0]):
        if y[i] > 0:
            out[i] = g[i]
        else:
            out[i] = g[i] * 0  # (-0.0 for a negative g, NaN for NaN or inf, as NumPy's product)


@_jit
def max_pool_forward(xn, out, arg, kh, kw, sh, sw):
    """Max pooling of ``xn`` (N, Hp, Wp, C) into ``out`` (N, oh, ow, C); ``arg`` (uint8, same shape) gets the offset
    ``a*kw + b`` of each window's winner. Offsets are scanned in row-major order and a later one takes over only if
    strictly greater (the first maximal element wins, as PyTorch); the value kept is ``numpy.maximum``'s."""
    n, oh, ow, c = out.shape
    for i in range(n):
        for y in range(oh):
            for x in range(ow):
                for ch in range(c):
                    best = xn[i, y * sh, x * sw, ch]
                    won = 0
                    for k in range(1, kh * kw):
                        v = xn[i, y * sh + k // kw, x * sw + k % kw, ch]
                        if v > best:
                            won = k
                        if not (best > v or best != best):  # numpy.maximum(best, v)
                            best = v
                    out[i, y, x, ch] = best
                    arg[i, y, x, ch] = won


@_jit
def max_pool2_forward(xn, out, arg):
    """``max_pool_forward`` for 2x2 windows with stride 2, unrolled."""
    n, oh, ow, c = out.shape
    for i in range(n):
        for y in range(oh):
            for x in range(ow):
                for ch in range(c):
                    best = xn[i, 2 * y, 2 * x, ch]
                    won = 0
                    v = xn[i, 2 * y, 2 * x + 1, ch]
                    if v > best:
                        won = 1
                    if not (best > v or best != best):
                        best = v
                    v = xn[i, 2 * y + 1, 2 * x, ch]
                    if v > best:
                        won = 2
                    if not (best > v or best != best):
                        best = v
                    v = xn[i, 2 * y + 1, 2 * x + 1, ch]
                    if v > best:
                        won = 3
                    if not (best > v or best != best):
                        best = v
                    out[i, y, x, ch] = best
                    arg[i, y, x, ch] = won


@_jit
def max_pool_backward(g, arg, gpad, kh, kw, sh, sw, zero):
    """Gradient of non-overlapping max pooling: each window's elements of ``gpad`` (N, Hp, Wp, C) get ``g`` (N, oh,
    ow, C) at the winner and ``g * 0`` elsewhere (the NumPy code's products, signed zeros included); with ``zero``,
    each image's ``gpad`` is zeroed first (elements outside every window)."""
    n, oh, ow, c = g.shape
    for i in range(n):
        if zero:
            gpad[i] = 0
        for y in range(oh):
            for x in range(ow):
                for a in range(kh):
                    for b in range(kw):
                        k = a * kw + b
                        for ch in range(c):
                            v = g[i, y, x, ch]
                            gpad[i, y * sh + a, x * sw + b, ch] = v if arg[i, y, x, ch] == k else v * 0


@_jit
def im2col_rows(dst, xn, kh, kw, sh, sw, dh):
    """The im2col rows of ``ops/im2col.fill_cols``: ``dst`` (N, oh, ow, kh, kw*C) gets, for each output pixel and
    kernel row a, the kw*C values ``xn[n, y*sh + a*dh, x*sw : x*sw + kw, :]`` (``xn`` (N, Hp, Wp, C), unit width
    dilation)."""
    n, oh, ow = dst.shape[0], dst.shape[1], dst.shape[2]
    c = xn.shape[3]
    for i in range(n):
        for y in range(oh):
            for a in range(kh):
                for x in range(ow):
                    for b in range(kw):
                        for ch in range(c):
                            dst[i, y, x, a, b * c + ch] = xn[i, y * sh + a * dh, x * sw + b, ch]


@_jit
def im2col_t(dst, x, sh, sw, dh, dw):
    """The transposed im2col of ``ops/im2col.fill_cols_t``: ``dst`` (kh, kw, C, N, oh, ow) gets
    ``x[n, c, y*sh + a*dh, x*sw + b*dw]`` (``x`` (N, C, Hp, Wp), any strides)."""
    kh, kw, c, n, oh, ow = dst.shape
    for a in range(kh):
        for b in range(kw):
            for ch in range(c):
                for i in range(n):
                    for y in range(oh):
                        for j in range(ow):
                            dst[a, b, ch, i, y, j] = x[i, ch, y * sh + a * dh, j * sw + b * dw]


@_jit
def col2im_add(part, blocks, first, kh, kw, sh, sw, dh, dw):
    """The adds of ``ops/im2col.col2im``: ``part`` (n, Hp, Wp, C) zeroed, then for image i the block ``a*kw + b`` of
    ``blocks`` (kh*kw, N, oh, ow, C) at image ``first + i`` added at offset (a*dh, b*dw) with strides (sh, sw), the
    offsets in that order (the NumPy code's order of adds, so the sums are the same)."""
    n, hp, wp, c = part.shape
    oh, ow = blocks.shape[2], blocks.shape[3]
    for i in range(n):
        for h in range(hp):
            for w in range(wp):
                for ch in range(c):
                    part[i, h, w, ch] = 0
        for a in range(kh):
            for b in range(kw):
                for y in range(oh):
                    for x in range(ow):
                        for ch in range(c):
                            part[i, a * dh + y * sh, b * dw + x * sw, ch] += blocks[a * kw + b, first + i, y, x, ch]


@_jit
def planes_max(planes, y, arg, bias, relu, lo, hi):
    """The fused convolution's pooling (``ops/conv_fused.py``) for images lo:hi: ``y`` (N, L) gets the max over the
    k*k ``planes`` (k*k, N, L), each offset taking over only where strictly greater (``arg``, uint8, gets the winner),
    then ``+ bias`` (L values, or none if empty) and ReLU: the NumPy code's greater/maximum, add and maximum."""
    kk, length = planes.shape[0], planes.shape[2]
    for i in range(lo, hi):
        for j in range(length):
            best = planes[0, i, j]
            won = 0
            for q in range(1, kk):
                v = planes[q, i, j]
                if v > best:
                    won = q
                if not (best > v or best != best):
                    best = v
            if bias.shape[0]:
                best += bias[j]
            if relu and not (best > 0 or best != best):
                y[i, j] = 0  # (into the array: a literal 0 given to ``best`` would make it a float64)
            else:
                y[i, j] = best
            arg[i, j] = won


@_jit
def plane_grads(gy, arg, gz):
    """Each pooling plane's gradient in the fused convolution: ``gz[q] = gy`` where offset q won (``arg``), else
    ``gy * 0`` (``gz`` (k*k, N, L), ``gy`` and ``arg`` (N, L)), the NumPy code's products."""
    kk, n, length = gz.shape
    for i in range(n):
        for q in range(kk):
            for j in range(length):
                v = gy[i, j]
                gz[q, i, j] = v if arg[i, j] == q else v * 0


@_jit
def planes_place(full, planes, zero):
    """The planes' gradients back in conv-output order: ``full`` (N, oh, ow, O) gets ``planes`` (k, k, N, ph, pw, O)
    at rows a::k and columns b::k; with ``zero``, each image is zeroed first (rows and columns the pooling dropped)."""
    k, n, ph, pw, o = planes.shape[0], planes.shape[2], planes.shape[3], planes.shape[4], planes.shape[5]
    for i in range(n):
        if zero:
            full[i] = 0
        for a in range(k):
            for b in range(k):
                for y in range(ph):
                    for x in range(pw):
                        for c in range(o):
                            full[i, k * y + a, k * x + b, c] = planes[a, b, i, y, x, c]


@_jit
def adam_step(p, g, m, v, b1, c1, b2, c2, bias2, eps, step, tiny):
    """One Adam update on 1-D arrays, the NumPy code's operations in its order and dtype (``optim/adam.py``; the
    scalars come in the arrays' dtype): ``m = m*b1 + g*c1``, ``v = v*b2 + (g*g)*c2``, each set to 0 where below
    ``tiny`` in size (subnormal, as ``optim/adam.flush_subnormal``), then ``p -= (m / (sqrt(v) / bias2 + eps)) *
    step``."""
    zero = tiny - tiny  # (+0.0 in the arrays' dtype: a literal 0 would make the sums below float64)
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * b1 + gi * c1
        vi = v[i] * b2 + (gi * gi) * c2
        if abs(mi) < tiny:
            mi = zero
        if abs(vi) < tiny:
            vi = zero
        m[i] = mi
        v[i] = vi
        p[i] -= (mi / (np.sqrt(vi) / bias2 + eps)) * step


@_jit
def winner_grads(gy, arg, cols, wmat, gw, gpad, k, ph, pw, kh, kw, sh, sw, dh, dw, lo, hi):
    """Both gradients of the fused convolution for images lo:hi from each pooling window's winner alone (``ops/
    conv_fused.py``): ``gy`` (N*ph*pw, O), the pooled output's gradient (ReLU's mask applied), ``arg`` (uint8, same
    shape) the winning offset, ``cols`` (k*k*N*ph*pw, K) the forward's im2col rows, ``wmat`` (O, K). ``gw`` (O, K)
    gets the sum over these windows of ``gy * cols[winner's row]``, in window order (or nothing if it is empty);
    ``gpad`` (N, Hp, Wp, C), zeroed for these images first, gets each winner's patch gradient ``gy * wmat[o]``
    (summed over the channels o a plane won, in order) at its patch (or nothing if it is empty). The NumPy code
    multiplies the losers' zeros too (4x the multiply-adds on 2x2 windows) and sums in BLAS's order, so values agree
    within rounding. Zero gradients are skipped. Returns False, leaving the outputs unfinished, on a NaN or infinite
    gradient (the caller then runs the NumPy code's products, whose ``inf * 0`` give NaN)."""
    n_win, o_n = gy.shape
    kk = k * k
    c = gpad.shape[3]
    want_w, want_x = gw.shape[0] > 0, gpad.shape[0] > 0
    if want_w:
        gw[:, :] = 0
    d = np.zeros((kk, wmat.shape[1]), dtype=gy.dtype)
    used = np.zeros(kk, dtype=np.bool_)
    for i in range(lo, hi):
        if want_x:
            gpad[i] = 0
        for y in range(ph):
            for x in range(pw):
                p = (i * ph + y) * pw + x
                used[:] = False
                for o in range(o_n):
                    g = gy[p, o]
                    if g == 0:
                        continue
                    if not (g - g == 0):
                        return False
                    q = arg[p, o]
                    if want_w:
                        row = q * n_win + p
                        for j in range(cols.shape[1]):
                            gw[o, j] += g * cols[row, j]
                    if want_x:
                        if not used[q]:
                            used[q] = True
                            for j in range(wmat.shape[1]):
                                d[q, j] = g * wmat[o, j]
                        else:
                            for j in range(wmat.shape[1]):
                                d[q, j] += g * wmat[o, j]
                for q in range(kk):
                    if used[q]:
                        oy, ox = (k * y + q // k) * sh, (k * x + q % k) * sw
                        for r in range(kh):
                            for s in range(kw):
                                base = (r * kw + s) * c
                                for ch in range(c):
                                    gpad[i, oy + r * dh, ox + s * dw, ch] += d[q, base + ch]
    return True


@_jit
def add_parts(parts, out):
    """``out = parts[0] + parts[1] + ...``, in that order."""
    out[:, :] = parts[0]
    for t in range(1, parts.shape[0]):
        for a in range(out.shape[0]):
            for b in range(out.shape[1]):
                out[a, b] += parts[t, a, b]


@_jit
def winner_backward(gy, arg, cols, wmat, parts, gpad, k, ph, pw, kh, kw, sh, sw, dh, dw, per):
    """``winner_grads`` over the batch's chunks in turn (``per`` images each), chunk t's weight gradient into
    ``parts[t]`` (``parts`` (chunks, O, K), or (1, 0, 0): none); False on a NaN or infinite gradient."""
    n = gy.shape[0] // (ph * pw)
    for t in range((n + per - 1) // per):
        gw = parts[0] if parts.shape[0] == 1 else parts[t]
        lo, hi = t * per, min(n, t * per + per)
        if not winner_grads(gy, arg, cols, wmat, gw, gpad, k, ph, pw, kh, kw, sh, sw, dh, dw, lo, hi):
            return False
    return True


@_jit
def unit_stats(a, edges, out, hist):
    """Statistics of each column (unit) of ``a`` (samples, units) for the probes (``inspect/probes.py``), in float64:
    ``out`` (4, units) gets the mean, the standard deviation (the mean squared deviation from the mean, as
    ``numpy.std``), the root mean square and the fraction above 0; ``hist`` (bins, int64) the counts of
    ``numpy.histogram(numpy.clip(a, edges[0], edges[-1]), edges)``: bin k holds ``edges[k] <= v < edges[k + 1]``, the
    last bin its right edge too, NaN is not counted. Sums run in row order where NumPy's are pairwise: the statistics
    agree within float64 rounding, the counts exactly. Three passes (the sums; the histogram; the deviations), each
    simple enough to vectorize or predict."""
    n, u = a.shape
    bins = edges.shape[0] - 1
    lo, hi = edges[0], edges[bins]
    scale = bins / (hi - lo)
    out[:, :] = 0
    for i in range(n):
        for j in range(u):
            v = np.float64(a[i, j])
            out[0, j] += v
            out[2, j] += v * v
            if v > 0:
                out[3, j] += 1
    per_unit = np.zeros((u, bins), dtype=np.int64)  # (one row per unit: no chain of increments to one bin)
    for i in range(n):
        for j in range(u):
            v = np.float64(a[i, j])
            if v == v:
                c = min(max(v, lo), hi)
                k = min(max(int((c - lo) * scale), 0), bins - 1)
                while k > 0 and c < edges[k]:
                    k -= 1
                while k < bins - 1 and c >= edges[k + 1]:
                    k += 1
                per_unit[j, k] += 1
    for k in range(bins):
        hist[k] = 0
        for j in range(u):
            hist[k] += per_unit[j, k]
    for j in range(u):
        out[0, j] /= n
        out[2, j] = np.sqrt(out[2, j] / n)
        out[3, j] /= n
    m2 = np.zeros(u)
    for i in range(n):
        for j in range(u):
            d = np.float64(a[i, j]) - out[0, j]
            m2[j] += d * d
    for j in range(u):
        out[1, j] = np.sqrt(m2[j] / n)
