"""Initialisers: fill a parameter in place, drawing from an explicit generator.

Every random initialiser takes ``generator=`` (an int seed or a ``numpy.random.Generator``; None uses neuronkit's
default generator, reset by ``neuronkit.manual_seed``). Fan-in and fan-out of a weight of shape (out, in, *kernel)
are ``in * prod(kernel)`` and ``out * prod(kernel)``, as in PyTorch.

``skip_init()`` builds layers without initialising them, for a model whose weights are loaded next.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

from .. import backend as B
from ..creation import get_generator

_GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}
# Convolutions are linear maps: gain 1, as in PyTorch.
_GAINS.update({f"conv{t}{d}d": 1.0 for t in ("", "_transpose") for d in (1, 2, 3)})


def calculate_gain(nonlinearity: str = "linear", param: float | None = None) -> float:
    """The recommended scale for an activation (PyTorch's values): relu sqrt(2), tanh 5/3, leaky_relu
    sqrt(2 / (1 + slope^2)), selu 3/4, linear, sigmoid and conv*/conv_transpose* 1."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        known = sorted(_GAINS) + ["leaky_relu"]
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; known: {known}")
    return _GAINS[nonlinearity]


_SKIP = contextvars.ContextVar("neuronkit_skip_init", default=False)


@contextlib.contextmanager
def skip_init():
    """Within this block every initialiser here checks its arguments and returns the tensor as it is, drawing
    nothing: layers built inside keep the memory their constructor allocated (``empty``: arbitrary values) and cost
    no initialisation time (an orthogonal 4096 x 4096 init is a QR of that size). For a model whose every
    parameter and buffer is overwritten next, as ``neuronkit.io.load`` does: never train a model built here without
    loading its weights. The default generator is not advanced. Thread- and context-local."""
    token = _SKIP.set(True)
    try:
        yield
    finally:
        _SKIP.reset(token)


def skipping_init() -> bool:
    """True inside ``skip_init()``."""
    return _SKIP.get()


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``; 1-D shapes count as (n, n)."""
    if len(shape) < 1:
        raise ValueError("fan-in and fan-out are undefined for a 0-d tensor")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(t, arr):
    if _SKIP.get():
        return t
    t.data[...] = arr
    return t


def zeros_(t):
    """Fill with 0."""
    return _fill(t, 0)


def ones_(t):
    """Fill with 1."""
    return _fill(t, 1)


def constant_(t, value: float):
    """Fill with ``value``."""
    return _fill(t, value)


def uniform_(t, low: float = 0.0, high: float = 1.0, generator=None):
    """Draw from U(low, high)."""
    if _SKIP.get():
        return t
    return _fill(t, get_generator(generator).uniform(low, high, t.shape))


def normal_(t, mean: float = 0.0, std: float = 1.0, generator=None):
    """Draw from N(mean, std^2)."""
    if _SKIP.get():
        return t
    return _fill(t, get_generator(generator).normal(mean, std, t.shape))


def xavier_uniform_(t, gain: float = 1.0, generator=None):
    """Glorot/Xavier uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fi, fo = fans(t.shape)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -a, a, generator)


def xavier_normal_(t, gain: float = 1.0, generator=None):
    """Glorot/Xavier normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = fans(t.shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fi + fo)), generator)


def _fan(t, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fi, fo = fans(t.shape)
    return fi if mode == "fan_in" else fo


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He/Kaiming uniform: U(-b, b) with b = gain * sqrt(3 / fan) (He et al. 2015); with the defaults (a=0, leaky
    relu) gain = sqrt(2), the choice for ReLU networks."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(t, mode))
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He/Kaiming normal: N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode)), generator)


def lecun_uniform_(t, generator=None):
    """LeCun uniform: U(-b, b) with b = sqrt(3 / fan_in) (variance 1 / fan_in; for SELU networks)."""
    b = math.sqrt(3.0 / fans(t.shape)[0])
    return uniform_(t, -b, b, generator)


def lecun_normal_(t, generator=None):
    """LeCun normal: N(0, 1 / fan_in)."""
    return normal_(t, 0.0, 1.0 / math.sqrt(fans(t.shape)[0]), generator)


def orthogonal_(t, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix scaled by ``gain`` (Saxe et al. 2014): QR of a Gaussian matrix, signs fixed so the
    result is uniformly distributed. Shapes beyond 2-D are flattened to (out, rest)."""
    if t.ndim < 2:
        raise ValueError(f"orthogonal_: needs at least 2 dimensions, got shape {tuple(t.shape)}")
    if _SKIP.get():
        return t
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    flat = get_generator(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = B.xp.linalg.qr(flat)
    q = q * B.xp.sign(B.xp.diag(r))
    if rows < cols:
        q = q.T
    return _fill(t, gain * q.reshape(t.shape))


INITIALIZERS = {
    "zeros": zeros_,
    "ones": ones_,
    "constant": constant_,
    "uniform": uniform_,
    "normal": normal_,
    "xavier_uniform": xavier_uniform_,
    "glorot_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "glorot_normal": xavier_normal_,
    "kaiming_uniform": kaiming_uniform_,
    "he_uniform": kaiming_uniform_,
    "kaiming_normal": kaiming_normal_,
    "he_normal": kaiming_normal_,
    "lecun_uniform": lecun_uniform_,
    "lecun_normal": lecun_normal_,
    "orthogonal": orthogonal_,
}


def get_initializer(name):
    """The initialiser called ``name`` (see ``INITIALIZERS``); a callable is returned unchanged."""
    if callable(name):
        return name
    if name not in INITIALIZERS:
        raise ValueError(f"unknown initializer {name!r}; known: {sorted(INITIALIZERS)}")
    return INITIALIZERS[name]
