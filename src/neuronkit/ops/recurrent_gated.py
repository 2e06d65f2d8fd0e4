"""The gated cells' Functions, ``LSTMFn`` and ``GRUFn``: forward over all steps, backward through time (see
``ops.recurrent`` for the public ``lstm``/``gru`` functions and the scheme they share).

Notation per step (n rows): ``G`` holds the activated gates of every row, written in place over the pre-activations.
A sigmoid gate is ``s = 0.5 tanh(a') + 0.5`` with ``a' = a / 2`` (its weight rows are pre-scaled by 0.5), so the
backward's gradient with respect to ``a'`` is ``ds * 2 s (1 - s)``; the weight gradients of those rows are halved at
the end to give the gradients of the unscaled weights.
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from .steps import last_rows, prev_state, schedule, weight_grads


def _lstm_perm(hid: int):
    """Row order [i, f, o, g] from PyTorch's [i, f, g, o]: the three sigmoid gates side by side (an involution)."""
    xp = B.xp
    return xp.concatenate([xp.arange(2 * hid), xp.arange(3 * hid, 4 * hid), xp.arange(2 * hid, 3 * hid)])


def _scaled(w, perm, k):
    """A copy of ``w`` with rows in ``perm`` order (or as they are) and its first ``k`` rows halved."""
    out = w[perm] if perm is not None else w.copy()
    out[:k] *= 0.5
    return out


def _unscale(grads, idx, perm, k):
    """Halve the first ``k`` rows of ``grads[i]`` for i in ``idx`` (skipping None), then undo ``perm``."""
    for i in idx:
        g = grads[i]
        if g is not None:
            g[:k] *= 0.5
            grads[i] = g[perm] if perm is not None else g


class LSTMFn(Function):
    """One LSTM direction over packed rows; output (N + B, H): the rows' h, then c_n (the final cell states)."""

    name = "lstm"

    def forward(self, x, w_ih, w_hh, *opt, has_bias, has_h0, has_c0, batch_sizes, reverse, record=None):
        xp = B.xp
        dt, rows, hid, b = x.dtype, x.shape[0], w_hh.shape[1], batch_sizes[0]
        h2, h3 = 2 * hid, 3 * hid
        perm = _lstm_perm(hid)
        wi, wh = _scaled(w_ih, perm, h3), _scaled(w_hh, perm, h3)
        gates = xp.matmul(x, wi.T)  # (N, 4H): every step's input projection in one GEMM
        if has_bias:
            gates += _scaled(opt[0] + opt[1], perm, h3)
        k = 2 * has_bias
        h0 = opt[k] if has_h0 else xp.zeros((b, hid), dtype=dt)
        c0 = opt[k + has_h0] if has_c0 else xp.zeros((b, hid), dtype=dt)
        out = xp.empty((rows + b, hid), dtype=dt)
        y = out[:rows]
        cs, tcs = xp.empty((rows, hid), dtype=dt), xp.empty((rows, hid), dtype=dt)  # c_t and tanh(c_t)
        t4, t1 = xp.empty((b, 4 * hid), dtype=dt), xp.empty((b, hid), dtype=dt)
        hbuf, cbuf = xp.empty((b, hid), dtype=dt), xp.empty((b, hid), dtype=dt)
        wh_t = wh.T
        sched = schedule(batch_sizes, reverse)
        for lo, n, plo, pn in sched:
            hi = lo + n
            hp, cp = prev_state(y, h0, plo, pn, n, hbuf), prev_state(cs, c0, plo, pn, n, cbuf)
            g = gates[lo:hi]
            xp.matmul(hp, wh_t, out=t4[:n])
            g += t4[:n]
            xp.tanh(g, out=g)
            s = g[:, :h3]
            s *= 0.5
            s += 0.5
            c = cs[lo:hi]
            xp.multiply(g[:, hid:h2], cp, out=c)  # f * c_{t-1}
            xp.multiply(g[:, :hid], g[:, h3:], out=t1[:n])  # i * g
            c += t1[:n]
            tc = tcs[lo:hi]
            xp.tanh(c, out=tc)
            xp.multiply(g[:, h2:h3], tc, out=y[lo:hi])  # o * tanh(c_t)
        out[rows:] = cs[:b] if reverse else cs[last_rows(batch_sizes)]
        self.x, self.w_ih, self.w_hh, self.h0, self.c0 = x, wi, wh, h0, c0
        self.gates, self.cs, self.tcs, self.y = gates, cs, tcs, y
        self.sched, self.perm, self.has_bias, self.has_h0, self.has_c0 = sched, perm, has_bias, has_h0, has_c0
        if record is not None:
            parts = {"input": gates[:, :hid], "forget": gates[:, hid:h2], "cell": gates[:, h3:]}
            parts.update(output=gates[:, h2:h3], cell_state=cs, hidden=y)
            record.append({k: v.copy() for k, v in parts.items()})
        return out

    def backward(self, grad):
        xp = B.xp
        gates, cs, tcs, c0, wh = self.gates, self.cs, self.tcs, self.c0, self.w_hh
        rows, hid = cs.shape
        b, dt = c0.shape[0], cs.dtype
        h2, h3 = 2 * hid, 3 * hid
        dy = grad[:rows]
        dgates = xp.empty_like(gates)  # gradients of the (scaled) pre-activations of every row
        dh = xp.zeros((b, hid), dtype=dt)  # reaching h_{t-1} from the step after
        dcs = grad[rows:].astype(dt, copy=True)  # reaching c_{t-1}; starts as dL/dc_n
        t1, t2 = xp.empty((b, hid), dtype=dt), xp.empty((b, hid), dtype=dt)
        t3, cbuf = xp.empty((b, h3), dtype=dt), xp.empty((b, hid), dtype=dt)
        for lo, n, plo, pn in reversed(self.sched):
            hi = lo + n
            g, d, tc = gates[lo:hi], dgates[lo:hi], tcs[lo:hi]
            cp = prev_state(cs, c0, plo, pn, n, cbuf)
            dht, dc = t1[:n], t2[:n]
            xp.add(dy[lo:hi], dh[:n], out=dht)
            xp.multiply(dht, tc, out=d[:, h2:h3])  # d o
            xp.multiply(tc, tc, out=dc)
            xp.subtract(1, dc, out=dc)
            dc *= g[:, h2:h3]
            dc *= dht
            dc += dcs[:n]  # dL/dc_t
            xp.multiply(dc, g[:, h3:], out=d[:, :hid])  # d i
            xp.multiply(dc, cp, out=d[:, hid:h2])  # d f
            xp.multiply(g[:, h3:], g[:, h3:], out=dht)
            xp.subtract(1, dht, out=dht)
            dht *= g[:, :hid]
            xp.multiply(dht, dc, out=d[:, h3:])  # d (g's pre-activation): dc * i * (1 - g^2)
            xp.multiply(dc, g[:, hid:h2], out=dcs[:n])  # dL/dc_{t-1} = dc * f
            s, q = g[:, :h3], t3[:n]
            xp.multiply(s, s, out=q)
            xp.subtract(s, q, out=q)
            q += q  # 2 s (1 - s)
            d[:, :h3] *= q
            xp.matmul(d, wh, out=dh[:n])
        grads = weight_grads(self, dgates, dgates, self.y, dh)
        _unscale(grads, (1, 2, 3, 4) if self.has_bias else (1, 2), self.perm, h3)
        k = 5 if self.has_bias else 3
        if self.has_c0 and self.next[k + self.has_h0] is not None:
            grads[k + self.has_h0] = dcs
        return tuple(grads)


class GRUFn(Function):
    """One GRU direction over packed rows; output (N, H)."""

    name = "gru"

    def forward(self, x, w_ih, w_hh, *opt, has_bias, has_h0, batch_sizes, reverse, record=None):
        xp = B.xp
        dt, rows, hid, b = x.dtype, x.shape[0], w_hh.shape[1], batch_sizes[0]
        h2 = 2 * hid
        wi, wh = _scaled(w_ih, None, h2), _scaled(w_hh, None, h2)
        gates = xp.matmul(x, wi.T)  # (N, 3H)
        bhn = None
        if has_bias:
            b_ih, b_hh = opt[0], opt[1]
            bias = b_ih.copy()
            bias[:h2] += b_hh[:h2]  # r and z add both biases outside; b_hn sits inside r * (...)
            bias[:h2] *= 0.5
            gates += bias
            bhn = b_hh[h2:]
        h0 = opt[2 * has_bias] if has_h0 else xp.zeros((b, hid), dtype=dt)
        y, ghn = xp.empty((rows, hid), dtype=dt), xp.empty((rows, hid), dtype=dt)  # ghn: h W_hn^T + b_hn per row
        t3, t1, hbuf = xp.empty((b, 3 * hid), dtype=dt), xp.empty((b, hid), dtype=dt), xp.empty((b, hid), dtype=dt)
        wh_t = wh.T
        sched = schedule(batch_sizes, reverse)
        for lo, n, plo, pn in sched:
            hi = lo + n
            hp = prev_state(y, h0, plo, pn, n, hbuf)
            g, gh = gates[lo:hi], t3[:n]
            xp.matmul(hp, wh_t, out=gh)
            rz = g[:, :h2]
            rz += gh[:, :h2]
            xp.tanh(rz, out=rz)
            rz *= 0.5
            rz += 0.5
            hn = ghn[lo:hi]
            if bhn is None:
                hn[...] = gh[:, h2:]
            else:
                xp.add(gh[:, h2:], bhn, out=hn)
            nt = g[:, h2:]
            xp.multiply(g[:, :hid], hn, out=t1[:n])
            nt += t1[:n]
            xp.tanh(nt, out=nt)
            yt = y[lo:hi]
            xp.subtract(hp, nt, out=yt)
            yt *= g[:, hid:h2]
            yt += nt  # n + z (h - n) = (1 - z) n + z h
        self.x, self.w_ih, self.w_hh, self.h0, self.y = x, wi, wh, h0, y
        self.gates, self.ghn, self.sched, self.has_bias, self.has_h0 = gates, ghn, sched, has_bias, has_h0
        if record is not None:
            parts = {"reset": gates[:, :hid], "update": gates[:, hid:h2], "new": gates[:, h2:], "hidden": y}
            record.append({k: v.copy() for k, v in parts.items()})
        return y

    def backward(self, dy):
        xp = B.xp
        gates, ghn, y, h0, wh = self.gates, self.ghn, self.y, self.h0, self.w_hh
        rows, hid = y.shape
        b, dt, h2 = h0.shape[0], y.dtype, 2 * hid
        dgh = xp.empty_like(gates)  # hidden side: (r', z', r * dn_pre)
        dxg = xp.empty_like(gates)  # input side: (r', z', dn_pre)
        dh = xp.zeros((b, hid), dtype=dt)
        t1, t2, dhz = xp.empty((b, hid), dtype=dt), xp.empty((b, hid), dtype=dt), xp.empty((b, hid), dtype=dt)
        t3, hbuf = xp.empty((b, h2), dtype=dt), xp.empty((b, hid), dtype=dt)
        for lo, n, plo, pn in reversed(self.sched):
            hi = lo + n
            g, d, dn = gates[lo:hi], dgh[lo:hi], dxg[lo:hi, h2:]
            r, z, nt = g[:, :hid], g[:, hid:h2], g[:, h2:]
            hp = prev_state(y, h0, plo, pn, n, hbuf)
            dht, q = t1[:n], t2[:n]
            xp.add(dy[lo:hi], dh[:n], out=dht)
            xp.subtract(hp, nt, out=d[:, hid:h2])
            d[:, hid:h2] *= dht  # d z (before the sigmoid)
            xp.multiply(dht, z, out=dhz[:n])  # the part of dh that flows straight to h_{t-1}
            xp.subtract(dht, dhz[:n], out=dn)
            xp.multiply(nt, nt, out=q)
            xp.subtract(1, q, out=q)
            dn *= q  # d n_pre = dh (1 - z) (1 - n^2)
            xp.multiply(dn, r, out=d[:, h2:])
            xp.multiply(dn, ghn[lo:hi], out=d[:, :hid])  # d r (before the sigmoid)
            s, q2 = g[:, :h2], t3[:n]
            xp.multiply(s, s, out=q2)
            xp.subtract(s, q2, out=q2)
            q2 += q2
            d[:, :h2] *= q2
            xp.matmul(d, wh, out=dh[:n])
            dh[:n] += dhz[:n]
        dxg[:, :h2] = dgh[:, :h2]
        grads = weight_grads(self, dxg, dgh, y, dh)
        _unscale(grads, (1, 2, 3, 4) if self.has_bias else (1, 2), None, h2)
        return tuple(grads)
