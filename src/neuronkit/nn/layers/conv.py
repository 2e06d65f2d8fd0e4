"""Convolution and pooling layers: Conv1d, Conv2d (each output channel is a filter: a neuron that slides over the
input), MaxPool2d, AvgPool2d, GlobalAvgPool2d."""

from __future__ import annotations

from ... import backend as B
from ... import ops
from ...tensor import Tensor
from .. import init as I
from ..activations import Identity, ReLU, get_activation
from ..module import Module
from ..parameter import Parameter
from ..registry import register_layer


def _tuple(v, n):
    return (v,) * n if isinstance(v, int) else tuple(v)


class ConvNd(Module):
    """The base of ``Conv1d`` and ``Conv2d``: ``ndim`` spatial axes, filters ``weight`` (C_out, C_in / groups,
    *kernel_size) and ``bias`` (C_out,), ``filter(i)``. ``isinstance(m, ConvNd)`` tells a convolution layer."""

    ndim = 2

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride,
        padding,
        dilation,
        groups,
        bias,
        generator,
        dtype,
        init=None,
        bias_init=None,
    ):
        super().__init__()
        name = type(self).__name__
        for what, v in (("in_channels", in_channels), ("out_channels", out_channels), ("groups", groups)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name}: {what} must be a positive int, got {v!r}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: groups={groups} must divide in_channels={in_channels} and out_channels={out_channels}"
            )
        k = _tuple(kernel_size, self.ndim)
        if len(k) != self.ndim or any(not isinstance(i, int) or i <= 0 for i in k):
            raise ValueError(f"{name}: kernel_size must be a positive int or {self.ndim} of them, got {kernel_size!r}")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, k
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        self.weight = Parameter(B.xp.empty((out_channels, in_channels // groups) + k, dtype=dt))
        self.bias = Parameter(B.xp.empty(out_channels, dtype=dt)) if bias else None
        I.resolve_init(init)  # a bad spec fails here, naming what was expected
        I.resolve_init(bias_init, bias=True)
        self.init, self.bias_init = init, bias_init
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        """``init`` and ``bias_init`` as in ``Dense``; by default PyTorch's rule: weights U(-1/sqrt(fan_in),
        1/sqrt(fan_in)) (Kaiming uniform, a = sqrt(5)) with fan_in = in_channels / groups * prod(kernel_size); the
        bias from the same range."""
        I.init_layer_(self.weight, self.bias, self.init, self.bias_init, generator)

    def _check(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if x.ndim != self.ndim + 2 or x.shape[1] != self.in_channels:
            axes = "(N, C, L)" if self.ndim == 1 else "(N, C, H, W)"
            raise ValueError(
                f"{type(self).__name__}({self.in_channels} -> {self.out_channels}) got input of shape "
                f"{tuple(x.shape)}: expected {axes} with C = {self.in_channels}"
            )
        return x

    def filter(self, index: int):
        """A view of output channel ``index``: its filter weights (C_in / groups, *kernel) and bias, writable."""
        if not -self.out_channels <= index < self.out_channels:
            raise IndexError(f"filter index {index} is out of range for {self.out_channels} output channels")
        return Filter(self, index % self.out_channels)

    def get_config(self) -> dict:
        config = {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": list(self.kernel_size),
            "stride": self.stride if isinstance(self.stride, int) else list(self.stride),
            "padding": self.padding if isinstance(self.padding, int) else list(self.padding),
            "dilation": self.dilation if isinstance(self.dilation, int) else list(self.dilation),
            "groups": self.groups,
            "bias": self.bias is not None,
            "dtype": self.weight.data.dtype.name,
        }
        for key in ("init", "bias_init"):  # only when set: configs of default-initialised layers stay as they were
            if getattr(self, key) is not None:
                config[key] = I.init_spec(getattr(self, key))
        return config

    def extra_repr(self) -> str:
        extra = "".join(
            f", {k}={getattr(self, k)}"
            for k, d in (("stride", 1), ("padding", 0), ("dilation", 1), ("groups", 1))
            if getattr(self, k) != d
        )
        k = "x".join(map(str, self.kernel_size))
        nobias = "" if self.bias is not None else ", bias=False"
        return f"{self.in_channels} -> {self.out_channels}, kernel {k}{extra}{nobias}"


class Filter:
    """One output channel of a convolution: the convolutional counterpart of a dense layer's ``Neuron``."""

    def __init__(self, layer, index):
        self.layer, self.index = layer, index

    @property
    def weights(self):
        """This filter's weights (C_in / groups, *kernel): a writable view into the layer's weight."""
        return self.layer.weight.data[self.index]

    @property
    def bias(self) -> float:
        return 0.0 if self.layer.bias is None else float(self.layer.bias.data[self.index])

    @bias.setter
    def bias(self, value) -> None:
        if self.layer.bias is None:
            raise AttributeError("this layer was built with bias=False: its filters have no bias to set")
        self.layer.bias.data[self.index] = value

    @property
    def weight_grad(self):
        g = self.layer.weight.grad
        return None if g is None else g.data[self.index]

    def __repr__(self):
        return f"Filter({self.index} of {type(self.layer).__name__}({self.layer.extra_repr()}))"


@register_layer
class Conv2d(ConvNd):
    """2-D convolution layer: ``y[n, o] = bias[o] + sum_c (weight[o, c] * x[n, c])`` (cross-correlation).

    Shape: (N, C_in, H, W) -> (N, C_out, OH, OW), ``OH = (H + 2 padding - dilation (K - 1) - 1) // stride + 1``.
    ``weight`` is (C_out, C_in / groups, KH, KW); ``layer.filter(o)`` views one output channel. Defaults: stride 1,
    padding 0, dilation 1, groups 1, bias True, PyTorch's initialisation (``init``, ``bias_init``: as in ``Dense``).

    Fused options: ``activation="relu"`` (or an ``nn.ReLU()``) applies ReLU to the output and ``max_pool=k`` then
    max-pools it (k x k windows, stride k), the same function and gradients as ``Conv2d`` -> ``ReLU`` ->
    ``MaxPool2d(k)`` in one op that makes fewer passes over memory (``ops.conv2d``). The filters' outputs are then the
    pooled activations. As in ``Dense``, ``activation`` is a module (``Identity`` for none, ``ReLU``); while hooks are
    registered on it the layer runs the three steps apart, so that its hooks see its input and output.
    """

    ndim = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | list,
        stride: int | list = 1,
        padding: int | list = 0,
        dilation: int | list = 1,
        groups: int = 1,
        bias: bool = True,
        generator=None,
        dtype: str | None = None,
        activation: str | Module | None = None,
        max_pool: int | None = None,
        init=None,
        bias_init=None,
    ):
        ok = (
            activation is None
            or isinstance(activation, Module)
            or (isinstance(activation, str) and activation == "relu")
        )
        act = get_activation(activation) if ok else None
        if type(act) not in (Identity, ReLU):
            raise ValueError(
                f"Conv2d: activation must be None or 'relu' (fused into the convolution), got "
                f"{activation!r}; for another activation put its layer after the convolution"
            )
        if max_pool is not None and (isinstance(max_pool, bool) or not isinstance(max_pool, int) or max_pool < 1):
            raise ValueError(f"Conv2d: max_pool must be None or a positive int, got {max_pool!r}")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            generator,
            dtype,
            init,
            bias_init,
        )
        self.activation, self.max_pool = act, max_pool

    def forward(self, x):
        x = self._check(x)
        act = self.activation
        relu = type(act) is ReLU
        if relu and act.has_hooks():  # watched: convolution, then the activation module itself, then the pooling
            z = act(ops.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups))
            return z if self.max_pool is None else ops.max_pool2d(z, self.max_pool)
        return ops.conv2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            activation="relu" if relu else None,
            max_pool=self.max_pool,
        )

    def get_config(self) -> dict:
        config = super().get_config()
        if type(self.activation) is ReLU:  # only when set: configs of plain convolutions stay as they were
            config["activation"] = "relu"
        if self.max_pool is not None:
            config["max_pool"] = self.max_pool
        return config

    def extra_repr(self) -> str:
        fused = ", activation='relu'" if type(self.activation) is ReLU else ""
        fused += f", max_pool={self.max_pool!r}" if self.max_pool else ""
        return super().extra_repr() + fused

    def __repr__(self):  # the activation is part of the layer's one line, not a child block
        return f"{type(self).__name__}({self.extra_repr()})"


@register_layer
class Conv1d(ConvNd):
    """1-D convolution layer over sequences: (N, C_in, L) -> (N, C_out, L_out); ``weight`` (C_out, C_in/groups, K)."""

    ndim = 1

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | list,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        generator=None,
        dtype: str | None = None,
        init=None,
        bias_init=None,
    ):
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation,
            groups,
            bias,
            generator,
            dtype,
            init,
            bias_init,
        )

    def forward(self, x):
        return ops.conv1d(self._check(x), self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _Pool(Module):
    fn = None

    def __init__(self, kernel_size: int | list, stride: int | list | None = None, padding: int | list = 0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return type(self).fn(x, self.kernel_size, self.stride, self.padding)

    def get_config(self) -> dict:
        as_json = lambda v: list(v) if isinstance(v, tuple) else v
        return {
            "kernel_size": as_json(self.kernel_size),
            "stride": as_json(self.stride),
            "padding": as_json(self.padding),
        }

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


@register_layer
class MaxPool2d(_Pool):
    """Largest value of each window: (N, C, H, W) -> (N, C, OH, OW); stride defaults to the kernel size."""

    fn = staticmethod(ops.max_pool2d)


@register_layer
class AvgPool2d(_Pool):
    """Mean of each window (zero padding counts); stride defaults to the kernel size."""

    fn = staticmethod(ops.avg_pool2d)


@register_layer
class GlobalAvgPool2d(Module):
    """Mean over the whole feature map: (N, C, H, W) -> (N, C)."""

    def forward(self, x):
        return ops.mean(x, axis=(2, 3))

    def get_config(self) -> dict:
        return {}
