"""Activation modules, one per activation function of the engine, and the name registry that maps strings to them.

``get_activation("relu")`` returns a new ``ReLU()``; the same table rebuilds saved models, so loading never imports a
name taken from a file. Each module's ``fn`` is the functional op it applies elementwise.
"""

from __future__ import annotations

from .. import ops
from .module import Module
from .registry import register_layer


class Activation(Module):
    """Applies ``fn`` (a function of one tensor, plus the keyword options in ``kwargs``)."""

    fn = None
    name = "activation"
    defaults: dict = {}
    """The keyword options this activation takes and their default values (the types a saved config must have)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x):
        return type(self).fn(x, **self.kwargs)

    def get_config(self) -> dict:
        """The keyword options (``{"negative_slope": 0.01}`` for ``LeakyReLU``); ``{}`` for those without any."""
        return dict(self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())


def _make(cls_name: str, name: str, fn, doc: str, **defaults):
    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(defaults)
        if unknown:
            raise TypeError(f"{cls_name}: unexpected options {sorted(unknown)}; it takes {sorted(defaults)}")
        Activation.__init__(self, **{**defaults, **kwargs})

    attrs = {"__init__": __init__, "fn": staticmethod(fn), "name": name, "__doc__": doc, "defaults": dict(defaults)}
    if not defaults:  # no options: apply fn to the input alone (no empty keyword dict to unpack on every call)

        def forward(self, x):
            return fn(x)

        attrs["forward"] = forward
    cls = type(cls_name, (Activation,), attrs)
    cls.__module__ = __name__
    return register_layer(cls)


ReLU = _make("ReLU", "relu", ops.relu, "max(x, 0).")
LeakyReLU = _make("LeakyReLU", "leaky_relu", ops.leaky_relu, "x if x > 0 else slope * x.", negative_slope=0.01)
ELU = _make("ELU", "elu", ops.elu, "x if x > 0 else alpha * (exp(x) - 1).", alpha=1.0)
SELU = _make("SELU", "selu", ops.selu, "Self-normalising scaled ELU.")
GELU = _make("GELU", "gelu", ops.gelu, "x * Phi(x); approximate='tanh' for the tanh formula.", approximate="none")
SiLU = _make("SiLU", "silu", ops.silu, "x * sigmoid(x) (swish).")
Mish = _make("Mish", "mish", ops.mish, "x * tanh(softplus(x)).")
Sigmoid = _make("Sigmoid", "sigmoid", ops.sigmoid, "1 / (1 + exp(-x)), in (0, 1).")
Tanh = _make("Tanh", "tanh", ops.tanh, "Hyperbolic tangent, in (-1, 1).")
Softplus = _make("Softplus", "softplus", ops.softplus, "log(1 + exp(beta x)) / beta.", beta=1.0, threshold=20.0)
Softsign = _make("Softsign", "softsign", ops.softsign, "x / (1 + |x|).")
HardSigmoid = _make("HardSigmoid", "hard_sigmoid", ops.hard_sigmoid, "clip(x / 6 + 1/2, 0, 1).")
HardTanh = _make("HardTanh", "hard_tanh", ops.hard_tanh, "clip(x, min_val, max_val).", min_val=-1.0, max_val=1.0)
ReLU6 = _make("ReLU6", "relu6", ops.relu6, "min(max(x, 0), 6).")
Softmax = _make("Softmax", "softmax", ops.softmax, "exp(x) / sum(exp(x)) along axis.", axis=-1)
LogSoftmax = _make("LogSoftmax", "log_softmax", ops.log_softmax, "x - logsumexp(x) along axis.", axis=-1)


def _identity(x):
    return x


Identity = _make("Identity", "linear", _identity, "Returns its input: the 'no activation' of a linear neuron.")

ACTIVATIONS = {
    c.name: c
    for c in (
        ReLU,
        LeakyReLU,
        ELU,
        SELU,
        GELU,
        SiLU,
        Mish,
        Sigmoid,
        Tanh,
        Softplus,
        Softsign,
        HardSigmoid,
        HardTanh,
        ReLU6,
        Softmax,
        LogSoftmax,
        Identity,
    )
}
ACTIVATIONS["swish"] = SiLU
ACTIVATIONS["identity"] = Identity


def get_activation(spec) -> Module:
    """A new activation module for ``spec``: a registered name (``"relu"``, ``"tanh"``, ...), None or ``"linear"``
    (identity), or a Module (returned as is)."""
    if spec is None:
        return Identity()
    if isinstance(spec, Module):
        return spec
    if isinstance(spec, str) and spec in ACTIVATIONS:
        return ACTIVATIONS[spec]()
    raise ValueError(f"unknown activation {spec!r}; known: {sorted(ACTIVATIONS)}")
