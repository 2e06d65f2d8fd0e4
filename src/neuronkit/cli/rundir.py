"""A run directory: everything one ``neuronkit train`` run leaves behind, in files a person can open.

::

    runs/digits-20250101-120000/
      config.json      {"config": every setting (TrainConfig), "data": task, classes, shapes, standardisation,
                        sizes of the splits, "neuronkit": version}
      model/           architecture.json + model.safetensors (neuronkit.io.save): the final weights
      history.jsonl    one JSON line per epoch: loss, training and validation metrics, lr, time
      metrics.json     the final metrics on the held-out test split, and the training time
      checkpoints/     resumable checkpoints (neuronkit.train.checkpoint), written each epoch
      probes/          per-neuron history (probes.safetensors + probes.json, neuronkit.inspect.Probe.save); a text
                       model with recurrent or attention layers: sequence.json (SequenceProbeCallback.save)
      gradcheck.jsonl  with --gradcheck-every: one float64 gradient check per line (step, ok, per-layer errors)
      data-cache/      for CSV data: the parsed splits as .npy arrays, reused by the run's later commands (datacache)
      report.html      written by neuronkit report
      .lock            held (fcntl.flock) by the process training in the directory; holds its PID

Every JSON file here is written strictly (no NaN: a non-finite number is null) and atomically, and read through
``neuronkit.io.read_json``: size and count caps, then a schema, one line naming the file for anything wrong.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: runs are not locked
    fcntl = None

from .. import io
from ..train.checkpoint import clean_leftovers
from . import config as C
from .errors import CLIError

CONFIG, MODEL, HISTORY, METRICS, CHECKPOINTS = "config.json", "model", "history.jsonl", "metrics.json", "checkpoints"
PROBES, LOCK = "probes", ".lock"

RUN_JSON_LIMITS = io.JsonLimits(64 * 2**20, containers=2**12, values=2**16, containers_per_kib=32, values_per_kib=512)
"""config.json and metrics.json: small objects, but a class list or a per-class metric grows with the classes."""
_COUNT = io.Range(0)
CONFIG_SCHEMA = {"config": dict, "data": dict}
DATA_SCHEMA = {
    "task": str,
    "sample_shape": [_COUNT],
    "model_input_shape": [_COUNT],
    "num_outputs": io.Range(1),
    "classes?": ([(str, int, float)], None),
    "sizes?": {"*": _COUNT},
}
"""What a saved model needs of config.json's ``data`` section (other keys are not checked here)."""


class RunDir:
    """Paths and JSON files of one run directory (see the module docstring)."""

    def __init__(self, path):
        self.path = Path(path)

    config_path = property(lambda self: self.path / CONFIG)
    model_path = property(lambda self: self.path / MODEL)
    history_path = property(lambda self: self.path / HISTORY)
    metrics_path = property(lambda self: self.path / METRICS)
    checkpoints_path = property(lambda self: self.path / CHECKPOINTS)
    probes_path = property(lambda self: self.path / PROBES)

    @classmethod
    def create(cls, out: str | None, name: str) -> RunDir:
        """A new, empty run directory: ``out``, or ``runs/<name>-<timestamp>`` (never an existing non-empty one)."""
        if out is None:
            base = Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
            path, k = base, 1
            while path.exists():
                k += 1
                path = base.with_name(f"{base.name}-{k}")
        else:
            path = Path(out).expanduser()
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise CLIError(
                    f"the run directory {path} already exists and is not empty: choose another --out, or continue "
                    f"that run with --resume {path}"
                )
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @classmethod
    def open(cls, path) -> RunDir:
        """An existing run directory; ``CLIError`` when ``path`` is not one."""
        p = Path(path).expanduser()
        if not p.exists():
            raise CLIError(f"run directory not found: {p}")
        run = cls(p)
        if not p.is_dir() or not run.config_path.is_file():
            raise CLIError(f"{p} is not a run directory (no {CONFIG}; expected a directory written by neuronkit train)")
        run.read_json(CONFIG, CONFIG_SCHEMA)
        return run

    @property
    def config(self) -> dict:
        return self.read_json(CONFIG, CONFIG_SCHEMA)

    def require_model(self) -> Path:
        if not (self.model_path / "architecture.json").is_file():
            raise CLIError(
                f"{self.path}: the run has no saved model yet (no {MODEL}/architecture.json); "
                f"it may still be training, or was interrupted: finish it with --resume {self.path}"
            )
        return self.model_path

    def read_json(self, name: str, schema=None):
        """The JSON file ``name`` of the run, within ``RUN_JSON_LIMITS`` and checked against ``schema``; one-line
        errors naming the file (``CLIError`` when it is missing, ``io.FormatError`` when it is damaged)."""
        p = self.path / name
        if not p.exists():
            raise CLIError(f"{p} is missing")
        return io.read_json(p, name, RUN_JSON_LIMITS, schema)

    def write_text(self, name: str, text: str) -> None:
        """Write ``text`` to ``name`` in the run directory, atomically."""
        io.atomic_write(os.fspath(self.path / name), text.encode("utf-8"))

    def write_json(self, name: str, obj) -> None:
        """Write ``obj`` as indented strict JSON (NaN and infinities as null), atomically (a crash leaves the old
        file or the new one, never half)."""
        io.write_json(self.path / name, obj)

    @contextlib.contextmanager
    def lock(self):
        """Hold the run for this process: an exclusive ``fcntl.flock`` on ``RUN/.lock`` (which then holds our PID),
        released when the block ends or the process does, even by a crash or a kill. Another process holding it:
        ``CLIError`` naming the run and that process's PID. Once held, what killed writes left behind (partial
        checkpoints, temporary files) is removed: no other process can be writing there."""
        if fcntl is None:  # pragma: no cover
            yield self
            return
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
                raise CLIError(
                    f"{self.path} is in use by another neuronkit process (PID {holder}): wait for it to end, or stop "
                    f"it, before training in this run directory"
                ) from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            for d in (self.path, self.checkpoints_path, self.model_path, self.probes_path):
                clean_leftovers(d, everything=True)
            yield self
        finally:
            os.close(fd)

    def __str__(self) -> str:
        return os.fspath(self.path)


def load_run(path) -> tuple:
    """``(run, cfg, info, model)`` of an existing run directory with a saved model."""
    run = RunDir.open(path)
    doc = run.config
    cfg = C.resolve(C.from_mapping(doc["config"], str(run.config_path)))
    cfg.out = str(run.path)  # where the run is now (its data cache is there), whatever it was called when trained
    info = doc["data"]
    io.check_json(info, DATA_SCHEMA, str(run.config_path), "data")
    model = io.load(run.require_model())
    return run, cfg, info, model
