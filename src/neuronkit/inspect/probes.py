"""Probes: per-neuron statistics recorded every N training steps through module hooks, in bounded memory.

A ``Probe`` attaches a forward hook to every ``Dense`` layer (each output unit is a neuron) and every convolution
(each output channel is a neuron), plus, while a step is recorded, a forward pre-hook on a dense layer's activation
module, which receives the pre-activation ``z = x @ W.T + b``. The hooks return at once unless the probe is
``active``, so the steps that are not recorded cost one attribute test per layer; and as no hook is on the activation
modules then, a ``Dense`` with ReLU, tanh or sigmoid runs its fused op on those steps (one graph node fewer).
On a recorded step the forward hooks measure the batch, a ``Tensor`` hook on each layer output measures the gradient
flowing back into the layer, and ``commit()`` (after ``backward``, before the optimizer's update) reads the weights,
biases and weight gradients and writes one record per layer into a ring buffer of ``max_records`` preallocated rows.

Per neuron (arrays of shape (records, units)): ``pre_mean``, ``pre_std``, ``pre_rms`` (of the pre-activation over the
batch, and for a convolution also over positions), ``out_mean``, ``out_std``, ``active_frac`` (output > 0 for ReLU-like
and linear units; not saturated for sigmoid/tanh-like ones), ``saturated_frac`` (the fraction of inputs on which the
activation's slope is below ``SATURATION_SLOPE`` = 20% of its peak: sigmoid outputs below 0.053 or above 0.947, |tanh|
above 0.894, i.e. the pre-activation deep in the flat part; 0 for other activations), ``weight_norm`` (L2 norm of the
neuron's weights), ``bias``, ``grad_norm`` (L2 norm of its weight gradient), ``update_ratio`` (norm of the change of its
weights since the previous record divided by its current weight norm; NaN on the first record) and ``bias_delta`` (the
change of its bias since the previous record). Per layer: ``layer_grad_norm`` (records,), ``out_grad_norm`` (records,:
the norm of the gradient reaching the layer's output), ``hist`` (records, bins) of the layer outputs over fixed
``hist_edges``.

Nothing in ``nn`` knows about probes: everything attaches through ``register_forward_hook``,
``register_forward_pre_hook`` and ``Tensor.register_hook``.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .. import backend as B
from .. import io
from ..nn.activations import Identity
from ..nn.layers.conv import ConvNd
from ..nn.layers.dense import Dense
from .arrays import as_numpy, per_unit
from .probe_sums import reduce_pending, shard_sums

UNIT_STATS = (
    "pre_mean",
    "pre_std",
    "pre_rms",
    "out_mean",
    "out_std",
    "active_frac",
    "saturated_frac",
    "weight_norm",
    "bias",
    "grad_norm",
    "update_ratio",
    "bias_delta",
)
LAYER_STATS = ("layer_grad_norm", "out_grad_norm")
SIGMOID_LIKE = ("sigmoid", "hard_sigmoid")
TANH_LIKE = ("tanh", "hard_tanh", "softsign")
RELU_LIKE = ("relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "mish")
_RANGES = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hard_tanh": (-1.0, 1.0),
    "softsign": (-1.0, 1.0),
}


SATURATION_SLOPE = 0.2
"""A sigmoid/tanh-like unit is saturated on an input where its slope is below this fraction of the slope's peak: there
it passes back less than a fifth of the gradient it passes at its steepest point."""


def relative_slope(activation: str, out):
    """The slope of a sigmoid/tanh-like ``activation`` divided by its peak slope, from its outputs ``out`` (any shape;
    None for another activation): sigmoid 4 s (1 - s), tanh 1 - t^2, softsign (1 - |y|)^2, and 1 inside / 0 outside the
    linear part of hard_sigmoid and hard_tanh."""
    if activation == "sigmoid":
        return 4.0 * out * (1.0 - out)
    if activation == "tanh":
        return 1.0 - out * out
    if activation == "softsign":
        return np.square(1.0 - np.abs(out))
    if activation == "hard_sigmoid":
        return ((out > 0) & (out < 1)).astype(np.float64)
    if activation == "hard_tanh":
        return (np.abs(out) < 1).astype(np.float64)
    return None


def robust_baseline(first):
    """Per-unit baseline of a magnitude: the unit's first value, but at least the layer's median first value, so a
    unit that happens to start near 0 is not said to explode when it reaches the layer's ordinary scale."""
    first = np.asarray(first, dtype=np.float64)
    fin = first[np.isfinite(first)]
    return np.maximum(first, np.median(fin) if fin.size else 0.0)


def activation_name(module) -> str:
    """The name of a layer's activation module (``Dense``'s, or the one fused into ``Conv2d(..., activation="relu")``),
    or ``"linear"`` for none."""
    act = getattr(module, "activation", None)
    if act is None or isinstance(act, Identity):
        return "linear"
    return getattr(act, "name", type(act).__name__.lower())


class LayerRecord:
    """The ring buffer of one probed layer: ``max_records`` preallocated rows per statistic."""

    def __init__(self, name: str, module, max_records: int, bins: int, hist_range):
        self.name, self.module = name, module
        self.kind = "conv" if isinstance(module, ConvNd) else "dense"
        self.units = module.out_channels if self.kind == "conv" else module.out_features
        self.activation = activation_name(module)
        lo, hi = hist_range if hist_range is not None else _RANGES.get(self.activation, (-5.0, 5.0))
        self.hist_edges = np.linspace(lo, hi, bins + 1)
        k, u = max_records, self.units
        self.steps = np.zeros(k, dtype=np.int64)
        self.lr = np.full(k, np.nan)
        self.unit = {s: np.full((k, u), np.nan) for s in UNIT_STATS}
        self.layer = {s: np.full(k, np.nan) for s in LAYER_STATS}
        self.hist = np.zeros((k, bins), dtype=np.int64)
        self.count = 0  # records written so far (the newest is at (count - 1) % max_records)
        self.first = (
            None  # the first record's pre_rms and weight_norm (see robust_baseline): the baseline of "explodes"
        )
        self.prev_weight = None  # (units, fan_in) copy of the weights at the previous record
        self.prev_bias = None
        self.pending: dict = {}
        self.pending_pre = None

    @property
    def size(self) -> int:
        return min(self.count, self.steps.shape[0])

    def order(self):
        """Row indices of the stored records, oldest first."""
        k = self.steps.shape[0]
        if self.count <= k:
            return np.arange(self.count)
        return (np.arange(self.count - k, self.count)) % k

    def history(self) -> dict:
        idx = self.order()
        out = {
            "step": self.steps[idx].copy(),
            "lr": self.lr[idx].copy(),
            "hist": self.hist[idx].copy(),
            "hist_edges": self.hist_edges.copy(),
        }
        out.update({s: a[idx].copy() for s, a in self.unit.items()})
        out.update({s: a[idx].copy() for s, a in self.layer.items()})
        return out

    def meta(self) -> dict:
        return {
            "name": self.name,
            "kind": self.kind,
            "type": type(self.module).__name__,
            "units": self.units,
            "activation": self.activation,
            "count": self.count,
        }


def _row_sq(a):
    """Sum of squares of each row, accumulated in float64 (einsum casts while it reads: no float64 copy of ``a``)."""
    return np.einsum("ij,ij->i", a, a, dtype=np.float64)


def _compiled_stats(rec, out, conv: bool):
    """``(stats, hist)`` for ``Probe._measure`` of an output that is also the pre-activation (a convolution with its
    activation fused, a layer without one) and whose activation has no flat part, by the compiled kernel
    ``jit_kernels.unit_stats``: ``stats`` (4, units) the mean, std, root mean square and fraction above 0. One pass
    over the output's own memory (units as columns) instead of a float64 copy, a transposed copy and a sort for the
    histogram (LeNet's first convolution: 1.4 ms against 8.2 ms per recorded step). The same statistics within
    float64 rounding and the same histogram. None where it does not apply."""
    k = B.jit()
    if k is None or out.dtype.name not in ("float32", "float64") or out.size == 0 or out.ndim < 2:
        return None
    if relative_slope(rec.activation, np.zeros(1)) is not None:
        return None
    cols = np.moveaxis(out, 1, -1) if conv and out.ndim >= 3 else out  # (a fused convolution's NHWC memory)
    if not cols.flags.c_contiguous or cols.shape[-1] != rec.units:
        return None
    stats, hist = np.empty((4, rec.units)), np.empty(len(rec.hist_edges) - 1, dtype=np.int64)
    k.unit_stats(cols.reshape(-1, rec.units), rec.hist_edges, stats, hist)
    return stats, hist


class Probe:
    """Record per-neuron statistics of every dense and convolution layer of ``model`` every ``every`` steps.

    Args:
        model: the module to watch; probed layers are found with ``named_modules()``.
        every: record one step in ``every`` (used by ``ProbeCallback``; a manual caller uses ``begin``/``commit``).
        max_records: ring-buffer length per layer: memory stays bounded however long the run.
        bins: activation histogram bins per layer; ``hist_range`` (lo, hi) overrides the default range ((0, 1) for
            sigmoid, (-1, 1) for tanh, else (-5, 5)); values outside fall into the edge bins.

    Manual use: ``probe.begin(step)``, forward, ``loss.backward()``, ``probe.commit(lr)`` (before the update).
    """

    def __init__(self, model, every: int = 100, max_records: int = 256, bins: int = 32, hist_range=None):
        for what, v in (("every", every), ("max_records", max_records), ("bins", bins)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"Probe: {what} must be a positive int, got {v!r}")
        self.model, self.every, self.max_records, self.bins = model, every, max_records, bins
        self._active = False
        self._act_hooks: list = []  # (activation module, record) of each dense layer: hooked while recording
        self._act_handles: list = []
        self.step = None
        self.work_count = 0  # how many recorded steps the hooks did work for (for overhead checks)
        self.events: list = []
        self.comm = None  # data-parallel training: the communicator whose ranks' shards make the batch (probe_sums)
        self.layers: dict[str, LayerRecord] = {}
        self._handles = []
        for name, m in model.named_modules():
            if isinstance(m, (Dense, ConvNd)):
                rec = LayerRecord(name or type(m).__name__, m, max_records, bins, hist_range)
                self.layers[rec.name] = rec
                self._handles.append(m.register_forward_hook(self._forward_hook(rec)))
                act = getattr(m, "activation", None)
                # A convolution's activation is fused into the op (Conv2d(..., activation="relu", max_pool=k)): a
                # hook on it would make the layer run conv, ReLU and pooling apart, slower. It is left alone, and the
                # records' pre_* statistics are those of the layer's output.
                if act is not None and not isinstance(act, Identity) and not isinstance(m, ConvNd):
                    self._act_hooks.append((act, rec))
        if not self.layers:
            raise ValueError(f"Probe: {type(model).__name__} has no Dense or convolution layer to probe")

    # -- hooks ----------------------------------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        """Whether the hooks record the current step. Turning it on hooks each dense layer's activation module (to
        see the pre-activation); turning it off unhooks them, so unrecorded steps run the layers' fused ops."""
        return self._active

    @active.setter
    def active(self, on: bool) -> None:
        on = bool(on)
        if on and not self._act_handles:
            self._act_handles = [act.register_forward_pre_hook(self._pre_hook(rec)) for act, rec in self._act_hooks]
        elif not on:
            for h in self._act_handles:
                h.remove()
            self._act_handles = []
        self._active = on

    def _pre_hook(self, rec):
        def hook(module, inputs):
            if not self.active or not module.training:  # eval-mode passes (validation, gradcheck) are not training
                return None
            rec.pending_pre = as_numpy(inputs[0])
            return None

        return hook

    def _forward_hook(self, rec):
        def hook(module, inputs, output):
            if not self.active or not module.training:
                return None
            with np.errstate(all="ignore"):  # a diverging run must be recorded, not spam warnings
                self._measure(rec, as_numpy(output))
            if getattr(output, "requires_grad", False):
                output.register_hook(self._grad_hook(rec))
            self.work_count += 1
            return None

        return hook

    def _measure(self, rec, out) -> None:
        pre = out if rec.pending_pre is None else rec.pending_pre
        rec.pending_pre = None
        conv = rec.kind == "conv"
        fast = _compiled_stats(rec, out, conv) if pre is out and self.comm is None else None
        if fast is not None:
            (mean, std, rms, positive), hist = fast
            o_stats = sat = None
        else:
            o = per_unit(out.astype(np.float64), conv)
            z = o if pre is out else per_unit(pre.astype(np.float64), conv)  # (a convolution's: the same array)
            slope = relative_slope(rec.activation, o)
            sat = None if slope is None else slope < SATURATION_SLOPE
            hist = np.histogram(np.clip(o, rec.hist_edges[0], rec.hist_edges[-1]), rec.hist_edges)[0]
            if self.comm is not None:  # a shard of the global batch: sums, turned into statistics at commit
                rec.pending["sums"] = shard_sums(z, o, sat, hist)
                return
            mean, std, rms = z.mean(1), z.std(1), np.sqrt((z * z).mean(1))
            o_stats = None if z is o else (o.mean(1), o.std(1))  # (the same array: its statistics once, not twice)
            positive = (o > 0).mean(1) if sat is None else None
        p = rec.pending
        p["pre_mean"], p["pre_std"], p["pre_rms"] = mean, std, rms
        p["out_mean"], p["out_std"] = (mean.copy(), std.copy()) if o_stats is None else o_stats
        if sat is None:
            p["saturated_frac"], p["active_frac"] = np.zeros(rec.units), positive
        else:
            p["saturated_frac"] = sat.mean(1)
            p["active_frac"] = 1.0 - p["saturated_frac"]
        p["hist"] = hist

    def _grad_hook(self, rec):
        def hook(grad):
            if self.active:
                sq = float(np.sum(np.square(as_numpy(grad), dtype=np.float64)))
                if self.comm is not None:  # summed over the ranks at commit
                    rec.pending["out_grad_sq"] = sq
                else:
                    rec.pending["out_grad_norm"] = math.sqrt(sq)
            return None

        return hook

    # -- recording ------------------------------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        """Whether training step ``step`` (1-based) is recorded: steps 1, every + 1, 2 every + 1, ..."""
        return (step - 1) % self.every == 0

    def begin(self, step: int) -> None:
        """Make the hooks record the next forward and backward as training step ``step``."""
        self.active, self.step = True, int(step)
        for rec in self.layers.values():
            rec.pending, rec.pending_pre = {}, None

    def commit(self, lr: float = float("nan")) -> list:
        """Write one record per layer (call after ``backward``, before the update) and stop recording.

        Returns the names of the layers recorded (those whose forward ran since ``begin``)."""
        done = []
        if self.comm is not None:
            with np.errstate(all="ignore"):
                reduce_pending(self.layers, self.comm.allreduce)
        for rec in self.layers.values():
            if not rec.pending:
                continue
            with np.errstate(all="ignore"):
                self._write(rec, lr)
            done.append(rec.name)
        self.active = False
        return done

    def _write(self, rec: LayerRecord, lr: float) -> None:
        m, p = rec.module, rec.pending
        i = rec.count % self.max_records
        w = as_numpy(m.weight).reshape(rec.units, -1)  # the model's dtype: norms accumulate in float64 without a copy
        b = np.zeros(rec.units) if m.bias is None else as_numpy(m.bias).astype(np.float64)
        wn = np.sqrt(_row_sq(w))
        p["weight_norm"], p["bias"] = wn, b
        g = m.weight.grad
        if g is not None:
            sq = _row_sq(as_numpy(g).reshape(rec.units, -1))
            p["grad_norm"] = np.sqrt(sq)
            rec.layer["layer_grad_norm"][i] = math.sqrt(float(sq.sum()))
        else:
            p["grad_norm"] = np.full(rec.units, np.nan)
            rec.layer["layer_grad_norm"][i] = np.nan
        if rec.prev_weight is None:
            p["update_ratio"] = np.full(rec.units, np.nan)
            p["bias_delta"] = np.full(rec.units, np.nan)
        else:
            d = np.subtract(w, rec.prev_weight)  # exact in float32 too: an update is small next to the weight
            with np.errstate(divide="ignore", invalid="ignore"):
                p["update_ratio"] = np.sqrt(_row_sq(d)) / wn
            p["bias_delta"] = b - rec.prev_bias
        rec.prev_weight, rec.prev_bias = w.copy(), b.copy()
        for s in UNIT_STATS:
            rec.unit[s][i] = p[s]
        rec.layer["out_grad_norm"][i] = p.get("out_grad_norm", np.nan)
        rec.hist[i] = p["hist"]
        rec.steps[i], rec.lr[i] = self.step, lr
        if rec.first is None:  # the baseline of "exploding": robust to a unit that starts near 0
            rec.first = {"pre_rms": robust_baseline(p["pre_rms"]), "weight_norm": robust_baseline(wn)}
        rec.count += 1
        rec.pending = {}

    # -- reading --------------------------------------------------------------------------------------------------
    def history(self, layer: str) -> dict:
        """The stored records of ``layer``, oldest first: ``step`` (n,), each per-unit statistic (n, units), each
        per-layer statistic (n,), ``hist`` (n, bins) and ``hist_edges`` (bins + 1,)."""
        if layer not in self.layers:
            raise KeyError(f"Probe: no probed layer {layer!r}; probed layers: {list(self.layers)}")
        return self.layers[layer].history()

    def restore(self, saved, upto_step: int | None = None) -> None:
        """Continue a saved history (a ``ProbeHistory`` from ``load_history``): its records up to ``upto_step`` (the
        step a resumed run continues from) go back into the ring buffers, and its events with them. The first record
        after this has no ``update_ratio`` (the previous weights were not saved)."""
        for name, rec in self.layers.items():
            if name not in saved.layers:
                continue
            old = saved.layers[name]
            if old.units != rec.units:
                raise ValueError(f"Probe.restore: layer {name} has {rec.units} units, the saved history {old.units}")
            keep = np.flatnonzero(old.steps <= upto_step) if upto_step is not None else np.arange(old.size)
            keep = keep[-self.max_records :]
            n = len(keep)
            rec.steps[:n], rec.lr[:n] = old.steps[keep], old.lr[keep]
            for stat in UNIT_STATS:
                rec.unit[stat][:n] = old.unit[stat][keep]
            for stat in LAYER_STATS:
                rec.layer[stat][:n] = old.layer[stat][keep]
            if old.hist.shape[1:] == rec.hist.shape[1:]:
                rec.hist[:n] = old.hist[keep]
            rec.count = n
            if n:
                rec.first = {
                    "pre_rms": robust_baseline(old.unit["pre_rms"][keep[0]]),
                    "weight_norm": robust_baseline(old.unit["weight_norm"][keep[0]]),
                }
        self.events = [e for e in saved.events if upto_step is None or (e.get("step") or 0) <= upto_step]

    def remove(self) -> None:
        """Detach every hook (the recorded history stays readable)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._act_hooks.clear()
        self.active = False

    def save(self, path) -> tuple[str, str]:
        """Write the history to directory ``path``: ``probes.safetensors`` (arrays, keys ``layer/statistic``) and
        ``probes.json`` (layers, settings, events): open formats only. Returns the two file paths."""
        os.makedirs(path, exist_ok=True)
        arrays = {}
        for name, rec in self.layers.items():
            for stat, a in rec.history().items():
                arrays[f"{name}/{stat}"] = np.ascontiguousarray(a)
        meta = {
            "format": "neuronkit.probes",
            "version": 1,
            "every": self.every,
            "max_records": self.max_records,
            "bins": self.bins,
            "layers": [r.meta() for r in self.layers.values()],
            "events": [_jsonable(e) for e in self.events],
        }
        tensors = os.path.join(path, "probes.safetensors")
        js = os.path.join(path, "probes.json")
        io.write_safetensors(tensors, arrays)
        io.write_json(js, meta, indent=1)
        return tensors, js


class StoredLayer:
    """One layer of a saved history, read back: the same reading attributes as a ``LayerRecord`` (``name``, ``kind``,
    ``units``, ``activation``, ``count``, ``size``, ``steps``, ``lr``, ``unit``, ``layer``, ``hist``, ``hist_edges``,
    ``order()``), so diagnostics read a saved run the way they read a live probe."""

    def __init__(self, meta: dict, arrays: dict):
        self.meta = meta
        self.name, self.kind, self.units = meta["name"], meta["kind"], int(meta["units"])
        self.activation, self.count = meta["activation"], int(meta["count"])
        self.steps, self.lr = arrays["step"], arrays["lr"]
        self.hist, self.hist_edges = arrays["hist"], arrays["hist_edges"]
        self.unit = {s: arrays[s] for s in UNIT_STATS}
        self.layer = {s: arrays[s] for s in LAYER_STATS}
        self.size = int(self.steps.shape[0])

    def order(self):
        return np.arange(self.size)  # stored oldest first


class ProbeHistory:
    """A saved probe history read back by ``load_history``: ``layers`` (name -> ``StoredLayer``), ``events``,
    ``every``, ``history(layer)``."""

    def __init__(self, meta: dict, arrays: dict):
        self.meta, self.events, self.every = meta, meta["events"], meta.get("every")
        self._arrays = {}
        for k, v in arrays.items():
            layer, _, stat = k.rpartition("/")
            self._arrays.setdefault(layer, {})[stat] = v
        try:
            self.layers = {d["name"]: StoredLayer(d, self._arrays.get(d["name"], {})) for d in meta["layers"]}
        except (KeyError, TypeError) as e:
            raise ValueError(f"saved probe history is incomplete: missing {e}") from None

    def history(self, layer: str) -> dict:
        if layer not in self.layers:
            raise KeyError(f"saved probe history has no layer {layer!r}; layers: {list(self.layers)}")
        return dict(self._arrays[layer])


PROBES_LIMITS = io.JsonLimits(64 * 2**20, containers=2**14, values=2**18, containers_per_kib=32, values_per_kib=256)
"""probes.json holds one entry per probed layer and one per event: caps grow with the file beyond a base."""
PROBES_SCHEMA = {
    "format": str,
    "version": int,
    "every?": (int, None),
    "layers": [{"name": str, "kind": str, "units": io.Range(0), "activation": (str, None), "count": io.Range(0)}],
    "events": [dict],
}


def load_history(path) -> ProbeHistory:
    """Read what ``Probe.save(path)`` wrote (safetensors + JSON); ``ValueError`` (``io.FormatError``) naming the file
    for anything damaged."""
    js = os.path.join(path, "probes.json")
    meta = io.read_json(js, "probe history", PROBES_LIMITS)
    if not isinstance(meta, dict) or meta.get("format") != "neuronkit.probes":
        fmt = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"{path}: probes.json is not a neuronkit probe history (format {fmt!r})")
    io.check_json(meta, PROBES_SCHEMA, js)
    arrays, _ = io.read_safetensors(os.path.join(path, "probes.safetensors"), "probe history", warn=False)
    return ProbeHistory(meta, arrays)


def _jsonable(v):
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
