"""A run directory: everything one ``neuronkit train`` run leaves behind, in files a person can open.

::

    runs/digits-20250101-120000/
      config.json      {"config": every setting (TrainConfig), "data": task, classes, shapes, standardisation,
                        sizes of the splits, "neuronkit": version}
      model/           architecture.json + model.safetensors (neuronkit.io.save): the final weights
      history.jsonl    one JSON line per epoch: loss, training and validation metrics, lr, time
      metrics.json     the final metrics on the held-out test split, and the training time
      checkpoints/     resumable checkpoints (neuronkit.train.checkpoint), written each epoch
      probes/          per-neuron history (probes.safetensors + probes.json, neuronkit.inspect.Probe.save)
      gradcheck.jsonl  with --gradcheck-every: one float64 gradient check per line (step, ok, per-layer errors)
      report.html      written by neuronkit report
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from .. import io
from ..io._files import atomic_write
from ..train.history import finite_json
from . import config as C
from .errors import CLIError

CONFIG, MODEL, HISTORY, METRICS, CHECKPOINTS = "config.json", "model", "history.jsonl", "metrics.json", "checkpoints"
PROBES = "probes"


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
        cfg = run.read_json(CONFIG)
        if not (isinstance(cfg, dict) and isinstance(cfg.get("config"), dict) and isinstance(cfg.get("data"), dict)):
            raise CLIError(f"{run.config_path}: not a neuronkit run configuration (expected 'config' and 'data')")
        return run

    @property
    def config(self) -> dict:
        return self.read_json(CONFIG)

    def require_model(self) -> Path:
        if not (self.model_path / "architecture.json").is_file():
            raise CLIError(
                f"{self.path}: the run has no saved model yet (no {MODEL}/architecture.json); "
                f"it may still be training, or was interrupted: finish it with --resume {self.path}"
            )
        return self.model_path

    def read_json(self, name: str):
        p = self.path / name
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise CLIError(f"{p} is missing") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise CLIError(f"{p} is damaged: not valid JSON ({e})") from None

    def write_text(self, name: str, text: str) -> None:
        """Write ``text`` to ``name`` in the run directory, atomically."""
        atomic_write(os.fspath(self.path / name), text.encode("utf-8"))

    def write_json(self, name: str, obj) -> None:
        """Write ``obj`` as indented strict JSON (a non-finite number as null), atomically (a crash leaves the old
        file or the new one, never half)."""
        atomic_write(
            os.fspath(self.path / name), (json.dumps(finite_json(obj), indent=2, allow_nan=False) + "\n").encode()
        )

    def __str__(self) -> str:
        return os.fspath(self.path)


def load_run(path) -> tuple:
    """``(run, cfg, info, model)`` of an existing run directory with a saved model."""
    run = RunDir.open(path)
    doc = run.config
    cfg = C.resolve(C.from_mapping(doc["config"], str(run.config_path)))
    info = doc["data"]
    for key in ("task", "sample_shape", "model_input_shape", "num_outputs"):
        if key not in info:
            raise CLIError(f"{run.config_path}: the data section has no {key!r}")
    model = io.load(run.require_model())
    return run, cfg, info, model
