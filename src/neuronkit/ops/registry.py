"""Name -> function tables for the ops, so tests can walk them and no op goes unchecked.

``DIFFERENTIABLE`` holds every op that records a gradient; ``NON_DIFFERENTIABLE`` the ones that never do
(comparisons, argmax). ``tests/test_ops.py`` fails if an op here has no line in its table.
"""

from __future__ import annotations

DIFFERENTIABLE: dict = {}
NON_DIFFERENTIABLE: dict = {}


def register(name: str, differentiable: bool = True):
    """Decorator: record ``fn`` under ``name`` in the op tables."""

    def deco(fn):
        table = DIFFERENTIABLE if differentiable else NON_DIFFERENTIABLE
        if name in table:
            raise KeyError(f"op {name!r} registered twice")
        table[name] = fn
        return fn

    return deco
