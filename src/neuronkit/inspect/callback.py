"""Callbacks of the insight layer: ``ProbeCallback`` (a ``Probe`` and an ``EventDetector`` driven by the training
loop) and ``GradCheckCallback`` (the whole-model gradient check repeated on sampled steps)."""

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

    def __init__(
        self,
        every: int = 100,
        max_records: int = 256,
        window: int = 3,
        bins: int = 32,
        probe=None,
        detector: EventDetector | None = None,
        verbose: bool = False,
    ):
        self.every, self.max_records, self.bins, self.verbose = every, max_records, bins, verbose
        self.probe = probe
        self.detector = detector if detector is not None else EventDetector(window=window)

    @property
    def events(self) -> list:
        return [] if self.probe is None else self.probe.events

    def on_train_begin(self, trainer) -> None:
        if self.probe is None or self.probe.model is not trainer.model:
            self.probe = Probe(trainer.model, every=self.every, max_records=self.max_records, bins=self.bins)
        comm = getattr(trainer, "comm", None)
        self.probe.comm = comm if comm is not None and comm.size > 1 else None  # statistics of the global batch
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
        if self.probe is not None:
            self.probe.active = False


class GradCheckCallback(Callback):
    """Repeat the whole-model float64 gradient check (``check_gradients``) on sampled steps during training.

    Every ``every`` training steps (after the update: the weights as training has made them) the model's
    backpropagated gradients on the fixed ``batch = (x, y)`` are compared with central differences for up to
    ``max_per_param`` entries per parameter. ``results`` keeps one dict per check: ``step``, ``ok``, ``loss`` and
    per layer ``max_rel_error`` / ``ok``. A failing check prints its report when ``verbose`` and stops training when
    ``stop_on_failure``. The loss is the trainer's own unless ``loss`` is given.
    """

    def __init__(
        self,
        batch,
        every: int = 500,
        max_per_param: int = 5,
        loss=None,
        seed: int = 0,
        stop_on_failure: bool = False,
        verbose: bool = False,
    ):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradCheckCallback: every must be a positive int, got {every!r}")
        self.batch, self.every, self.max_per_param, self.loss, self.seed = batch, every, max_per_param, loss, seed
        self.stop_on_failure, self.verbose = stop_on_failure, verbose
        self.results: list = []

    def on_step_end(self, trainer, logs) -> None:
        if trainer.step % self.every:
            return
        from .gradcheck import check_gradients

        report = check_gradients(
            trainer.model,
            self.batch,
            loss=self.loss if self.loss is not None else trainer.loss_fn,
            max_per_param=self.max_per_param,
            seed=self.seed,
        )
        layers = {name: {"max_rel_error": d["max_rel_error"], "ok": d["ok"]} for name, d in report.layers().items()}
        self.results.append({"step": trainer.step, "ok": report.ok, "loss": report.loss, "layers": layers})
        if not report.ok:
            if self.verbose:
                print(f"gradient check at step {trainer.step}:\n{report}", flush=True)
            if self.stop_on_failure:
                trainer.stop_reason = f"stopped at step {trainer.step}: the gradient check failed"
