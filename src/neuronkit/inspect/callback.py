"""``ProbeCallback``: a ``Probe`` and an ``EventDetector`` driven by the training loop."""

from __future__ import annotations

from ..train.callbacks import Callback
from .events import EventDetector
from .probes import Probe


class ProbeCallback(Callback):
    """Record per-neuron statistics every ``every`` training steps (steps 1, every + 1, ...) and detect events.

    The probe is switched on before the forward of a due step (in ``on_train_begin`` / ``on_step_end`` of the step
    before), records in ``after_backward`` (gradients known, update not yet applied) and is off on every other step,
    so those steps cost one attribute test per layer. ``probe`` (created at ``on_train_begin`` unless given) holds the
    history; ``events`` the events found (see ``inspect.events``); ``verbose`` prints each event's message.
    """

    def __init__(self, every: int = 100, max_records: int = 256, window: int = 3, bins: int = 32, probe=None,
                 detector: EventDetector | None = None, verbose: bool = False):  # fmt: skip
        self.every, self.max_records, self.bins, self.verbose = every, max_records, bins, verbose
        self.probe = probe
        self.detector = detector if detector is not None else EventDetector(window=window)

    @property
    def events(self) -> list:
        return [] if self.probe is None else self.probe.events

    def on_train_begin(self, trainer) -> None:
        if self.probe is None or self.probe.model is not trainer.model:
            self.probe = Probe(trainer.model, every=self.every, max_records=self.max_records, bins=self.bins)
        self._arm(trainer.step + 1)

    def _arm(self, step: int) -> None:
        if self.probe.due(step):
            self.probe.begin(step)
        else:
            self.probe.active = False

    def after_backward(self, trainer, loss):
        if self.probe.active:
            done = self.probe.commit(lr=trainer.lr)
            new = self.detector.check(self.probe, done)
            self.probe.events.extend(new)
            if self.verbose:
                for ev in new:
                    print(ev["message"], flush=True)
        return True

    def on_step_end(self, trainer, logs) -> None:
        self._arm(trainer.step + 1)

    def on_train_end(self, trainer) -> None:
        self.probe.active = False
