"""Convolution and pooling: conv2d (stride, padding, dilation, groups), conv1d, max_pool2d, avg_pool2d.

Layout: tensors are (N, C, H, W) as in PyTorch. Internally a convolution is one GEMM over an im2col matrix gathered
in (N, OH, OW, C*KH*KW) order, and its output is returned as an (N, C, H, W) *view* of an (N, H, W, C) array: no
transpose copy, and the next layer's im2col reads that memory in its natural order. Elementwise ops keep the layout.
Pooling works on strided views of the input (one view per kernel offset), so it copies nothing either.
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor
from .activation import relu
from .conv_fused import Conv2dFused
from .im2col import add_bias_rows, col2im, conv_gemm, im2col, out_size, pad, window
from .registry import register


def _pair(v, name):
    if isinstance(v, int) and not isinstance(v, bool):
        return (v, v)
    t = tuple(v)
    if len(t) != 2 or not all(isinstance(i, int) and not isinstance(i, bool) for i in t):
        raise ValueError(f"{name} must be an int or a pair of ints, got {v!r}")
    return t


class Conv2d(Function):
    name = "conv2d"

    def forward(self, x, w, b=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        xp = B.xp
        n, c, h, wd = x.shape
        o, cg, kh, kw = w.shape
        (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
        oh, ow = out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw)
        og, k = o // groups, cg * kh * kw
        wmat = w.reshape(groups, og, cg, kh, kw).transpose(0, 1, 3, 4, 2).reshape(groups, og, k)  # (G, og, k)
        if groups == 1:  # im2col, GEMM and bias a few images at a time: (N*oh*ow, 1, k) and (N*oh*ow, O)
            cols, out = conv_gemm(pad(x, ph, pw), wmat[0], b, kh, kw, sh, sw, dh, dw, oh, ow)
        else:
            cols = im2col(pad(x, ph, pw), kh, kw, sh, sw, dh, dw, oh, ow, groups)  # (N*oh*ow, G, k)
            out = xp.matmul(cols.transpose(1, 0, 2), wmat.transpose(0, 2, 1))  # (G, N*oh*ow, og)
            out = xp.ascontiguousarray(out.transpose(1, 0, 2).reshape(n * oh * ow, o))
            if b is not None:
                add_bias_rows(out, b, ow)
        self.cols, self.wmat, self.wshape, self.xshape, self.groups = cols, wmat, w.shape, x.shape, groups
        self.geom = (sh, sw, ph, pw, dh, dw, oh, ow)
        return out.reshape(n, oh, ow, o).transpose(0, 3, 1, 2)  # (N, O, oh, ow) view of NHWC memory

    def backward(self, g):
        xp = B.xp
        n = self.xshape[0]
        cols, wmat, groups = self.cols, self.wmat, self.groups
        o, cg, kh, kw = self.wshape
        sh, sw, ph, pw, dh, dw, oh, ow = self.geom
        og, m = o // groups, n * oh * ow
        gm = g.transpose(0, 2, 3, 1).reshape(m, o)  # free when g is NHWC-backed, as ours are
        gx = gw = gb = None
        if self.next[1] is not None:
            if groups == 1:
                gwm = B.matmul(gm.T, cols[:, 0, :])[None]  # (1, O, k)
            else:
                gwm = xp.matmul(gm.reshape(m, groups, og).transpose(1, 2, 0), cols.transpose(1, 0, 2))  # (G, og, k)
            gw = gwm.reshape(groups, og, kh, kw, cg).transpose(0, 1, 4, 2, 3).reshape(self.wshape)
        if len(self.next) > 2 and self.next[2] is not None:
            gb = xp.ones(m, dtype=gm.dtype) @ gm  # a GEMV: much faster than sum(axis=0) over a tall, narrow matrix
        if self.next[0] is not None:
            gx = col2im(gm, wmat, self.xshape, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow)
        return gx, gw, gb


@register("conv2d")
def conv2d(
    x,
    weight,
    bias=None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
    activation: str | None = None,
    max_pool: int | None = None,
) -> Tensor:
    """2-D convolution (cross-correlation, as every deep-learning library computes it).

    Shapes: ``x`` (N, C_in, H, W), ``weight`` (C_out, C_in / groups, KH, KW), ``bias`` (C_out,) or None; returns
    (N, C_out, OH, OW) with ``OH = (H + 2 padding - dilation (KH - 1) - 1) // stride + 1`` (same for W).
    ``stride``, ``padding`` and ``dilation`` are ints or (h, w) pairs; ``groups`` splits channels into independent
    convolutions (``groups = C_in`` gives a depthwise convolution).

    Fused options (same values and gradients as the separate ops, fewer passes over memory; see ``conv_fused``):
    ``activation="relu"`` applies ReLU to the output; ``max_pool=k`` then max-pools it with a k x k window and stride
    k (OH // k by OW // k), i.e. ``max_pool2d(relu(conv2d(x, w, b)), k)``.
    """
    x, weight = as_tensor(x), as_tensor(weight)
    stride, padding, dilation = _pair(stride, "stride"), _pair(padding, "padding"), _pair(dilation, "dilation")
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected input (N, C, H, W) and weight (O, C/groups, KH, KW), got shapes "
            f"{tuple(x.shape)} and {tuple(weight.shape)}"
        )
    o, cg, kh, kw = weight.shape
    if groups < 1 or x.shape[1] % groups or o % groups:
        raise ValueError(f"conv2d: groups={groups} must divide input channels {x.shape[1]} and output channels {o}")
    if x.shape[1] != cg * groups:
        raise ValueError(
            f"conv2d: input of shape {tuple(x.shape)} has {x.shape[1]} channels, weight "
            f"{tuple(weight.shape)} expects {cg * groups}"
        )
    if min(stride) < 1 or min(dilation) < 1 or min(padding) < 0:
        raise ValueError(
            f"conv2d: stride and dilation must be >= 1 and padding >= 0, got {stride}, {dilation}, {padding}"
        )
    oh = out_size(x.shape[2], kh, stride[0], padding[0], dilation[0])
    ow = out_size(x.shape[3], kw, stride[1], padding[1], dilation[1])
    if oh < 1 or ow < 1:
        raise ValueError(
            f"conv2d: kernel {kh}x{kw} (dilation {dilation}) does not fit input of shape "
            f"{tuple(x.shape)} with padding {padding}"
        )
    if activation not in (None, "relu"):
        raise ValueError(f"conv2d: activation must be None or 'relu', got {activation!r}")
    if max_pool is not None and (isinstance(max_pool, bool) or not isinstance(max_pool, int) or max_pool < 1):
        raise ValueError(f"conv2d: max_pool must be None or a positive int, got {max_pool!r}")
    if max_pool is not None and (oh < max_pool or ow < max_pool):
        raise ValueError(f"conv2d: max_pool={max_pool} does not fit the {oh}x{ow} convolution output")
    if bias is not None:
        bias = as_tensor(bias)
        if bias.shape != (o,):
            raise ValueError(f"conv2d: bias must have shape ({o},), got {tuple(bias.shape)}")
    if activation is not None or max_pool is not None:
        if groups == 1:
            inputs = (x, weight) if bias is None else (x, weight, bias)
            return Conv2dFused.apply(
                *inputs,
                stride=stride,
                padding=padding,
                dilation=dilation,
                relu=activation == "relu",
                pool=max_pool or 1,
            )
        y = conv2d(x, weight, bias, stride, padding, dilation, groups)
        if activation == "relu":
            y = relu(y)
        return y if max_pool is None else max_pool2d(y, max_pool)
    if bias is not None:
        return Conv2d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
    return Conv2d.apply(x, weight, stride=stride, padding=padding, dilation=dilation, groups=groups)


@register("conv1d")
def conv1d(x, weight, bias=None, stride: int = 1, padding: int = 0, dilation: int = 1, groups: int = 1) -> Tensor:
    """1-D convolution: ``x`` (N, C_in, L), ``weight`` (C_out, C_in / groups, K) -> (N, C_out, L_out); computed as a
    2-D convolution over a height of 1."""
    from .shape import reshape

    x, weight = as_tensor(x), as_tensor(weight)
    if x.ndim != 3 or weight.ndim != 3:
        raise ValueError(
            f"conv1d: expected input (N, C, L) and weight (O, C/groups, K), got shapes "
            f"{tuple(x.shape)} and {tuple(weight.shape)}"
        )
    n, c, length = x.shape
    y = conv2d(
        reshape(x, n, c, 1, length),
        reshape(weight, *weight.shape[:2], 1, weight.shape[2]),
        bias,
        stride=(1, stride),
        padding=(0, padding),
        dilation=(1, dilation),
        groups=groups,
    )
    return reshape(y, y.shape[0], y.shape[1], y.shape[3])


class _Pool2d(Function):
    """Pooling over strided window views; forward and backward each run over chunks of the batch in parallel
    (``backend.parallel_for``), every element by the same operations in the same order as on one thread."""

    def forward(self, x, kernel, stride, padding):
        (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
        n, c, h, w = x.shape
        oh, ow = out_size(h, kh, sh, ph, 1), out_size(w, kw, sw, pw, 1)
        xpad = pad(x, ph, pw, self.pad_value(x.dtype))
        self.geom, self.xshape, self.padded = (kh, kw, sh, sw, ph, pw, oh, ow), x.shape, xpad.shape
        self.nhwc = xpad.transpose(0, 2, 3, 1).flags.c_contiguous  # backward builds its gradient in the same layout
        return self.pool(xpad, kh, kw, sh, sw, oh, ow)

    def alloc(self, shape, dtype):
        """An uninitialised (N, C, H, W) array, NHWC-backed when the input is."""
        n, c, h, w = shape
        if self.nhwc:
            return B.xp.empty((n, h, w, c), dtype=dtype).transpose(0, 3, 1, 2)
        return B.xp.empty(shape, dtype=dtype)

    def backward(self, g):
        kh, kw, sh, sw, ph, pw, oh, ow = self.geom
        n, c, h, w = self.xshape
        hp, wp = self.padded[2:]
        overlap = sh < kh or sw < kw  # overlapping windows add up; disjoint ones are written directly
        tiled = (sh, sw) == (kh, kw) and (oh * sh, ow * sw) == (hp, wp)  # the windows cover every input element
        # Same memory layout as the input (NHWC stays NHWC); no zero fill when every element gets written anyway.
        gpad = self.alloc(self.padded, g.dtype)
        buf = gpad.transpose(0, 2, 3, 1) if self.nhwc else gpad  # its C-contiguous memory
        # A gradient arriving in NCHW order (e.g. from flatten's backward) is first put in the input's NHWC layout:
        # the scatter runs 4-5x faster on matching layouts.
        gc = self.alloc(g.shape, g.dtype) if self.nhwc and not g.transpose(0, 2, 3, 1).flags.c_contiguous else None

        def run(lo, hi):
            gs = g[lo:hi]
            if gc is not None:
                gc[lo:hi] = gs
                gs = gc[lo:hi]
            if not tiled:
                buf[lo:hi].fill(0)
            self.scatter(gpad[lo:hi], gs, lo, hi, kh, kw, sh, sw, oh, ow, overlap)

        per_image = (B.item_size(gpad) + 3 * B.item_size(g)) * g.itemsize  # (+ the winner maps or shares, and gc)
        B.parallel_for(n, run, gpad.size + 2 * g.size, B.grain(per_image))
        return (gpad[:, :, ph : ph + h, pw : pw + w],)


class MaxPool2d(_Pool2d):
    name = "max_pool2d"
    pad_value = staticmethod(lambda dt: -B.xp.inf)

    def pool(self, xpad, kh, kw, sh, sw, oh, ow):
        self.arg = None
        k = B.jit()
        disjoint = sh >= kh and sw >= kw  # (overlapping windows: the NumPy code's order of adds)
        if k is not None and self.nhwc and disjoint and 1 < kh * kw < 256 and xpad.dtype.name in ("float32", "float64"):
            return self.jit_pool(k, xpad, kh, kw, sh, sw, oh, ow)
        # Offsets are scanned in row-major order and a later one takes over only if strictly greater, so each window's
        # winner is its first maximal element (PyTorch's choice; ties are not split). won[k - 1] marks the windows
        # where offset k took over; backward needs only these small boolean maps, not the input.
        xp = B.xp
        n, c = xpad.shape[:2]
        out = self.alloc((n, c, oh, ow), xpad.dtype)
        won = self.won = [self.alloc(out.shape, bool) for _ in range(kh * kw - 1)]

        def run(lo, hi):
            part, xs = out[lo:hi], xpad[lo:hi]
            xp.copyto(part, window(xs, 0, 0, sh, sw, 1, 1, oh, ow))
            for k in range(1, kh * kw):
                win = window(xs, k // kw, k % kw, sh, sw, 1, 1, oh, ow)
                xp.greater(win, part, out=won[k - 1][lo:hi])
                xp.maximum(part, win, out=part)

        B.parallel_for(n, run, out.size * (kh * kw + 1), B.grain(B.item_bytes(xpad) + 2 * B.item_bytes(out)))
        return out

    def jit_pool(self, k, xpad, kh, kw, sh, sw, oh, ow):
        """The compiled kernel: one pass, each window's winning offset kept as one byte for backward."""
        n, c = xpad.shape[:2]
        out = self.alloc((n, c, oh, ow), xpad.dtype)
        xn, on = xpad.transpose(0, 2, 3, 1), out.transpose(0, 2, 3, 1)
        arg = self.arg = B.xp.empty(on.shape, dtype=B.xp.uint8)
        self.kernels = k  # (backward uses the same ones, whatever JIT says by then)
        mod = B.pool(xpad.size + out.size, start=True)  # (the same kernels on slices of the batch, on the pool)
        if mod is not None and mod.max_pool_forward(xn, on, arg, kh, kw, sh, sw):
            return out
        if (kh, kw, sh, sw) == (2, 2, 2, 2):
            k.max_pool2_forward(xn, on, arg)
        else:
            k.max_pool_forward(xn, on, arg, kh, kw, sh, sw)
        return out

    def backward(self, g):
        if self.arg is None:
            return super().backward(g)
        kh, kw, sh, sw, ph, pw, oh, ow = self.geom
        n, c, h, w = self.xshape
        gpad = self.alloc(self.padded, g.dtype)
        buf, gn, arg = gpad.transpose(0, 2, 3, 1), g.transpose(0, 2, 3, 1), self.arg
        tiled = (oh * sh, ow * sw) == tuple(self.padded[2:]) and (sh, sw) == (kh, kw)
        mod = B.pool(gpad.size + g.size) if self.kernels is not None else None
        if mod is None or not mod.max_pool_backward(gn, arg, buf, kh, kw, sh, sw, not tiled):
            self.kernels.max_pool_backward(gn, arg, buf, kh, kw, sh, sw, not tiled)
        return (gpad[:, :, ph : ph + h, pw : pw + w],)

    def scatter(self, gpad, g, lo, hi, kh, kw, sh, sw, oh, ow, overlap):
        # Offset k wins where it took over and no later offset did: walk the offsets backwards.
        xp = B.xp
        later = None
        for k in range(kh * kw - 1, -1, -1):
            if k:
                took = self.won[k - 1][lo:hi]
                hit = took if later is None else took & ~later
                later = took if later is None else later | took
            else:
                hit = None if later is None else ~later
            dst = window(gpad, k // kw, k % kw, sh, sw, 1, 1, oh, ow)
            if hit is None:  # a 1x1 kernel: windows never overlap
                xp.copyto(dst, g)
            elif overlap:
                dst += g * hit
            else:
                xp.multiply(g, hit, out=dst)


class AvgPool2d(_Pool2d):
    name = "avg_pool2d"
    pad_value = staticmethod(lambda dt: 0.0)

    def pool(self, xpad, kh, kw, sh, sw, oh, ow):
        xp = B.xp
        n, c = xpad.shape[:2]
        out = self.alloc((n, c, oh, ow), xpad.dtype)
        count = out.dtype.type(kh * kw)

        def run(lo, hi):
            part, xs = out[lo:hi], xpad[lo:hi]
            xp.copyto(part, window(xs, 0, 0, sh, sw, 1, 1, oh, ow))
            for k in range(1, kh * kw):
                xp.add(part, window(xs, k // kw, k % kw, sh, sw, 1, 1, oh, ow), out=part)
            part /= count  # padding counts as zeros (PyTorch's count_include_pad=True)

        B.parallel_for(n, run, out.size * (kh * kw + 1), B.grain(B.item_bytes(xpad) + B.item_bytes(out)))
        return out

    def scatter(self, gpad, g, lo, hi, kh, kw, sh, sw, oh, ow, overlap):
        share = g / g.dtype.type(kh * kw)
        for a in range(kh):
            for bb in range(kw):
                dst = window(gpad, a, bb, sh, sw, 1, 1, oh, ow)
                if overlap:
                    dst += share
                else:
                    B.xp.copyto(dst, share)


def _pool(cls, x, kernel_size, stride, padding):
    x = as_tensor(x)
    if x.ndim != 4:
        raise ValueError(f"{cls.name}: expected input (N, C, H, W), got shape {tuple(x.shape)}")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None else _pair(stride, "stride")
    p = _pair(padding, "padding")
    if min(k) < 1 or min(s) < 1 or min(p) < 0 or p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(
            f"{cls.name}: need kernel >= 1, stride >= 1, 0 <= padding <= kernel // 2; got kernel {k}, "
            f"stride {s}, padding {p}"
        )
    if out_size(x.shape[2], k[0], s[0], p[0], 1) < 1 or out_size(x.shape[3], k[1], s[1], p[1], 1) < 1:
        raise ValueError(f"{cls.name}: kernel {k} does not fit input of shape {tuple(x.shape)}")
    return cls.apply(x, kernel=k, stride=s, padding=p)


@register("max_pool2d")
def max_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Largest value in each ``kernel_size`` window (stride defaults to the kernel). (N, C, H, W) -> (N, C, OH, OW).
    The gradient goes to the first maximal element of each window."""
    return _pool(MaxPool2d, x, kernel_size, stride, padding)


@register("avg_pool2d")
def avg_pool2d(x, kernel_size, stride=None, padding=0) -> Tensor:
    """Mean of each ``kernel_size`` window (stride defaults to the kernel; zero padding counts in the mean)."""
    return _pool(AvgPool2d, x, kernel_size, stride, padding)
