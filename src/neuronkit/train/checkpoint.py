"""Checkpoints that survive a crash: everything needed to resume a run exactly, written so a reader never sees half.

Layout of a checkpoint root directory::

    root/
      latest            JSON {"checkpoint": "step-000000470"}: replaced atomically, always names a complete one
      step-000000470/   model (architecture.json when the model is registered, model.safetensors),
                        optimizer.json + optimizer.safetensors, trainer.json (counters, loader and RNG state,
                        scheduler state, history)

``save_checkpoint`` writes a new ``step-*`` directory completely (every file fsync'ed), then replaces ``latest``, then
removes older directories beyond ``keep``. A crash or Ctrl-C at any moment therefore leaves ``latest`` naming the
previous complete checkpoint, which ``load_checkpoint`` reads. Arrays in safetensors, the rest in JSON.
"""

from __future__ import annotations

import json
import os
import shutil

from .. import io
from ..io._files import atomic_write

LATEST = "latest"
TRAINER_FILE = "trainer.json"


def _checkpoint_dirs(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.startswith("step-") and os.path.isdir(os.path.join(root, n)))


def save_checkpoint(root, model, optimizer=None, trainer_state: dict | None = None, keep: int = 2) -> str:
    """Write a complete checkpoint under ``root`` and point ``latest`` at it; returns its directory.

    ``trainer_state`` is a JSON-able dict (step, epoch, loader and generator states, scheduler state, history...);
    its ``step`` names the directory. The model is saved with its architecture when every layer is registered,
    otherwise weights only (``load_checkpoint`` then needs the model passed in).
    """
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    state = dict(trainer_state or {})
    name = f"step-{int(state.get('step', 0)):09d}"
    final = os.path.join(root, name)
    tmp = os.path.join(root, f".{name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        try:
            io.save(model, tmp)
            state["architecture"] = True
        except NotImplementedError:
            io.save_weights(model, tmp)
            state["architecture"] = False
        if optimizer is not None:
            io.save_optimizer(optimizer, tmp)
        atomic_write(os.path.join(tmp, TRAINER_FILE), json.dumps(state).encode())
        if os.path.exists(final):  # the same step saved again (e.g. at the end after a periodic save)
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    atomic_write(os.path.join(root, LATEST), json.dumps({"checkpoint": name}).encode())
    for old in _checkpoint_dirs(root)[:-keep] if keep > 0 else []:
        if old != name:
            shutil.rmtree(os.path.join(root, old), ignore_errors=True)
    return final


def latest_checkpoint(root) -> str | None:
    """The directory ``latest`` names under ``root``, or None when ``root`` holds no checkpoint."""
    root = os.fspath(root)
    try:
        with open(os.path.join(root, LATEST), "rb") as f:
            name = json.loads(f.read().decode())["checkpoint"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise io.FormatError(f"{root}: the 'latest' pointer is damaged ({e})") from None
    if not isinstance(name, str) or os.sep in name or not name.startswith("step-"):
        raise io.FormatError(f"{root}: the 'latest' pointer names {name!r}, not a checkpoint directory")
    path = os.path.join(root, name)
    if not os.path.isdir(path):
        raise io.FormatError(f"{root}: 'latest' names {name}, which does not exist")
    return path


def load_checkpoint(root, model=None, optimizer=None) -> tuple:
    """Read the checkpoint ``latest`` names under ``root`` (or ``root`` itself if it is a ``step-*`` directory).

    Returns ``(model, trainer_state)``: the model is rebuilt from its architecture, or, when ``model`` is given, the
    weights are loaded into it. ``optimizer``, when given, gets its saved state.
    """
    root = os.fspath(root)
    path = root if os.path.exists(os.path.join(root, TRAINER_FILE)) else latest_checkpoint(root)
    if path is None:
        raise FileNotFoundError(f"{root}: no checkpoint here (expected a '{LATEST}' file or a step-* directory)")
    try:
        with open(os.path.join(path, TRAINER_FILE), "rb") as f:
            state = json.loads(f.read().decode())
    except (ValueError, UnicodeDecodeError, FileNotFoundError) as e:
        raise io.FormatError(f"{path}: {TRAINER_FILE} is missing or damaged ({e})") from None
    if model is None:
        if not state.get("architecture"):
            raise ValueError(f"{path}: this checkpoint holds weights only; pass the model to load them into")
        model = io.load(path)
    else:
        io.load_weights(model, path)
    if optimizer is not None:
        io.load_optimizer(optimizer, path)
    return model, state
