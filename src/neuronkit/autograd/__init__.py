"""Reverse-mode automatic differentiation: the ``Function`` node, the backward walk and grad mode.

``neuronkit.gradcheck`` (float64 finite differences for any function of tensors) sits above ``Tensor``, not here."""

from . import engine, function
from .engine import GraphFreedError, backward
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled


def set_tensor_class(cls) -> None:
    """Make ``cls`` the class of the tensors that ops return and that backward walks. ``tensor.py`` calls it once with
    ``Tensor``: it imports this package, which therefore cannot import it back."""
    function.set_tensor_class(cls)
    engine.set_tensor_class(cls)


__all__ = [
    "Function",
    "GraphFreedError",
    "backward",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
    "set_tensor_class",
]
