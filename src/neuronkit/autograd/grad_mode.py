"""Gradient recording on and off: ``no_grad`` and ``enable_grad`` as context managers and decorators.

The switch is a process-wide flag (not thread-local): reading a module global is the cheapest check on the hot path
of every op. Nest freely; each context restores the value it found.
"""

from __future__ import annotations

import functools

enabled = True
"""Whether ops record the graph. Read it (``Function.apply`` does, on every op); change it only through ``no_grad``,
``enable_grad`` and ``set_grad_enabled``."""


def is_grad_enabled() -> bool:
    """True when ops record the graph needed for ``backward()``."""
    return enabled


def set_grad_enabled(mode: bool) -> None:
    global enabled
    enabled = bool(mode)


class _GradMode:
    mode = True

    def __enter__(self):
        global enabled
        self._prev = enabled
        enabled = self.mode
        return self

    def __exit__(self, *exc):
        global enabled
        enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Run ops without recording the graph (inference, parameter updates).

    Use as ``with no_grad(): ...`` or as a decorator ``@no_grad()``. Tensors created inside have
    ``requires_grad=False``.
    """

    mode = False


class enable_grad(_GradMode):
    """Turn recording back on inside a ``no_grad`` block."""

    mode = True
