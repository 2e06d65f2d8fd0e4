"""Sequence encoders for ``TextClassifier``: each takes a padded batch ``(x (B, T, E), lengths (B,))`` and returns one
vector per text, (B, H), using only each text's own steps.

- ``ConvEncoder``: parallel 1-D convolutions of several widths, ReLU, and max over time (Kim 2014);
- ``RecurrentEncoder``: an ``RNN``/``LSTM``/``GRU`` over the steps, then max or mean over its outputs, or its last
  states;
- ``TransformerTextEncoder``: position information, a ``TransformerEncoder`` with the padding masked out of attention,
  then masked mean or max over its outputs.
"""

from __future__ import annotations

import math

from ... import backend as B
from ... import ops
from ...creation import get_generator
from ...tensor import Tensor
from ..module import Module
from ..registry import layer_spec, register_layer
from .attention import padding_mask
from .basic import Sequential
from .conv import Conv1d
from .recurrent import GRU, LSTM, RNN
from .transformer import TransformerEncoder

RECURRENT_POOLS = ("max", "mean", "last")
SEQUENCE_POOLS = ("mean", "max")


def _lengths(x: Tensor, lengths):
    """``lengths`` as an int64 array of shape (B,), each in 0..T (x is (B, T, E))."""
    n = lengths.data if isinstance(lengths, Tensor) else B.asarray(lengths)
    if n.ndim != 1 or n.shape[0] != x.shape[0] or (n.size and n.dtype.kind not in "iu"):
        raise ValueError(f"expected lengths of shape ({x.shape[0]},) integers, got {n.dtype} {tuple(n.shape)}")
    if n.size and (n.min() < 0 or n.max() > x.shape[1]):
        raise ValueError(f"lengths must be in 0..{x.shape[1]} (the time axis of x), got {n.min()}..{n.max()}")
    return n.astype(B.xp.int64, copy=False)


def _pool(h: Tensor, n, mode: str) -> Tensor:
    return ops.masked_mean_pool(h, n) if mode == "mean" else ops.masked_max_pool(h, n)


def _check_choice(who: str, what: str, v, choices) -> None:
    if v not in choices:
        raise ValueError(f"{who}: {what} must be one of {choices}, got {v!r}")


def _check_input(layer, x, features: int) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim != 3 or x.shape[-1] != features or x.dtype.kind != "f":
        raise ValueError(
            f"{layer!r} got input of {x.dtype} shape {tuple(x.shape)}: expected floating (batch, time, {features})"
        )
    return x


@register_layer
class ConvEncoder(Module):
    """Parallel 1-D convolutions over time, ReLU, and each filter's maximum over the text (Kim 2014).

    For each width ``k`` in ``kernel_sizes``, ``Conv1d(in_channels, out_channels, k)`` slides over the windows of k
    consecutive tokens; a text of n tokens has ``max(n - k + 1, 1)`` windows (a text shorter than k gets one window,
    zero-padded). Then ``out = concat_k max_{windows w} relu(conv_k(x))[w]``. Padded steps are set to zero first and
    windows that start past a text's last full window are left out of the maximum, so padding never changes an output.

    Args:
        in_channels: E, the size of each token vector.
        out_channels: filters per width (default 100, as Kim 2014).
        kernel_sizes: the widths, in tokens (default [3, 4, 5]).
        generator: seed or ``numpy.random.Generator`` for the initial weights.
        dtype: parameter dtype (default float32).

    Shape: ``x`` (B, T, E), ``lengths`` (B,) -> (B, len(kernel_sizes) * out_channels).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 100,
        kernel_sizes: list | None = None,
        generator=None,
        dtype: str | None = None,
    ):
        super().__init__()
        sizes = [3, 4, 5] if kernel_sizes is None else list(kernel_sizes)
        if not sizes or any(isinstance(k, bool) or not isinstance(k, int) or k <= 0 for k in sizes):
            raise ValueError(
                f"ConvEncoder: kernel_sizes must be a non-empty list of positive ints, got {kernel_sizes!r}"
            )
        rng = None if generator is None else get_generator(generator)  # one stream: the widths differ
        self.convs = Sequential(*(Conv1d(in_channels, out_channels, k, generator=rng, dtype=dtype) for k in sizes))
        self.in_channels, self.out_channels, self.kernel_sizes = in_channels, out_channels, sizes

    @property
    def out_features(self) -> int:
        return self.out_channels * len(self.kernel_sizes)

    def forward(self, x, lengths):
        x = _check_input(self, x, self.in_channels)
        n = _lengths(x, lengths)
        b, t, _ = x.shape
        mask = (B.xp.arange(t)[None, :] < n[:, None]).astype(x.dtype)[:, :, None]  # (B, T, 1)
        x = ops.mul(x, Tensor(mask))  # padded steps are zero, whatever the embedding gives them
        width = max(self.kernel_sizes)
        if t < width:  # every text gets at least one window of each width
            x = ops.pad(x, [(0, 0), (0, width - t), (0, 0)])
        xt = ops.swapaxes(x, 1, 2)  # (B, E, T')
        pooled = []
        for conv, k in zip(self.convs, self.kernel_sizes):
            h = ops.swapaxes(ops.relu(conv(xt)), 1, 2)  # (B, T' - k + 1, F)
            windows = B.xp.clip(n - k + 1, 1, h.shape[1])
            pooled.append(ops.masked_max_pool(h, windows))
        return pooled[0] if len(pooled) == 1 else ops.concatenate(pooled, axis=-1)

    def get_config(self) -> dict:
        w = self.convs[0].weight.data
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_sizes": list(self.kernel_sizes),
            "dtype": w.dtype.name,
        }

    @classmethod
    def config_cost(cls, config) -> int:
        """Array elements the convolutions allocate (their own specs are not nested in the config)."""
        c, f = int(config.get("in_channels", 1)), int(config.get("out_channels", 100))
        ks = config.get("kernel_sizes") or [3, 4, 5]
        return sum(f * (c * int(k) + 1) for k in ks)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_sizes={self.kernel_sizes}"


@register_layer
class RecurrentEncoder(Module):
    """A recurrent layer over each text's own steps, then one vector per text.

    ``pool="max"`` (default): the per-feature maximum of the outputs over the text's steps (InferSent's choice, Conneau
    et al. 2017); ``"mean"``: their mean; ``"last"``: the final states of the last layer (forward: after the last
    token; reverse, when bidirectional: after the first), concatenated.

    Args:
        rnn: an ``RNN``, ``LSTM`` or ``GRU`` with ``batch_first=True``.
        pool: ``"max"``, ``"mean"`` or ``"last"``.

    Shape: ``x`` (B, T, input_size), ``lengths`` (B,) ints in 1..T -> (B, directions * hidden_size).
    """

    def __init__(self, rnn: Module, pool: str = "max"):
        super().__init__()
        if not isinstance(rnn, (RNN, LSTM, GRU)):
            raise TypeError(f"RecurrentEncoder: rnn must be an RNN, LSTM or GRU, got {type(rnn).__name__}")
        if not rnn.batch_first:
            raise ValueError("RecurrentEncoder: rnn must be batch_first (inputs (B, T, features))")
        _check_choice("RecurrentEncoder", "pool", pool, RECURRENT_POOLS)
        self.rnn, self.pool = rnn, pool

    @property
    def out_features(self) -> int:
        return self.rnn.hidden_size * self.rnn.directions

    def forward(self, x, lengths):
        x = _check_input(self, x, self.rnn.input_size)
        n = _lengths(x, lengths)
        out, h_n = self.rnn(x, n)
        if self.pool != "last":
            return _pool(out, n, self.pool)
        h = h_n[0] if isinstance(h_n, tuple) else h_n  # (layers x directions, B, H); the LSTM's c_n is left out
        d = self.rnn.directions
        last = [h[h.shape[0] - d + i] for i in range(d)]
        return last[0] if d == 1 else ops.concatenate(last, axis=-1)

    def get_config(self) -> dict:
        return {"rnn": layer_spec(self.rnn), "pool": self.pool}

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}"


@register_layer
class TransformerTextEncoder(Module):
    """Token vectors scaled by ``sqrt(d_model)`` (as Vaswani et al. 2017 scale their embeddings), plus positions,
    through a ``TransformerEncoder`` whose attention ignores padding, then masked mean or max over the outputs.

    ``out = pool_{t < lengths[b]} encoder(positional(sqrt(E) * x), key_padding_mask = t >= lengths)[b, t]``

    Args:
        encoder: a ``TransformerEncoder`` of batch-first layers, ``d_model`` = E.
        positional: a ``SinusoidalPositionalEncoding`` or ``LearnedPositionalEmbedding`` of size E, or None (no
            position information: a bag of contextual vectors).
        pool: ``"mean"`` (default) or ``"max"``.
        scale: multiply the input by ``sqrt(E)`` first (default True).

    Shape: ``x`` (B, T, E), ``lengths`` (B,) ints in 1..T, T <= the positional layer's max_len -> (B, E).
    """

    def __init__(self, encoder: Module, positional: Module | None = None, pool: str = "mean", scale: bool = True):
        super().__init__()
        if not isinstance(encoder, TransformerEncoder):
            raise TypeError(
                f"TransformerTextEncoder: encoder must be a TransformerEncoder, got {type(encoder).__name__}"
            )
        if not encoder.layers[0].batch_first:
            raise ValueError("TransformerTextEncoder: the encoder's layers must be batch_first")
        if positional is not None and getattr(positional, "d_model", None) != self._d(encoder):
            raise ValueError(
                f"TransformerTextEncoder: positional must be a positional layer of size {self._d(encoder)}, got "
                f"{positional!r}"
            )
        _check_choice("TransformerTextEncoder", "pool", pool, SEQUENCE_POOLS)
        if not isinstance(scale, bool):
            raise ValueError(f"TransformerTextEncoder: scale must be True or False, got {scale!r}")
        self.encoder, self.positional, self.pool, self.scale = encoder, positional, pool, scale

    @staticmethod
    def _d(encoder) -> int:
        return encoder.layers[0].self_attn.embed_dim

    @property
    def out_features(self) -> int:
        return self._d(self.encoder)

    def forward(self, x, lengths):
        d = self._d(self.encoder)
        x = _check_input(self, x, d)
        n = _lengths(x, lengths)
        if self.scale:
            x = ops.mul(x, math.sqrt(d))
        if self.positional is not None:
            x = self.positional(x)
        h = self.encoder(x, src_key_padding_mask=padding_mask(n, x.shape[1]))
        return _pool(h, n, self.pool)

    def get_config(self) -> dict:
        return {
            "encoder": layer_spec(self.encoder),
            "positional": None if self.positional is None else layer_spec(self.positional),
            "pool": self.pool,
            "scale": self.scale,
        }

    def extra_repr(self) -> str:
        return f"pool={self.pool!r}, scale={self.scale}"
