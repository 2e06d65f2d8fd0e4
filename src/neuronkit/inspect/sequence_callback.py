"""``SequenceProbeCallback``: the measurements of ``inspect.sequence`` repeated while a text model trains, on one fixed
batch of texts, with an event the first time each finding appears.

::

    probe = SequenceProbeCallback(train_ds.get_batch(np.arange(64)), every=50)
    fit(model, loader, epochs=3, callbacks=[probe])
    probe.history["first_last"]          # (records,): gradient reaching the first token / the last, median
    probe.history["forget_shut"]["encoder.rnn.l0"]   # (records, units): share of steps with the forget gate shut
    for e in probe.events: print(e["message"])
"""

from __future__ import annotations

import numpy as np

from ..train.callbacks import Callback
from .sequence import check_sequences, measure_sequences

__all__ = ["SequenceProbeCallback"]


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
        out = {
            "step": np.array([r["step"] for r in self.records], dtype=np.int64),
            "first_last": np.array([r["first_last"] for r in self.records]),
        }
        for part in ("forget_shut", "head_entropy", "head_top_share"):
            layers = self.records[-1][part] if self.records else {}
            out[part] = {k: np.stack([r[part][k] for r in self.records if k in r[part]]) for k in layers}
        return out
