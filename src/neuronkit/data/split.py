"""Train/validation/test splits, stratified by class where the labels are classes."""

from __future__ import annotations

import numpy as np

__all__ = ["split_indices", "train_test_split", "train_val_test_split"]


def _rng(seed):
    if seed is None or isinstance(seed, np.random.Generator):
        if seed is None:
            from ..creation import get_generator

            return get_generator(None)
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def _count(size, n: int, name: str) -> int:
    """``size`` as a number of samples: a fraction in (0, 1) of ``n``, or an int count."""
    if isinstance(size, bool):
        raise TypeError(f"{name} must be a fraction in (0, 1) or an int count, got {size!r}")
    if isinstance(size, (float, np.floating)):
        if not 0.0 < size < 1.0:
            raise ValueError(f"{name} as a fraction must be in (0, 1), got {size}")
        k = int(round(size * n))
        if k == 0:
            raise ValueError(f"{name}={size} of {n} samples gives an empty split: need at least 1 sample")
        return k
    if isinstance(size, (int, np.integer)):
        if size < 1:
            raise ValueError(f"{name} as a count must be at least 1, got {size}")
        return int(size)
    raise TypeError(f"{name} must be a fraction in (0, 1) or an int count, got {type(size).__name__}")


def _is_classes(y: np.ndarray) -> bool:
    if y.ndim != 1:
        return False
    if np.issubdtype(y.dtype, np.integer) or y.dtype == bool or y.dtype.kind in "US":
        return True
    if np.issubdtype(y.dtype, np.floating):
        return bool(np.all(np.isfinite(y)) and np.all(y == np.round(y)))
    return False


def split_indices(n: int, sizes, y=None, stratify: bool = True, seed=None) -> list[np.ndarray]:
    """Shuffled index arrays ``[rest, part_1, part_2, ...]`` with ``len(part_k) == sizes[k]``.

    ``sizes`` are fractions of ``n`` or counts. With ``y`` holding class labels and ``stratify``, each part keeps
    the class proportions of ``y`` (per-class counts by largest remainder, so the part sizes are exact).
    """
    if n < 1:
        raise ValueError("cannot split an empty dataset (0 samples)")
    counts = [_count(s, n, name) for s, name in zip(sizes, ("test_size", "val_size", "size")[: len(sizes)])]
    if sum(counts) >= n:
        raise ValueError(
            f"split sizes {list(sizes)} of {n} samples leave {n - sum(counts)} samples for training: need at least 1"
        )
    rng = _rng(seed)
    if y is not None:
        y = np.asarray(y)
        if len(y) != n:
            raise ValueError(f"expected {n} labels, one per sample, got {len(y)}")
    if y is None or not stratify or not _is_classes(y):
        perm = rng.permutation(n)
        out, start = [], n - sum(counts)
        for c in counts:
            out.append(perm[start : start + c])
            start += c
        return [perm[: n - sum(counts)], *out]

    classes, inverse, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if class_counts.min() < 2:
        few = classes[class_counts < 2]
        raise ValueError(
            f"cannot stratify: class {few[0].item()!r} has only 1 sample (need at least 2 per class); "
            "pass stratify=False"
        )
    # per-class count for each part, by largest remainder so every part has exactly its size
    alloc = np.zeros((len(counts), len(classes)), dtype=np.int64)
    for k, c in enumerate(counts):
        ideal = class_counts * (c / n)
        base = np.floor(ideal).astype(np.int64)
        frac = ideal - base + rng.random(len(classes)) * 1e-9  # tiny jitter breaks ties at random
        extra = c - base.sum()
        base[np.argsort(-frac)[:extra]] += 1
        alloc[k] = base
    over = alloc.sum(axis=0) >= class_counts
    if np.any(over):
        raise ValueError(
            f"cannot stratify: class {classes[np.flatnonzero(over)[0]].item()!r} would have no training samples; "
            "use smaller splits or stratify=False"
        )
    parts = [[] for _ in range(len(counts) + 1)]
    for ci in range(len(classes)):
        members = rng.permutation(np.flatnonzero(inverse == ci))
        start = 0
        for k in range(len(counts)):
            parts[k + 1].append(members[start : start + alloc[k, ci]])
            start += alloc[k, ci]
        parts[0].append(members[start:])
    return [rng.permutation(np.concatenate(p)) for p in parts]


def _take(arrays, idx):
    return [None if a is None else a[idx] for a in arrays]


def train_test_split(x, y=None, test_size=0.2, stratify: bool = True, seed=None, return_indices: bool = False):
    """Split samples into train and test parts, shuffled through ``seed`` (an int or a ``numpy.random.Generator``).

    Args:
        x: array of shape ``(N, ...)``, or an int ``N`` (then index arrays are returned).
        y: labels ``(N,)``; with ``stratify`` and class labels (ints, strings, or integer-valued floats) both parts
            keep the class proportions. Defaults to None.
        test_size: a fraction in (0, 1) or a count. Defaults to 0.2.
        stratify: keep class proportions where ``y`` holds classes. Defaults to True.
        return_indices: return ``(train_idx, test_idx)`` instead of arrays.

    Returns:
        ``x_train, x_test, y_train, y_test`` (scikit-learn's order; ``x_train, x_test`` when ``y`` is None), or
        ``train_idx, test_idx``.
    """
    n = _n(x)
    train_idx, test_idx = split_indices(n, [test_size], y=y, stratify=stratify, seed=seed)
    if return_indices or isinstance(x, (int, np.integer)):
        return train_idx, test_idx
    x = np.asarray(x)
    if y is None:
        return x[train_idx], x[test_idx]
    y = np.asarray(y)
    return x[train_idx], x[test_idx], y[train_idx], y[test_idx]


def train_val_test_split(
    x, y=None, val_size=0.1, test_size=0.2, stratify: bool = True, seed=None, return_indices: bool = False
):
    """Split samples into train, validation and test parts (sizes relative to the whole set).

    Returns ``x_train, x_val, x_test, y_train, y_val, y_test`` (``x_train, x_val, x_test`` when ``y`` is None), or
    ``train_idx, val_idx, test_idx`` when ``return_indices`` or ``x`` is an int ``N``.
    """
    n = _n(x)
    train_idx, test_idx, val_idx = split_indices(n, [test_size, val_size], y=y, stratify=stratify, seed=seed)
    if return_indices or isinstance(x, (int, np.integer)):
        return train_idx, val_idx, test_idx
    x = np.asarray(x)
    xs = [x[train_idx], x[val_idx], x[test_idx]]
    if y is None:
        return tuple(xs)
    y = np.asarray(y)
    return (*xs, y[train_idx], y[val_idx], y[test_idx])


def _n(x) -> int:
    if isinstance(x, bool):
        raise TypeError("x must be an array or an int sample count, got a bool")
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("x must have a leading sample axis, got a scalar")
    return len(x)
