"""Array helpers shared by the probes and the diagnostics: a NumPy view of a tensor, and a layer's output per unit."""

from __future__ import annotations

import numpy as np


def as_numpy(t) -> np.ndarray:
    """The NumPy array behind ``t``: a Tensor's ``.data`` (no copy), or ``t`` itself as an array."""
    return np.asarray(t.data if hasattr(t, "data") else t)


def per_unit(a: np.ndarray, channels_first: bool) -> np.ndarray:
    """A layer output as (units, samples): a convolution's (N, C, ...) output (``channels_first``) becomes C rows of
    N x positions values; a dense (..., units) output its last axis by everything else; a scalar one 1 x 1 block."""
    if a.ndim == 0:
        return a.reshape(1, 1)
    if channels_first and a.ndim >= 3:
        return np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
    return a.reshape(-1, a.shape[-1]).T
