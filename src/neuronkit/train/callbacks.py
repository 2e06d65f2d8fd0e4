"""Callbacks: code that runs at fixed points of ``fit`` (early stopping, checkpoints, schedules, NaN guard, logs,
progress). Each hook receives the ``Trainer``; setting ``trainer.stop_reason`` ends training after the current step.

Hooks, in order: ``on_train_begin``, then per epoch ``on_epoch_begin``, per step ``after_backward`` (may return
False to skip the update of this step), ``on_step_end``, then ``on_epoch_end`` (after validation), and finally
``on_train_end``.

In data-parallel training (``train.distributed``) every rank runs the callbacks, with the same (global) logs, except
those whose ``writes`` is True (files, the terminal: checkpoints, loggers, progress), which run on rank 0 only.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time

from .. import backend as B
from ..io import dumps_json
from ..io.files import write_error
from .checkpoint import clean_leftovers


class Callback:
    writes = False  # True: writes files or the terminal, so runs on rank 0 only in data-parallel training

    def on_train_begin(self, trainer) -> None: ...

    def on_epoch_begin(self, trainer) -> None: ...

    def after_backward(self, trainer, loss: float):
        return True

    def on_step_end(self, trainer, logs: dict) -> None: ...

    def on_epoch_end(self, trainer, logs: dict) -> None: ...

    def on_train_end(self, trainer) -> None: ...


def _improved(value, best, mode, min_delta):
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` (default ``val_loss``) has not improved by ``min_delta`` for ``patience`` epochs; with
    ``restore_best_weights`` (default True) the model gets back the weights of its best epoch."""

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 5,
        mode: str = "auto",
        min_delta: float = 0.0,
        restore_best_weights: bool = True,
    ):
        if patience < 0:
            raise ValueError(f"EarlyStopping: patience must be >= 0, got {patience}")
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        lower_is_better = "loss" in monitor or monitor.endswith(("mse", "mae"))
        self.mode = mode if mode != "auto" else ("min" if lower_is_better else "max")
        if self.mode not in ("min", "max"):
            raise ValueError(f"EarlyStopping: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.restore_best_weights = restore_best_weights
        self.best, self.best_epoch, self.wait, self.best_state = None, None, 0, None

    def on_epoch_end(self, trainer, logs):
        if self.monitor not in logs:
            raise KeyError(f"EarlyStopping: monitored value {self.monitor!r} not in the epoch logs {sorted(logs)}")
        value = logs[self.monitor]
        if _improved(value, self.best, self.mode, self.min_delta):
            self.best, self.best_epoch, self.wait = value, logs["epoch"], 0
            if self.restore_best_weights:
                self.best_state = trainer.model.state_dict()
        else:
            self.wait += 1
            if self.wait >= self.patience:
                trainer.stop_reason = (
                    f"early stopping: {self.monitor} did not improve for {self.patience} epochs "
                    f"(best {self.best:.6g} at epoch {self.best_epoch})"
                )

    def on_train_end(self, trainer):
        if self.restore_best_weights and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


class StopOnNaN(Callback):
    """Stop at the step where the loss or a gradient becomes non-finite, before any update is applied from it.

    ``trainer.stop_reason`` names the step, and the first parameter (in ``named_parameters`` order) whose gradient is
    affected; ``reason`` holds the same text (None while training is finite), so a caller can tell a divergence from
    another stop."""

    reason: str | None = None

    def after_backward(self, trainer, loss):
        bad = None
        if not math.isfinite(loss):
            bad = f"the loss is {loss}"
        for name, p in trainer.model.named_parameters():
            if p.grad is not None and not B.xp.isfinite(p.grad.data).all():
                bad = (bad + "; " if bad else "") + f"the gradient of {name!r} is non-finite"
                break
        if bad:
            self.reason = f"stopped at step {trainer.step + 1}: {bad}; no update was applied from this step"
            trainer.stop_reason = self.reason
            return False
        return True


class ClipGradNorm(Callback):
    """Rescale all gradients to a global L2 norm of at most ``max_norm`` after each backward, before the update
    (``optim.clip_grad_norm``). ``last_norm`` is the last step's norm before clipping."""

    def __init__(self, max_norm: float):
        if isinstance(max_norm, bool) or not isinstance(max_norm, (int, float)) or not max_norm > 0:
            raise ValueError(f"ClipGradNorm: max_norm must be a number > 0, got {max_norm!r}")
        self.max_norm = float(max_norm)
        self.last_norm = float("nan")

    def after_backward(self, trainer, loss):
        from ..optim import clip_grad_norm

        params = [p for p in trainer.model.parameters() if p.grad is not None]
        if params:
            self.last_norm = clip_grad_norm(params, self.max_norm)
        return True


class LRScheduler(Callback):
    """Advance an ``optim`` schedule every epoch (default) or every step; ``ReduceLROnPlateau`` gets ``monitor``."""

    def __init__(self, scheduler, per: str = "epoch", monitor: str = "val_loss"):
        if per not in ("epoch", "step"):
            raise ValueError(f"LRScheduler: per must be 'epoch' or 'step', got {per!r}")
        self.scheduler, self.per, self.monitor = scheduler, per, monitor

    def _plateau(self):
        return type(self.scheduler).__name__ == "ReduceLROnPlateau"

    def on_step_end(self, trainer, logs):
        if self.per == "step" and not self._plateau():
            self.scheduler.step()

    def on_epoch_end(self, trainer, logs):
        if self.per == "epoch":
            if self._plateau():
                key = self.monitor if self.monitor in logs else "loss"
                self.scheduler.step(logs[key])
            else:
                self.scheduler.step()


class ModelCheckpoint(Callback):
    """Save a resumable checkpoint (see ``train.checkpoint``) every ``every_steps`` steps and/or at each epoch end,
    and at the end of training; keeps the ``keep`` most recent. At the start, removes what saves killed earlier left
    behind (``checkpoint.clean_leftovers``). After a save fails (disk full), the end of training does not try again:
    the error propagates once, and the previous checkpoint is the one to resume from."""

    writes = True

    def __init__(self, directory, every_steps: int | None = None, every_epoch: bool = True, keep: int = 2):
        self.directory, self.every_steps, self.every_epoch = os.fspath(directory), every_steps, every_epoch
        self.keep = keep
        self._failed = False

    def _save(self, trainer) -> None:
        try:
            trainer.save_checkpoint(self.directory, keep=self.keep)
        except BaseException:
            self._failed = True
            raise

    def on_train_begin(self, trainer):
        self._failed = False
        clean_leftovers(self.directory)

    def on_step_end(self, trainer, logs):
        if self.every_steps and trainer.step % self.every_steps == 0:
            self._save(trainer)

    def on_epoch_end(self, trainer, logs):
        if self.every_epoch:
            self._save(trainer)

    def on_train_end(self, trainer):
        if not self._failed:
            self._save(trainer)


class JSONLLogger(Callback):
    """Append one strict-JSON line per epoch (and per step with ``steps=True``) to ``path``, flushed at each epoch's
    end. A write that fails (disk full) raises ``io.WriteError`` naming the file, once."""

    writes = True

    def __init__(self, path, steps: bool = False):
        self.path, self.steps, self._f = os.fspath(path), steps, None

    def on_train_begin(self, trainer):
        self._f = open(self.path, "a")

    def _write(self, record: dict, flush: bool) -> None:
        if self._f is None:
            return
        try:
            self._f.write(dumps_json(record) + "\n")
            if flush:
                self._f.flush()
        except OSError as e:
            f, self._f = self._f, None
            with contextlib.suppress(OSError):  # closing flushes again: the same error, not a second one
                f.close()
            raise write_error(e, self.path) from None

    def on_step_end(self, trainer, logs):
        if self.steps:
            self._write({"kind": "step", **logs}, flush=False)

    def on_epoch_end(self, trainer, logs):
        self._write({"kind": "epoch", **logs}, flush=True)

    def on_train_end(self, trainer):
        if self._f:
            f, self._f = self._f, None
            try:
                f.close()
            except OSError as e:
                raise write_error(e, self.path) from None


class CSVLogger(Callback):
    """One CSV row per epoch (columns from the first epoch's logs) to ``path``."""

    writes = True

    def __init__(self, path):
        self.path, self._cols = os.fspath(path), None

    def on_epoch_end(self, trainer, logs):
        new = self._cols is None
        if new:
            self._cols = list(logs)
        with open(self.path, "a") as f:
            if new:
                f.write(",".join(self._cols) + "\n")
            f.write(",".join("" if logs.get(c) is None else str(logs.get(c)) for c in self._cols) + "\n")


class ProgressBar(Callback):
    """A one-line progress bar on stderr with loss, metrics and time left; silent when stderr is not a terminal."""

    writes = True

    def __init__(self, stream=None, force: bool = False):
        self.stream = stream or sys.stderr
        self.enabled = force or getattr(self.stream, "isatty", lambda: False)()
        self._t0 = self._last = 0.0

    def on_epoch_begin(self, trainer):
        self._t0 = time.perf_counter()

    def on_step_end(self, trainer, logs):
        if not self.enabled:
            return
        now = time.perf_counter()
        total = trainer.steps_per_epoch
        done = trainer.step_in_epoch
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        frac = done / total if total else 0.0
        left = (now - self._t0) / done * (total - done) if done else 0.0
        bar = "#" * int(24 * frac)
        self.stream.write(
            f"\repoch {trainer.epoch + 1}/{trainer.epochs} [{bar:<24}] {done}/{total} "
            f"loss {logs['loss']:.4f}  {left:5.1f}s left "
        )
        self.stream.flush()

    def on_epoch_end(self, trainer, logs):
        if not self.enabled:
            return
        shown = "  ".join(f"{k} {v:.4f}" for k, v in logs.items() if isinstance(v, float) and k not in ("lr", "time"))
        self.stream.write(f"\repoch {logs['epoch']}/{trainer.epochs}  {shown}  ({logs['time']:.1f}s)\033[K\n")
        self.stream.flush()
