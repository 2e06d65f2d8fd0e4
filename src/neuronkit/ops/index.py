"""Indexing: ``x[index]`` with ints, slices, None, Ellipsis, integer arrays and boolean masks.

Backward writes the gradient back into a zero tensor of the input's shape. Basic indexing (ints, slices) selects each
element at most once, so a plain assignment suffices; advanced indexing may select an element several times, so the
gradient is scatter-added (repeated indices accumulate).
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor
from .registry import register


def _is_basic(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


def _convert(index):
    """Tensors inside an index become arrays; lists become arrays (NumPy reads a list as advanced indexing)."""
    if isinstance(index, tuple):
        return tuple(_convert(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return B.asarray(index)
    return index


class GetItem(Function):
    name = "getitem"

    def forward(self, x, index, basic):
        self.shape_in, self.dtype_in, self.index, self.basic = x.shape, x.dtype, index, basic
        return x[index]

    def backward(self, g):
        gx = B.xp.zeros(self.shape_in, dtype=self.dtype_in)
        if self.basic:
            gx[self.index] = g
        else:
            B.add_at(gx, self.index, g)
        return (gx,)


@register("getitem")
def getitem(x, index) -> Tensor:
    """``x[index]``: a differentiable selection (see the module docstring)."""
    x = as_tensor(x)
    index = _convert(index)
    for i in index if isinstance(index, tuple) else (index,):
        if isinstance(i, B.ndarray) and i.dtype.kind not in "biu":
            raise IndexError(f"getitem: index arrays must be integer or boolean, got dtype {i.dtype}")
    try:
        return GetItem.apply(x, index=index, basic=_is_basic(index))
    except IndexError as e:
        raise IndexError(f"getitem: index {index!r} is invalid for a tensor of shape {tuple(x.shape)}: {e}") from None
