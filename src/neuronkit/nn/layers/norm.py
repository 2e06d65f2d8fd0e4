"""Normalisation layers: BatchNorm1d, BatchNorm2d (per channel, over the batch) and LayerNorm (per sample)."""

from __future__ import annotations

import math

from ... import backend as B
from ... import ops
from ...tensor import Tensor
from ..module import Module
from ..parameter import Parameter
from ..registry import register_layer


class _BatchNorm(Module):
    """Shared code of the batch-norm layers; subclasses set ``_ndims`` (accepted input ranks) and ``_layout``."""

    _ndims: tuple = ()
    _layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: str | None = None,
    ):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, int) or num_features <= 0:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be positive, got {eps!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{name}: momentum must be in [0, 1] or None (cumulative average), got {momentum!r}")
        self.num_features, self.eps, self.momentum = num_features, float(eps), momentum
        self.affine, self.track_running_stats = bool(affine), bool(track_running_stats)
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        if self.affine:
            self.weight = Parameter(B.xp.ones(num_features, dtype=dt))
            self.bias = Parameter(B.xp.zeros(num_features, dtype=dt))
        else:
            self.weight = self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", Tensor(B.xp.zeros(num_features, dtype=dt)))
            self.register_buffer("running_var", Tensor(B.xp.ones(num_features, dtype=dt)))
            self.register_buffer("num_batches_tracked", Tensor(B.xp.zeros((), dtype=B.xp.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, batch count 0."""
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self) -> None:
        """Reset the running statistics, and the scale to 1 and the shift to 0."""
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1
            self.bias.data[...] = 0

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        name = f"{type(self).__name__}({self.num_features})"
        if x.ndim not in self._ndims:
            raise ValueError(f"{name} got input of shape {tuple(x.shape)}: expected {self._layout}")
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"{name} got input of shape {tuple(x.shape)}: expected {self.num_features} channels on axis 1"
            )
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            if x.size // x.shape[1] <= 1 and not ops.norm.batch_stats_synchronised():  # else: the global count
                raise ValueError(
                    f"{name} got input of shape {tuple(x.shape)}: training needs more than 1 value per channel "
                    "(use a bigger batch, or eval())"
                )
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average: every batch counts equally
                momentum = 1.0 / float(self.num_batches_tracked.data)
        # Batch statistics in training, and always when no running statistics are kept (as in PyTorch).
        use_batch = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return ops.batch_norm(
            x,
            self.weight,
            self.bias,
            self.running_mean if track else None,
            self.running_var if track else None,
            training=use_batch,
            momentum=momentum,
            eps=self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )

    def get_config(self) -> dict:
        return {
            "num_features": self.num_features,
            "eps": self.eps,
            "momentum": self.momentum,
            "affine": self.affine,
            "track_running_stats": self.track_running_stats,
            "dtype": _dtype_name(self),
        }


def _dtype_name(layer) -> str:
    arrays = [t for t in (*layer.parameters(recurse=False), *layer.buffers(recurse=False)) if t.dtype.kind == "f"]
    return arrays[0].dtype.name if arrays else B.DEFAULT_FLOAT.name


@register_layer
class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) input, per channel (Ioffe & Szegedy 2015).

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``. In training ``mean`` and ``var`` (biased) are the batch's,
    over N (and L), and the running statistics move towards them: ``r = (1 - momentum) r + momentum * batch``
    (the running variance takes the unbiased batch variance), or with ``momentum=None`` the cumulative average of
    all batches so far. In evaluation (``eval()``) the running statistics are used instead.

    Args:
        num_features: C, the number of channels.
        eps: added to the variance (default 1e-5).
        momentum: weight of each new batch in the running statistics (default 0.1); None for a cumulative average.
        affine: learn ``weight`` (init 1) and ``bias`` (init 0), each (C,) (default True).
        track_running_stats: keep buffers ``running_mean`` (C,) init 0, ``running_var`` (C,) init 1 and
            ``num_batches_tracked`` (int64 count); False: always normalise with batch statistics (default True).
        dtype: parameter and buffer dtype (default float32).

    Shape: (N, C) -> (N, C) or (N, C, L) -> (N, C, L).
    """

    _ndims = (2, 3)
    _layout = "2-D (N, C) or 3-D (N, C, L) input"


@register_layer
class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel over N, H and W; otherwise as ``BatchNorm1d``.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``. Defaults: eps 1e-5, momentum 0.1 (None: cumulative
    average), affine True, track_running_stats True. Shape: (N, C, H, W) -> (N, C, H, W).
    """

    _ndims = (4,)
    _layout = "4-D input (N, C, H, W)"


@register_layer
class LayerNorm(Module):
    """Layer normalisation (Ba et al. 2016): each sample normalised over its trailing ``normalized_shape`` dims.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias``, with ``mean`` and the biased ``var`` of each sample over
    the last ``len(normalized_shape)`` axes. The same in training and evaluation (no running statistics).

    Args:
        normalized_shape: int or tuple: the trailing shape, e.g. ``512`` or ``(C, H, W)``.
        eps: added to the variance (default 1e-5).
        elementwise_affine: learn ``weight`` (init 1) and ``bias`` (init 0) of shape ``normalized_shape``
            (default True).
        bias: learn the bias as well (default True; ignored without ``elementwise_affine``).
        dtype: parameter dtype (default float32).

    Shape: (..., *normalized_shape) -> the same shape.
    """

    def __init__(
        self,
        normalized_shape: int | list,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        dtype: str | None = None,
    ):
        super().__init__()
        ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if not ns or any(isinstance(n, bool) or not isinstance(n, int) or n <= 0 for n in ns):
            raise ValueError(
                f"LayerNorm: normalized_shape must be a positive int or tuple of them, got {normalized_shape!r}"
            )
        if not eps > 0:
            raise ValueError(f"LayerNorm: eps must be positive, got {eps!r}")
        self.normalized_shape, self.eps, self.elementwise_affine = ns, float(eps), bool(elementwise_affine)
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        self.weight = Parameter(B.xp.ones(ns, dtype=dt)) if self.elementwise_affine else None
        self.bias = Parameter(B.xp.zeros(ns, dtype=dt)) if self.elementwise_affine and bias else None

    def reset_parameters(self) -> None:
        """Scale 1, shift 0."""
        if self.weight is not None:
            self.weight.data[...] = 1
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, x):
        if not isinstance(x, Tensor):
            x = Tensor(x)
        ns, k = self.normalized_shape, len(self.normalized_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != ns:
            raise ValueError(
                f"{self!r} got input of shape {tuple(x.shape)}: expected the last {k} ax{'is' if k == 1 else 'es'} "
                f"to be {ns}"
            )
        return ops.layer_norm(x, ns, self.weight, self.bias, eps=self.eps)

    def extra_repr(self) -> str:
        ns = self.normalized_shape
        return (
            f"{ns[0] if len(ns) == 1 else ns}, eps={self.eps}"
            f"{'' if self.elementwise_affine else ', elementwise_affine=False'}"
        )

    @property
    def num_features(self) -> int:
        return math.prod(self.normalized_shape)

    def get_config(self) -> dict:
        return {
            "normalized_shape": list(self.normalized_shape),
            "eps": self.eps,
            "elementwise_affine": self.elementwise_affine,
            "bias": self.bias is not None or not self.elementwise_affine,
            "dtype": _dtype_name(self),
        }
