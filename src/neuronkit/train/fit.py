"""``fit``, ``evaluate``, ``predict``: the training loop, measured on data the network does not train on.

``Trainer`` owns one run: the model, the loss, the optimizer, metrics and callbacks, the step and epoch counters and
the ``History``. A run is reproducible (one ``seed`` drives shuffling and the default generator used by dropout) and
resumable: ``save_checkpoint`` stores everything needed so that ``fit(..., resume=dir)`` continues mid-epoch and ends
with weights bit-identical to an uninterrupted run. Ctrl-C finishes the current step, saves a checkpoint when a
``ModelCheckpoint`` is attached, and returns the history with ``interrupted=True`` (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from .. import backend as B
from .. import creation, optim
from ..io import FormatError
from ..nn.losses import get_loss
from . import checkpoint as ckpt
from .callbacks import Callback, LRScheduler, ModelCheckpoint, ProgressBar
from .distributed import get_communicator
from .evaluation import as_loader, as_target, forward_inputs, plain, predict, run_evaluation, split_batch
from .history import History
from .memory import check_fit_memory, eval_batch_size, sample_costs
from .metrics import get_metric
from .parallel import DataParallel

_CLASSIFICATION = {"cross_entropy", "nll", "hinge", "CrossEntropyLoss", "NLLLoss", "HingeLoss"}


class Trainer:
    """One training run; see the module docstring. ``fit(model, train, ...)`` builds one and calls ``fit``.

    ``comm`` chooses data-parallel training (``train.distributed``): by default it is on when the process was started
    by ``mpiexec``/``srun`` with more than one process; ``parallel`` is then the ``DataParallel`` helper, else None."""

    def __init__(
        self,
        model,
        loss="cross_entropy",
        optimizer="adam",
        lr: float | None = None,
        metrics=None,
        callbacks=(),
        scheduler=None,
        seed: int | None = None,
        progress: bool = True,
        comm="auto",
    ):
        self.model = model
        self.comm = get_communicator(comm)
        self.parallel = DataParallel(self.comm, model) if self.comm.size > 1 else None
        self.loss_name, self.loss_fn = _loss(loss)
        self.optimizer = optim.make_optimizer(optimizer, model.parameters(), **({} if lr is None else {"lr": lr}))
        self.metrics = _metrics(metrics, self.loss_name)
        self.callbacks = list(callbacks)
        if scheduler is not None:
            self.callbacks.append(scheduler if isinstance(scheduler, Callback) else LRScheduler(scheduler))
        if progress and not any(isinstance(c, ProgressBar) for c in self.callbacks):
            self.callbacks.append(ProgressBar())
        if self.comm.rank != 0:  # data-parallel: only rank 0 writes files and to the terminal
            self.callbacks = [cb for cb in self.callbacks if not cb.writes]
        self.seed = seed
        self.history = History()
        self.step = self.epoch = self.step_in_epoch = 0
        self.epochs = self.steps_per_epoch = 0
        self.stop_reason = None
        self.loader = None
        self._partial = (0.0, 0)  # loss sum and count of the current epoch so far
        self._interrupts = 0

    # -- one step ---------------------------------------------------------------------------------------------------
    def train_step(self, batch) -> float:
        """One step on ``batch``: forward, loss, backward, callbacks' ``after_backward``, the update, the metrics.

        Returns the loss. The update is ``optimizer.step_and_zero_grad()``; a callback returning False from
        ``after_backward`` vetoes it (the gradients are dropped, the metrics not updated).
        """
        inputs, y = split_batch(batch)
        if self.parallel is None:
            out = forward_inputs(self.model, inputs)
            loss = self.loss_fn(out, as_target(y))
            loss.backward()
            value = float(loss.item())
        else:  # this rank's shard; the gradients and the loss come back summed over the global batch
            out, value = self.parallel.forward_backward(
                lambda: forward_inputs(self.model, inputs),
                lambda o: self.loss_fn(o, as_target(y)),
                self.loader.batch_rows,
                len(inputs[0]),
                self._interrupts > 0,
            )
        apply = True
        for cb in self.callbacks:  # every callback sees the gradients, even after one has vetoed the update
            if cb.after_backward(self, value) is False:
                apply = False
        if not apply:
            self.optimizer.zero_grad()
            return value
        self.optimizer.step_and_zero_grad()
        if y is not None:
            for m in self.metrics:
                m.update(y, out.data)
        return value

    # -- the loop ---------------------------------------------------------------------------------------------------
    def fit(
        self, train, epochs: int = 1, batch_size: int = 32, shuffle: bool = True, validation=None, resume=None
    ) -> History:
        """Train for ``epochs`` epochs (counted from the start of the run, also when resuming); returns the history.

        ``train``/``validation``: a DataLoader, a dataset or a tuple ``(x, y)``. Validation runs after each epoch.
        ``resume``: a checkpoint root (see ``train.checkpoint``); the run continues where that checkpoint stopped.
        """
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"fit: epochs must be a positive int, got {epochs!r}")
        if self.seed is not None:
            creation.manual_seed(self.seed)
        elif self.parallel is not None:  # unseeded, but the same draws on every rank
            creation.manual_seed(self.parallel.common_seed())
        try:
            val_loader = self._set_up(train, epochs, batch_size, shuffle, validation, resume)
        except Exception as e:
            if self.parallel is None:
                raise
            self.parallel.agree_on_setup(e)  # raises on the lowest failing rank; the others exit quietly
        if self.parallel is not None:  # one model: rank 0's weights everywhere; each rank reads its shards
            self.parallel.agree_on_setup(None)
            gens = {"loader": self.loader.generator, "default": creation.get_generator(None)}
            self.parallel.agree_on_setup(self.parallel.randomness_error({**gens, **_module_generators(self.model)}))
            self.parallel.broadcast_weights()
            self.loader.shard = (self.comm.rank, self.comm.size)
        try:
            return self._loop(epochs, val_loader)
        except Exception as e:
            if self.parallel is None:
                raise
            self.parallel.fail(e)  # this rank alone: the others would wait for it

    def _set_up(self, train, epochs, batch_size, shuffle, validation, resume):
        """The loaders, the memory check and the restored checkpoint; returns the validation loader (or None)."""
        self.loader = as_loader(train, batch_size, shuffle, seed=self.seed, what="training data")
        measured = sample_costs(self.model, self.loader)
        val_loader = None
        if validation is not None:  # batches of up to 1,024 samples, fewer for a wide convolution's im2col
            val_loader = as_loader(validation, eval_batch_size(measured, batch_size), False, what="validation data")
        self.epochs, self.steps_per_epoch = epochs, len(self.loader)
        eval_batch = 0 if val_loader is None else val_loader.batch_size
        check_fit_memory(self.model, self.loader, self.optimizer, eval_batch, measured)
        if resume is not None:
            self._restore(resume)
        return val_loader

    def _loop(self, epochs, val_loader) -> History:
        previous = self._install_sigint()
        try:
            for cb in self.callbacks:
                cb.on_train_begin(self)
            while self.epoch < epochs and self.stop_reason is None:
                self._run_epoch(val_loader)
            if self.stop_reason and not self.history.interrupted:
                self.history.stopped_early = self.stop_reason
        finally:
            self._restore_sigint(previous)
            for cb in self.callbacks:
                cb.on_train_end(self)
        return self.history

    def _run_epoch(self, val_loader) -> None:
        self.model.train()
        resumed = self._partial != (0.0, 0) or self.step_in_epoch
        if not resumed:
            for m in self.metrics:
                m.reset()
        for cb in self.callbacks:
            cb.on_epoch_begin(self)
        loss_sum, count = self._partial
        t0 = time.perf_counter()
        for batch in self.loader:
            ts = time.perf_counter()
            value = self.train_step(batch)
            self.step += 1
            self.step_in_epoch += 1
            loss_sum, count = loss_sum + value, count + 1
            self._partial = (loss_sum, count)
            logs = {
                "step": self.step,
                "epoch": self.epoch + 1,
                "loss": value,
                "lr": float(self.optimizer.param_groups[0]["lr"]),
                "time": time.perf_counter() - ts,
            }
            self.history.steps.append(logs)
            for cb in self.callbacks:
                cb.on_step_end(self, logs)
            if self._interrupts if self.parallel is None else self.parallel.interrupted:  # all ranks stop together
                self.stop_reason = "interrupted by Ctrl-C"
                self.history.interrupted = True
            if self.stop_reason is not None:
                if self.step_in_epoch < self.steps_per_epoch:
                    return  # a mid-epoch stop: no epoch record; a checkpoint taken now resumes inside the epoch
                break
        self.epoch += 1
        self.step_in_epoch = 0
        self._partial = (0.0, 0)
        logs = {"epoch": self.epoch, "loss": loss_sum / max(count, 1)}
        if self.parallel is not None:
            self.parallel.reduce_metrics(self.metrics)
        for m in self.metrics:
            logs[m.name] = plain(m.compute())
        if val_loader is not None:
            for k, v in self.evaluate(val_loader).items():
                logs[f"val_{k}"] = v
        logs.update(lr=self.lr, time=time.perf_counter() - t0, steps=self.step)
        if self.parallel is not None:
            logs = self.parallel.agree(logs)
        self.history.epochs.append(logs)
        for cb in self.callbacks:
            cb.on_epoch_end(self, logs)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- evaluation -------------------------------------------------------------------------------------------------
    def evaluate(self, data, batch_size: int = 256) -> dict:
        """Loss and metrics on ``data`` with the model in eval mode and no graph recorded (mode restored after)."""
        metrics = [get_metric(m.name) for m in self.metrics]
        return run_evaluation(self.model, self.loss_fn, metrics, data, batch_size, self.parallel)

    def predict(self, x, batch_size: int = 256):
        """The model's outputs for inputs ``x`` (array or dataset), batch by batch, in eval mode; a NumPy array."""
        return predict(self.model, x, batch_size)

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The JSON-able part of a checkpoint: counters, loader and generator states, schedules, history."""
        rngs = {name: g.bit_generator.state for name, g in _module_generators(self.model).items()}
        scheds = [cb.scheduler.state_dict() for cb in self.callbacks if isinstance(cb, LRScheduler)]
        return {
            "step": self.step,
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "partial_loss": list(self._partial),
            "loader": self.loader.state_dict() if self.loader else None,
            "default_generator": creation.get_generator(None).bit_generator.state,
            "module_generators": rngs,
            "schedulers": scheds,
            "history": self.history.state_dict(),
        }

    def save_checkpoint(self, root, keep: int = 2) -> str:
        return ckpt.save_checkpoint(root, self.model, self.optimizer, self.state_dict(), keep=keep)

    def _restore(self, root) -> None:
        _, state = ckpt.load_checkpoint(root, model=self.model, optimizer=self.optimizer)
        try:
            self._apply_state(state)
        except (TypeError, ValueError, KeyError, IndexError, OverflowError) as e:
            where = os.path.join(ckpt.checkpoint_dir(root), ckpt.TRAINER_FILE)
            raise FormatError(f"{where}: cannot restore the training state: {e}") from None

    def _apply_state(self, state: dict) -> None:
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self._partial = tuple(state["partial_loss"])
        if state.get("loader"):
            self.loader.load_state_dict(state["loader"])
        creation.get_generator(None).bit_generator.state = state["default_generator"]
        generators = _module_generators(self.model)
        for name, s in state.get("module_generators", {}).items():
            if name in generators:
                generators[name].bit_generator.state = s
        scheds = [cb.scheduler for cb in self.callbacks if isinstance(cb, LRScheduler)]
        for sched, s in zip(scheds, state.get("schedulers", [])):
            sched.load_state_dict(s)
        self.history = History.from_state(state.get("history", {}))
        self.history.interrupted = False

    # -- Ctrl-C -----------------------------------------------------------------------------------------------------
    def _install_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            self._interrupts += 1
            if self._interrupts > 1:
                raise KeyboardInterrupt

        return signal.signal(signal.SIGINT, handler)

    def _restore_sigint(self, previous) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        self._interrupts = 0


def _module_generators(model) -> dict:
    """Module name -> the module's own random generator (its ``generator`` attribute, as ``nn.Dropout`` has)."""
    return {name: g for name, m in model.named_modules() if B.is_generator(g := getattr(m, "generator", None))}


def fit(
    model,
    train,
    loss="cross_entropy",
    optimizer="adam",
    lr: float | None = None,
    epochs: int = 1,
    batch_size: int = 32,
    shuffle: bool = True,
    validation=None,
    metrics=None,
    callbacks=(),
    scheduler=None,
    seed: int | None = None,
    resume=None,
    progress: bool = True,
    comm="auto",
) -> History:
    """Train ``model`` on ``train`` and return its ``History`` (see ``Trainer`` for every argument).

    ``loss``: a name (``"cross_entropy"``, ``"mse"``, ...) or a loss module. ``optimizer``: a name (``"adam"``,
    ``"sgd"``, ...) with ``lr``, or an ``optim.Optimizer``. ``metrics``: names (default accuracy for classification
    losses, MAE otherwise). ``scheduler``: an ``optim`` schedule stepped every epoch (wrap it in
    ``callbacks.LRScheduler(s, per="step")`` for per-step schedules). ``seed`` makes the run repeatable.
    ``comm``: ``"auto"`` (data-parallel over MPI when started by ``mpiexec -n N`` with N > 1, see
    ``train.distributed``), ``"mpi"``, ``"single"``, or a ``distributed.Communicator``.
    """
    trainer = Trainer(model, loss, optimizer, lr, metrics, callbacks, scheduler, seed, progress, comm)
    return trainer.fit(
        train, epochs=epochs, batch_size=batch_size, shuffle=shuffle, validation=validation, resume=resume
    )


def evaluate(model, data, loss="cross_entropy", metrics=None, batch_size: int = 256) -> dict:
    """Loss and metrics of ``model`` on ``data`` (eval mode, no graph); ``loss`` and ``metrics`` as for ``fit``."""
    loss_name, loss_fn = _loss(loss)
    return run_evaluation(model, loss_fn, _metrics(metrics, loss_name), data, batch_size)


def _loss(loss) -> tuple:
    """``(name, loss module)`` for a loss name or a loss module."""
    if isinstance(loss, str):
        return loss, get_loss(loss)
    return type(loss).__name__, loss


def _metrics(metrics, loss_name: str) -> list:
    """Fresh metrics for ``metrics`` (names or objects); by default accuracy for classification losses, else MAE."""
    if metrics is None:
        metrics = ["accuracy"] if loss_name in _CLASSIFICATION else ["mae"]
    return [get_metric(m) for m in metrics]


__all__ = ["ModelCheckpoint", "Trainer", "evaluate", "fit", "predict"]
