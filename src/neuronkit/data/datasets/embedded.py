"""Small tabular/image sets embedded in scikit-learn (no download): digits, iris, wine, breast_cancer."""

from __future__ import annotations

import numpy as np

__all__ = ["load_sklearn"]


def load_sklearn(name: str):
    """``(x float32 (N, F), y int64 (N,), class_names)`` from ``sklearn.datasets.load_<name>``."""
    try:
        from sklearn import datasets as skd
    except ImportError as e:  # pragma: no cover - scikit-learn is a dependency
        raise ImportError(f"the {name!r} dataset comes with scikit-learn: pip install 'scikit-learn>=1.3'") from e
    bunch = getattr(skd, f"load_{name}")()
    names = [str(c) for c in bunch.target_names]
    return np.asarray(bunch.data, dtype=np.float32), np.asarray(bunch.target, dtype=np.int64), names
