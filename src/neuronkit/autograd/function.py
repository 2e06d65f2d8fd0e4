"""``Function``: one differentiable op, its forward and backward side by side, and a node of the graph.

A subclass writes ``forward(self, *arrays, **kw) -> array`` and ``backward(self, grad) -> tuple`` (one gradient array
or None per tensor input). Anything backward needs is kept as an attribute of ``self`` (``self.x = x``); the engine
clears these attributes once the node has run, which frees the saved arrays. A backward must return fresh arrays or
views, never an array it keeps. Keyword arguments are not tensors: options such as an axis.

``Subclass.apply(*inputs, **kw)`` runs forward on the inputs' arrays and, when any input requires a gradient and
recording is on, links the new node into the graph:

- ``next``: one edge per input: None (no gradient wanted), the leaf ``Tensor`` itself (its ``.grad`` accumulates), or
  the ``Function`` node that produced a non-leaf input.
- ``shape``/``dtype``: of the output, so the engine can check that the gradient reaching it has exactly that shape.

Nodes never hold their output tensor (only a weak reference when ``retain_grad`` asks), so the graph has no
reference cycles and plain reference counting frees it.
"""

from __future__ import annotations

from .. import backend as B
from . import grad_mode


class Function:
    __slots__ = ("next", "shape", "dtype", "hooks", "retained", "freed")

    name = "function"

    def forward(self, *arrays, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, grad):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **kwargs):
        """Run the op on Tensors ``inputs``; returns a new Tensor (recorded in the graph when needed)."""
        fn = cls.__new__(cls)
        # Unrolled for one to three inputs (three: a linear layer with its bias): this is the per-op overhead every
        # tiny op pays.
        n = len(inputs)
        try:
            if n == 1:
                out = fn.forward(inputs[0].data, **kwargs)
            elif n == 2:
                out = fn.forward(inputs[0].data, inputs[1].data, **kwargs)
            elif n == 3:
                out = fn.forward(inputs[0].data, inputs[1].data, inputs[2].data, **kwargs)
            else:
                out = fn.forward(*[t.data for t in inputs], **kwargs)
        except ValueError as e:
            raise _shape_error(cls, inputs, e) from None
        if type(out) is not _ndarray:
            out = _asarray(out)
        res = _new_tensor(_Tensor)
        res.data = out
        res.grad = None
        res.hooks = None
        if grad_mode.enabled:
            if n == 1:
                t = inputs[0]
                if t.requires_grad:
                    fn.next = (t.grad_fn or t,)
                    return _link(fn, res, out)
            elif n == 2:
                a, b = inputs
                if a.requires_grad or b.requires_grad:
                    fn.next = (
                        (a.grad_fn or a) if a.requires_grad else None,
                        (b.grad_fn or b) if b.requires_grad else None,
                    )
                    return _link(fn, res, out)
            elif n == 3:
                a, b, c = inputs
                if a.requires_grad or b.requires_grad or c.requires_grad:
                    fn.next = (
                        (a.grad_fn or a) if a.requires_grad else None,
                        (b.grad_fn or b) if b.requires_grad else None,
                        (c.grad_fn or c) if c.requires_grad else None,
                    )
                    return _link(fn, res, out)
            elif any(t.requires_grad for t in inputs):
                fn.next = tuple(((t.grad_fn or t) if t.requires_grad else None) for t in inputs)
                return _link(fn, res, out)
        res.requires_grad = False
        res.grad_fn = None
        return res

    def __repr__(self):
        return f"<{type(self).__name__} node {self.name}>"


def _link(fn, res, out):
    fn.shape = out.shape
    fn.dtype = out.dtype
    fn.hooks = None
    fn.retained = None
    fn.freed = False
    res.requires_grad = True
    res.grad_fn = fn
    return res


def _shape_error(cls, inputs, err):
    shapes = " and ".join(str(tuple(t.shape)) for t in inputs)
    return ValueError(f"{cls.name}: incompatible input shapes {shapes}: {err}")


# The Tensor class, set through autograd.set_tensor_class by tensor.py (which imports this module: this one cannot
# import it back).
_Tensor = None
_new_tensor = object.__new__
_ndarray = B.ndarray
_asarray = B.asarray


def set_tensor_class(cls) -> None:
    """The class of the tensors this module makes (see ``autograd.set_tensor_class``)."""
    global _Tensor
    _Tensor = cls
