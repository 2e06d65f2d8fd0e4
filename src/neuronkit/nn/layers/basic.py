"""Containers and shape/regularisation layers: Sequential, Flatten, Dropout."""

from __future__ import annotations

from collections import OrderedDict

from ... import ops
from ...creation import get_generator
from ..module import Module
from ..registry import layer_spec, register_layer


@register_layer
class Sequential(Module):
    """Layers applied one after another: ``Sequential(Dense(784, 128, activation="relu"), Dense(128, 10))``.

    Children are named "0", "1", ... (or by the keys of an ``OrderedDict``, or by ``names=[...]``, one per layer);
    index, slice, iterate and ``append``.
    """

    def __init__(self, *layers: Module, names: list[str] | None = None):
        super().__init__()
        if names is not None:
            if len(names) != len(layers):
                raise ValueError(f"Sequential: {len(names)} names for {len(layers)} layers")
            for name, layer in zip(names, layers):
                if not isinstance(name, str) or not name or "." in name or name in self._modules or hasattr(self, name):
                    raise ValueError(f"Sequential: bad or repeated layer name {name!r}")
                self.add_module(name, layer)
        elif len(layers) == 1 and isinstance(layers[0], OrderedDict):
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

    def get_config(self) -> dict:
        """``{"layers": [spec, ...]}``, each child's ``{"class", "config"}`` in order, plus ``"names"`` when the
        children are not named "0", "1", ..."""
        config = {"layers": [layer_spec(m) for m in self._modules.values()]}
        names = list(self._modules)
        if names != [str(i) for i in range(len(names))]:
            config["names"] = names
        return config


@register_layer
class Flatten(Module):
    """Merge axes ``start_axis..end_axis`` into one: (N, C, H, W) -> (N, C*H*W) with the defaults (1, -1)."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1):
        super().__init__()
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x):
        return ops.flatten(x, self.start_axis, self.end_axis)

    def get_config(self) -> dict:
        return {"start_axis": self.start_axis, "end_axis": self.end_axis}

    def extra_repr(self) -> str:
        return f"start_axis={self.start_axis}, end_axis={self.end_axis}"


@register_layer
class Dropout(Module):
    """In training, zero each value with probability ``p`` and scale the rest by 1 / (1 - p); in eval, identity.

    The fused op ``neuronkit.dropout`` (one mask draw, one multiply each way).

    ``generator`` (seed or numpy Generator; default: neuronkit's default generator) draws the masks, so a seeded run
    repeats exactly. The layer's own generator is the attribute ``generator`` (None when it uses the default one): a
    checkpoint saves and restores its state.
    """

    def __init__(self, p: float = 0.5, generator=None):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.generator = get_generator(generator) if generator is not None else None

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        return ops.dropout(x, self.p, generator=self.generator if self.generator is not None else get_generator(None))

    def get_config(self) -> dict:
        """``{"p": p}``; the generator is not saved (a loaded Dropout draws from the default generator)."""
        return {"p": self.p}

    def extra_repr(self) -> str:
        return f"p={self.p}"
