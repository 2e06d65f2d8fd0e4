"""Recurrent layers: ``RNN`` (tanh or ReLU), ``LSTM`` and ``GRU``; several layers, bidirectional, variable lengths.

Parameters, their names, shapes and gate order are PyTorch's (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, then ``..._reverse`` for the backward direction, then ``..._l1``), so a PyTorch ``state_dict`` loads
as it is. Each layer and direction is one op (``ops.rnn``/``ops.lstm``/``ops.gru``) over packed rows: a batch of
padded sequences with ``lengths`` is packed once (``ops.pack_sequence``), runs through every layer packed, and is
unpacked once at the end, so padded positions never change a state or an output (they come out as zeros).
"""

from __future__ import annotations

import math

from ... import backend as B
from ... import ops
from ...creation import get_generator
from ...ops.packing import SequenceLayout, check_lengths
from ...tensor import Tensor
from .. import init as I
from ..module import Module
from ..parameter import Parameter
from ..registry import register_layer

_GATE_NAMES = {
    "lstm": ("input", "forget", "cell", "output"),
    "gru": ("reset", "update", "new"),
    "rnn": (),
}


class _RNNBase(Module):
    """The machinery shared by RNN, LSTM and GRU (see their docstrings)."""

    _op = "rnn"
    _gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        generator=None,
        dtype: str | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        for what, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: {what} must be a positive int, got {v!r}")
        for what, v in (("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)):
            if not isinstance(v, bool):
                raise ValueError(f"{name}: {what} must be True or False, got {v!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"{name}: dropout must be a number in [0, 1), got {dropout!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout = float(dropout)
        self.__dict__["_gate_hooks"] = {}
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        g = self._gates * hidden_size
        for layer in range(num_layers):
            fan_in = input_size if layer == 0 else hidden_size * self.directions
            for suffix in self._suffixes():
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(B.xp.empty((g, fan_in), dtype=dt)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(B.xp.empty((g, hidden_size), dtype=dt)))
                if bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(B.xp.empty(g, dtype=dt)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(B.xp.empty(g, dtype=dt)))
        # One stream for the initial weights and then the dropout masks: a seed makes both repeatable.
        self.generator = get_generator(generator) if generator is not None else None
        self.reset_parameters(self.generator)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self, generator=None) -> None:
        """Draw every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), PyTorch's default."""
        rng = get_generator(generator)
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            I.uniform_(p, -bound, bound, generator=rng)

    # -- forward ------------------------------------------------------------------------------------------------------
    def forward(self, x, lengths=None, h0=None):
        x = x if isinstance(x, Tensor) else Tensor(x)
        layout = self._layout(x, lengths)
        states = self._initial_states(h0, layout)
        data = ops.pack_sequence(x, layout, batch_first=self.batch_first)
        finals = []  # per layer and direction: (h_n,) or (h_n, c_n), rows in packed order
        record = [] if self.__dict__["_gate_hooks"] else None
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self._suffixes()):
                k = layer * self.directions + d
                res = self._run(data, layer, suffix, [s[k] for s in states], layout, d == 1, record)
                outs.append(res[0])
                finals.append(res[1:])
            data = outs[0] if len(outs) == 1 else ops.concatenate(outs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                data = self._dropout(data)
        output = ops.unpack_sequence(data, layout, batch_first=self.batch_first)
        if record is not None:
            self._call_gate_hooks(record, layout)
        h_n = [self._unsort(ops.stack([f[i] for f in finals], axis=0), layout) for i in range(len(finals[0]))]
        return output, (h_n[0] if len(h_n) == 1 else tuple(h_n))

    def _run(self, data, layer, suffix, states, layout, reverse, record):
        params = self._parameters
        args = [params[f"weight_ih_l{layer}{suffix}"], params[f"weight_hh_l{layer}{suffix}"]]
        if self.bias:
            args += [params[f"bias_ih_l{layer}{suffix}"], params[f"bias_hh_l{layer}{suffix}"]]
        else:
            args += [None, None]
        kw = {"batch_sizes": layout.batch_sizes, "reverse": reverse}
        if record is not None:
            kw["record"] = record
        if self._op == "rnn":
            return ops.rnn(data, *args, *states, nonlinearity=self.nonlinearity, **kw)
        return getattr(ops, self._op)(data, *args, *states, **kw)

    def _layout(self, x, lengths) -> SequenceLayout:
        shape = tuple(x.shape)
        where = "(batch, time, features)" if self.batch_first else "(time, batch, features)"
        if len(shape) != 3 or shape[-1] != self.input_size or 0 in shape:
            raise ValueError(f"{self!r} got input of shape {shape}: expected {where} with {self.input_size} features")
        want = self.weight_ih_l0.data.dtype
        if x.dtype != want:
            hint = " (token ids go through an Embedding first)" if x.dtype.kind != "f" else ""
            raise TypeError(f"{self!r} got input of dtype {x.dtype}: expected {want}, the layer's dtype{hint}")
        b, t = (shape[0], shape[1]) if self.batch_first else (shape[1], shape[0])
        if lengths is not None:
            try:
                lengths = check_lengths(lengths, t, b)
            except (TypeError, ValueError) as e:
                raise type(e)(f"{self!r}: {e}") from None
        return SequenceLayout(lengths, t, b)

    def _initial_states(self, h0, layout) -> list:
        """One list per state kind (h, and c for the LSTM) of per-layer-and-direction (B, H) tensors in packed
        order, or Nones."""
        kinds = 2 if self._op == "lstm" else 1
        n = self.num_layers * self.directions
        if h0 is None:
            return [[None] * n for _ in range(kinds)]
        given = tuple(h0) if kinds == 2 and isinstance(h0, (tuple, list)) else (h0,)
        if len(given) != kinds:
            raise ValueError(f"{self!r}: h0 must be a pair (h0, c0) of tensors, got {type(h0).__name__}")
        out = []
        want = (n, layout.batch, self.hidden_size)
        for name, s in zip(("h0", "c0"), given):
            s = s if isinstance(s, Tensor) else Tensor(s)
            if tuple(s.shape) != want:
                raise ValueError(
                    f"{self!r}: {name} must have shape {want} (layers x directions, batch, hidden), got "
                    f"{tuple(s.shape)}"
                )
            rows = None if layout.uniform else layout.sorted_indices
            out.append([s[k] if rows is None else s[k, rows] for k in range(n)])
        return out

    def _unsort(self, t, layout):
        return t if layout.uniform else t[:, layout.unsorted_indices]

    def _dropout(self, data):
        rng = self.generator if self.generator is not None else get_generator(None)
        return ops.dropout(data, self.dropout, generator=rng)  # the same fused op as nn.Dropout

    # -- gate hooks ---------------------------------------------------------------------------------------------------
    def register_gate_hook(self, hook):
        """Call ``hook(module, gates, mask)`` after each forward with the layer's inner activations.

        ``gates`` maps ``"l0"``, ``"l0_reverse"``, ``"l1"``, ... (layer and direction) to a dict of arrays of shape
        (B, T, hidden_size) in batch-first order, zero at padded positions: the gate activations (LSTM: ``input``,
        ``forget``, ``cell`` (g), ``output``; GRU: ``reset``, ``update``, ``new``), the LSTM's ``cell_state`` c_t, and
        every cell's ``hidden`` state h_t. ``mask`` (B, T) is True at the valid positions. The arrays are copies the
        hook may keep. Nothing is recorded while no gate hook is registered. Returns a handle with ``remove()``.
        """
        return self._add_hook("_gate_hooks", hook)

    def _call_gate_hooks(self, record, layout) -> None:
        xp = B.xp
        rows = layout.padded_rows(True)
        b, t = layout.batch, layout.total_length
        mask = xp.zeros(b * t, dtype=bool)
        mask[rows] = True
        gates = {}
        for k, acts in enumerate(record):
            layer, d = divmod(k, self.directions)
            named = {}
            for name, a in acts.items():
                full = xp.zeros((b * t, a.shape[1]), dtype=a.dtype)
                full[rows] = a
                named[name] = full.reshape(b, t, a.shape[1])
            gates[f"l{layer}{'_reverse' if d else ''}"] = named
        for hook in tuple(self.__dict__["_gate_hooks"].values()):
            hook(self, gates, mask.reshape(b, t))

    # -- saving and display -------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """Constructor arguments as JSON (the generator is not saved: weights are)."""
        return {
            "input_size": self.input_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "bias": self.bias,
            "batch_first": self.batch_first,
            "dropout": self.dropout,
            "bidirectional": self.bidirectional,
            "dtype": self.weight_ih_l0.data.dtype.name,
        }

    @classmethod
    def config_cost(cls, config) -> int:
        """Array elements the constructor allocates (for the loader's memory guard): every weight and bias."""
        i, h = int(config.get("input_size", 1)), int(config.get("hidden_size", 1))
        layers, d = int(config.get("num_layers", 1)), 2 if config.get("bidirectional") else 1
        g, nb = cls._gates * h, 2 if config.get("bias", True) else 0
        first = g * (i + h + nb)  # one direction of layer 0: W_ih, W_hh, two biases
        rest = g * (d * h + h + nb)  # one direction of each later layer
        return d * (first + (layers - 1) * rest)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            s += ", bias=False"
        if not self.batch_first:
            s += ", batch_first=False"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


@register_layer
class RNN(_RNNBase):
    """An Elman RNN: ``h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, act = tanh or ReLU.

    Args:
        input_size: features per step of the input.
        hidden_size: H, units of the state (and of the output per direction).
        num_layers: stacked layers; layer k > 0 reads the (concatenated) outputs of layer k - 1 (default 1).
        nonlinearity: "tanh" (default) or "relu".
        bias: learn ``bias_ih`` and ``bias_hh`` (default True).
        batch_first: input and output are (B, T, features) (default True; PyTorch's default is False), else
            (T, B, features). h0 and h_n are (layers x directions, B, H) either way.
        dropout: probability of zeroing each output of every layer but the last, in training (default 0).
        bidirectional: add a second direction per layer that reads each sequence from its last valid step to its
            first; outputs are concatenated (forward, reverse) along the features (default False).
        generator: seed or ``numpy.random.Generator`` for the initial weights, then the dropout masks.
        dtype: parameter dtype (default float32).

    ``layer(x, lengths=None, h0=None) -> (output, h_n)``: ``x`` (B, T, input_size); ``lengths`` (B,) valid steps of
    each sequence (ints in [1, T]; None: all T); ``h0`` (layers x directions, B, H) or None for zeros. ``output``
    (B, T, directions x H), zero at padded positions; ``h_n`` (layers x directions, B, H): each sequence's state
    after its last valid step (the reverse direction: after step 0). Weights as PyTorch's ``nn.RNN``:
    ``weight_ih_l{k}`` (H, in), ``weight_hh_l{k}`` (H, H), biases (H,), ``..._reverse`` for the second direction.
    """

    _op = "rnn"
    _gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        bias: bool = True,
        batch_first: bool = True,
        dropout: float = 0.0,
        bidirectional: bool = False,
        generator=None,
        dtype: str | None = None,
    ):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(
            input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, generator, dtype
        )
        self.nonlinearity = nonlinearity

    def get_config(self) -> dict:
        return {**super().get_config(), "nonlinearity": self.nonlinearity}


@register_layer
class LSTM(_RNNBase):
    """Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch's equations and gate order::

        i, f, o = sigmoid(x W_i*^T + b_i* + h W_h*^T + b_h*)     g = tanh(x W_ig^T + b_ig + h W_hg^T + b_hg)
        c_t = f * c_{t-1} + i * g                                h_t = o * tanh(c_t)

    Arguments and shapes as ``RNN`` (no ``nonlinearity``); the weights stack the four gate blocks (i, f, g, o):
    ``weight_ih_l{k}`` (4H, in), ``weight_hh_l{k}`` (4H, H), biases (4H,).
    ``layer(x, lengths=None, h0=None) -> (output, (h_n, c_n))``; ``h0`` is None or a pair (h0, c0), each
    (layers x directions, B, H).
    """

    _op = "lstm"
    _gates = 4


@register_layer
class GRU(_RNNBase):
    """Gated recurrent unit (Cho et al. 2014), PyTorch's equations and gate order::

        r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)       z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
        n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))    h_t = (1 - z) * n + z * h_{t-1}

    Arguments and shapes as ``RNN`` (no ``nonlinearity``); the weights stack the three gate blocks (r, z, n):
    ``weight_ih_l{k}`` (3H, in), ``weight_hh_l{k}`` (3H, H), biases (3H,). ``layer(x, lengths=None, h0=None) ->
    (output, h_n)``.
    """

    _op = "gru"
    _gates = 3
