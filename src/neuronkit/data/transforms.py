"""Batch transforms: vectorised, fitted on the training split only, with JSON-able state to save with a run."""

from __future__ import annotations

import numpy as np

__all__ = ["Compose", "MinMaxScale", "OneHot", "Standardize"]

FIT_CHUNK_BYTES = 32 << 20
"""``Standardize.fit`` reads its input in pieces of about this many bytes of float64."""


def _float(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return x if np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


class _Fitted:
    """Shared parts of transforms that learn per-feature statistics from the training split."""

    _stats: tuple[str, ...] = ()

    def __init__(self, per_feature: bool = True):
        self.per_feature = per_feature
        for k in self._stats:
            setattr(self, k, None)

    @property
    def fitted(self) -> bool:
        return getattr(self, self._stats[0]) is not None

    def _axes(self, x):
        x = np.asarray(x)
        if x.ndim == 0 or len(x) == 0:
            raise ValueError(f"{type(self).__name__}.fit expected a non-empty batch (N, ...), got shape {x.shape}")
        return 0 if self.per_feature else None

    def _check(self, x):
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(x_train) on the training split first")
        x = np.asarray(x)
        ref = getattr(self, self._stats[0])
        if self.per_feature and x.shape[1:] != ref.shape:
            raise ValueError(
                f"{type(self).__name__} was fitted on samples of shape {ref.shape}, got a batch of shape {x.shape}"
            )
        return x

    def __call__(self, x):
        return self.transform(x)

    def fit_transform(self, x):
        return self.fit(x).transform(x)

    def state_dict(self) -> dict:
        """A JSON-able dict (lists of floats) that ``load_state_dict`` restores."""
        out = {"type": type(self).__name__, "per_feature": self.per_feature}
        for k in self._stats:
            v = getattr(self, k)
            out[k] = None if v is None else np.asarray(v, dtype=np.float64).tolist()
        out["shape"] = None if not self.fitted else list(np.shape(getattr(self, self._stats[0])))
        return out

    def load_state_dict(self, state: dict) -> None:
        if state.get("type", type(self).__name__) != type(self).__name__:
            raise ValueError(f"{type(self).__name__}.load_state_dict got the state of a {state['type']}")
        self.per_feature = bool(state["per_feature"])
        for k in self._stats:
            v = state[k]
            setattr(self, k, None if v is None else np.asarray(v, dtype=np.float64).reshape(state["shape"]))


class Standardize(_Fitted):
    """``(x - mean) / std`` with ``mean`` and ``std`` learned by ``fit(x_train)``.

    Statistics are per feature (over axis 0: for ``(N, 28, 28)`` images, per pixel) or, with
    ``per_feature=False``, single numbers. A feature whose std is below ``eps`` (constant on the training split)
    is divided by 1 instead. Fit on the training split only, then apply the same transform to validation and test
    data; save ``state_dict()`` with the run. The output keeps a floating input's dtype (ints become float32).
    """

    _stats = ("mean", "std")

    def __init__(self, per_feature: bool = True, eps: float = 1e-8):
        super().__init__(per_feature)
        self.eps = eps

    def fit(self, x) -> Standardize:
        """Learn ``mean`` and ``std`` (float64) from ``x``, a few samples at a time (``FIT_CHUNK_BYTES`` of float64
        each), so a large training split is never copied whole into float64 (for MNIST's 54,000 images the copy,
        ``x - mean`` and its square took about 340 MB each, for statistics used in float32). Two passes: the mean,
        then the mean squared deviation from it (``numpy.std``'s definition)."""
        axis = self._axes(x)
        x = np.asarray(x)
        rows = max(1, FIT_CHUNK_BYTES // (8 * max(1, x[0].size)))
        count = len(x) if axis == 0 else x.size
        total = 0.0
        for lo in range(0, len(x), rows):
            total = total + x[lo : lo + rows].sum(axis=axis, dtype=np.float64)
        mean = np.asarray(total / count)
        sq = 0.0
        for lo in range(0, len(x), rows):
            d = x[lo : lo + rows].astype(np.float64)
            d -= mean
            sq = sq + np.square(d, out=d).sum(axis=axis)
        std = np.sqrt(np.asarray(sq / count))
        self.mean, self.std = mean, np.where(std < self.eps, 1.0, std)
        return self

    def transform(self, x, out=None):
        """``(x - mean) / std`` in ``x``'s float dtype (ints: float32), as a new array, or written into ``out`` (which
        may be ``x`` itself, to standardize an array the caller owns without a second copy)."""
        x = _float(self._check(x))
        out = np.subtract(x, self.mean.astype(x.dtype), out=out)
        return np.divide(out, self.std.astype(x.dtype), out=out)

    def inverse_transform(self, z):
        z = _float(self._check(z))
        return (z * self.std.astype(z.dtype) + self.mean.astype(z.dtype)).astype(z.dtype, copy=False)

    def __repr__(self) -> str:
        return f"Standardize(per_feature={self.per_feature}, fitted={self.fitted})"


class MinMaxScale(_Fitted):
    """Scale each feature linearly so that the training split's ``[min, max]`` maps to ``feature_range``.

    Defaults to ``(0, 1)``. A constant feature maps to ``feature_range[0]``. Values outside the training range map
    outside ``feature_range`` (no clipping).
    """

    _stats = ("min", "max")

    def __init__(self, feature_range=(0.0, 1.0), per_feature: bool = True):
        super().__init__(per_feature)
        lo, hi = feature_range
        if not lo < hi:
            raise ValueError(f"feature_range must be (low, high) with low < high, got {feature_range}")
        self.feature_range = (float(lo), float(hi))

    def fit(self, x) -> MinMaxScale:
        axis = self._axes(x)
        x64 = np.asarray(x, dtype=np.float64)
        self.min, self.max = np.asarray(x64.min(axis=axis)), np.asarray(x64.max(axis=axis))
        return self

    def transform(self, x):
        x = _float(self._check(x))
        lo, hi = self.feature_range
        span = self.max - self.min
        scale = (hi - lo) / np.where(span == 0, 1.0, span)
        return ((x - self.min.astype(x.dtype)) * scale.astype(x.dtype) + lo).astype(x.dtype, copy=False)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "feature_range": list(self.feature_range)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.feature_range = tuple(state["feature_range"])

    def __repr__(self) -> str:
        return f"MinMaxScale(feature_range={self.feature_range}, fitted={self.fitted})"


class OneHot:
    """Integer class labels ``(N,)`` to one-hot rows ``(N, num_classes)`` (float32 by default)."""

    def __init__(self, num_classes: int, dtype=np.float32):
        if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes, self.dtype = int(num_classes), np.dtype(dtype)

    def __call__(self, y):
        y = np.asarray(y)
        if y.size and not (np.issubdtype(y.dtype, np.integer) or np.all(y == np.round(y))):
            raise ValueError(f"OneHot({self.num_classes}) expected integer class labels, got dtype {y.dtype}")
        yi = y.astype(np.int64)
        bad = (yi < 0) | (yi >= self.num_classes)
        if np.any(bad):
            at = np.argwhere(bad)[0]
            where = f"index {int(at[0])}" if len(at) == 1 else f"index {tuple(int(a) for a in at)}"
            raise ValueError(
                f"OneHot({self.num_classes}) got label {int(yi[tuple(at)])} at {where}: expected labels in "
                f"0..{self.num_classes - 1}"
            )
        out = np.zeros((*yi.shape, self.num_classes), dtype=self.dtype)
        np.put_along_axis(out, yi[..., None], 1, axis=-1)
        return out

    transform = __call__

    def state_dict(self) -> dict:
        return {"type": "OneHot", "num_classes": self.num_classes, "dtype": self.dtype.name}

    def load_state_dict(self, state: dict) -> None:
        self.num_classes, self.dtype = int(state["num_classes"]), np.dtype(state["dtype"])

    def __repr__(self) -> str:
        return f"OneHot({self.num_classes})"


class Compose:
    """Apply transforms in order. ``fit(x)`` fits each fittable transform on the output of the ones before it."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose expected callables, got {type(t).__name__}")

    def fit(self, x) -> Compose:
        for t in self.transforms:
            if hasattr(t, "fit"):
                t.fit(x)
            x = t(x)
        return self

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
        return x

    transform = __call__

    def fit_transform(self, x):
        return self.fit(x)(x)

    def state_dict(self) -> dict:
        return {
            "type": "Compose",
            "transforms": [t.state_dict() if hasattr(t, "state_dict") else None for t in self.transforms],
        }

    def load_state_dict(self, state: dict) -> None:
        if len(state["transforms"]) != len(self.transforms):
            raise ValueError(
                f"Compose.load_state_dict: state has {len(state['transforms'])} transforms, this Compose "
                f"{len(self.transforms)}"
            )
        for t, s in zip(self.transforms, state["transforms"]):
            if s is not None:
                t.load_state_dict(s)

    def __repr__(self) -> str:
        return "Compose([" + ", ".join(repr(t) for t in self.transforms) + "])"
