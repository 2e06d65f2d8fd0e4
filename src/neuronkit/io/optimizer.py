"""Save and load an optimizer's state: hyperparameters and scalars in JSON, state arrays in safetensors.

``save_optimizer(opt, path)`` makes ``path`` a directory (it may be the one ``save`` wrote the model to) holding:

- ``optimizer.json``: ``{"format": "neuronkit-optimizer", "version": 1, "class": "Adam", "param_groups": [...],
  "state": {"3": {"step": 10}}}``, the scalar part of ``opt.state_dict()``;
- ``optimizer.safetensors``: the array part, under ``"state.<parameter index>.<name>"`` (``"state.3.exp_avg"``).

It works with any object whose ``state_dict()`` returns ``{"param_groups": [JSON dicts with "params": [indices]],
"state": {index: {name: ndarray or number}}}`` and whose ``load_state_dict`` takes the same.
"""

from __future__ import annotations

import os
import re

from .. import backend as B
from .errors import FormatError
from .files import atomic_write, is_passthrough, short
from .jsonio import JsonLimits, dump_json, read_json, to_json_value
from .tensorfile import MAX_TENSORS, read_safetensors, safetensors_bytes

FORMAT = "neuronkit-optimizer"
FORMAT_VERSION = 1
JSON_FILE = "optimizer.json"
ARRAYS_FILE = "optimizer.safetensors"
_ARRAY_KEY = re.compile(r"state\.(0|[1-9][0-9]{0,8})\.(.+)", re.DOTALL)
_INDEX = re.compile(r"0|[1-9][0-9]{0,8}")
LIMITS = JsonLimits(16 * 2**20, containers=4 * MAX_TENSORS, values=16 * MAX_TENSORS)
"""At most one state object per parameter (``MAX_TENSORS`` of them) with a few scalars each, and few groups."""


def save_optimizer(optimizer, path) -> None:
    """Save ``optimizer.state_dict()`` to the directory ``path`` (created if needed): arrays then JSON, atomically."""
    path = os.fspath(path)
    sd = optimizer.state_dict()
    owner = f"{type(optimizer).__name__}.state_dict()"
    if not isinstance(sd, dict) or not {"param_groups", "state"} <= set(sd):
        raise TypeError(f"{owner} must return a dict with 'param_groups' and 'state'")
    groups = to_json_value(sd["param_groups"], f"{owner}['param_groups']")
    if not isinstance(groups, list):
        raise TypeError(f"{owner}['param_groups'] must be a list")
    scalars, arrays = {}, {}
    for index, entries in sd["state"].items():
        if isinstance(index, bool) or not isinstance(index, (int, B.xp.integer)) or index < 0:
            raise TypeError(f"{owner}['state'] keys must be parameter indices (ints >= 0), got {index!r}")
        index = int(index)
        s = {}
        for name, v in entries.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"{owner}['state'][{index}] has a non-string or empty name {name!r}")
            if isinstance(v, B.xp.ndarray):
                arrays[f"state.{index}.{name}"] = v
            else:
                s[name] = to_json_value(v, f"{owner}['state'][{index}][{name!r}]")
                if not isinstance(s[name], (int, float)):
                    raise TypeError(f"{owner}['state'][{index}][{name!r}] must be an array or a number, got {v!r}")
        scalars[str(index)] = s
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "class": type(optimizer).__name__,
        "param_groups": groups,
        "state": scalars,
    }
    blob = safetensors_bytes(arrays, {"format": FORMAT}, owner)
    os.makedirs(path, exist_ok=True)
    atomic_write(os.path.join(path, ARRAYS_FILE), blob)
    atomic_write(os.path.join(path, JSON_FILE), dump_json(doc))


def load_optimizer(optimizer, path):
    """Restore the state saved by ``save_optimizer`` into ``optimizer`` (same class, same parameter layout); returns
    ``optimizer``. Any problem in the files, or a state the optimizer refuses, raises ``FormatError``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_optimizer: {path} does not exist")
    jfile, afile = os.path.join(path, JSON_FILE), os.path.join(path, ARRAYS_FILE)
    arrays, _ = read_safetensors(afile, "optimizer arrays")
    doc = read_json(jfile, "optimizer state", LIMITS)
    expected = {"format", "version", "class", "param_groups", "state"}
    if not isinstance(doc, dict) or set(doc) != expected:
        got = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise FormatError(f"{jfile}: expected an object with keys {sorted(expected)}, got {short(got, 200)}")
    if doc["format"] != FORMAT:
        raise FormatError(f"{jfile}: format is {short(doc['format'])}, expected {FORMAT!r}")
    if type(doc["version"]) is not int or doc["version"] != FORMAT_VERSION:
        raise FormatError(
            f"{jfile}: format version {short(doc['version'])} is not supported (this neuronkit reads "
            f"version {FORMAT_VERSION})"
        )
    if doc["class"] != type(optimizer).__name__:
        raise FormatError(f"{jfile}: saved by a {short(doc['class'])}, cannot load into a {type(optimizer).__name__}")
    groups = doc["param_groups"]
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise FormatError(f"{jfile}: param_groups must be a list of objects")
    for i, g in enumerate(groups):
        ids = g.get("params")
        if not isinstance(ids, list) or not all(type(k) is int and k >= 0 for k in ids):
            raise FormatError(f"{jfile}: param_groups[{i}].params must be a list of parameter indices (ints >= 0)")
    state_json = doc["state"]
    if not isinstance(state_json, dict):
        raise FormatError(f"{jfile}: state must be an object, got {type(state_json).__name__}")
    state: dict = {}
    for key, entries in state_json.items():
        if not _INDEX.fullmatch(key):
            raise FormatError(f"{jfile}: state key {short(key)} is not a parameter index")
        if not isinstance(entries, dict):
            raise FormatError(f"{jfile}: state[{key}] must be an object")
        for name, v in entries.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise FormatError(f"{jfile}: state[{key}][{short(name)}] must be a number, got {short(v)}")
        state[int(key)] = dict(entries)
    for key, a in arrays.items():
        m = _ARRAY_KEY.fullmatch(key)
        if m is None:
            raise FormatError(f"{afile}: tensor name {short(key)} is not of the form 'state.<index>.<name>'")
        s = state.setdefault(int(m.group(1)), {})
        if m.group(2) in s:
            raise FormatError(f"{afile}: {short(key)} is saved both as an array and as a number")
        s[m.group(2)] = a
    try:
        optimizer.load_state_dict({"param_groups": groups, "state": state})
    except BaseException as e:
        if is_passthrough(e):
            raise
        raise FormatError(f"{path}: {type(optimizer).__name__} refused the saved state: {e}") from e
    return optimizer
