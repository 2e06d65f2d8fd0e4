"""Reverse-mode automatic differentiation: the ``Function`` node, the backward walk and grad mode.

``neuronkit.gradcheck`` (float64 finite differences for any function of tensors) sits above ``Tensor``, not here."""

from .engine import GraphFreedError, backward
from .function import Function
from .grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled

__all__ = ["Function", "GraphFreedError", "backward", "enable_grad", "is_grad_enabled", "no_grad", "set_grad_enabled"]
