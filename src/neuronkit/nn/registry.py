"""The layer registry: the one table through which a saved architecture is rebuilt.

``LAYERS`` maps a class name (``"Dense"``, ``"ReLU"``, ...) to the layer class. ``neuronkit.io.load`` looks every
class name of an ``architecture.json`` up in this dict and nowhere else, so a file can never make neuronkit import or
call a name it contains (DESIGN.md, principle 9). A layer file registers its classes with the decorator::

    from ..registry import register_layer

    @register_layer
    class Conv2d(Module):
        def get_config(self) -> dict:  # the constructor's keyword arguments, as JSON values
            return {"in_channels": self.in_channels, ...}

Rules for a registered layer: ``cls(**get_config())`` rebuilds it with the same parameter shapes and dtypes; the config
holds only JSON values (int, float, str, bool, None, lists, dicts) or, for a constructor argument annotated
``Module``, a nested spec from ``layer_spec``; and the constructor's annotations say each argument's type (the loader
checks the file's values against them). A constructor whose allocation is not bounded by the product of its integer
arguments may define a classmethod ``config_cost(config) -> int`` (number of array elements it allocates).
"""

from __future__ import annotations

from .module import Module

LAYERS: dict[str, type] = {}
"""Registered layer classes by name. Read it; add to it only through ``register_layer``."""


def register_layer(cls=None, *, name: str | None = None):
    """Class decorator: add ``cls`` to ``LAYERS`` under ``name`` (default: the class name); returns ``cls``.

    Usable as ``@register_layer`` or ``@register_layer(name="MyDense")``. Registering a different class under a name
    already taken raises ``ValueError`` (two layers must never share a saved name).
    """

    def deco(c):
        key = c.__name__ if name is None else name
        if not isinstance(c, type) or not issubclass(c, Module):
            raise TypeError(f"register_layer: expected a Module subclass, got {c!r}")
        if not isinstance(key, str) or not key.isidentifier():
            raise ValueError(f"register_layer: the name must be a Python identifier, got {key!r}")
        old = LAYERS.get(key)
        if old is not None and old is not c:
            raise ValueError(f"register_layer: {key!r} is already registered for {old.__module__}.{old.__qualname__}")
        LAYERS[key] = c
        return c

    return deco if cls is None else deco(cls)


def registered_name(module) -> str:
    """The name under which ``type(module)`` is registered; ``NotImplementedError`` if it is not (exact class)."""
    cls = type(module)
    for key, c in LAYERS.items():
        if c is cls:
            return key
    raise NotImplementedError(
        f"{cls.__name__} cannot be saved by architecture: it is not in the layer registry (decorate the class with "
        f"@register_layer from neuronkit.nn.registry), or save only its weights with save_weights"
    )


def layer_spec(module) -> dict:
    """``{"class": registered name, "config": module.get_config()}``: the architecture of one layer, JSON-ready."""
    config = module.get_config()
    name = registered_name(module)
    if not isinstance(config, dict):
        raise TypeError(f"{type(module).__name__}.get_config() must return a dict, got {type(config).__name__}")
    return {"class": name, "config": config}
