"""Creation functions: ``tensor``, ``zeros``, ``ones``, ``full``, ``arange``, ``eye``, ``*_like``, and random tensors.

Randomness is passed in: ``rand``/``randn``/``randint`` take ``generator=``, either a seed (int) or a
``numpy.random.Generator``; without one they draw from neuronkit's default generator, which ``manual_seed(seed)``
resets, so one seed makes a run repeatable.
"""

from __future__ import annotations

from . import backend as B
from .tensor import Tensor, as_data

_default_rng = B.default_rng(0)


def manual_seed(seed: int):
    """Reset neuronkit's default random generator to ``seed``; returns the generator."""
    global _default_rng
    _default_rng = B.default_rng(seed)
    return _default_rng


def get_generator(generator=None):
    """A generator from ``generator``: None (the default one), an int seed, or a ``numpy.random.Generator``."""
    if generator is None:
        return _default_rng
    if isinstance(generator, bool) or not (isinstance(generator, int) or B.is_generator(generator)):
        raise TypeError(
            f"generator must be None, an int seed or a numpy.random.Generator, got {type(generator).__name__}"
        )
    return B.default_rng(generator) if isinstance(generator, int) else generator


def _shape(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"shape must be non-negative ints, got {shape}")
    return tuple(shape)


def _dt(dtype):
    return B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)


def _make(arr, requires_grad):
    t = Tensor.from_array(arr, False)
    return t.requires_grad_(True) if requires_grad else t


def tensor(data, dtype=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of ``data``. Python floats become float32; NumPy arrays keep their dtype."""
    arr = as_data(data, dtype)
    return _make(arr.copy(), requires_grad)


def zeros(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros (float32 unless ``dtype``)."""
    return _make(B.xp.zeros(_shape(shape), dtype=_dt(dtype)), requires_grad)


def ones(*shape, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones (float32 unless ``dtype``)."""
    return _make(B.xp.ones(_shape(shape), dtype=_dt(dtype)), requires_grad)


def full(shape, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """A tensor of ``shape`` filled with ``fill_value`` (float32 unless ``dtype``)."""
    shape = _shape((shape,) if isinstance(shape, int) else (tuple(shape),))
    return _make(B.xp.full(shape, fill_value, dtype=_dt(dtype)), requires_grad)


def arange(start, stop=None, step=1, dtype=None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in ``[start, stop)``; integer arguments give an int64 tensor, as in PyTorch."""
    if stop is None:
        start, stop = 0, start
    if dtype is None and all(isinstance(v, int) for v in (start, stop, step)):
        dtype = B.xp.int64
    return _make(B.xp.arange(start, stop, step, dtype=_dt(dtype)), requires_grad)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False) -> Tensor:
    """An ``n x m`` (default square) identity matrix."""
    return _make(B.xp.eye(n, m, dtype=_dt(dtype)), requires_grad)


def zeros_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape (and dtype, unless given) of ``t``."""
    d = as_data(t)
    return _make(B.xp.zeros(d.shape, dtype=dtype or d.dtype), requires_grad)


def ones_like(t, dtype=None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape (and dtype, unless given) of ``t``."""
    d = as_data(t)
    return _make(B.xp.ones(d.shape, dtype=dtype or d.dtype), requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad: bool = False) -> Tensor:
    """``fill_value`` with the shape (and dtype, unless given) of ``t``."""
    d = as_data(t)
    return _make(B.xp.full(d.shape, fill_value, dtype=dtype or d.dtype), requires_grad)


def rand(*shape, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1)."""
    dt = _dt(dtype)
    native = dt if dt.kind == "f" and dt.itemsize >= 4 else None
    arr = get_generator(generator).random(_shape(shape), dtype=native)
    return _make(arr.astype(dt, copy=False), requires_grad)


def randn(*shape, generator=None, dtype=None, requires_grad: bool = False) -> Tensor:
    """Standard normal samples (mean 0, standard deviation 1)."""
    dt = _dt(dtype)
    native = dt if dt.kind == "f" and dt.itemsize >= 4 else None  # numpy draws float32/64 directly
    arr = get_generator(generator).standard_normal(_shape(shape), dtype=native)
    return _make(arr.astype(dt, copy=False), requires_grad)


def randint(low: int, high: int, shape, generator=None, dtype=None) -> Tensor:
    """Integers drawn uniformly from ``[low, high)`` (int64 unless ``dtype``)."""
    shape = _shape((shape,) if isinstance(shape, int) else (tuple(shape),))
    if high <= low:
        raise ValueError(f"randint: high must exceed low, got low={low}, high={high}")
    dt = B.xp.int64 if dtype is None else B.dtype(dtype)
    return Tensor.from_array(get_generator(generator).integers(low, high, shape, dtype=dt), False)
