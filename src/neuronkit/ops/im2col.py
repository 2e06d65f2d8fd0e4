"""im2col and col2im: the memory layout work of convolution and pooling, shared by ``conv`` and ``conv_fused``.

A convolution is one GEMM over an im2col matrix of input patches (channel innermost, read from NHWC-backed memory),
and its input gradient one GEMM per kernel offset whose blocks ``col2im`` adds back. Pooling reads the same strided
``window`` views. Public within ``neuronkit.ops``; not part of the user API (the ops are).

The copies and adds are memory-bound, so each is split over the batch axis with ``backend.parallel_for``, in pieces
of a few images (``backend.grain``) that stay in cache between passes: a convolution's im2col, GEMM and bias run
piece by piece, as do col2im's GEMMs and adds. Every output element is computed by the same operations in the same
order whatever the thread count, so results do not depend on it; BLAS runs its own threads inside each GEMM.
Where ``backend.pool`` is on (``neuronkit[fast]``, more than one thread), the same pieces run on Numba's threads
instead, each handing its GEMM to OpenBLAS on one thread (``neuronkit/jit_pool.py``).
"""

from __future__ import annotations

from .. import backend as B


def out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def window(x, kh, kw, sh, sw, dh, dw, oh, ow):
    """The view of ``x`` (N, C, H, W) seen by kernel offset (kh, kw): shape (N, C, oh, ow)."""
    h0, w0 = kh * dh, kw * dw
    return x[:, :, h0 : h0 + sh * (oh - 1) + 1 : sh, w0 : w0 + sw * (ow - 1) + 1 : sw]


def pad(x, ph, pw, value=0.0):
    """``x`` (N, C, H, W) with ``ph``/``pw`` rows/columns of ``value`` around it, in an NHWC-backed buffer."""
    if not ph and not pw:
        return x
    n, c, h, w = x.shape
    buf = B.xp.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=x.dtype)
    out = buf.transpose(0, 3, 1, 2)

    def fill(lo, hi):
        buf[lo:hi].fill(value)
        out[lo:hi, :, ph : ph + h, pw : pw + w] = x[lo:hi]

    B.parallel_for(n, fill, 2 * buf.size)
    return out


def im2col(xpad, kh, kw, sh, sw, dh, dw, oh, ow, groups):
    """Patches of ``xpad`` (N, C, Hp, Wp) as a matrix (N*oh*ow, groups, kh*kw*C/groups), channel innermost.

    ``cols[(n, i, j), g, (a, b, ci)] = xpad[n, g*cg + ci, i*sh + a*dh, j*sw + b*dw]``. The input is read in NHWC
    order (what our convolutions and pools return). With unit width stride and dilation and one group, the kw*C values
    of one kernel row are contiguous in that memory, so each kernel row is one strided copy; with few channels the
    matrix is built transposed instead (see ``fill_cols_t``). The result may be a non-contiguous view.
    """
    cols, fill = patches(xpad, kh, kw, sh, sw, dh, dw, oh, ow, groups)
    B.parallel_for(xpad.shape[0], fill, cols.size)
    return cols


def patches(xpad, kh, kw, sh, sw, dh, dw, oh, ow, groups):
    """``(cols, fill)``: the uninitialised im2col matrix of ``im2col`` and ``fill(lo, hi)``, which writes the rows of
    images lo:hi (rows lo*oh*ow to hi*oh*ow)."""
    xp = B.xp
    n, c, hp, wp = xpad.shape
    cg = c // groups
    if groups == 1 and sw == 1 and dw == 1 and kw * c >= 16:  # (few channels: per-offset copies run longer)
        cols = xp.empty((n, oh, ow, kh, kw * c), dtype=xpad.dtype)
        xn = nhwc(xpad)

        def fill(lo, hi):
            fill_cols(cols[lo:hi], xn[lo:hi], kh, kw, sh, sw, dh, oh, ow)

        return cols.reshape(n * oh * ow, 1, kh * kw * c), fill
    if groups == 1:
        cols_t = xp.empty((kh, kw, c, n, oh, ow), dtype=xpad.dtype)

        def fill_t(lo, hi):
            fill_cols_t(cols_t[:, :, :, lo:hi], xpad[lo:hi], kh, kw, sh, sw, dh, dw, oh, ow)

        return cols_t.reshape(kh * kw * c, n * oh * ow).T[:, None, :], fill_t
    cols = xp.empty((n, oh, ow, groups, kh, kw, cg), dtype=xpad.dtype)

    def fill_groups(lo, hi):
        for a in range(kh):
            for bb in range(kw):
                win = window(xpad[lo:hi], a, bb, sh, sw, dh, dw, oh, ow)  # (chunk, C, oh, ow)
                cols[lo:hi, :, :, :, a, bb, :] = win.transpose(0, 2, 3, 1).reshape(hi - lo, oh, ow, groups, cg)

    return cols.reshape(n * oh * ow, groups, kh * kw * cg), fill_groups


def conv_gemm(xpad, wmat, b, kh, kw, sh, sw, dh, dw, oh, ow):
    """A one-group convolution as ``(cols, out)``: the im2col matrix (N*oh*ow, 1, K) (kept for the weight gradient)
    and ``out = cols @ wmat.T + b`` (N*oh*ow, O), built a few images at a time: each piece's patches are still in
    cache when its GEMM reads them, and its output when the bias is added. The pieces depend on the shapes only, never
    on the thread count; with OpenBLAS's SkylakeX float32 kernel each output row equals the same row of one whole GEMM
    (checked bit for bit), while others (SkylakeX float64, Haswell float32, measured 2026-12-01; Nehalem) can round
    the rows of a piece's edge tiles differently in the last bit."""
    xp = B.xp
    n = xpad.shape[0]
    o = wmat.shape[0]
    rows = oh * ow
    cols, fill = patches(xpad, kh, kw, sh, sw, dh, dw, oh, ow, 1)
    out = xp.empty((n * rows, o), dtype=xp.result_type(xpad.dtype, wmat.dtype))
    wt = wmat.T
    per_image = (cols.nbytes + out.nbytes) // max(n, 1) + B.item_bytes(xpad)
    floats = xpad.dtype == wmat.dtype and out.dtype.name in ("float32", "float64")
    if floats and (mod := B.pool(cols.size + out.size, start=True)):
        if _pooled_conv(mod, xpad, wmat, b, cols, fill, out, (kh, kw, sh, sw, dh, dw, oh, ow), per_image):
            return cols, out
    tiled = None if b is None else xp.tile(b, ow)

    in_pieces = B.gemm_in_pieces()
    if not in_pieces:  # one GEMM, BLAS's threads on it; im2col and bias still in pieces
        B.parallel_for(n, fill, cols.size)  # (one pass: nothing to keep in cache)
        xp.matmul(cols[:, 0, :], wt, out=out)

    def piece(lo, hi):
        part = out[lo * rows : hi * rows]
        if in_pieces:
            fill(lo, hi)
            xp.matmul(cols[lo * rows : hi * rows, 0, :], wt, out=part)
        if tiled is not None:
            part.reshape(-1, ow * o)[...] += tiled  # bias added over rows of ow*O values (see add_bias_rows)

    B.parallel_for(n, piece, cols.size + out.size, B.grain(per_image))
    return cols, out


def _pooled_conv(mod, xpad, wmat, b, cols, fill, out, geom, per_image):
    """``conv_gemm``'s work on the one pool of threads (``backend.pool``); False where it did not run. The im2col
    rows of ``fill_cols``'s kernel, the GEMM and the bias go a few images at a time; other im2col layouts are filled
    first, then one GEMM cut into row blocks (the same values: see ``neuronkit/jit_pool.py``)."""
    kh, kw, sh, sw, dh, dw, oh, ow = geom
    n, c = xpad.shape[:2]
    if sw == 1 and dw == 1 and kw * c >= 16 and wmat.flags.c_contiguous and (b is None or b.dtype == out.dtype):
        bias = B.xp.empty(0, dtype=out.dtype) if b is None else b
        cols5 = cols.reshape(n, oh, ow, kh, kw * c)  # (a view: see patches)
        return mod.conv_forward(cols5, nhwc(xpad), wmat, bias, out, kh, kw, sh, sw, dh, B.grain(per_image))
    grain = B.grain(per_image)
    cols_t = cols[:, 0, :].T.reshape(kh, kw, c, 1, 1, n, oh, ow)  # (the transposed layout of patches)
    if not mod.fill_planes(cols_t, xpad, kh, kw, sh, sw, dh, dw, 1, grain):
        B.parallel_for(n, fill, cols.size)
    if not mod.gemm(cols[:, 0, :], wmat.T, out):
        B.xp.matmul(cols[:, 0, :], wmat.T, out=out)
    if b is not None:
        rows = out.reshape(-1, ow * out.shape[1])
        if b.dtype != out.dtype or not mod.add_rows(rows, B.xp.tile(b, ow), grain * oh):
            add_bias_rows(out, b, ow)
    return True


def nhwc(xpad):
    """``xpad`` (N, C, H, W) as C-contiguous (N, H, W, C) memory: free when it is NHWC-backed, as ours are."""
    xn = xpad.transpose(0, 2, 3, 1)
    return xn if xn.flags.c_contiguous else B.xp.ascontiguousarray(xn)


def fill_cols(dst, xn, kh, kw, sh, sw, dh, oh, ow):
    """im2col rows for unit dilation along the width: ``dst`` (N, oh, ow, kh, kw*C), ``xn`` an (N, Hp, Wp, C) view
    with C-contiguous rows (it may start at a column offset). The kw*C values of one kernel row are contiguous in
    ``xn``, so each kernel row is one strided copy."""
    k = B.jit()
    if k is not None and xn.dtype.name in ("float32", "float64"):
        k.im2col_rows(dst, xn, kh, kw, sh, sw, dh)  # (one pass, in order of dst's memory)
        return
    n, c = xn.shape[0], xn.shape[3]
    item = xn.itemsize
    for a in range(kh):
        rows = xn[:, a * dh : a * dh + sh * (oh - 1) + 1 : sh]  # (N, oh, Wp', C)
        strides = (rows.strides[0], rows.strides[1], sw * c * item, item)
        dst[:, :, :, a, :] = B.xp.lib.stride_tricks.as_strided(rows, (n, oh, ow, kw * c), strides, writeable=False)


def fill_cols_t(dst, xpad, kh, kw, sh, sw, dh, dw, oh, ow):
    """The im2col matrix transposed, for few channels: ``dst`` (kh, kw, C, N, oh, ow), so each copy runs along the
    image width; the (N*oh*ow, k) view of it is column-major, which BLAS takes as it is (no copy)."""
    for a in range(kh):
        for bb in range(kw):
            dst[a, bb] = window(xpad, a, bb, sh, sw, dh, dw, oh, ow).transpose(1, 0, 2, 3)


def add_bias_rows(out, b, reps):
    """``out += b`` in place for a C-contiguous (M, O) ``out`` whose M is a multiple of ``reps``: added to rows of
    reps*O values, since against the (O,) vector NumPy loops over runs of only O elements (2-3x slower when O is
    small and M large)."""
    rows = out.reshape(-1, reps * out.shape[1])  # a view: out is contiguous
    tiled = B.xp.tile(b, reps)

    def add(lo, hi):
        rows[lo:hi] += tiled

    B.parallel_for(rows.shape[0], add, out.size)


def col2im(gm, wmat, xshape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """Input gradient of a convolution: ``gm`` (N*oh*ow, O) times ``wmat`` (G, og, kh*kw*cg), scattered back.

    One GEMM per kernel offset writes a contiguous (rows, C) block, and each block is added into an NHWC-backed
    buffer; with unit stride a block's rows land as long contiguous runs, far faster than adding C-sized pieces. This
    runs a few images at a time, so the blocks are added while still in cache (pieces fixed by the shapes, as in
    ``conv_gemm``).
    """
    xp = B.xp
    n, c, h, w = xshape
    groups, og, k = wmat.shape
    cg = c // groups
    rows = oh * ow
    gpad = xp.empty((n, h + 2 * ph, w + 2 * pw, c), dtype=gm.dtype)
    if groups == 1:
        wb = wmat[0].reshape(og, kh * kw, cg).transpose(1, 0, 2)  # (kh*kw, O, C)
    else:
        wb = wmat.reshape(groups, og, kh * kw, cg).transpose(2, 0, 1, 3)  # (kh*kw, G, og, cg)

    def gemms(g, images):  # (kh*kw, images, oh, ow, C): one block per kernel offset
        if groups == 1:
            blocks = xp.matmul(g, wb)  # (kh*kw, rows, C)
        else:
            g3 = g.reshape(-1, groups, og).transpose(1, 0, 2)  # (G, rows, og)
            blocks = xp.matmul(g3[None], wb).transpose(0, 2, 1, 3).reshape(kh * kw, -1, c)  # (kh*kw, rows, C)
        return blocks.reshape(kh * kw, images, oh, ow, c)

    k = B.jit() if gpad.dtype.name in ("float32", "float64") and gm.dtype == wmat.dtype else None
    per_image = (kh * kw * rows * c + B.item_size(gpad)) * gpad.itemsize
    if k is not None and groups == 1 and gm.flags.c_contiguous and (mod := B.pool(gpad.size + kh * kw * rows * c * n)):
        wm = xp.ascontiguousarray(wmat[0])  # (O, kh*kw*C)
        if mod.col2im(gpad, gm, wm, kh, kw, sh, sw, dh, dw, oh, ow, B.grain(per_image)):
            return gpad.transpose(0, 3, 1, 2)[:, :, ph : ph + h, pw : pw + w]
    whole = None if B.gemm_in_pieces() else gemms(gm, n)  # (one GEMM per offset, BLAS's threads on it)

    def scatter(lo, hi):
        part = gpad[lo:hi]
        if k is not None:  # (the same adds in the same order, in one pass)
            blocks, first = (gemms(gm[lo * rows : hi * rows], hi - lo), 0) if whole is None else (whole, lo)
            k.col2im_add(part, blocks, first, kh, kw, sh, sw, dh, dw)
            return
        blocks = gemms(gm[lo * rows : hi * rows], hi - lo) if whole is None else whole[:, lo:hi]
        part.fill(0)
        for a in range(kh):
            for bb in range(kw):
                h0, w0 = a * dh, bb * dw
                dst = part[:, h0 : h0 + sh * (oh - 1) + 1 : sh, w0 : w0 + sw * (ow - 1) + 1 : sw, :]
                dst += blocks[a * kw + bb]

    B.parallel_for(n, scatter, gpad.size + kh * kw * rows * c * n, B.grain(per_image))
    return gpad.transpose(0, 3, 1, 2)[:, :, ph : ph + h, pw : pw + w]


def planes_patches(xpad, kh, kw, sh, sw, dh, dw, ph, pw, k):
    """im2col of a one-group convolution whose output (k*ph, k*pw) is cut into k*k pooling planes.

    Returns ``(cols, plane, fill)``: the uninitialised (k*k*N*ph*pw, kh*kw*C) matrix (possibly a column-major view)
    whose rows are ordered (a, b, n, i, j), row (a, b, n, i, j) holding the patch of conv output pixel
    (k*i + a, k*j + b); ``plane(a, b, lo, hi)``, the (rows, kh*kw*C) view of plane (a, b)'s rows for images lo:hi;
    and ``fill(lo, hi)``, which writes those rows of every plane. With k == 1 this is plain im2col.
    """
    xp = B.xp
    n, c = xpad.shape[:2]
    m, kk = k * k * n * ph * pw, kh * kw * c
    if dw == 1 and kw * c >= 16:  # rows of kw*C contiguous values (see im2col)
        xn = nhwc(xpad)
        cols = xp.empty((k, k, n, ph, pw, kh, kw * c), dtype=xpad.dtype)

        def fill(lo, hi):
            for a in range(k):
                for b in range(k):
                    fill_cols(cols[a, b, lo:hi], xn[lo:hi, a * sh :, b * sw :], kh, kw, k * sh, k * sw, dh, ph, pw)

        return cols.reshape(m, kk), lambda a, b, lo, hi: cols[a, b, lo:hi].reshape(-1, kk), fill
    cols_t = xp.empty((kh, kw, c, k, k, n, ph, pw), dtype=xpad.dtype)

    def fill_t(lo, hi):
        for a in range(k):
            for b in range(k):
                dst = cols_t[:, :, :, a, b, lo:hi]
                fill_cols_t(dst, xpad[lo:hi, :, a * sh :, b * sw :], kh, kw, k * sh, k * sw, dh, dw, ph, pw)

    return cols_t.reshape(kk, m).T, lambda a, b, lo, hi: cols_t[:, :, :, a, b, lo:hi].reshape(kk, -1).T, fill_t
