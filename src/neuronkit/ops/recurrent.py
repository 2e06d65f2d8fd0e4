"""Recurrent layers as ops: ``rnn`` (tanh or ReLU), ``lstm`` and ``gru``, one direction of one layer each.

Each is ONE ``Function``: its forward runs the whole sequence and its backward the whole backpropagation through time.

- The input projection of every step is one GEMM, ``x @ W_ih.T`` over all rows at once; the recurrence then adds
  ``h_{t-1} @ W_hh.T`` per step, in buffers allocated once per call (no Tensor, no graph node per step).
- Backward walks the steps in reverse with one GEMM per step for the gradient reaching ``h_{t-1}``; the weight
  gradients are one GEMM each at the end, over all steps: ``dW_ih = dG.T @ x``, ``dW_hh = dG.T @ H_prev``.
- Inputs are packed rows (``ops.packing``): step t is the block of ``batch_sizes[t]`` rows of the sequences longer
  than t, so padded positions are never computed and never change a state. Without ``batch_sizes`` the input is a
  plain time-major (T, B, features) tensor.
- Weights, biases and gate order are PyTorch's: ``w_ih`` (G*H, in), ``w_hh`` (G*H, H), ``b_ih``/``b_hh`` (G*H,)
  with the gate blocks stacked as (input, forget, cell, output) for the LSTM and (reset, update, new) for the GRU.

Inside, the sigmoid gates are computed as ``0.5 * tanh(0.5 a) + 0.5`` (the same function, one transcendental call for
all gates of a step): their weight rows are pre-scaled by 0.5, an exact operation in binary floating point, and the
backward works with gradients of the scaled pre-activations, scaling the weight gradients back at the end.
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor
from .index import getitem
from .recurrent_gated import GRUFn, LSTMFn
from .registry import register
from .shape import reshape
from .steps import last_rows, prev_state, schedule, weight_grads


class RNNFn(Function):
    """Elman RNN, one direction: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``; output (N, H)."""

    name = "rnn"

    def forward(self, x, w_ih, w_hh, *opt, has_bias, has_h0, batch_sizes, reverse, relu, record=None):
        xp = B.xp
        hid, b = w_hh.shape[1], batch_sizes[0]
        sched = schedule(batch_sizes, reverse)
        y = xp.matmul(x, w_ih.T)  # (N, H): the input projection of every step at once
        if has_bias:
            y += opt[0] + opt[1]
        h0 = opt[2 * has_bias] if has_h0 else xp.zeros((b, hid), dtype=x.dtype)
        tmp, hbuf = xp.empty((b, hid), dtype=x.dtype), xp.empty((b, hid), dtype=x.dtype)
        w_t = w_hh.T
        for lo, n, plo, pn in sched:
            hp = prev_state(y, h0, plo, pn, n, hbuf)
            yt = y[lo : lo + n]
            xp.matmul(hp, w_t, out=tmp[:n])
            yt += tmp[:n]
            if relu:
                xp.maximum(yt, 0, out=yt)
            else:
                xp.tanh(yt, out=yt)
        self.x, self.w_ih, self.w_hh, self.y, self.h0 = x, w_ih, w_hh, y, h0
        self.sched, self.relu, self.has_bias, self.has_h0 = sched, relu, has_bias, has_h0
        if record is not None:
            record.append({"hidden": y.copy()})
        return y

    def backward(self, g):
        xp = B.xp
        y, w_hh, sched = self.y, self.w_hh, self.sched
        b, hid = self.h0.shape
        dpre = xp.empty_like(y)  # gradient of each step's pre-activation
        dh = xp.zeros((b, hid), dtype=y.dtype)  # gradient reaching the state from the next step
        tmp = xp.empty((b, hid), dtype=y.dtype)
        for lo, n, _, _ in reversed(sched):
            d, yt = dpre[lo : lo + n], y[lo : lo + n]
            xp.add(g[lo : lo + n], dh[:n], out=d)
            if self.relu:
                xp.greater(yt, 0, out=tmp[:n])  # 1.0 where the unit was active
                d *= tmp[:n]
            else:
                xp.multiply(yt, yt, out=tmp[:n])
                xp.subtract(1, tmp[:n], out=tmp[:n])
                d *= tmp[:n]
            xp.matmul(d, w_hh, out=dh[:n])
        return tuple(weight_grads(self, dpre, dpre, y, dh))


# -- the public functions ---------------------------------------------------------------------------------------------


def _batch_sizes(x: Tensor, batch_sizes, who: str):
    """Normalise ``batch_sizes`` to a tuple of ints and check it against x: (N, in) packed or (T, B, in)."""
    if batch_sizes is None:
        if x.ndim != 3:
            raise ValueError(f"{who}: expected a time-major input (T, B, features), got shape {tuple(x.shape)}")
        t, b = x.shape[0], x.shape[1]
        if t == 0 or b == 0:
            raise ValueError(f"{who}: the input of shape {tuple(x.shape)} has no steps or no sequences")
        return (b,) * t
    arr = batch_sizes.data if isinstance(batch_sizes, Tensor) else B.xp.asarray(batch_sizes)
    if arr.ndim != 1 or arr.size == 0 or arr.dtype.kind not in "iu":
        raise ValueError(f"{who}: batch_sizes must be a non-empty 1-D sequence of ints, got {batch_sizes!r}")
    sizes = tuple(int(v) for v in arr)
    if sizes[-1] < 1 or any(a < b for a, b in zip(sizes, sizes[1:])):
        raise ValueError(f"{who}: batch_sizes must be positive and non-increasing, got {list(sizes)}")
    if x.ndim != 2 or x.shape[0] != sum(sizes):
        raise ValueError(
            f"{who}: packed input must be (N, features) with N = sum(batch_sizes) = {sum(sizes)}, got shape "
            f"{tuple(x.shape)}"
        )
    return sizes


def _check(who, gates, x, w_ih, w_hh, b_ih, b_hh, states, batch: int):
    """Shapes and dtypes of the weights and initial states against the input (one line per mistake)."""
    if w_hh.ndim != 2 or w_hh.shape[0] != gates * w_hh.shape[1] or w_hh.shape[1] == 0:
        raise ValueError(f"{who}: w_hh must be ({gates} * hidden, hidden), got shape {tuple(w_hh.shape)}")
    hid, feat = w_hh.shape[1], x.shape[-1]
    if tuple(w_ih.shape) != (gates * hid, feat):
        raise ValueError(
            f"{who}: w_ih must be ({gates * hid}, {feat}) for hidden size {hid} and {feat} input features, got shape "
            f"{tuple(w_ih.shape)}"
        )
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{who}: give both b_ih and b_hh, or neither")
    for what, t in (("b_ih", b_ih), ("b_hh", b_hh)):
        if t is not None and tuple(t.shape) != (gates * hid,):
            raise ValueError(f"{who}: {what} must have shape ({gates * hid},), got {tuple(t.shape)}")
    for what, t in states:
        if t is not None and tuple(t.shape) != (batch, hid):
            raise ValueError(f"{who}: {what} must have shape ({batch}, {hid}) (batch, hidden), got {tuple(t.shape)}")
    tensors = [x, w_ih, w_hh, b_ih, b_hh, *(t for _, t in states)]
    dtypes = {t.dtype for t in tensors if t is not None}
    if len(dtypes) != 1 or x.dtype.kind != "f":
        raise TypeError(
            f"{who}: input, weights and states must share one floating dtype, got {sorted(map(str, dtypes))}"
        )


def _run(fn_cls, who, gates, x, w_ih, w_hh, b_ih, b_hh, states, batch_sizes, reverse, **kw):
    """Validate, apply the Function to the packed rows, and return (rows output, batch_sizes, time-major shape)."""
    x, w_ih, w_hh = as_tensor(x), as_tensor(w_ih), as_tensor(w_hh)
    b_ih = None if b_ih is None else as_tensor(b_ih)
    b_hh = None if b_hh is None else as_tensor(b_hh)
    states = [(what, None if t is None else as_tensor(t)) for what, t in states]
    sizes = _batch_sizes(x, batch_sizes, who)
    _check(who, gates, x, w_ih, w_hh, b_ih, b_hh, states, sizes[0])
    tm_shape = tuple(x.shape) if batch_sizes is None else None
    rows = x if tm_shape is None else reshape(x, (tm_shape[0] * tm_shape[1], tm_shape[2]))
    inputs = [rows, w_ih, w_hh] + ([b_ih, b_hh] if b_ih is not None else []) + [t for _, t in states if t is not None]
    flags = {f"has_{what}": t is not None for what, t in states}
    out = fn_cls.apply(*inputs, has_bias=b_ih is not None, batch_sizes=sizes, reverse=bool(reverse), **flags, **kw)
    return out, sizes, tm_shape


def _outputs(y, sizes, tm_shape, reverse, hid):
    """(output, h_n) from the rows output ``y`` (N, H): h_n is each sequence's last computed state."""
    b, n = sizes[0], sum(sizes)
    if reverse:
        h_n = getitem(y, slice(0, b))  # the reverse direction ends at step 0, where every sequence is present
    elif len(set(sizes)) == 1:
        h_n = getitem(y, slice(n - b, n))
    else:
        h_n = getitem(y, last_rows(sizes))
    out = y if tm_shape is None else reshape(y, (tm_shape[0], tm_shape[1], hid))
    return out, h_n


@register("rnn")
def rnn(
    x,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    h0=None,
    batch_sizes=None,
    reverse: bool = False,
    nonlinearity="tanh",
    record=None,
):
    """One direction of an Elman RNN layer: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``.

    Args:
        x: time-major input (T, B, in), or packed rows (N, in) when ``batch_sizes`` is given (see ``ops.packing``).
        w_ih: (H, in); w_hh: (H, H); b_ih, b_hh: (H,) or both None.
        h0: (B, H) initial state (B = batch_sizes[0], packed order), or None for zeros.
        batch_sizes: the packed layout's steps (``SequenceLayout.batch_sizes``), or None.
        reverse: run from the last step to the first (each sequence starts at its own last step).
        nonlinearity: "tanh" (default) or "relu".
        record: None, or a list to which the forward appends a dict of copies of its inner activations, (N, H) arrays
            in the rows' layout: ``hidden`` (every cell), the gates (LSTM ``input``, ``forget``, ``cell``,
            ``output`` and ``cell_state``; GRU ``reset``, ``update``, ``new``). Not differentiable; for inspection.

    Returns: (output, h_n): output (T, B, H) or (N, H), laid out like ``x``; h_n (B, H) the state after each
    sequence's last processed step.
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    y, sizes, tm = _run(
        RNNFn,
        "rnn",
        1,
        x,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        [("h0", h0)],
        batch_sizes,
        reverse,
        relu=nonlinearity == "relu",
        record=record,
    )
    return _outputs(y, sizes, tm, reverse, y.shape[1])


@register("gru")
def gru(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, batch_sizes=None, reverse: bool = False, record=None):
    """One direction of a GRU layer, with PyTorch's equations and gate order (reset r, update z, new n)::

        r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)      z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))   h' = (1 - z) * n + z * h

    Shapes as ``rnn`` with 3 gate blocks: w_ih (3H, in), w_hh (3H, H), b_ih/b_hh (3H,). Returns (output, h_n).
    """
    y, sizes, tm = _run(GRUFn, "gru", 3, x, w_ih, w_hh, b_ih, b_hh, [("h0", h0)], batch_sizes, reverse, record=record)
    return _outputs(y, sizes, tm, reverse, y.shape[1])


@register("lstm")
def lstm(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, batch_sizes=None, reverse: bool = False, record=None):
    """One direction of an LSTM layer, with PyTorch's equations and gate order (input i, forget f, cell g, output o)::

        i, f, o = sigmoid(x W_i*^T + b_i* + h W_h*^T + b_h*)    g = tanh(x W_ig^T + b_ig + h W_hg^T + b_hg)
        c' = f * c + i * g                                    h' = o * tanh(c')

    Shapes as ``rnn`` with 4 gate blocks: w_ih (4H, in), w_hh (4H, H), b_ih/b_hh (4H,); c0 (B, H) or None.
    Returns (output, h_n, c_n).
    """
    states = [("h0", h0), ("c0", c0)]
    out, sizes, tm = _run(LSTMFn, "lstm", 4, x, w_ih, w_hh, b_ih, b_hh, states, batch_sizes, reverse, record=record)
    n, hid = sum(sizes), out.shape[1]
    y = getitem(out, slice(0, n))  # the Function's output is the rows, then c_n: one node, one backward
    c_n = getitem(out, slice(n, None))
    output, h_n = _outputs(y, sizes, tm, reverse, hid)
    return output, h_n, c_n
