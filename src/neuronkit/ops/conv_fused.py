"""A convolution with its bias, ReLU and max-pooling fused: ``conv2d(..., activation="relu", max_pool=k)``.

The result equals ``max_pool2d(relu(conv2d(x, w, b)), k)`` (values and gradients) but is computed as
``relu(max_pool(conv(x, w)) + b)``, which is the same math: the max commutes with adding a per-channel constant and
with the monotone ReLU. So bias and ReLU run on the k*k times smaller pooled output, in place, and ReLU's backward
is a mask on that small output (the gradient reaches a window's winner only where the pooled value is > 0).

The pooling is folded into the im2col order: the GEMM's rows are grouped by pooling offset (a, b), so its output is
k*k contiguous planes, one per window offset, and the max-pool is an elementwise max over planes (contiguous, about
5x faster than over strided windows). Conv output rows or columns that the pooling drops (an 11x11 map pooled to
5x5) are never computed. Windows tie-break like ``max_pool2d``: the first maximal offset in row-major order wins.
One difference in the last bit, not in the math: adding the bias after the max can make two window values that
differ by less than the bias's rounding compare unequal where the unfused order sees a tie, so the gradient of such
a window can go to the other (equally maximal) element.

Backward, the NumPy code spreads the pooled gradient over the k*k planes (zeros at each window's losers), then runs
conv's weight-gradient GEMM and col2im over all of them. With the compiled kernels (``pip install neuronkit[fast]``)
and im2col in rows (many channels), both gradients come from each window's winner alone (``jit_kernels.
winner_grads``): 1/(k*k) of the multiply-adds, no planes, no col2im. That is the same math, summed in another order,
so these two gradients agree with the NumPy code's within rounding, not bit for bit (tests/winners.py bounds both).
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from .im2col import col2im, nhwc, out_size, pad, planes_patches

WINNER_CHUNKS = 16
"""The compiled backward's weight gradient is summed over this many chunks of the batch (``_winner_grads``)."""


class Conv2dFused(Function):
    """conv2d (one group) -> optional bias -> optional ReLU -> optional max-pool k x k (stride k), as one node."""

    name = "conv2d"

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), relu=False, pool=1):
        xp = B.xp
        n, c, h, wd = x.shape
        o, _, kh, kw = w.shape
        (sh, sw), (pad_h, pad_w), (dh, dw) = stride, padding, dilation
        k = pool
        ph = out_size(h, kh, sh, pad_h, dh) // k
        pw = out_size(wd, kw, sw, pad_w, dw) // k
        xpad = pad(x, pad_h, pad_w)
        cols, plane, fill = planes_patches(xpad, kh, kw, sh, sw, dh, dw, ph, pw, k)  # (k*k*P, K)
        wmat = w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # (O, K), K ordered (a, b, c) like the columns
        wt, pp = wmat.T, ph * pw
        z = xp.empty((k * k, n * pp, o), dtype=xp.result_type(x.dtype, w.dtype))  # cols @ wmat.T, k*k planes
        planes = z.reshape(k * k, n, pp * o)
        y = planes[0] if k == 1 else xp.empty((n, pp * o), dtype=z.dtype)
        tiled = None if b is None else xp.tile(b, pp)
        zero = xp.zeros(1, dtype=z.dtype)
        jit = B.jit() if 1 < k * k < 256 and z.dtype.name in ("float32", "float64") else None
        if jit is not None and (b is None or b.dtype == z.dtype):  # the pooling, bias and ReLU in one pass
            self.arg, won = xp.empty(y.shape, dtype=xp.uint8), []
            bias = tiled if tiled is not None else xp.empty(0, dtype=z.dtype)
        else:
            self.arg, won = None, [xp.empty(y.shape, dtype=bool) for _ in range(k * k - 1)]
        self.kernels = jit  # (backward uses the same, whatever JIT says by then)

        per_image = (cols.nbytes + z.nbytes) // max(n, 1) + B.item_bytes(x)
        pooled = False
        if self.arg is not None and x.dtype == w.dtype == z.dtype and (mod := B.pool(cols.size + z.size, start=True)):
            geom = (kh, kw, sh, sw, dh, dw, ph, pw, k)
            pooled = self._pooled(mod, geom, xpad, cols, wt, z, planes, y, bias, relu, B.grain(per_image))
        in_pieces = not pooled and B.gemm_in_pieces()  # (it asks the OS for the cores: 25 us)
        if not pooled and not in_pieces:  # one GEMM, BLAS's threads on it; im2col and the rest still in pieces
            B.parallel_for(n, fill, cols.size)  # (one pass: nothing to keep in cache)
            xp.matmul(cols, wt, out=z.reshape(-1, o))

        def piece(lo, hi):  # images lo:hi from im2col to ReLU, each pass while the piece is in cache
            if in_pieces:
                fill(lo, hi)
                for q in range(k * k):
                    xp.matmul(plane(q // k, q % k, lo, hi), wt, out=z[q, lo * pp : hi * pp])
            part = y[lo:hi]
            if self.arg is not None:
                jit.planes_max(planes, y, self.arg, bias, relu, lo, hi)
                return
            if k > 1:
                # A later offset takes over only where strictly greater: each window's first maximal offset wins.
                xp.greater(planes[1, lo:hi], planes[0, lo:hi], out=won[0][lo:hi])
                xp.maximum(planes[0, lo:hi], planes[1, lo:hi], out=part)
                for q in range(2, k * k):
                    xp.greater(planes[q, lo:hi], part, out=won[q - 1][lo:hi])
                    xp.maximum(part, planes[q, lo:hi], out=part)
            if tiled is not None:
                part += tiled
            if relu:
                xp.maximum(part, zero, out=part)

        if not pooled:
            B.parallel_for(n, piece, cols.size + z.size, B.grain(per_image))
        y = y.reshape(n * ph * pw, o)
        won = [w_.reshape(n * ph * pw, o) for w_ in won] or None
        self.cols, self.wmat, self.won, self.y = cols, wmat, won, (y if relu else None)
        self.xshape, self.geom = x.shape, (kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k)
        return y.reshape(n, ph, pw, o).transpose(0, 3, 1, 2)  # (N, O, ph, pw) view of NHWC memory

    def _pooled(self, mod, geom, xpad, cols, wt, z, planes, y, bias, relu, grain):
        """The forward's im2col, GEMM, pooling, bias and ReLU on the one pool of threads (``backend.pool``), each
        over the whole batch; False where the pool did not run them (then the caller does it all)."""
        kh, kw, sh, sw, dh, dw, ph, pw, k = geom
        n, c = xpad.shape[:2]
        if cols.flags.c_contiguous:  # (the two layouts of planes_patches)
            dst, src = cols.reshape(k, k, n, ph, pw, kh, -1), nhwc(xpad)
        else:
            dst, src = cols.T.reshape(kh, kw, c, k, k, n, ph, pw), xpad
        if not mod.fill_planes(dst, src, kh, kw, sh, sw, dh, dw, k, grain):
            return False
        if not mod.gemm(cols, wt, z.reshape(-1, z.shape[-1])):  # (a GEMM too small to cut: whole)
            B.xp.matmul(cols, wt, out=z.reshape(-1, z.shape[-1]))
        return mod.planes_max(planes, y, self.arg, bias, relu, grain)

    def backward(self, g):
        xp = B.xp
        kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k = self.geom
        n, c = self.xshape[:2]
        o = self.wmat.shape[0]
        p = n * ph * pw
        gy = g.transpose(0, 2, 3, 1)
        gy = (gy if gy.flags.c_contiguous else xp.ascontiguousarray(gy)).reshape(n, ph * pw * o)
        if self.y is not None:
            gy = self._masked(gy, self.y.reshape(gy.shape))
        gx = gw = gb = None
        if len(self.next) > 2 and self.next[2] is not None:
            gb = xp.ones(p, dtype=gy.dtype) @ gy.reshape(p, o)
        want_x, want_w = self.next[0] is not None, self.next[1] is not None
        if self._winners(gy) and (want_x or want_w) and (got := self._winner_grads(gy, want_x, want_w)) is not None:
            return got + (gb,)
        gz = gy.reshape(p, o) if k == 1 else self._plane_grads(gy)
        if self.next[1] is not None:
            gw = B.matmul(gz.T, self.cols).reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
        if self.next[0] is not None:
            gx = self._input_grad(gz, n, c, kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k)
        return gx, gw, gb

    def _winners(self, gy):
        """Whether the compiled kernels take both gradients from each window's winner alone (``_winner_grads``):
        pooled, the forward on the kernels, im2col in rows (many channels), one dtype, a batch."""
        return (
            self.arg is not None
            and self.geom[-1] > 1
            and self.cols.flags.c_contiguous
            and self.cols.size > 0
            and (gy.dtype == self.cols.dtype == self.wmat.dtype)
        )

    def _winner_grads(self, gy, want_x, want_w):
        """``(gx, gw)`` from each pooling window's winner alone (``jit_kernels.winner_grads``): a loser's gradient is
        0, so its multiply-adds (3 of every 4 on 2x2 windows) are skipped, as are the planes' gradients, col2im and
        its GEMMs. The weight gradient is summed per fixed chunk of images, then the chunks in order: its values do
        not depend on the thread count. None on a NaN or infinite gradient (then the NumPy code's products run)."""
        xp = B.xp
        kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k = self.geom
        n, c, h, wd = self.xshape
        o, kk = self.wmat.shape
        per = -(-n // WINNER_CHUNKS)
        parts = xp.empty((-(-n // per), o, kk) if want_w else (1, 0, 0), dtype=gy.dtype)
        gpad = xp.empty((n, h + 2 * pad_h, wd + 2 * pad_w, c) if want_x else (0, 0, 0, 0), dtype=gy.dtype)
        wmat = xp.ascontiguousarray(self.wmat)
        args = (gy.reshape(-1, o), self.arg.reshape(-1, o), self.cols, wmat, parts, gpad)
        args += (k, ph, pw, kh, kw, sh, sw, dh, dw, per)
        mod = B.pool(self.cols.size + gpad.size)
        if (ok := None if mod is None else mod.winner_backward(*args)) is None:
            ok = self.kernels.winner_backward(*args)
        if not ok:
            return None
        gx = gpad.transpose(0, 3, 1, 2)[:, :, pad_h : pad_h + h, pad_w : pad_w + wd] if want_x else None
        if not want_w:
            return gx, None
        gw = xp.empty((o, kk), dtype=gy.dtype)
        self.kernels.add_parts(parts, gw)
        return gx, gw.reshape(o, kh, kw, c).transpose(0, 3, 1, 2)

    def _masked(self, gy, y):
        """``gy * (y > 0)``, ReLU's backward, over chunks of the batch."""
        out = B.xp.empty_like(gy)
        if self.kernels is not None and gy.dtype == y.dtype:
            flats = (gy.reshape(-1), y.reshape(-1), out.reshape(-1))  # (all three contiguous)
            if (mod := B.pool(gy.size)) is None or not mod.relu_backward(*flats):
                self.kernels.relu_backward(*flats)
            return out
        B.parallel_for(len(gy), lambda lo, hi: B.xp.multiply(gy[lo:hi], y[lo:hi] > 0, out=out[lo:hi]), 3 * gy.size)
        return out

    def _plane_grads(self, gy):
        """Each plane's gradient: ``gy`` (N, ph*pw*O) where that offset won its window (walking the offsets
        backwards: offset q gets the windows it took over and no later offset did), as (k*k*N*ph*pw, O)."""
        xp = B.xp
        o, k = self.wmat.shape[0], self.geom[-1]
        kk = k * k
        gz = xp.empty((kk,) + gy.shape, dtype=gy.dtype)
        if self.arg is not None:
            if (mod := B.pool(gz.size)) is None or not mod.plane_grads(gy, self.arg, gz):
                self.kernels.plane_grads(gy, self.arg, gz)
            return gz.reshape(-1, o)
        won = [w_.reshape(gy.shape) for w_ in self.won]

        def run(lo, hi):
            later = None
            for q in range(kk - 1, 0, -1):
                took = won[q - 1][lo:hi]
                hit = took if later is None else took & ~later
                later = took if later is None else later | took
                xp.multiply(gy[lo:hi], hit, out=gz[q, lo:hi])
            xp.multiply(gy[lo:hi], ~later, out=gz[0, lo:hi])

        B.parallel_for(len(gy), run, gz.size + 2 * gy.size, B.grain((kk + 2) * B.item_bytes(gy)))
        return gz.reshape(-1, o)

    def _input_grad(self, gz, n, c, kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k):
        """Input gradient: the planes' gradients put back in conv-output order (zero where the pooling dropped a
        row or column), then conv's col2im, whose adds run along whole image rows (adding plane by plane would run
        over C values at a time: 3-4x slower)."""
        xp = B.xp
        o = self.wmat.shape[0]
        gm = gz
        if k > 1:
            h, wd = self.xshape[2:]
            oh, ow = out_size(h, kh, sh, pad_h, dh), out_size(wd, kw, sw, pad_w, dw)
            full = xp.empty((n, oh, ow, o), dtype=gz.dtype)
            planes = gz.reshape(k, k, n, ph, pw, o)
            dropped = (oh, ow) != (k * ph, k * pw)  # conv rows or columns the pooling dropped get zeros

            def place(lo, hi):
                if self.kernels is not None and full.dtype == planes.dtype:
                    self.kernels.planes_place(full[lo:hi], planes[:, :, lo:hi], dropped)
                    return
                if dropped:
                    full[lo:hi].fill(0)
                for a in range(k):
                    for b in range(k):
                        full[lo:hi, a : k * ph : k, b : k * pw : k] = planes[a, b, lo:hi]

            mod = B.pool(2 * full.size) if self.kernels is not None and full.dtype == planes.dtype else None
            if mod is None or not mod.planes_place(full, planes, dropped):
                B.parallel_for(n, place, 2 * full.size, B.grain(2 * B.item_bytes(full)))
            gm = full.reshape(n * oh * ow, o)
        else:
            oh, ow = ph, pw
        return col2im(gm, self.wmat[None], self.xshape, kh, kw, sh, sw, pad_h, pad_w, dh, dw, oh, ow)
