"""The one seam between neuronkit and the array library.

Every array call in the engine goes through this module: ``backend.xp`` is the array namespace (NumPy today; CuPy
on NVIDIA GPUs can be swapped in without touching the ops, since CuPy mirrors NumPy's API). Nothing outside this file
imports NumPy directly in the engine (``tensor.py``, ``autograd/``, ``ops/``); a test enforces it.
"""

from __future__ import annotations

import numpy

xp = numpy
"""The active array namespace. Ops call ``backend.xp.exp(...)`` and so on."""

ndarray = numpy.ndarray
"""The array type the engine stores inside a ``Tensor``."""

DEFAULT_FLOAT = numpy.dtype(numpy.float32)
"""neuronkit's default floating dtype: Python floats and lists become float32 tensors."""


def asarray(data, dtype=None):
    """Convert ``data`` to an array of the active backend (no copy when it already is one of the right dtype)."""
    return xp.asarray(data, dtype=dtype)


def dtype(d):
    """Normalise a dtype spec (``"float32"``, ``numpy.float64``, ...) to a backend dtype object."""
    return xp.dtype(d)


def default_rng(seed=None):
    """A random generator of the active backend, seeded by ``seed`` (an int, or None for fresh entropy)."""
    return xp.random.default_rng(seed)


def is_generator(obj) -> bool:
    return isinstance(obj, xp.random.Generator)


def errstate(**kw):
    """Context manager that silences or raises floating-point warnings (NumPy's ``errstate``)."""
    return xp.errstate(**kw)


def add_at(target, index, values):
    """Unbuffered ``target[index] += values``: repeated indices accumulate (the scatter-add of index backward)."""
    xp.add.at(target, index, values)
