"""``fit``, ``evaluate``, ``predict``: the training loop, measured on data the network does not train on.

``Trainer`` owns one run: the model, the loss, the optimizer, metrics and callbacks, the step and epoch counters and
the ``History``. A run is reproducible (one ``seed`` drives shuffling and the default generator used by dropout) and
resumable: ``save_checkpoint`` stores everything needed so that ``fit(..., resume=dir)`` continues mid-epoch and ends
with weights bit-identical to an uninterrupted run. Ctrl-C finishes the current step, saves a checkpoint when a
``ModelCheckpoint`` is attached, and returns the history with ``interrupted=True`` (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import signal
import threading
import time

from .. import backend as B
from .. import creation, optim
from ..autograd.grad_mode import no_grad
from ..data import ArrayDataset, DataLoader, SequenceDataset
from ..nn.losses import get_loss
from ..tensor import Tensor
from . import checkpoint as ckpt
from .callbacks import Callback, LRScheduler, ModelCheckpoint, ProgressBar
from .history import History
from .metrics import get_metric

OPTIMIZERS = {
    "sgd": optim.SGD,
    "adam": optim.Adam,
    "adamw": optim.AdamW,
    "rmsprop": optim.RMSprop,
    "adagrad": optim.Adagrad,
    "nadam": optim.NAdam,
    "lion": optim.Lion,
}
_CLASSIFICATION = {"cross_entropy", "nll", "hinge", "CrossEntropyLoss", "NLLLoss", "HingeLoss"}


def make_optimizer(spec, params, lr: float | None = None):
    """An optimizer from a name in ``OPTIMIZERS`` (with ``lr``), or ``spec`` itself if it already is one."""
    if isinstance(spec, optim.Optimizer):
        return spec
    if spec not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec!r}; known: {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[spec](params, **({} if lr is None else {"lr": lr}))


def as_loader(data, batch_size: int, shuffle: bool, seed=None, what: str = "data") -> DataLoader:
    """A DataLoader for ``data``: a DataLoader, a dataset, or a tuple ``(x, y)`` of arrays."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(f"{what}: expected a tuple (x, y), got a tuple of {len(data)} items")
        data = ArrayDataset(*data)
    if not hasattr(data, "__len__"):
        raise TypeError(f"{what}: expected a DataLoader, a dataset or a tuple (x, y), got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{what}: the dataset is empty")
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed)


def _split_batch(batch):
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return tuple(batch[:-1]), batch[-1]
    return (batch if not isinstance(batch, (tuple, list)) else batch[0],), None


def _target(y):
    if y is None:
        return None
    y = B.asarray(y)
    return y if y.dtype.kind in "iub" else Tensor(y)


# An optimizer that keeps these two (most do) can take its step through ``step_and_zero_grad``, which does the same.
_BASE_STEP, _BASE_ZERO_GRAD = optim.Optimizer.step, optim.Optimizer.zero_grad


class Trainer:
    """One training run; see the module docstring. ``fit(model, train, ...)`` builds one and calls ``fit``."""

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
    ):
        self.model = model
        self.loss_name = loss if isinstance(loss, str) else type(loss).__name__
        self.loss_fn = get_loss(loss) if isinstance(loss, str) else loss
        self.optimizer = make_optimizer(optimizer, model.parameters(), lr)
        if metrics is None:
            metrics = ["accuracy"] if self.loss_name in _CLASSIFICATION else ["mae"]
        self.metrics = [get_metric(m) for m in metrics]
        self.callbacks = list(callbacks)
        if scheduler is not None:
            self.callbacks.append(scheduler if isinstance(scheduler, Callback) else LRScheduler(scheduler))
        if progress and not any(isinstance(c, ProgressBar) for c in self.callbacks):
            self.callbacks.append(ProgressBar())
        self.seed = seed
        self.history = History()
        self.step = self.epoch = self.step_in_epoch = 0
        self.epochs = self.steps_per_epoch = 0
        self.stop_reason = None
        self.loader = None
        self._partial = (0.0, 0)  # loss sum and count of the current epoch so far
        self._interrupts = 0

    # -- one step ---------------------------------------------------------------------------------------------------
    def _forward(self, inputs):
        return self.model(*[Tensor(B.asarray(a)) for a in inputs])

    def train_step(self, batch) -> float:
        if type(batch) is tuple and len(batch) == 2:  # (x, y), the usual batch: the same as the general case below
            x, y = batch
            out = self.model(Tensor(B.asarray(x)))
        else:
            inputs, y = _split_batch(batch)
            out = self._forward(inputs)
        loss = self.loss_fn(out, _target(y))
        loss.backward()
        value = float(loss.item())
        apply = True
        for cb in self.callbacks:  # every callback sees the gradients, even after one has vetoed the update
            if cb.after_backward(self, value) is False:
                apply = False
        opt = self.optimizer
        if not apply:
            opt.zero_grad()
        elif type(opt).step is _BASE_STEP and type(opt).zero_grad is _BASE_ZERO_GRAD:
            opt.step_and_zero_grad()  # the gradients are dropped at once: the optimizer may reuse their memory
        else:
            opt.step()
            opt.zero_grad()
        if apply and y is not None:
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
        self.loader = as_loader(train, batch_size, shuffle, seed=self.seed, what="training data")
        val_loader = (
            None if validation is None else as_loader(validation, max(batch_size, 1024), False, what="validation data")
        )
        self.epochs, self.steps_per_epoch = epochs, len(self.loader)
        if resume is not None:
            self._restore(resume)
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
            if self._interrupts:
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
        for m in self.metrics:
            logs[m.name] = _plain(m.compute())
        if val_loader is not None:
            for k, v in self.evaluate(val_loader).items():
                logs[f"val_{k}"] = v
        logs.update(lr=self.lr, time=time.perf_counter() - t0, steps=self.step)
        self.history.epochs.append(logs)
        for cb in self.callbacks:
            cb.on_epoch_end(self, logs)

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # -- evaluation -------------------------------------------------------------------------------------------------
    def evaluate(self, data, batch_size: int = 256) -> dict:
        """Loss and metrics on ``data`` with the model in eval mode and no graph recorded (mode restored after)."""
        loader = as_loader(data, batch_size, False, what="evaluation data")
        metrics = [get_metric(m.name) for m in self.metrics]
        was = self.model.training
        self.model.eval()
        total, n = 0.0, 0
        try:
            with no_grad():
                for batch in loader:
                    inputs, y = _split_batch(batch)
                    out = self._forward(inputs)
                    k = len(y)
                    total += float(self.loss_fn(out, _target(y)).item()) * k
                    n += k
                    for m in metrics:
                        m.update(y, out.data)
        finally:
            self.model.train(was)
        result = {"loss": total / max(n, 1)}
        for m in metrics:
            result[m.name] = _plain(m.compute())
        return result

    def predict(self, x, batch_size: int = 256):
        """The model's outputs for inputs ``x`` (array or dataset), batch by batch, in eval mode; a NumPy array."""
        return predict(self.model, x, batch_size)

    # -- checkpoints ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The JSON-able part of a checkpoint: counters, loader and generator states, schedules, history."""
        rngs = {
            name: m._rng.bit_generator.state
            for name, m in self.model.named_modules()
            if getattr(m, "_rng", None) is not None
        }
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
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.step_in_epoch = int(state["step_in_epoch"])
        self._partial = tuple(state["partial_loss"])
        if state.get("loader"):
            self.loader.load_state_dict(state["loader"])
        creation.get_generator(None).bit_generator.state = state["default_generator"]
        modules = dict(self.model.named_modules())
        for name, s in state.get("module_generators", {}).items():
            if name in modules and getattr(modules[name], "_rng", None) is not None:
                modules[name]._rng.bit_generator.state = s
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


def _plain(v):
    """Metric values as JSON-able Python numbers or lists."""
    if hasattr(v, "tolist"):
        return v.tolist()
    return float(v) if isinstance(v, (int, float)) else v


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
) -> History:
    """Train ``model`` on ``train`` and return its ``History`` (see ``Trainer`` for every argument).

    ``loss``: a name (``"cross_entropy"``, ``"mse"``, ...) or a loss module. ``optimizer``: a name (``"adam"``,
    ``"sgd"``, ...) with ``lr``, or an ``optim.Optimizer``. ``metrics``: names (default accuracy for classification
    losses, MAE otherwise). ``scheduler``: an ``optim`` schedule stepped every epoch (wrap it in
    ``callbacks.LRScheduler(s, per="step")`` for per-step schedules). ``seed`` makes the run repeatable.
    """
    trainer = Trainer(model, loss, optimizer, lr, metrics, callbacks, scheduler, seed, progress)
    return trainer.fit(
        train, epochs=epochs, batch_size=batch_size, shuffle=shuffle, validation=validation, resume=resume
    )


def evaluate(model, data, loss="cross_entropy", metrics=None, batch_size: int = 256) -> dict:
    """Loss and metrics of ``model`` on ``data`` (eval mode, no graph)."""
    return Trainer(
        model, loss, optimizer=optim.SGD(model.parameters(), lr=0.0), metrics=metrics, progress=False
    ).evaluate(data, batch_size)


def predict(model, x, batch_size: int = 256):
    """``model``'s outputs for ``x`` (an array, or a dataset whose batches' first item is the input), in eval mode.

    A ``SequenceDataset``'s batches are ``(tokens, lengths[, labels])``: the model is called as
    ``model(tokens, lengths)``. Outputs are in the dataset's order."""
    if hasattr(x, "shape"):
        x = ArrayDataset(B.asarray(x))
    loader = as_loader(x, batch_size, False, what="prediction input")
    n_inputs = 2 if isinstance(loader.dataset, SequenceDataset) else 1
    was = model.training
    model.eval()
    outs = []
    try:
        with no_grad():
            for batch in loader:
                inputs = batch[:n_inputs] if isinstance(batch, (tuple, list)) else (batch,)
                outs.append(model(*[Tensor(B.asarray(a)) for a in inputs]).data)
    finally:
        model.train(was)
    return B.xp.concatenate(outs) if outs else B.xp.empty((0,))


__all__ = ["OPTIMIZERS", "ModelCheckpoint", "Trainer", "evaluate", "fit", "make_optimizer", "predict"]
