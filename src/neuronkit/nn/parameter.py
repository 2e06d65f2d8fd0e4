"""``Parameter``: a tensor that is part of a model. Assigning one to a ``Module`` attribute registers it."""

from __future__ import annotations

from ..tensor import Tensor


class Parameter(Tensor):
    """A leaf tensor that a ``Module`` owns and an optimizer updates; ``requires_grad=True`` unless told otherwise.

    ``Parameter(data)`` wraps the array of ``data`` (a Tensor or array-like) without copying it.
    """

    __slots__ = ()

    def __init__(self, data, requires_grad: bool = True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter(" + super().__repr__() + ")"
