"""Variable-length sequences: the packed layout, and the two ops that move a padded batch into it and back.

A batch of B sequences padded to T steps, with valid lengths ``lengths`` (B,), is packed the way PyTorch's
``PackedSequence`` is: the sequences are sorted by length, longest first, and the valid steps are laid out time-major,
step 0 of every sequence, then step 1 of those at least 2 long, and so on. Step t is then one contiguous block of
``batch_sizes[t]`` rows (the number of sequences longer than t), and a recurrent op processes it with one GEMM on the
block, never touching a padded position. ``SequenceLayout`` holds that bookkeeping; ``pack_sequence`` gathers the
valid rows of a padded tensor, ``unpack_sequence`` scatters packed rows back into a zero-padded tensor.
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor
from .registry import register


class SequenceLayout:
    """Where each valid (sequence, step) of a padded batch sits in the packed rows.

    Args:
        lengths: (B,) integers, each in [1, total_length], or None for B sequences of the full length.
        total_length: T, the padded length (the time axis of the padded tensor).
        batch: B; needed only when ``lengths`` is None.

    Attributes:
        lengths: (B,) int64 array, in the batch's own order.
        batch_sizes: tuple of max(lengths) ints: how many sequences are longer than t, for each step t.
        offsets: tuple of len(batch_sizes) + 1 ints: step t's packed rows are ``offsets[t]:offsets[t + 1]``.
        sorted_indices: (B,) array: packed row i of a step belongs to sequence ``sorted_indices[i]`` (stable sort by
            decreasing length, so equal lengths keep their order). ``unsorted_indices`` is its inverse.
        uniform: True when every sequence has the full length T (packing is then a plain transpose).
    """

    def __init__(self, lengths, total_length: int, batch: int | None = None):
        xp = B.xp
        t = int(total_length)
        if lengths is None:
            lengths = xp.full(int(batch), t, dtype=xp.int64)
        self.lengths = lengths = check_lengths(lengths, t, batch)
        self.total_length = t
        b = lengths.shape[0]
        self.sorted_indices = xp.argsort(-lengths, kind="stable")
        self.unsorted_indices = xp.empty_like(self.sorted_indices)
        self.unsorted_indices[self.sorted_indices] = xp.arange(b)
        self.uniform = bool((lengths == t).all())
        steps = int(lengths.max())
        counts = xp.bincount(lengths, minlength=steps + 1)  # sequences of each length
        sizes = b - xp.cumsum(counts)[:steps]  # sequences longer than t, for t = 0..steps-1
        self.batch_sizes = tuple(int(n) for n in sizes)
        self.offsets = (0, *(int(o) for o in xp.cumsum(sizes)))
        self._rows = {}

    @property
    def batch(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def rows(self) -> int:
        """N, the number of packed rows (the sum of the lengths)."""
        return self.offsets[-1]

    def padded_rows(self, batch_first: bool):
        """(N,) index of each packed row in the padded tensor flattened to (B*T, ...) or (T*B, ...)."""
        key = bool(batch_first)
        if key not in self._rows:
            xp, t, b = B.xp, self.total_length, self.batch
            steps = xp.repeat(xp.arange(len(self.batch_sizes)), self.batch_sizes)  # (N,) step of each packed row
            seq = self.sorted_indices[xp.arange(self.rows) - xp.asarray(self.offsets[:-1])[steps]]  # its sequence
            self._rows[key] = seq * t + steps if batch_first else steps * b + seq
        return self._rows[key]

    def __repr__(self):
        return f"SequenceLayout(batch={self.batch}, total_length={self.total_length}, rows={self.rows})"


def check_lengths(lengths, total_length: int, batch: int | None = None):
    """``lengths`` as a (B,) int64 array, checked: integers, one per sequence, each in [1, total_length].

    Raises ``ValueError`` (``TypeError`` for a non-integer dtype) with one line naming what was expected and what
    arrived."""
    xp = B.xp
    arr = lengths.data if isinstance(lengths, Tensor) else xp.asarray(lengths)
    if arr.dtype.kind not in "iu" or arr.dtype == bool:
        raise TypeError(f"lengths must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1 or (batch is not None and arr.shape[0] != batch):
        want = f"({batch},)" if batch is not None else "(batch,)"
        raise ValueError(f"lengths must have shape {want}, one per sequence, got shape {tuple(arr.shape)}")
    if arr.shape[0] == 0:
        raise ValueError("lengths is empty: a batch needs at least one sequence")
    bad = (arr < 1) | (arr > total_length)
    if bad.any():
        i = int(xp.flatnonzero(bad)[0])
        raise ValueError(
            f"lengths[{i}] is {int(arr[i])}: each length must be in [1, {total_length}] (the padded length)"
        )
    return arr.astype(xp.int64, copy=False)


def _layout(layout, x_shape, batch_first: bool) -> SequenceLayout:
    b, t = (x_shape[0], x_shape[1]) if batch_first else (x_shape[1], x_shape[0])
    if not isinstance(layout, SequenceLayout):
        return SequenceLayout(layout, t, b)  # lengths (or None)
    if (layout.batch, layout.total_length) != (b, t):
        raise ValueError(
            f"the sequence layout is for {layout.batch} sequences of {layout.total_length} steps, the tensor of shape "
            f"{tuple(x_shape)} holds {b} of {t} (batch_first={batch_first})"
        )
    return layout


# -- pack -------------------------------------------------------------------------------------------------------


class PackSequence(Function):
    name = "pack_sequence"

    def forward(self, x, layout, batch_first):
        self.layout, self.batch_first, self.shape_in = layout, batch_first, x.shape
        if layout.uniform:  # no gaps: packed rows are the time-major rows
            tm = x.swapaxes(0, 1) if batch_first else x
            return B.xp.ascontiguousarray(tm).reshape(layout.rows, *x.shape[2:])
        flat = x.reshape(-1, *x.shape[2:])
        return B.xp.take(flat, layout.padded_rows(batch_first), axis=0)

    def backward(self, g):
        layout, shape = self.layout, self.shape_in
        if layout.uniform:
            tm = g.reshape(shape[1], shape[0], *shape[2:]) if self.batch_first else g.reshape(shape)
            return (B.xp.ascontiguousarray(tm.swapaxes(0, 1)) if self.batch_first else tm,)
        gx = B.xp.zeros((shape[0] * shape[1], *shape[2:]), dtype=g.dtype)
        gx[layout.padded_rows(self.batch_first)] = g  # each padded position receives at most one row
        return (gx.reshape(shape),)


@register("pack_sequence")
def pack_sequence(x, layout, batch_first: bool = True) -> Tensor:
    """The valid steps of a padded batch, packed time-major (PyTorch's ``pack_padded_sequence(...).data``).

    Args:
        x: (B, T, *features) when ``batch_first``, else (T, B, *features).
        layout: a ``SequenceLayout``, or the (B,) lengths (None: every sequence has all T steps).
        batch_first: the layout of ``x`` (default True).

    Returns: (N, *features), N = sum(lengths): step 0 of each sequence (longest first), then step 1, ... Backward
    scatters the gradient back; padded positions get zero.
    """
    x = as_tensor(x)
    if x.ndim < 2:
        raise ValueError(f"pack_sequence: expected a padded batch of at least 2 dimensions, got shape {tuple(x.shape)}")
    layout = _layout(layout, x.shape, batch_first)
    return PackSequence.apply(x, layout=layout, batch_first=bool(batch_first))


# -- unpack -----------------------------------------------------------------------------------------------------


class UnpackSequence(Function):
    name = "unpack_sequence"

    def forward(self, data, layout, batch_first):
        self.layout, self.batch_first = layout, batch_first
        b, t, feat = layout.batch, layout.total_length, data.shape[1:]
        if layout.uniform:
            tm = data.reshape(t, b, *feat)
            return B.xp.ascontiguousarray(tm.swapaxes(0, 1)) if batch_first else tm
        out = B.xp.zeros((b * t, *feat), dtype=data.dtype)
        out[layout.padded_rows(batch_first)] = data
        return out.reshape((b, t, *feat) if batch_first else (t, b, *feat))

    def backward(self, g):
        layout = self.layout
        if layout.uniform:
            tm = g.swapaxes(0, 1) if self.batch_first else g
            return (B.xp.ascontiguousarray(tm).reshape(layout.rows, *g.shape[2:]),)
        flat = g.reshape(-1, *g.shape[2:])
        return (B.xp.take(flat, layout.padded_rows(self.batch_first), axis=0),)


@register("unpack_sequence")
def unpack_sequence(data, layout, batch_first: bool = True) -> Tensor:
    """Packed rows back into a padded batch, zeros at the padded positions (PyTorch's ``pad_packed_sequence``, with
    ``total_length`` the layout's T).

    Args:
        data: (N, *features) packed rows, as ``pack_sequence`` or a recurrent op returns them.
        layout: the ``SequenceLayout`` the rows were packed with.
        batch_first: return (B, T, *features) (default) or (T, B, *features).
    """
    data = as_tensor(data)
    if not isinstance(layout, SequenceLayout):
        raise TypeError(f"unpack_sequence: layout must be a SequenceLayout, got {type(layout).__name__}")
    if data.ndim < 1 or data.shape[0] != layout.rows:
        raise ValueError(
            f"unpack_sequence: the layout has {layout.rows} packed rows, the data has shape {tuple(data.shape)}"
        )
    return UnpackSequence.apply(data, layout=layout, batch_first=bool(batch_first))
