"""Toy 2-D classification sets, generated from an explicit seed: xor, circles, moons, spirals, gaussian blobs.

Every generator returns ``(x, y)``: ``x`` float32 ``(n_samples, 2)`` (blobs: ``(n_samples, n_features)``), ``y``
int64 class labels ``0..k-1``, classes as balanced as ``n_samples`` allows, samples in shuffled order. The same
``seed`` gives the same arrays bit for bit; ``noise`` is the std of Gaussian noise added to the coordinates.
"""

from __future__ import annotations

import numpy as np

__all__ = ["make_blobs", "make_circles", "make_moons", "make_spirals", "make_xor"]


def _check(n_samples, noise, k):
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < k:
        raise ValueError(f"n_samples must be an int of at least {k} (one per class), got {n_samples!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")


def _rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        from ...creation import get_generator

        return get_generator(None)
    return np.random.default_rng(seed)


def _per_class(n: int, k: int) -> np.ndarray:
    """Balanced labels: ``n // k`` per class, the remainder to the first classes."""
    return np.repeat(np.arange(k), [n // k + (c < n % k) for c in range(k)])


def _finish(x, y, noise, rng):
    if noise:
        x = x + rng.normal(0.0, noise, size=x.shape)
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm].astype(np.int64)


def make_xor(n_samples: int = 200, noise: float = 0.1, seed=0):
    """Points uniform in ``[-1, 1]^2``; class 1 where the signs of the two coordinates differ (XOR of ``x > 0``)."""
    _check(n_samples, noise, 2)
    rng = _rng(seed)
    y = _per_class(n_samples, 2)
    a = rng.uniform(0.05, 1.0, size=(n_samples, 2))  # magnitudes, away from the axes
    s0 = rng.choice([-1.0, 1.0], size=n_samples)
    s1 = np.where(y == 1, -s0, s0)
    return _finish(a * np.stack([s0, s1], axis=1), y, noise, rng)


def make_circles(n_samples: int = 200, noise: float = 0.05, factor: float = 0.5, seed=0):
    """Two concentric circles: class 0 the outer (radius 1), class 1 the inner (radius ``factor``)."""
    _check(n_samples, noise, 2)
    if not 0 < factor < 1:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    rng = _rng(seed)
    y = _per_class(n_samples, 2)
    t = rng.uniform(0, 2 * np.pi, n_samples)
    r = np.where(y == 0, 1.0, factor)
    return _finish(np.stack([r * np.cos(t), r * np.sin(t)], axis=1), y, noise, rng)


def make_moons(n_samples: int = 200, noise: float = 0.1, seed=0):
    """Two interleaving half circles (scikit-learn's ``make_moons`` layout)."""
    _check(n_samples, noise, 2)
    rng = _rng(seed)
    y = _per_class(n_samples, 2)
    t = rng.uniform(0, np.pi, n_samples)
    x = np.where(y[:, None] == 0, np.stack([np.cos(t), np.sin(t)], 1), np.stack([1 - np.cos(t), 0.5 - np.sin(t)], 1))
    return _finish(x, y, noise, rng)


def make_spirals(n_samples: int = 300, n_classes: int = 3, noise: float = 0.1, turns: float = 1.0, seed=0):
    """``n_classes`` interleaved spiral arms from the origin, each ``turns`` revolutions long (CS231n layout)."""
    _check(n_samples, noise, n_classes)
    if n_classes < 2:
        raise ValueError(f"n_classes must be at least 2, got {n_classes}")
    rng = _rng(seed)
    y = _per_class(n_samples, n_classes)
    r = rng.uniform(0.05, 1.0, n_samples)
    theta = 2 * np.pi * (turns * r + y / n_classes)
    return _finish(np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1), y, noise, rng)


def make_blobs(
    n_samples: int = 300, centers: int = 3, n_features: int = 2, noise: float = 1.0, box=(-10.0, 10.0), seed=0
):
    """Isotropic Gaussian blobs: ``centers`` centres uniform in ``box``, each with std ``noise``."""
    k = int(centers)
    _check(n_samples, noise, k)
    rng = _rng(seed)
    mu = rng.uniform(box[0], box[1], size=(k, n_features))
    y = _per_class(n_samples, k)
    return _finish(mu[y], y, noise, rng)
