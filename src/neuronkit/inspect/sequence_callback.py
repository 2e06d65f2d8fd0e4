"""``SequenceProbeCallback``: the measurements of ``inspect.sequence`` repeated while a text model trains, on one fixed
batch of texts, with an event the first time each finding appears.

::

    probe = SequenceProbeCallback(train_ds.get_batch(np.arange(64)), every=50)
    fit(model, loader, epochs=3, callbacks=[probe])
    probe.history["first_last"]          # (records,): gradient reaching the first token / the last, median
    probe.history["forget_shut"]["encoder.rnn.l0"]   # (records, units): share of steps with the forget gate shut
    for e in probe.events: print(e["message"])
    probe.save("runs/RUN/probes")        # runs/RUN/probes/sequence.json: the records and events, plain JSON
    saved = load_sequence_history("runs/RUN/probes")    # .records, .events, .history, as the callback's
    findings = check_sequence_history(saved, after_training)   # for ``diagnose``: what training showed
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from .. import io
from ..nn.layers.attention import MultiHeadAttention
from ..train.callbacks import Callback
from .diagnostics import Finding
from .sequence import check_sequences, measure_sequences

__all__ = [
    "SequenceHistory",
    "SequenceProbeCallback",
    "check_sequence_history",
    "has_sequence_layers",
    "load_sequence_history",
]

SEQUENCE_FILE, FORMAT = "sequence.json", "neuronkit.sequence_probes"
PARTS = ("forget_shut", "head_entropy", "head_top_share")  # per-layer arrays of each record
SEQUENCE_LIMITS = io.JsonLimits(32 * 2**20, containers=2**14, values=2**18, containers_per_kib=32, values_per_kib=512)
"""sequence.json grows with the records (at most ``max_records``) and the units of the recurrent layers."""
_PER_LAYER = {"*": [(float, None)]}
SEQUENCE_SCHEMA = {
    "format": str,
    "version": int,
    "every": io.Range(1),
    "records": [{"step": io.Range(0), "first_last": (float, None), **dict.fromkeys(PARTS, _PER_LAYER)}],
    "events": [{"step": io.Range(0), "kind": str, "layer": (str, None), "message": str, "remedy": str}],
}


def has_sequence_layers(model) -> bool:
    """Whether ``model`` has what ``SequenceProbeCallback`` measures: recurrent layers (gate hooks) or attention."""
    return any(hasattr(m, "register_gate_hook") or isinstance(m, MultiHeadAttention) for _, m in model.named_modules())


def _arrays(records) -> dict:
    out = {
        "step": np.array([r["step"] for r in records], dtype=np.int64),
        "first_last": np.array([r["first_last"] for r in records], dtype=np.float64),
    }
    for part in PARTS:
        layers = records[-1][part] if records else {}
        out[part] = {k: np.stack([np.asarray(r[part][k]) for r in records if k in r[part]]) for k in layers}
    return out


@dataclass
class SequenceHistory:
    """A saved ``SequenceProbeCallback`` read back by ``load_sequence_history``: ``every``, ``records``, ``events``
    and ``history`` as the callback has them."""

    every: int
    records: list = field(default_factory=list)
    events: list = field(default_factory=list)

    @property
    def history(self) -> dict:
        return _arrays(self.records)


def load_sequence_history(path) -> SequenceHistory:
    """Read ``path/sequence.json`` (what ``SequenceProbeCallback.save(path)`` wrote); a ``FormatError`` naming the
    file for anything damaged."""
    js = os.path.join(path, SEQUENCE_FILE)
    doc = io.read_json(js, "sequence probe history", SEQUENCE_LIMITS, SEQUENCE_SCHEMA)
    if doc["format"] != FORMAT:
        raise io.FormatError(f"{js}: not a neuronkit sequence probe history (format {doc['format']!r})")
    records = []
    for r in doc["records"]:
        rec = {"step": r["step"], "first_last": math.nan if r["first_last"] is None else float(r["first_last"])}
        for part in PARTS:
            rec[part] = {k: np.array([math.nan if v is None else v for v in a]) for k, a in r[part].items()}
        records.append(rec)
    return SequenceHistory(doc["every"], records, doc["events"])


class SequenceProbeCallback(Callback):
    """Measure the model on ``batch = (tokens, lengths, labels)`` at training step 1 and every ``every`` steps after
    (after the step's update), keeping at most ``max_records`` records (the oldest are dropped).

    ``history``: ``step`` (records,), ``first_last`` (records,) the median ratio of the gradient reaching a text's
    first token to its last one's, ``forget_shut`` ``{layer: (records, units)}``, ``head_entropy`` and
    ``head_top_share`` ``{layer: (records, heads)}`` (see ``inspect.sequence``). ``events``: one dict per finding the
    first time it appears (``step``, ``kind``, ``layer``, ``message``, ``remedy``)."""

    def __init__(self, batch, every: int = 50, loss="cross_entropy", max_records: int = 256):
        if every < 1 or max_records < 1:
            raise ValueError(f"SequenceProbeCallback: every and max_records must be >= 1, got {every}, {max_records}")
        self.batch, self.every, self.loss, self.max_records = tuple(batch), every, loss, max_records
        self.records: list = []
        self.events: list = []
        self._seen: set = set()

    def on_step_end(self, trainer, logs: dict) -> None:
        step = trainer.step
        if step != 1 and step % self.every:
            return
        stats = measure_sequences(trainer.model, self.batch, self.loss)
        r = stats.first_last[np.isfinite(stats.first_last)]
        self.records.append(
            {
                "step": step,
                "first_last": float(np.median(r)) if len(r) else float("nan"),
                "forget_shut": {k: g["forget"]["shut"] for k, g in stats.gates.items() if "forget" in g},
                "head_entropy": {k: h["entropy"] for k, h in stats.heads.items()},
                "head_top_share": {k: h["top_share"] for k, h in stats.heads.items()},
            }
        )
        del self.records[: -self.max_records]
        for f in check_sequences(stats, when=f"at step {step}"):
            key = (f.kind, f.where.get("layer"))
            if key not in self._seen:
                self._seen.add(key)
                self.events.append(
                    {"step": step, "kind": f.kind, "layer": key[1], "message": f.message, "remedy": f.remedy}
                )

    @property
    def history(self) -> dict:
        """The records as arrays (see the class docstring)."""
        return _arrays(self.records)

    def save(self, path) -> str:
        """Write the records and events to ``path/sequence.json`` (strict JSON; the folder is created); its path."""
        os.makedirs(path, exist_ok=True)
        records = [
            {
                "step": int(r["step"]),
                "first_last": float(r["first_last"]),
                **{part: {k: np.asarray(a, dtype=np.float64).tolist() for k, a in r[part].items()} for part in PARTS},
            }
            for r in self.records
        ]
        doc = {"format": FORMAT, "version": 1, "every": self.every, "records": records, "events": self.events}
        js = os.path.join(path, SEQUENCE_FILE)
        io.write_json(js, doc, indent=None)
        return js

    def restore(self, saved: SequenceHistory, upto_step: int | None = None) -> None:
        """Continue ``saved`` (a resumed run): its records and events up to ``upto_step`` (all when None)."""
        keep = (lambda step: True) if upto_step is None else (lambda step: step <= upto_step)
        self.records = [r for r in saved.records if keep(r["step"])][-self.max_records :]
        self.events = [e for e in saved.events if keep(e["step"])]
        self._seen = {(e["kind"], e["layer"]) for e in self.events}


def check_sequence_history(saved, after_training=()) -> list:
    """``diagnose``'s reading of a run's sequence probes (``saved``: a ``SequenceHistory`` or the callback): each
    event of the training becomes a finding (phase ``"training"``), unless ``after_training`` (the findings on the
    trained model) holds one of the same kind and layer: that one then says since which step it was seen. A problem
    seen during training and gone by its end is information."""
    out = []
    present = {(f.kind, f.where.get("layer")): f for f in after_training}
    for e in saved.events:
        twin = present.get((e["kind"], e["layer"]))
        if twin is not None:
            twin.message += f" The run's sequence probes saw it during training from step {e['step']} on."
            continue
        message = e["message"] + " The trained model no longer shows it."
        f = Finding(e["kind"], "info", {} if e["layer"] is None else {"layer": e["layer"]}, message, e["remedy"])
        f.phase = "training"
        out.append(f)
    return out
