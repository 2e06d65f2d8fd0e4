"""Differentiable ops by family; each op's forward and backward sit next to each other in its family's module.

Every public function here is also reachable as ``neuronkit.<name>`` and most as a ``Tensor`` method. The op tables
in ``registry`` list them all for the tests.
"""

from __future__ import annotations

from ..tensor import Tensor
from .activation import (
    elu,
    gelu,
    hard_sigmoid,
    hard_tanh,
    leaky_relu,
    mish,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    softplus,
    softsign,
    tanh,
)
from .attention import packed_attention, scaled_dot_product_attention
from .compare import argmax, argmin, eq, ge, gt, le, lt, ne
from .conv import avg_pool2d, conv1d, conv2d, max_pool2d
from .dropout import dropout
from .elementwise import abs, add, astype, clip, div, exp, log, maximum, minimum, mul, neg, pow, sqrt, sub, where
from .index import getitem
from .linalg import linear, matmul
from .nn import log_softmax, softmax, softmax_cross_entropy
from .norm import batch_norm, embedding, layer_norm
from .packing import SequenceLayout, pack_sequence, unpack_sequence
from .recurrent import gru, lstm, rnn
from .reduce import logsumexp, max, mean, min, std, sum, var
from .registry import DIFFERENTIABLE, NON_DIFFERENTIABLE
from .sequence import masked_max_pool, masked_mean_pool
from .shape import (
    broadcast_to,
    concatenate,
    flatten,
    pad,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    unsqueeze,
)

__all__ = sorted(set(DIFFERENTIABLE) | set(NON_DIFFERENTIABLE) | {"permute", "swapaxes"}) + [
    "DIFFERENTIABLE",
    "NON_DIFFERENTIABLE",
]


def _rev(fn):
    def reflected(self, other):
        return fn(other, self)

    return reflected


def install_methods(T) -> None:
    """Give ``Tensor`` its operators and methods, each a direct reference to the op function (no extra call)."""
    binary = {"add": add, "sub": sub, "mul": mul, "truediv": div, "pow": pow, "matmul": matmul}
    for name, fn in binary.items():
        setattr(T, f"__{name}__", fn)
        setattr(T, f"__r{name}__", _rev(fn))
    for name, fn in {"eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt, "ge": ge}.items():
        setattr(T, f"__{name}__", fn)
    T.__neg__ = neg
    T.__abs__ = abs
    T.__getitem__ = getitem
    methods = [
        exp,
        log,
        sqrt,
        abs,
        clip,
        maximum,
        minimum,
        astype,
        sum,
        mean,
        max,
        min,
        var,
        std,
        logsumexp,
        argmax,
        argmin,
        reshape,
        transpose,
        permute,
        swapaxes,
        broadcast_to,
        squeeze,
        unsqueeze,
        flatten,
        split,
        pad,
        relu,
        leaky_relu,
        elu,
        selu,
        gelu,
        silu,
        mish,
        sigmoid,
        tanh,
        softplus,
        softsign,
        hard_sigmoid,
        hard_tanh,
        relu6,
        softmax,
        log_softmax,
        matmul,
    ]
    for fn in methods:
        setattr(T, fn.__name__, fn)


install_methods(Tensor)
