"""Containers and shape/regularisation layers: Sequential, Flatten, Dropout."""

from __future__ import annotations

from collections import OrderedDict

from ... import ops
from ...creation import get_generator
from ...tensor import Tensor
from ..module import Module


class Sequential(Module):
    """Layers applied one after another: ``Sequential(Dense(784, 128, activation="relu"), Dense(128, 10))``.

    Children are named "0", "1", ... (or by the keys of an ``OrderedDict``); index, slice, iterate and ``append``.
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], OrderedDict):
            for name, layer in layers[0].items():
                self.add_module(name, layer)
        else:
            for i, layer in enumerate(layers):
                self.add_module(str(i), layer)

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x

    def append(self, layer: Module) -> Sequential:
        self.add_module(str(len(self._modules)), layer)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, i):
        layers = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*layers[i])
        return layers[i]


class Flatten(Module):
    """Merge axes ``start_axis..end_axis`` into one: (N, C, H, W) -> (N, C*H*W) with the defaults (1, -1)."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x):
        return ops.flatten(x, self.start_axis, self.end_axis)

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


class Dropout(Module):
    """In training, zero each value with probability ``p`` and scale the rest by 1 / (1 - p); in eval, identity.

    ``generator`` (seed or numpy Generator; default: neuronkit's default generator) draws the masks, so a seeded run
    repeats exactly.
    """

    def __init__(self, p: float = 0.5, generator=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self._rng = get_generator(generator) if generator is not None else None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        rng = self._rng if self._rng is not None else get_generator(None)
        keep = rng.random(x.shape, dtype=x.dtype if x.dtype.kind == "f" and x.dtype.itemsize >= 4 else None)
        mask = (keep >= self.p).astype(x.dtype) / x.dtype.type(1.0 - self.p)
        return ops.mul(x, Tensor._from_array(mask, False))

    def extra_repr(self) -> str:
        return f"p={self.p}"
