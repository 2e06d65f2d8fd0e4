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
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from .im2col import add_bias_rows, col2im, im2col_planes, out_size, pad


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
        cols = im2col_planes(pad(x, pad_h, pad_w), kh, kw, sh, sw, dh, dw, ph, pw, k)  # (k*k*P, K)
        wmat = w.transpose(0, 2, 3, 1).reshape(o, kh * kw * c)  # (O, K), K ordered (a, b, c) like the columns
        z = cols @ wmat.T  # (k*k*P, O): k*k contiguous planes of P = N*ph*pw rows
        if k == 1:
            y, won = z, None
        else:
            planes = z.reshape(k * k, n * ph * pw, o)
            # A later offset takes over only where strictly greater: each window's first maximal offset wins.
            won = [xp.greater(planes[1], planes[0])]
            y = xp.maximum(planes[0], planes[1])
            for q in range(2, k * k):
                won.append(xp.greater(planes[q], y))
                xp.maximum(y, planes[q], out=y)
        if b is not None:
            add_bias_rows(y, b, pw)
        if relu:
            rows = y.reshape(n * ph, pw * o)
            xp.maximum(rows, xp.zeros(pw * o, dtype=y.dtype), out=rows)  # an array, not 0: NumPy's fast loop
        self.cols, self.wmat, self.won, self.y = cols, wmat, won, (y if relu else None)
        self.xshape, self.geom = x.shape, (kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k)
        return y.reshape(n, ph, pw, o).transpose(0, 3, 1, 2)  # (N, O, ph, pw) view of NHWC memory

    def backward(self, g):
        xp = B.xp
        kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k = self.geom
        n, c = self.xshape[:2]
        o = self.wmat.shape[0]
        p = n * ph * pw
        gy = g.transpose(0, 2, 3, 1)
        gy = (gy if gy.flags.c_contiguous else xp.ascontiguousarray(gy)).reshape(p, o)
        if self.y is not None:
            gy = gy * (self.y > 0)
        gx = gw = gb = None
        if len(self.next) > 2 and self.next[2] is not None:
            gb = xp.ones(p, dtype=gy.dtype) @ gy
        if k == 1:
            gz = gy
        else:  # each plane's gradient: gy where that offset won its window (walk the offsets backwards)
            gz = xp.empty((k * k, p, o), dtype=gy.dtype)
            later = None
            for q in range(k * k - 1, 0, -1):
                took = self.won[q - 1]
                hit = took if later is None else took & ~later
                later = took if later is None else later | took
                xp.multiply(gy, hit, out=gz[q])
            xp.multiply(gy, ~later, out=gz[0])
            gz = gz.reshape(k * k * p, o)
        if self.next[1] is not None:
            gw = (gz.T @ self.cols).reshape(o, kh, kw, c).transpose(0, 3, 1, 2)
        if self.next[0] is not None:
            gx = self._input_grad(gz, n, c, kh, kw, sh, sw, pad_h, pad_w, dh, dw, ph, pw, k)
        return gx, gw, gb

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
            full = (xp.empty if (oh, ow) == (k * ph, k * pw) else xp.zeros)((n, oh, ow, o), dtype=gz.dtype)
            planes = gz.reshape(k, k, n, ph, pw, o)
            for a in range(k):
                for b in range(k):
                    full[:, a : k * ph : k, b : k * pw : k] = planes[a, b]
            gm = full.reshape(n * oh * ow, o)
        else:
            oh, ow = ph, pw
        return col2im(gm, self.wmat[None], self.xshape, kh, kw, sh, sw, pad_h, pad_w, dh, dw, oh, ow)
