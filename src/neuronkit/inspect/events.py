"""Events: a neuron that dies, saturates, explodes or goes silent, found in a probe's newest records.

Each event is a dict ``{step, layer, unit, kind, lr, update, detected_at, message}``; ``update`` holds the change of
the unit's parameters in the update that preceded the event (between the two records before it): ``weight`` (norm of
the change of its weights), ``bias`` (change of its bias) and ``ratio`` (weight change / weight norm). An event fires
when its condition turns on (once per onset; an exploded unit is reported once).

- dead: a ReLU-like unit whose output was never > 0 over the last ``window`` records. ``step`` is the first record of
  that inactive streak (when it stopped firing); ``detected_at`` is the record that completed the window.
- saturated: a sigmoid/tanh-like unit whose slope is below 20% of its peak (``probes.SATURATION_SLOPE``) on more than
  ``saturation`` (95%) of its inputs; the message says at which end (outputs near 0 / -1, or near 1).
- exploding: the RMS of its pre-activation or its weight norm grew more than ``explode_factor`` (100x) over its
  baseline, or became non-finite. The baseline is the unit's first record but at least the layer's median first record
  (``probes.robust_baseline``): a unit that starts near 0 does not "explode" by reaching its layer's ordinary scale.
- silent: its output does not vary over the batch (std <= ``silent_std``) while it is neither dead nor saturated.
"""

from __future__ import annotations

import math

import numpy as np

from .probes import RELU_LIKE, SIGMOID_LIKE, TANH_LIKE

KINDS = ("dead", "saturated", "exploding", "silent")


class EventDetector:
    """Looks at the newest record of each layer of a ``Probe`` and returns the events that begin there."""

    def __init__(
        self, window: int = 3, saturation: float = 0.95, explode_factor: float = 100.0, silent_std: float = 1e-7
    ):
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"EventDetector: window must be a positive int, got {window!r}")
        self.window, self.saturation, self.explode_factor, self.silent_std = (
            window,
            saturation,
            explode_factor,
            silent_std,
        )
        self._flags: dict = {}

    def check(self, probe, layers=None) -> list:
        events = []
        for name in layers if layers is not None else probe.layers:
            events += self._check_layer(probe.layers[name], probe.max_records)
        return events

    def _check_layer(self, rec, max_records) -> list:
        n = rec.size
        if n == 0:
            return []
        flags = self._flags.setdefault(rec.name, {k: np.zeros(rec.units, dtype=bool) for k in KINDS})
        idx = rec.order()
        cur = idx[-1]
        u = rec.unit
        act = rec.activation
        on = {}
        if act in RELU_LIKE and n >= self.window:
            on["dead"] = (u["active_frac"][idx[-self.window :]] == 0).all(0)
        else:
            on["dead"] = np.zeros(rec.units, dtype=bool)
        if act in SIGMOID_LIKE or act in TANH_LIKE:
            on["saturated"] = u["saturated_frac"][cur] > self.saturation
        else:
            on["saturated"] = np.zeros(rec.units, dtype=bool)
        pre, wn = u["pre_rms"][cur], u["weight_norm"][cur]
        with np.errstate(invalid="ignore", over="ignore"):
            first_pre = np.maximum(rec.first["pre_rms"], 1e-6)
            first_wn = np.maximum(rec.first["weight_norm"], 1e-6)
            finite = np.isfinite(pre) & np.isfinite(wn) & np.isfinite(u["out_mean"][cur])
            on["exploding"] = ~finite | (pre > self.explode_factor * first_pre) | (wn > self.explode_factor * first_wn)
            quiet = u["out_std"][cur] <= self.silent_std
        inactive_now = u["active_frac"][cur] == 0 if act in RELU_LIKE else np.zeros(rec.units, dtype=bool)
        on["silent"] = quiet & finite & ~inactive_now & ~on["saturated"]
        events = []
        for kind in KINDS:
            new = on[kind] & ~flags[kind]
            if kind == "exploding":
                flags[kind] |= on[kind]  # reported once
            else:
                flags[kind] = on[kind].copy()
            for unit in np.flatnonzero(new):
                events.append(self._event(rec, idx, int(unit), kind))
        return events

    def _event(self, rec, idx, unit, kind) -> dict:
        u = rec.unit
        at = len(idx) - 1
        if kind == "dead":  # walk back to the first record of the inactive streak
            while at > 0 and u["active_frac"][idx[at - 1], unit] == 0:
                at -= 1
        row = idx[at]
        ratio, wn = float(u["update_ratio"][row, unit]), float(u["weight_norm"][row, unit])
        update = {
            "weight": ratio * wn if math.isfinite(ratio) else None,
            "bias": _f(u["bias_delta"][row, unit]),
            "ratio": _f(ratio),
        }
        ev = {
            "step": int(rec.steps[row]),
            "layer": rec.name,
            "unit": unit,
            "kind": kind,
            "lr": _f(rec.lr[row]),
            "update": update,
            "detected_at": int(rec.steps[idx[-1]]),
        }
        ev["message"] = _message(rec, row, ev, at == 0)
        return ev


def _f(v):
    v = float(v)
    return v if math.isfinite(v) else None


def _after(ev) -> str:
    up, lr = ev["update"], ev["lr"]
    at_lr = f" at lr {lr:g}" if lr is not None else ""
    if up["bias"] is None and up["weight"] is None:
        return f"{at_lr} (no earlier record to compare with)" if at_lr else ""
    parts = []
    if up["bias"] is not None:
        parts.append(f"its bias moved by {up['bias']:.2f}")
    if up["weight"] is not None:
        parts.append(f"its weights by {up['weight']:.3g} ({up['ratio']:.2g} of their norm)")
    return " after " + " and ".join(parts) + at_lr


def _message(rec, row, ev, from_start: bool) -> str:
    who = f"layer {rec.name}, unit {ev['unit']}"
    u, unit, step = rec.unit, ev["unit"], ev["step"]
    if ev["kind"] == "dead":
        if from_start:
            return (
                f"{who} never fired from step {step} on (bias {u['bias'][row, unit]:.2f}): it is dead over "
                f"{rec.size} records{_after(ev)}"
            )
        return f"{who} stopped firing at step {step}{_after(ev)}"
    if ev["kind"] == "saturated":
        low = u["out_mean"][row, unit] < (0.5 if rec.activation in SIGMOID_LIKE else 0.0)
        end = ("near 0" if rec.activation in SIGMOID_LIKE else "near -1") if low else "near 1"
        return (
            f"{who} saturated at step {step}: on {u['saturated_frac'][row, unit]:.0%} of its inputs its "
            f"{rec.activation} output sits {end} (mean {u['out_mean'][row, unit]:.3g}), where its slope is under a "
            f"fifth of its peak, so its gradient vanishes (weight norm "
            f"{u['weight_norm'][row, unit]:.3g}){_after(ev)}"
        )
    if ev["kind"] == "exploding":
        return (
            f"{who} exploded at step {step}: pre-activation magnitude {u['pre_rms'][row, unit]:.3g} (baseline "
            f"{rec.first['pre_rms'][unit]:.3g}), weight norm {u['weight_norm'][row, unit]:.3g} (baseline "
            f"{rec.first['weight_norm'][unit]:.3g}){_after(ev)}"
        )
    return (
        f"{who} went silent at step {step}: its output no longer varies over the batch (std "
        f"{u['out_std'][row, unit]:.2g}, mean {u['out_mean'][row, unit]:.3g}){_after(ev)}"
    )
