"""Position information for attention, which by itself ignores token order: ``SinusoidalPositionalEncoding`` (fixed)
and ``LearnedPositionalEmbedding`` (trained). Both add a (L, E) table to a (..., L, E) input."""

from __future__ import annotations

import math

from ... import backend as B
from ... import ops
from ...tensor import Tensor
from .. import init as I
from ..module import Module
from ..parameter import Parameter
from ..registry import register_layer


def _check_sizes(who, d_model, max_len):
    for what, v in (("d_model", d_model), ("max_len", max_len)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ValueError(f"{who}: {what} must be a positive int, got {v!r}")


def _check_input(layer, x, d_model: int, max_len: int) -> Tensor:
    x = x if isinstance(x, Tensor) else Tensor(x)
    if x.ndim < 2 or x.shape[-1] != d_model or x.dtype.kind != "f":
        raise ValueError(
            f"{layer!r} got input of {x.dtype} shape {tuple(x.shape)}: expected floating (..., length, {d_model})"
        )
    if x.shape[-2] > max_len:
        raise ValueError(
            f"{layer!r} got a sequence of {x.shape[-2]} positions (input shape {tuple(x.shape)}); it has positions "
            f"for at most max_len={max_len}: raise max_len, or truncate the sequences (SequenceDataset(max_len=...))"
        )
    return x


def sinusoid_table(length: int, d_model: int, dtype):
    """(length, d_model) table: ``pe[t, 2i] = sin(t / 10000^(2i / d))``, ``pe[t, 2i + 1] = cos(t / 10000^(2i / d))``."""
    xp = B.xp
    pos = xp.arange(length, dtype=xp.float64)[:, None]
    freq = xp.exp(xp.arange(0, d_model, 2, dtype=xp.float64) * (-math.log(10000.0) / d_model))  # (ceil(d / 2),)
    angle = pos * freq  # (length, ceil(d / 2))
    pe = xp.empty((length, d_model), dtype=xp.float64)
    pe[:, 0::2] = xp.sin(angle)
    pe[:, 1::2] = xp.cos(angle[:, : d_model // 2])
    return pe.astype(dtype)


@register_layer
class SinusoidalPositionalEncoding(Module):
    """Adds the fixed sinusoidal position table of Vaswani et al. (2017) to a sequence of vectors.

    ``y[..., t, :] = x[..., t, :] + pe[t]`` with ``pe[t, 2i] = sin(t / 10000^(2i / d_model))`` and
    ``pe[t, 2i + 1] = cos(t / 10000^(2i / d_model))``. No parameters; nothing is saved but the two sizes (the table is
    computed on first use, up to the longest sequence seen).

    Args:
        d_model: E, the size of each vector.
        max_len: the most positions allowed (default 5000); a longer input is an error naming both lengths.

    Shape: (..., L, E) -> the same, L <= max_len.
    """

    def __init__(self, d_model: int, max_len: int = 5000):
        super().__init__()
        _check_sizes(type(self).__name__, d_model, max_len)
        self.d_model, self.max_len = d_model, max_len
        self._table = None  # float64 table, grown on demand
        self._cast = {}  # dtype -> the table in that dtype

    def table(self, length: int, dtype):
        """The first ``length`` rows of the table in ``dtype`` (cached; ``length`` <= ``max_len``)."""
        have = 0 if self._table is None else self._table.shape[0]
        if have < length:  # grow geometrically, so a run of lengthening batches recomputes it a few times only
            self._table = sinusoid_table(min(self.max_len, max(length, 2 * have, 64)), self.d_model, B.xp.float64)
            self._cast = {}
        t = self._cast.get(dtype)
        if t is None:
            t = self._cast[dtype] = self._table.astype(dtype)
        return t[:length]

    def forward(self, x):
        x = _check_input(self, x, self.d_model, self.max_len)
        return ops.add(x, Tensor(self.table(x.shape[-2], x.dtype)))

    def get_config(self) -> dict:
        return {"d_model": self.d_model, "max_len": self.max_len}

    @classmethod
    def config_cost(cls, config) -> int:
        return 0  # the table is computed on use, for the lengths actually seen

    def extra_repr(self) -> str:
        return f"{self.d_model}, max_len={self.max_len}"


@register_layer
class LearnedPositionalEmbedding(Module):
    """Adds a learned vector per position (as in BERT and GPT-2): ``y[..., t, :] = x[..., t, :] + weight[t]``.

    Args:
        d_model: E, the size of each vector.
        max_len: number of positions learned (default 512); a longer input is an error naming both lengths.
        std: the weights start from N(0, std^2) (default 0.02, as BERT and GPT-2).
        generator: seed or ``numpy.random.Generator`` for the initial weights.
        dtype: weight dtype (default float32).

    Shape: (..., L, E) -> the same, L <= max_len. ``weight`` is (max_len, E); positions past the longest input seen
    get no gradient.
    """

    def __init__(self, d_model: int, max_len: int = 512, std: float = 0.02, generator=None, dtype: str | None = None):
        super().__init__()
        _check_sizes(type(self).__name__, d_model, max_len)
        if not (isinstance(std, (int, float)) and not isinstance(std, bool) and std >= 0):
            raise ValueError(f"{type(self).__name__}: std must be a non-negative number, got {std!r}")
        self.d_model, self.max_len, self.std = d_model, max_len, float(std)
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        self.weight = Parameter(B.xp.empty((max_len, d_model), dtype=dt))
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        """Draw every position's vector from N(0, std^2)."""
        I.normal_(self.weight, 0.0, self.std, generator=generator)

    def forward(self, x):
        x = _check_input(self, x, self.d_model, self.max_len)
        length = x.shape[-2]
        w = self.weight if length == self.max_len else self.weight[:length]
        return ops.add(x, w)

    def get_config(self) -> dict:
        return {
            "d_model": self.d_model,
            "max_len": self.max_len,
            "std": self.std,
            "dtype": self.weight.data.dtype.name,
        }

    @classmethod
    def config_cost(cls, config) -> int:
        return int(config.get("max_len", 512)) * int(config.get("d_model", 1))

    def extra_repr(self) -> str:
        return f"{self.d_model}, max_len={self.max_len}"
