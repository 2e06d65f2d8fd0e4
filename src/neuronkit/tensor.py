"""``Tensor``: an array that remembers how it was computed, so ``backward()`` can find every gradient.

A tensor holds ``data`` (an array of the backend), ``requires_grad``, ``grad`` (a Tensor once backward has run, for
leaves), ``grad_fn``: the ``Function`` node that produced it (None for leaves: tensors you create yourself), and
``hooks``: the gradient hooks of a leaf (None when it has none; a non-leaf's hooks live on its node).
Operators and methods are the functions of ``neuronkit.ops`` (the functional API), attached by
``ops.install_methods`` when the package loads.
"""

from __future__ import annotations

import weakref

from . import backend as B
from .autograd import engine, is_grad_enabled, set_tensor_class

_ALLOWED_KINDS = "biuf"


def as_data(data, dtype=None):
    """The array a Tensor of ``data`` holds (``Tensor(data, dtype)`` and the creation functions use it): Python floats
    and lists of floats become float32, arrays and tensors keep their dtype unless ``dtype`` is given; complex, object,
    string and structured data raise ``TypeError``."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = B.dtype(dtype)
        arr = B.asarray(data, dtype=dtype)
    elif isinstance(data, (B.ndarray, B.xp.generic)):
        arr = B.asarray(data)
    else:
        arr = B.asarray(data)
        if arr.dtype.kind == "f" and arr.dtype != B.DEFAULT_FLOAT:
            arr = arr.astype(B.DEFAULT_FLOAT)
    if arr.dtype.kind not in _ALLOWED_KINDS:
        what = {"c": "complex", "O": "object", "U": "string", "S": "bytes", "V": "structured"}.get(arr.dtype.kind, "")
        raise TypeError(
            f"Tensor: expected numbers of a bool, integer or floating dtype, got a {what} array (dtype {arr.dtype})"
        )
    return arr


class Tensor:
    """An n-dimensional array with reverse-mode automatic differentiation.

    Args:
        data: array-like. Python floats (and lists of them) become float32, neuronkit's default; NumPy arrays keep
            their dtype; integers stay integers. Complex, object and string data raise ``TypeError``.
        dtype: optional dtype to convert to.
        requires_grad: record operations on this tensor so ``backward()`` computes ``grad`` for it. Only floating
            tensors can require gradients.

    ``Tensor(array)`` wraps a NumPy array without copying it; ``neuronkit.tensor(data)`` always copies.
    """

    __slots__ = ("data", "grad", "requires_grad", "grad_fn", "hooks", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operator

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        self.data = as_data(data, dtype)
        self.grad = None
        self.grad_fn = None
        self.hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def from_array(cls, arr, requires_grad: bool = False) -> Tensor:
        """Wrap ``arr``, an array of the backend, as it is: no copy, no dtype conversion, no checks.

        For code that made the array itself (ops, layers, optimizers) and knows it is valid; ``Tensor(data)`` is the
        checked constructor. ``requires_grad`` is set as given (only floating arrays may require gradients).
        """
        t = object.__new__(cls)
        t.data = arr
        t.grad = None
        t.requires_grad = requires_grad
        t.grad_fn = None
        t.hooks = None
        return t

    # -- properties ---------------------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def T(self) -> Tensor:
        """The tensor with its axes reversed (a differentiable transpose)."""
        return self.transpose()

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set ``requires_grad`` in place (leaves only); returns self."""
        if flag and self.data.dtype.kind != "f":
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}; "
                "convert first, e.g. tensor(x, dtype='float32')"
            )
        if not flag and self.grad_fn is not None:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach() instead")
        self.requires_grad = bool(flag)
        return self

    # -- conversion ---------------------------------------------------------------------------------------------
    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted, got shape {tuple(self.shape)}")
        return self.data.item()

    def numpy(self):
        """The underlying array (shared, not copied). Call ``.detach()`` first if you mean to change it."""
        return self.data

    def tolist(self):
        return self.data.tolist()

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's data, cut from the graph (``requires_grad=False``)."""
        return Tensor.from_array(self.data, False)

    def __array__(self, dtype=None, copy=None):
        return self.data if dtype is None else self.data.astype(dtype)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.data)

    # == is elementwise (ops.eq), so tensors hash by identity, as in PyTorch; object's own hash does that in C (a
    # dict keyed by tensors, like an optimizer's state, then looks them up without a Python call)
    __hash__ = object.__hash__

    def __repr__(self):
        body = B.xp.array2string(self.data, separator=", ", prefix="tensor(")
        extra = "" if self.data.dtype == B.DEFAULT_FLOAT else f", dtype={self.data.dtype}"
        if self.grad_fn is not None:
            extra += f", grad_fn={self.grad_fn.name}"
        elif self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    # -- autograd -----------------------------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Compute the gradient of this tensor with respect to every leaf that requires grad.

        Leaf gradients accumulate into ``.grad`` across calls (zero them between steps). ``grad`` is the gradient of
        some scalar with respect to this tensor; it may be omitted only for a one-element tensor. The graph is freed
        afterwards: a second ``backward()`` through it raises unless this call passed ``retain_graph=True``.
        """
        engine.backward(self, grad, retain_graph)

    def register_hook(self, hook):
        """Call ``hook(grad)`` with this tensor's gradient during backward; it may return a replacement gradient.

        Returns a handle whose ``remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook(): cannot register a hook on a tensor that does not require grad")
        if self.grad_fn is None:
            if self.hooks is None:
                self.hooks = []
            hooks = self.hooks
        else:
            if self.grad_fn.hooks is None:
                self.grad_fn.hooks = []
            hooks = self.grad_fn.hooks
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        if self.grad_fn is not None:
            self.grad_fn.retained = weakref.ref(self)

    def zero_grad_(self) -> None:
        self.grad = None

    # -- in-place assignment ------------------------------------------------------------------------------------
    def __setitem__(self, index, value):
        if self.requires_grad and is_grad_enabled():
            raise RuntimeError(
                "in-place assignment to a tensor that requires grad would corrupt its gradient; do it inside "
                "no_grad(), or build a new tensor with where()/concatenate()"
            )
        if isinstance(index, Tensor):
            index = index.data
        self.data[index] = value.data if isinstance(value, Tensor) else value


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self):
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


set_tensor_class(Tensor)
