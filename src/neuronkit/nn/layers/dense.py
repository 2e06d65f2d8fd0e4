"""``Dense``: a layer of neurons, each computing ``activation(w . x + b)``; ``Linear``: the same, no activation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ... import backend as B
from ... import ops
from ...ops.linalg import FUSED_ACTIVATIONS
from ...tensor import Tensor
from .. import init as I
from ..activations import ACTIVATIONS, Identity, get_activation
from ..module import Module
from ..parameter import Parameter
from ..registry import layer_spec, register_layer

if TYPE_CHECKING:
    from collections.abc import Callable


_FUSED = {ACTIVATIONS[name]: name for name in FUSED_ACTIVATIONS}
"""Activation modules (exactly these classes) whose ``Dense`` runs ``ops.linear(..., activation=name)``: one op."""


@register_layer
class Dense(Module):
    """A fully connected layer: ``y = activation(x @ W.T + b)``.

    Args:
        in_features: size of each input vector.
        out_features: number of neurons (size of each output vector).
        bias: learn a bias per neuron (default True).
        activation: None (linear), a registered name such as ``"relu"``, or an activation module.
        init: weight initialiser: a registered name (``"he_uniform"``), a spec with its parameter
            (``"uniform:0.05"`` for U(-0.05, 0.05), ``"normal:0.01"``, ``"xavier_uniform:2"``: see ``nn.init.Init``),
            an ``Init`` or a function ``f(tensor, generator=None)``; default None, PyTorch's ``nn.Linear`` rule
            U(-1/sqrt(in), 1/sqrt(in)) (Kaiming uniform with a = sqrt(5); the spec ``"default"``).
        bias_init: the bias's initialiser: ``"zeros"``, ``"constant:0.1"``, ``"uniform:0.05"``, ``"normal:0.01"``,
            ``"default:G"``...; default None, U(-1/sqrt(in), 1/sqrt(in)) whatever ``init`` is.
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
        bias_init: str | Callable | None = None,
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
        I.resolve_init(init)  # a bad spec fails here, naming what was expected
        I.resolve_init(bias_init, bias=True)
        self.init, self.bias_init = init, bias_init
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        """Draw fresh initial weights (see the class docstring for the default rule)."""
        I.init_layer_(self.weight, self.bias, self.init, self.bias_init, generator)

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
        fused = _FUSED.get(type(act))
        if fused is not None and not act.has_hooks():  # one op (same values); a hooked activation must see its input
            return ops.linear(x, w, b, activation=fused)
        z = ops.linear(x, w, b)
        return z if isinstance(act, Identity) else act(z)

    def get_config(self) -> dict:
        """Constructor arguments as JSON: sizes, bias, activation (a name, or a spec when it has non-default options),
        the initialiser's spec (and ``bias_init``'s when set) and the dtype name. The generator is not saved (weights
        are saved instead)."""
        config = {
            "in_features": self.in_features,
            "out_features": self.out_features,
            "bias": self.bias is not None,
            "activation": _activation_config(self.activation),
            "init": I.init_spec(self.init),
            "dtype": self.weight.data.dtype.name,
        }
        if self.bias_init is not None:  # only when set: configs of default-initialised layers stay as they were
            config["bias_init"] = I.init_spec(self.bias_init)
        return config

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
        bias_init: str | Callable | None = None,
    ):
        super().__init__(
            in_features, out_features, bias=bias, init=init, generator=generator, dtype=dtype, bias_init=bias_init
        )

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
