"""Checkpoints that survive a crash: everything needed to resume a run exactly, written so that a kill at any
instant leaves a resumable run.

Layout of a checkpoint root directory::

    root/
      latest              JSON {"checkpoint": "step-000000470"}: replaced atomically, always names a complete one
      step-000000470/     model (architecture.json when the model is registered, model.safetensors),
                          optimizer.json + optimizer.safetensors, trainer.json (counters, loader and RNG state,
                          scheduler state, history)
      step-000000470.1/   the same step saved again (a run's last epoch and its end): a new directory, never an
                          overwritten one
      .step-*.partial-PID a checkpoint being written by process PID (or left by a killed one: removed at the next
                          start, see ``clean_leftovers``)

``save_checkpoint`` writes a new directory under a hidden name (every file fsync'ed), renames it to a ``step-*`` name
that does not exist yet, replaces ``latest``, and only then removes the checkpoints beyond ``keep`` (renamed to a
hidden name first, so a half-removed one never carries a ``step-*`` name). Whatever instant a kill comes, ``latest``
names a complete checkpoint: the previous one until it is replaced, the new one after. A write that fails (disk
full, file-size limit) raises ``io.WriteError`` in one line and keeps the previous checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil

from .. import io
from ..io.files import TEMP_FILE

LATEST = "latest"
TRAINER_FILE = "trainer.json"
_NAME = re.compile(r"step-([0-9]{9,18})(?:\.([1-9][0-9]{0,8}))?")
_LEFTOVER = re.compile(r"\.step-[0-9]+(?:\.[0-9]+)?\.(?:partial|trash)-([0-9]{1,10})")

LATEST_LIMITS = io.JsonLimits(4096, containers=4, values=16)
TRAINER_LIMITS = io.JsonLimits(256 * 2**20, containers=2**14, values=2**18, containers_per_kib=32, values_per_kib=256)
"""trainer.json grows with the run (one history record of ~70 bytes per step): caps per KiB of file, beyond a base."""

_GENERATOR = {"bit_generator": str, "state": dict}
_COUNT = io.Range(0)
TRAINER_SCHEMA = {
    "step?": _COUNT,
    "epoch?": _COUNT,
    "step_in_epoch?": _COUNT,
    "partial_loss?": [(float, None)],
    "loader?": (dict, None),
    "default_generator?": _GENERATOR,
    "module_generators?": {"*": _GENERATOR},
    "schedulers?": [dict],
    "history?": {"steps?": [dict], "epochs?": [dict], "stopped_early?": (str, None), "interrupted?": bool},
    "architecture?": bool,
}
"""The types of the trainer state's fields (each optional: ``save_checkpoint`` takes any JSON-able dict)."""


# -- names ----------------------------------------------------------------------------------------------------------
def _order(name: str) -> tuple[int, int]:
    m = _NAME.fullmatch(name)
    return int(m.group(1)), int(m.group(2) or 0)


def _checkpoint_dirs(root: str) -> list[str]:
    """The ``step-*`` directories under ``root``, oldest first (by step, then by how often it was saved)."""
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    found = [n for n in names if _NAME.fullmatch(n) and os.path.isdir(os.path.join(root, n))]
    return sorted(found, key=_order)


def _new_name(root: str, step: int) -> str:
    """``step-<step>``, or ``step-<step>.<k>`` with the first k whose directory does not exist yet."""
    base = name = f"step-{step:09d}"
    k = 0
    while os.path.lexists(os.path.join(root, name)):
        k += 1
        name = f"{base}.{k}"
    return name


def _remove(root: str, name: str) -> None:
    """Remove the checkpoint ``name``: renamed to a hidden name first, so no half-removed ``step-*`` is ever seen."""
    trash = os.path.join(root, f".{name}.trash-{os.getpid()}")
    try:
        os.rename(os.path.join(root, name), trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: alive, someone else's
        return True
    return True


def clean_leftovers(root, everything: bool = False) -> list[str]:
    """Remove what killed saves left under ``root``: ``.step-*.partial-PID`` and ``.step-*.trash-PID`` directories
    and ``.latest.*.PID.tmp`` files whose process is no longer alive, or with ``everything`` (the caller holds the
    run's lock, so no other process is writing here) all of them. Returns the names removed."""
    root = os.fspath(root)
    try:
        names = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    removed = []
    for n in names:
        m = _LEFTOVER.fullmatch(n) or TEMP_FILE.fullmatch(n)
        if m and (everything or not _alive(int(m.group(1)))):
            p = os.path.join(root, n)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(p)
            removed.append(n)
    return removed


# -- saving ---------------------------------------------------------------------------------------------------------
def _write_files(directory: str, model, optimizer, state: dict) -> None:
    os.makedirs(directory)
    try:
        io.save(model, directory)
        state["architecture"] = True
    except NotImplementedError:
        io.save_weights(model, directory)
        state["architecture"] = False
    if optimizer is not None:
        io.save_optimizer(optimizer, directory)
    io.write_json(os.path.join(directory, TRAINER_FILE), state, indent=None)


def _prune(root: str, keep: int, current: str) -> None:
    """Keep ``current`` and the newest version of each of the ``keep`` most recent steps; remove the rest."""
    if keep <= 0:
        return
    newest: dict[int, str] = {}
    for name in _checkpoint_dirs(root):
        newest[_order(name)[0]] = name  # later versions of a step replace earlier ones
    kept = set(sorted(newest.values(), key=_order)[-keep:]) | {current}
    for name in _checkpoint_dirs(root):
        if name not in kept:
            _remove(root, name)


def _save_failed(e: OSError, root: str, name: str) -> io.WriteError:
    try:
        previous = latest_checkpoint(root)
    except (io.FormatError, OSError):
        previous = None
    kept = f"the previous checkpoint {os.path.basename(previous)} is kept" if previous else "no checkpoint exists yet"
    reason = getattr(e, "reason", None) or e.strerror or str(e)
    return io.WriteError(f"cannot save checkpoint {name} in {root}: {reason}; {kept}", e.errno, reason)


def save_checkpoint(root, model, optimizer=None, trainer_state: dict | None = None, keep: int = 2) -> str:
    """Write a complete checkpoint under ``root`` and point ``latest`` at it; returns its directory.

    ``trainer_state`` is a JSON-able dict (step, epoch, loader and generator states, scheduler state, history...),
    written as strict JSON (a NaN as null); its ``step`` names the directory. The model is saved with its
    architecture when every layer is registered, otherwise weights only (``load_checkpoint`` then needs the model
    passed in). ``keep`` > 0 removes all but the ``keep`` most recent steps. ``io.WriteError`` (an ``OSError``)
    when a file cannot be written; the previous checkpoint stays the one ``latest`` names.
    """
    root = os.fspath(root)
    state = dict(trainer_state or {})
    name = f"step-{int(state.get('step', 0)):09d}"
    try:
        os.makedirs(root, exist_ok=True)
        name = _new_name(root, int(state.get("step", 0)))
        tmp = os.path.join(root, f".{name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            _write_files(tmp, model, optimizer, state)
            os.rename(tmp, os.path.join(root, name))  # a new name: never replaces a complete checkpoint
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        io.fsync_dir(root)
        io.atomic_write(os.path.join(root, LATEST), io.dumps_json({"checkpoint": name}).encode())
    except OSError as e:
        raise _save_failed(e, root, name) from None
    _prune(root, keep, name)
    return os.path.join(root, name)


# -- loading --------------------------------------------------------------------------------------------------------
def latest_checkpoint(root) -> str | None:
    """The directory ``latest`` names under ``root``, or None when ``root`` holds no checkpoint."""
    root = os.fspath(root)
    pointer = os.path.join(root, LATEST)
    if not os.path.lexists(pointer):
        return None
    doc = io.read_json(pointer, "checkpoint pointer", LATEST_LIMITS, {"checkpoint": str})
    name = doc["checkpoint"]
    if not _NAME.fullmatch(name):
        raise io.FormatError(f"{pointer}: names {name[:80]!r}, not a checkpoint directory (step-NNNNNNNNN)")
    path = os.path.join(root, name)
    if not os.path.isdir(path):
        raise io.FormatError(f"{pointer}: names {name}, which does not exist")
    return path


def checkpoint_dir(root) -> str | None:
    """The checkpoint ``load_checkpoint(root)`` reads: ``root`` itself when it is one, else what ``latest`` names."""
    root = os.fspath(root)
    return root if os.path.lexists(os.path.join(root, TRAINER_FILE)) else latest_checkpoint(root)


def read_trainer_state(path) -> dict:
    """The trainer state saved in the checkpoint directory ``path``, checked against ``TRAINER_SCHEMA`` (one-line
    ``io.FormatError`` naming the file and the first wrong field). A loss written as null (it was NaN) reads as NaN;
    the ``NaN`` literals of checkpoints written before neuronkit's JSON was strict are read too."""
    file = os.path.join(os.fspath(path), TRAINER_FILE)
    state = io.read_json(file, "trainer state", TRAINER_LIMITS, TRAINER_SCHEMA, nonfinite=True)  # NaN: older files
    if type(state) is not dict:
        raise io.FormatError(f"{file}: expected a JSON object, got {type(state).__name__}")
    if "partial_loss" in state:
        state["partial_loss"] = [float("nan") if v is None else v for v in state["partial_loss"]]
    return state


def load_checkpoint(root, model=None, optimizer=None) -> tuple:
    """Read the checkpoint ``latest`` names under ``root`` (or ``root`` itself if it is a ``step-*`` directory).

    Returns ``(model, trainer_state)``: the model is rebuilt from its architecture, or, when ``model`` is given, the
    weights are loaded into it. ``optimizer``, when given, gets its saved state. Anything wrong in the files is an
    ``io.FormatError`` naming the file.
    """
    root = os.fspath(root)
    path = checkpoint_dir(root)
    if path is None:
        raise FileNotFoundError(f"{root}: no checkpoint here (expected a '{LATEST}' file or a step-* directory)")
    state = read_trainer_state(path)
    if model is None:
        if not state.get("architecture"):
            raise ValueError(f"{path}: this checkpoint holds weights only; pass the model to load them into")
        model = io.load(path)
    else:
        io.load_weights(model, path)
    if optimizer is not None:
        io.load_optimizer(optimizer, path)
    return model, state
