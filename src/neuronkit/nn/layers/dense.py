"""``Dense``: a layer of neurons, each computing ``activation(w . x + b)``; ``Linear``: the same, no activation."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ... import backend as B
from ... import ops
from ...creation import get_generator
from ...tensor import Tensor
from .. import init as I
from ..activations import ACTIVATIONS, Identity, get_activation
from ..module import Module
from ..parameter import Parameter
from ..registry import layer_spec, register_layer

if TYPE_CHECKING:
    from collections.abc import Callable


@register_layer
class Dense(Module):
    """A fully connected layer: ``y = activation(x @ W.T + b)``.

    Args:
        in_features: size of each input vector.
        out_features: number of neurons (size of each output vector).
        bias: learn a bias per neuron (default True).
        activation: None (linear), a registered name such as ``"relu"``, or an activation module.
        init: weight initialiser name or function; defaults to PyTorch's ``nn.Linear`` rule, U(-1/sqrt(in),
            1/sqrt(in)) (Kaiming uniform with a = sqrt(5)); the bias always draws from that same range.
        generator: seed or ``numpy.random.Generator`` for the initial weights.
        dtype: parameter dtype (default float32).

    Shape: input (..., in_features) -> output (..., out_features). ``weight`` is (out_features, in_features): row i
    holds neuron i's weights, so ``layer.neuron(i)`` is a view of row i and ``bias[i]``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str | Module | None = None,
        init: str | Callable | None = None,
        generator=None,
        dtype: str | None = None,
    ):
        super().__init__()
        for what, v in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{type(self).__name__}: {what} must be a positive int, got {v!r}")
        self.in_features, self.out_features = in_features, out_features
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        self.weight = Parameter(B.xp.empty((out_features, in_features), dtype=dt))
        self.bias = Parameter(B.xp.empty(out_features, dtype=dt)) if bias else None
        self.activation = get_activation(activation)
        self.init = init
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        """Draw fresh initial weights (see the class docstring for the default rule)."""
        # One stream for weight and bias: passing an int seed to both would restart it, and the bias would repeat
        # the first weight draws (both ranges are 1/sqrt(in) by default).
        rng = get_generator(generator)
        if self.init is None:
            I.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=rng)
        else:
            I.get_initializer(self.init)(self.weight, generator=rng)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features)
            I.uniform_(self.bias, -bound, bound, generator=rng)

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        shape = x.data.shape
        if not shape or shape[-1] != self.in_features:
            raise ValueError(
                f"{type(self).__name__}({self.in_features} -> {self.out_features}) got input of shape "
                f"{tuple(x.shape)}: expected last axis {self.in_features}"
            )
        # Parameters and the activation read from their tables directly: ``self.weight`` would first miss the
        # instance dict and fall back to Module.__getattr__ (a few microseconds per layer and step).
        params, mods = self._parameters, self._modules
        w = params["weight"] if "weight" in params else self.weight
        b = params["bias"] if "bias" in params else self.bias
        act = mods["activation"] if "activation" in mods else self.activation
        z = ops.linear(x, w, b)
        return z if isinstance(act, Identity) else act(z)

    def get_config(self) -> dict:
        """Constructor arguments as JSON: sizes, bias, activation (a name, or a spec when it has non-default options),
        the initialiser's name and the dtype name. The generator is not saved (weights are saved instead)."""
        return {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "activation": _activation_config(self.activation),
            "init": _init_config(type(self).__name__, self.init),
            "dtype": self.weight.data.dtype.name,
        }

    def neuron(self, index: int):
        """A live view of neuron ``index``: its weights, bias, activation and gradients (see ``nn.Neuron``)."""
        from ..neuron import Neuron

        return Neuron(self, index)

    def extra_repr(self) -> str:
        act = "" if isinstance(self.activation, Identity) else f", activation={self.activation.name!r}"
        return f"{self.in_features} -> {self.out_features}{', bias=False' if self.bias is None else ''}{act}"

    def __repr__(self):  # the activation is part of the layer's one line, not a child block
        return f"{type(self).__name__}({self.extra_repr()})"


@register_layer
class Linear(Dense):
    """``Dense`` without an activation: ``y = x @ W.T + b`` (PyTorch's ``nn.Linear``)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        init: str | Callable | None = None,
        generator=None,
        dtype: str | None = None,
    ):
        super().__init__(in_features, out_features, bias=bias, init=init, generator=generator, dtype=dtype)

    def get_config(self) -> dict:
        config = super().get_config()
        del config["activation"]
        return config


def _activation_config(act: Module):
    """None for identity, the registered name for a default-option activation, else its full layer spec."""
    if isinstance(act, Identity):
        return None
    cls = type(act)
    if ACTIVATIONS.get(getattr(cls, "name", None)) is cls and act.get_config() == cls.defaults:
        return cls.name
    return layer_spec(act)


def _init_config(owner: str, init):
    """The initialiser's registered name (None for the default rule); a custom function cannot be saved."""
    if init is None or isinstance(init, str):
        return init
    for key, fn in I.INITIALIZERS.items():
        if fn is init:
            return key
    raise NotImplementedError(
        f"{owner}: init={init!r} is not a registered initialiser, so the architecture cannot be saved; pass an "
        f"initialiser name (one of {sorted(I.INITIALIZERS)}), or save only the weights with save_weights"
    )
