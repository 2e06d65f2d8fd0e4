"""``History``: what happened during training, step by step and epoch by epoch, in plain JSON-able records."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np


def finite_json(obj):
    """``obj`` with every non-finite float (NaN, +-inf; Python or NumPy) replaced by None, recursively through dicts,
    lists and tuples: what ``json.dumps(..., allow_nan=False)`` accepts. JSON has no NaN: Python's ``NaN`` token is
    rejected by strict readers (browsers, ``jq``, most languages)."""
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def json_line(record: dict) -> str:
    """One strict JSON line (non-finite numbers as null, see ``finite_json``), newline included."""
    return json.dumps(finite_json(record), allow_nan=False) + "\n"


@dataclass
class History:
    """``steps``: one dict per optimizer step (step, epoch, loss, lr, time); ``epochs``: one dict per epoch (epoch,
    loss, each training metric, ``val_loss`` and ``val_<metric>`` when there is validation data, lr, time, steps).

    ``stopped_early`` names the callback that stopped training; ``interrupted`` is True after Ctrl-C.
    """

    steps: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    stopped_early: str | None = None
    interrupted: bool = False

    def __getitem__(self, key: str) -> list:
        """The per-epoch series of ``key``: ``history["val_accuracy"]``."""
        return [e.get(key) for e in self.epochs]

    def last(self, key: str, default=None):
        for e in reversed(self.epochs):
            if key in e:
                return e[key]
        return default

    def state_dict(self) -> dict:
        return {
            "steps": self.steps,
            "epochs": self.epochs,
            "stopped_early": self.stopped_early,
            "interrupted": self.interrupted,
        }

    @classmethod
    def from_state(cls, state: dict) -> History:
        return cls(
            list(state.get("steps", [])),
            list(state.get("epochs", [])),
            state.get("stopped_early"),
            bool(state.get("interrupted", False)),
        )

    def to_jsonl(self, path) -> None:
        """One JSON line per epoch record (``{"kind": "epoch", ...}``) after one per step (``"kind": "step"``)."""
        with open(path, "w") as f:
            for s in self.steps:
                f.write(json_line({"kind": "step", **s}))
            for e in self.epochs:
                f.write(json_line({"kind": "epoch", **e}))
