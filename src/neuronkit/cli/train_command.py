"""``neuronkit train``: resolve the settings, set up the data and the model, open the run directory (or continue
one with ``--resume``), train with the callbacks that write the run, then save and report the result.

Exit status: 0 when training ends (all epochs, or early stopping); 1 when it diverged (the NaN guard stopped it: the
run is still written, with null for every non-finite number, so that ``neuronkit diagnose`` can explain it); 130
after Ctrl-C (a checkpoint is saved and the run resumes with ``--resume``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from .. import __version__, creation, io
from ..train import EarlyStopping, JSONLLogger, ModelCheckpoint, ProgressBar, StopOnNaN, latest_checkpoint
from ..train.callbacks import Callback
from ..train.checkpoint import read_trainer_state
from ..train.oversubscription import WarnOnOversubscription
from . import config as C
from . import data as D
from . import insight, text
from . import training as T
from .errors import CLIError
from .models import build_model
from .rundir import RunDir


# -- printing -----------------------------------------------------------------------------------------------------
def fmt(v) -> str:
    """A number as the command line prints it: 4 decimals in the usual range, 3 significant digits outside it."""
    if isinstance(v, float):
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.3g}"
    return str(v)


class EpochPrinter(Callback):
    """One line per epoch on stdout (loss, training and validation metrics, time), readable when piped.

    After a resume inside an epoch, that epoch's training metrics count only the steps run since the resume (the
    checkpoint keeps the loss of the steps before it, not the metrics' counts): the line says so."""

    def __init__(self, stream=None):
        self.stream = stream
        self._resumed_at = 0

    def on_train_begin(self, trainer):
        self._resumed_at = trainer.step_in_epoch  # > 0 only when a checkpoint taken inside an epoch was restored

    def on_epoch_end(self, trainer, logs):
        partial = {m.name for m in trainer.metrics} if self._resumed_at else set()
        note = f" (steps {self._resumed_at + 1}-{trainer.steps_per_epoch} only, since resuming)"
        self._resumed_at = 0
        skip = {"epoch", "time", "steps", "lr"}
        parts = [f"epoch {logs['epoch']:>{len(str(trainer.epochs))}}/{trainer.epochs}"]
        parts += [
            f"{k} {fmt(v)}" + (note if k in partial else "")
            for k, v in logs.items()
            if k not in skip and isinstance(v, (int, float))
        ]
        parts += [f"lr {logs['lr']:.3g}", f"{logs['time']:.1f}s"]
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


class _Bar(ProgressBar):
    """The progress bar within an epoch; the epoch's line itself comes from ``EpochPrinter``."""

    def on_epoch_end(self, trainer, logs):
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


# -- settings -----------------------------------------------------------------------------------------------------
def resolve_train_config(args) -> tuple:
    """``(config, run)``: the resolved settings, and the run directory to continue (None for a new run).

    With ``--resume`` the run's saved settings are used; only ``epochs`` may differ from them."""
    file_values = C.load_toml(args.config) if args.config else {}
    flags = {k: getattr(args, k, None) for k in C.KEYS}
    if args.resume is None:
        return C.resolve(file_values, flags, where=f"config file {args.config}"), None
    run = RunDir.open(args.resume)
    saved = C.resolve(C.from_mapping(run.config["config"], f"{run.config_path}")).to_dict()
    given = {**file_values, **{k: v for k, v in flags.items() if v is not None}}
    if given.get("out") is not None and Path(given["out"]).resolve() == run.path.resolve():
        del given["out"]
    asked = C.resolve({**saved, **given}).to_dict()
    changed = sorted(k for k in given if k != "epochs" and asked[k] != saved[k])
    if changed:
        raise CLIError(
            f"--resume continues the run in {run.path} with its saved settings; only --epochs can change "
            f"(got {', '.join('--' + k.replace('_', '-') for k in changed)})"
        )
    cfg = C.resolve(saved, {"epochs": given.get("epochs")})
    cfg.out = str(run.path)
    return cfg, run


# -- data and model -----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Setup:
    """What a run trains: the loaded data, its prepared splits (``(x, y)`` arrays, or a text run's loaders) and
    description (``info``), the task, the loss, the model, and a text run's encoder (None otherwise)."""

    loaded: object
    info: dict
    train: object
    val: object
    test: object
    task: str
    loss: str
    model: object
    encoder: object = None


def set_up(cfg, resume_run: RunDir | None) -> Setup:
    """Load and split the data (a text run's through ``cli.text``), and build the model from the run's seed."""
    encoder = None
    if text.is_text_config(cfg):
        loaded, info, train, val, test, encoder = text.prepare(cfg, resume_run)
    else:
        loaded = D.load_data(cfg)
        info, train, val, test = T.prepare(cfg, loaded)
    task = info["task"]
    creation.manual_seed(cfg.seed)
    model = build_model(
        cfg, tuple(info["model_input_shape"]), info["num_outputs"], text.vocab_size(info), training=True
    )
    return Setup(loaded, info, train, val, test, task, T.loss_name(cfg, task), model, encoder)


# -- the run directory and resuming -------------------------------------------------------------------------------
@dataclasses.dataclass
class Resume:
    """Where a resumed run continues: the checkpoint root (None when the run has no checkpoint: it starts again),
    the checkpoint's step, completed epochs and steps into the next epoch, and the neurons' history to continue."""

    checkpoints: Path | None = None
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    probe_history: object = None
    sequence_history: object = None


def write_run(cfg, s: Setup, run: RunDir) -> None:
    """Write the run's config.json, and the cache of a CSV file's parsed splits (or a text run's tokenizer); print
    what the user should know about how the data was read."""
    cfg.out = str(run.path)
    if s.encoder is None:
        D.save_cache(run.path, cfg, s.loaded)
        for note in s.loaded.notes:
            print(f"neuronkit: note: {note}", file=sys.stderr)
    data = {**s.info, "loss": s.loss}
    run.write_json("config.json", {"config": cfg.to_dict(), "data": data, "neuronkit": __version__})
    if s.encoder is not None:
        text.save_encoder(run, s.encoder)


def resume_point(run: RunDir) -> Resume:
    """Where ``run`` continues from its latest checkpoint. history.jsonl is rewritten from the checkpoint, so it
    never holds epochs the resumed run repeats."""
    ckpt = latest_checkpoint(run.checkpoints_path) if run.checkpoints_path.exists() else None
    if ckpt is None:
        print(f"neuronkit: {run.path} has no checkpoint yet: training from the start", file=sys.stderr)
        run.history_path.unlink(missing_ok=True)
        return Resume()
    state = read_trainer_state(ckpt)
    epochs = state.get("history", {}).get("epochs", [])
    run.write_text(run.history_path.name, "".join(io.dumps_json({"kind": "epoch", **e}) + "\n" for e in epochs))
    resume = Resume(
        run.checkpoints_path, int(state.get("step", 0)), int(state.get("epoch", 0)), int(state.get("step_in_epoch", 0))
    )
    try:  # the neurons' history continues too
        resume.probe_history = insight.probe_history(run)
        resume.sequence_history = insight.sequence_history(run)
    except CLIError as e:
        print(f"neuronkit: warning: {e}; the neurons' history starts again from here", file=sys.stderr)
    return resume


def callbacks(cfg, run: RunDir) -> list:
    """The callbacks that write the run and show its progress. Order matters at an epoch's end: the checkpoint
    before the log line (a logged epoch is always resumable), the progress bar clears its line before the epoch's
    line is printed."""
    cbs = [*quiet_callbacks(cfg), ModelCheckpoint(run.checkpoints_path), JSONLLogger(run.history_path)]
    cbs.append(WarnOnOversubscription(prefix="neuronkit: warning: "))
    if sys.stderr.isatty():
        cbs.append(_Bar())
    cbs.append(EpochPrinter())
    return cbs


def quiet_callbacks(cfg) -> list:
    """The callbacks that write nothing but decide (early stopping): every data-parallel rank runs them."""
    return [EarlyStopping(monitor="val_loss", patience=cfg.patience)] if cfg.patience is not None else []


def start_line(cfg, s: Setup, run: RunDir, resume: Resume | None) -> str:
    """What is about to happen: a new run and where it goes, or where a resumed run continues."""
    sizes = s.info["sizes"]
    what = (
        f"{cfg.model} on {s.loaded.name} ({sizes['train']} train, {sizes['validation']} validation, {sizes['test']} "
        f"test samples; {sum(p.size for p in s.model.parameters()):,} parameters)"
    )
    if resume is None or resume.checkpoints is None:
        return f"training {what} -> {run.path}"
    if resume.epoch >= cfg.epochs:
        return (
            f"resuming {run.path}: its {resume.epoch} epochs are done (give a larger --epochs to train on); "
            f"saving and evaluating {what}"
        )
    inside = f" ({resume.step_in_epoch} steps into it)" if resume.step_in_epoch else ""
    return (
        f"resuming {run.path} from epoch {resume.epoch + 1}, step {resume.step}{inside}, to epoch {cfg.epochs}: {what}"
    )


# -- after training -----------------------------------------------------------------------------------------------
def save_insight(run: RunDir, probe, gradcheck, sequence=None) -> None:
    """The neurons' history (for inspect/report), a text run's sequence probes, and the repeated gradient checks,
    when the run recorded them."""
    if probe is not None and probe.probe is not None and probe.probe.layers:
        probe.probe.remove()
        probe.probe.save(run.probes_path)  # the neurons' history of this (part of the) run
    if sequence is not None:
        sequence.save(run.probes_path)  # gates, gradient through time, attention heads: probes/sequence.json
    if gradcheck is not None:
        run.write_text("gradcheck.jsonl", "".join(io.dumps_json(r) + "\n" for r in gradcheck.results))
        bad = [r["step"] for r in gradcheck.results if not r["ok"]]
        print(
            f"gradient checks: {len(gradcheck.results) - len(bad)} of {len(gradcheck.results)} passed"
            + (f" (failed at steps {bad})" if bad else "")
            + f"; {run.path / 'gradcheck.jsonl'}"
        )


def interrupted(trainer, run: RunDir) -> int:
    print(
        f"neuronkit: interrupted at epoch {trainer.epoch + 1}, step {trainer.step}; checkpoint saved. "
        f"Continue with: neuronkit train --resume {run.path}",
        file=sys.stderr,
    )
    return 130


def divergence(trainer) -> str | None:
    """The NaN guard's reason when it stopped training, else None."""
    return next((cb.reason for cb in trainer.callbacks if isinstance(cb, StopOnNaN) and cb.reason), None)


def finish(cfg, s: Setup, run: RunDir, trainer, history) -> int:
    """Save the model and the test metrics, print the result; the exit status (1 when training diverged)."""
    io.save(s.model, run.model_path)
    train_time = sum(e.get("time", 0.0) for e in history.epochs)
    metrics = {
        "split": "test",
        "samples": s.info["sizes"]["test"],
        **T.test_metrics(s.model, s.test, s.task, s.loss),
        "epochs": len(history.epochs),
        "steps": trainer.step,
        "train_time_s": round(train_time, 3),
        "stopped_early": history.stopped_early,
    }
    run.write_json("metrics.json", metrics)
    diverged = divergence(trainer)
    if history.stopped_early and not diverged:
        print(f"neuronkit: {history.stopped_early}", file=sys.stderr)
    head = (
        f"test accuracy {metrics['accuracy']:.2%}"
        if s.task == "classification"
        else f"test mse {metrics['mse']:.4g}, r2 {metrics['r2']:.4f}"
    )
    print(
        f"{head} on {metrics['samples']} held-out samples; {metrics['epochs']} epochs in {train_time:.1f}s; "
        f"run: {run.path}"
    )
    if diverged:
        why = f"; `neuronkit diagnose {run.path}` explains it" if history.epochs else ""  # it reads epoch records
        print(
            f"neuronkit: error: training diverged: {diverged} (the run is saved in {run.path}{why}); try a smaller "
            f"--lr (now {cfg.lr:g}) or --clip-grad-norm 1",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_train(args) -> int:
    from .train_parallel import cmd_train_parallel, launcher_communicator

    comm = launcher_communicator()
    if comm.size > 1:  # started by mpiexec/srun with several processes
        return cmd_train_parallel(args, comm)
    cfg, resume_run = resolve_train_config(args)
    s = set_up(cfg, resume_run)
    run = resume_run or RunDir.create(cfg.out, s.loaded.name)
    with run.lock():  # one process trains in a run directory at a time
        return train_in_run(cfg, s, run, resume_run)


def train_in_run(cfg, s: Setup, run: RunDir, resume_run: RunDir | None) -> int:
    """Train in ``run`` (its lock held): write it, continue it when resuming, and finish it."""
    write_run(cfg, s, run)
    resume = resume_point(run) if resume_run is not None else None
    at = resume or Resume()
    sequence = T.make_sequence_probe(cfg, s.model, s.loss, s.train, at.sequence_history, at.step or None)
    cbs = callbacks(cfg, run) + ([sequence] if sequence is not None else [])
    trainer, probe, gradcheck = T.make_trainer(
        cfg, s.model, s.loss, s.task, s.train, cbs, at.probe_history, at.step or None
    )
    print(start_line(cfg, s, run, resume), flush=True)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # a divergence is reported in words instead
        history = trainer.fit(
            s.train, epochs=cfg.epochs, batch_size=cfg.batch_size, validation=s.val, resume=at.checkpoints
        )
        save_insight(run, probe, gradcheck, sequence)
        if history.interrupted:
            return interrupted(trainer, run)
        return finish(cfg, s, run, trainer, history)
