"""Training set-up shared by ``neuronkit train`` and ``neuronkit diagnose --try-fix``: the data split and
standardisation, the loss, the optimizer, the schedule, gradient clipping and the probes, all from a ``TrainConfig``."""

from __future__ import annotations

import math

import numpy as np

from .. import optim
from ..data import DataLoader, train_test_split
from ..inspect import GradCheckCallback, Probe, ProbeCallback, SequenceProbeCallback
from ..inspect.sequence_callback import has_sequence_layers
from ..train import ClipGradNorm, StopOnNaN, Trainer, evaluate
from ..train.callbacks import LRScheduler as ScheduleCallback
from . import data as D
from .errors import CLIError
from .models import model_input_shape

CLASSIFICATION_METRICS = ["accuracy", "precision", "recall", "f1"]
REGRESSION_METRICS = ["mse", "mae", "r2"]
PROBE_RECORDS = 200  # records a run keeps by default (probe_every = total steps / this)
SEQUENCE_RECORDS, SEQUENCE_TEXTS = 50, 64  # a text run's sequence probes: about 50 records, on 64 training texts
SEQUENCE_MIN_EVERY = 20  # ... and at most one per 20 steps: each costs about one step (forward and backward)


def optimizer_options(cfg) -> dict:
    """The optimizer's keyword arguments from the settings: ``--lr`` and, when given, ``--weight-decay``."""
    kwargs = {"lr": cfg.lr}
    if cfg.weight_decay is not None:
        kwargs["weight_decay"] = cfg.weight_decay
    return kwargs


def probe_every(cfg, steps_per_epoch: int) -> int:
    """Steps between probe records: ``cfg.probe_every``, or about ``PROBE_RECORDS`` records over the run (0: off)."""
    if cfg.probe_every is not None:
        return cfg.probe_every
    return max(1, (cfg.epochs * steps_per_epoch) // PROBE_RECORDS)


def sequence_every(cfg, steps_per_epoch: int) -> int:
    """Steps between a text run's sequence probe records: ``probe_every`` when given (0: off), else about
    ``SEQUENCE_RECORDS`` records over the run but at most one per ``SEQUENCE_MIN_EVERY`` steps (each costs a forward
    and a backward of ``SEQUENCE_TEXTS`` texts, about one training step)."""
    if cfg.probe_every is not None:
        return cfg.probe_every
    return max(SEQUENCE_MIN_EVERY, (cfg.epochs * steps_per_epoch) // SEQUENCE_RECORDS)


def make_sequence_probe(cfg, model, loss: str, train, saved=None, resume_step: int | None = None):
    """A ``SequenceProbeCallback`` on the first ``SEQUENCE_TEXTS`` training texts for a text run whose model has
    recurrent or attention layers (continuing ``saved`` up to ``resume_step``); None for other runs or when probes are
    off."""
    if not isinstance(train, DataLoader) or not has_sequence_layers(model):
        return None
    every = sequence_every(cfg, math.ceil(n_samples(train) / cfg.batch_size))
    if every <= 0:
        return None
    probe = SequenceProbeCallback(first_samples(train, SEQUENCE_TEXTS), every=every, loss=loss)
    if saved is not None:
        probe.restore(saved, upto_step=resume_step)
    return probe


def make_trainer(
    cfg, model, loss: str, task: str, train, callbacks=(), probe_history=None, resume_step: int | None = None
) -> tuple:
    """``(trainer, probe, gradcheck)``: a ``Trainer`` for ``cfg`` and the training data ``train = (x, y)``, with the
    NaN guard first, then ``callbacks``, gradient clipping, the probe (a ``ProbeCallback``, or None when
    ``probe_every`` is 0), the schedule, and the repeated gradient check (a ``GradCheckCallback`` on the first 16
    training samples, or None when ``gradcheck_every`` is 0). ``probe_history`` (a saved ``ProbeHistory``) is
    continued up to ``resume_step`` when a run resumes. A text run's sequence probe (``make_sequence_probe``) is one
    of the ``callbacks`` when the caller wants it."""
    n_train = n_samples(train)
    optimizer = optim.make_optimizer(cfg.optimizer, model.parameters(), **optimizer_options(cfg))
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    cbs = [StopOnNaN(), *callbacks]
    if cfg.clip_grad_norm is not None:
        cbs.append(ClipGradNorm(cfg.clip_grad_norm))
    every = probe_every(cfg, steps_per_epoch)
    probe = None
    if every > 0:
        p = Probe(model, every=every)
        if probe_history is not None:
            p.restore(probe_history, upto_step=resume_step)
        probe = ProbeCallback(every=every, probe=p)
        cbs.insert(1, probe)  # before clipping: it records the gradients backpropagation gave
    schedule = make_schedule(cfg, optimizer, steps_per_epoch)
    if schedule is not None:
        cbs.append(schedule)
    gradcheck = None
    if cfg.gradcheck_every:
        gradcheck = GradCheckCallback(first_samples(train, 16), every=cfg.gradcheck_every, verbose=True)
        cbs.append(gradcheck)
    trainer = Trainer(
        model,
        loss=loss,
        optimizer=optimizer,
        callbacks=cbs,
        seed=cfg.seed,
        progress=False,
        metrics=["accuracy"] if task == "classification" else ["mae"],
    )
    return trainer, probe, gradcheck


def n_samples(data) -> int:
    """Samples in training data given as ``(x, y)`` arrays or as a ``DataLoader`` (a text run's)."""
    return len(data.dataset) if isinstance(data, DataLoader) else len(data[0])


def first_samples(data, k: int) -> tuple:
    """The first ``k`` samples as one batch: ``(x, y)``, or a text run's ``(tokens, lengths, labels)``."""
    if isinstance(data, DataLoader):
        return data.dataset.get_batch(np.arange(min(k, len(data.dataset))))
    return data[0][:k], data[1][:k]


def make_schedule(cfg, optimizer, steps_per_epoch: int):
    """The ``--schedule`` as an optim schedule plus how often it steps, or None."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "cosine":
        return ScheduleCallback(optim.CosineAnnealingLR(optimizer, T_max=total), per="step")
    if cfg.schedule == "step":
        return ScheduleCallback(optim.StepLR(optimizer, step_size=max(1, cfg.epochs // 3), gamma=0.1), per="epoch")
    if cfg.schedule == "onecycle":
        g = optimizer.param_groups[0]
        cycle = "momentum" in g or "betas" in g
        return ScheduleCallback(
            optim.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total, cycle_momentum=cycle), per="step"
        )
    warmup = min(max(1, total // 20), total - 1)
    return ScheduleCallback(optim.LinearWarmupCosine(optimizer, warmup_steps=warmup, total_steps=total), per="step")


def prepare(cfg, loaded: D.Loaded) -> tuple:
    """Validation split, standardisation (fitted on the training part only), shapes and checked labels."""
    x_tr, y_tr = loaded.x_train, loaded.y_train
    if len(x_tr) == 0 or len(loaded.x_test) == 0:
        raise CLIError(f"{cfg.data}: the training or test split is empty")
    x_va = y_va = None
    if cfg.val_fraction > 0:
        try:
            x_tr, x_va, y_tr, y_va = train_test_split(
                x_tr,
                y_tr,
                test_size=cfg.val_fraction,
                stratify=loaded.task == "classification",
                seed=np.random.default_rng([cfg.seed, 2]),
            )
        except ValueError as e:
            raise CLIError(f"val_fraction {cfg.val_fraction}: cannot split {len(x_tr)} training samples: {e}") from None
    sample_shape = loaded.sample_shape
    n_classes = len(loaded.classes)
    n_out = n_classes if loaded.task == "classification" else int(math.prod(loaded.y_train.shape[1:]) or 1)
    transform = D.fit_standardize(x_tr) if cfg.standardize else None
    info = {
        "name": loaded.name,
        "source": loaded.source,
        "task": loaded.task,
        "classes": loaded.classes,
        "num_outputs": n_out,
        "sample_shape": list(sample_shape),
        "model_input_shape": list(model_input_shape(cfg.model, sample_shape)),
        "standardize": None if transform is None else transform.state_dict(),
        "target_name": loaded.target_name,
        "pixel_max": loaded.pixel_max,
        "sizes": {"train": len(x_tr), "validation": 0 if x_va is None else len(x_va), "test": len(loaded.x_test)},
    }

    def part(x, y):
        return D.prepare_inputs(x, info, cfg.data), D.check_labels(y, loaded.task, n_out, cfg.data)

    val = None if x_va is None else part(x_va, y_va)
    return info, part(x_tr, y_tr), val, part(loaded.x_test, loaded.y_test)


def loss_name(cfg, task: str) -> str:
    if cfg.loss != "auto":
        return cfg.loss
    return "cross_entropy" if task == "classification" else "mse"


def test_metrics(model, test, task: str, loss: str) -> dict:
    metrics = CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
    result = evaluate(model, test, loss=loss, metrics=metrics)
    return {k: result[k] for k in [*metrics, "loss"]}
