"""The probes' batch statistics of the global batch in data-parallel training (``train.distributed``).

Each rank sees only its shard of every global batch, so a statistic measured on the data (the pre-activation's and the
output's mean and spread, the saturated and active fractions, the histogram, the gradient reaching the layer) would
describe a shard. Instead each rank keeps additive sums of its shard (``shard_sums``); at the record's ``commit`` one
allreduce adds every layer's sums over the ranks (``reduce_pending``) and the statistics are computed from the totals,
so rank 0's history describes the global batch, as a single process's does (to float rounding: the spread comes from
the sum of squares, not from a second pass over the data).

The weight statistics (norms, weight gradients, update ratios) need nothing: the gradients are already summed and
every rank holds the same weights.
"""

from __future__ import annotations

import numpy as np

SUMS = ("z", "zz", "o", "oo", "sat", "pos")
HEAD = 5  # seen by a rank, samples, sloped activation, gradient seen, gradient sum of squares


def shard_sums(z, o, sat, hist) -> dict:
    """Additive statistics of one layer on this rank's shard: ``z`` and ``o`` the pre-activation and output as
    (units, samples) float64, ``sat`` a boolean (units, samples) array of saturated inputs (None for an activation
    without a flat part), ``hist`` the output histogram's counts."""
    return {
        "n": z.shape[1],
        "z": z.sum(1),
        "zz": np.einsum("ij,ij->i", z, z),
        "o": o.sum(1),
        "oo": np.einsum("ij,ij->i", o, o),
        "sat": np.zeros(len(o)) if sat is None else sat.sum(1, dtype=np.float64),
        "pos": (o > 0).sum(1, dtype=np.float64),
        "hist": hist,
        "slope": sat is not None,
    }


def _row(rec) -> np.ndarray:
    """One layer's slot in the buffer: seen, n, sloped, has_grad, grad_sq, the six per-unit sums, the histogram."""
    u, bins = rec.units, len(rec.hist_edges) - 1
    s = rec.pending.get("sums")
    if s is None:
        return np.zeros(HEAD + len(SUMS) * u + bins)
    grad = rec.pending.get("out_grad_sq")
    head = [1.0, s["n"], float(s["slope"]), 0.0 if grad is None else 1.0, 0.0 if grad is None else grad]
    return np.concatenate([head, *(s[k] for k in SUMS), s["hist"]]).astype(np.float64)


def reduce_pending(layers: dict, allreduce) -> None:
    """Sum the pending shard sums of every layer in ``layers`` (name -> ``LayerRecord``, the same on every rank) over
    the ranks with one ``allreduce`` (sums a float64 array in place), and replace them by the global batch's
    statistics. A layer no rank measured is left without a pending record."""
    rows = [_row(rec) for rec in layers.values()]
    total = allreduce(np.concatenate(rows)) if rows else np.zeros(0)
    at = 0
    for rec, row in zip(layers.values(), rows):
        part = total[at : at + len(row)]
        at += len(row)
        rec.pending = {} if part[0] == 0 else _statistics(part, rec.units)


def _statistics(part: np.ndarray, u: int) -> dict:
    n, slope, has_grad, grad_sq = part[1:HEAD]
    sums = dict(zip(SUMS, part[HEAD : HEAD + len(SUMS) * u].reshape(len(SUMS), u)))
    with np.errstate(all="ignore"):
        p = {}
        for name, key in (("pre", "z"), ("out", "o")):
            mean, sq = sums[key] / n, sums[key + key] / n
            p[name + "_mean"], p[name + "_std"] = mean, np.sqrt(np.maximum(sq - mean * mean, 0.0))
            if name == "pre":
                p["pre_rms"] = np.sqrt(sq)
        if slope:
            p["saturated_frac"] = sums["sat"] / n
            p["active_frac"] = 1.0 - p["saturated_frac"]
        else:
            p["saturated_frac"], p["active_frac"] = np.zeros(u), sums["pos"] / n
    p["hist"] = np.rint(part[HEAD + len(SUMS) * u :]).astype(np.int64)
    if has_grad:
        p["out_grad_norm"] = float(np.sqrt(grad_sq))
    return p


__all__ = ["reduce_pending", "shard_sums"]
