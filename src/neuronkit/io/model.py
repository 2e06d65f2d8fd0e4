"""Save and load whole models (architecture + weights) and bare weights.

On disk, ``save(model, path)`` makes ``path`` a directory holding two files:

- ``architecture.json``: ``{"format": "neuronkit", "version": 1, "class": "Sequential", "config": {...}}``. ``class``
  is a name in the layer registry (``neuronkit.nn.registry.LAYERS``) and ``config`` the layer's ``get_config()``: its
  constructor's keyword arguments as JSON. A constructor argument that is itself a layer (a ``Sequential``'s layers,
  a ``Dense``'s activation with options) is a nested ``{"class": ..., "config": ...}``.
- ``model.safetensors``: every parameter and buffer under its ``state_dict`` name (``"0.weight"``, ...).

``load(path)`` reads the weights' header first (``tensorfile``), then rebuilds the model only through the registry
(``builder``): a class name is looked up in ``LAYERS`` and nowhere else, each config value is checked against the
constructor's signature (annotations and defaults, never evaluated), and the layers are built without running their
initialisers (``nn.init.skip_init``). The header must match the model exactly (names, shapes, dtypes) before the
weights' data is read into it. Any problem in the files is a ``FormatError``. A path that does not exist is a
``FileNotFoundError``; OS errors such as permissions pass through.
"""

from __future__ import annotations

import os

from .. import backend as B
from ..nn.init import skip_init
from ..nn.module import Module
from ..nn.registry import layer_spec
from .builder import COST_FACTOR, COST_FLOOR, MAX_LAYERS, Builder
from .errors import FormatError
from .files import atomic_write, short
from .jsonio import JsonLimits, dump_json, read_json, to_json_value
from .tensorfile import SafetensorsFile, safetensors_bytes

FORMAT = "neuronkit"
FORMAT_VERSION = 1
ARCHITECTURE_FILE = "architecture.json"
WEIGHTS_FILE = "model.safetensors"

ARCHITECTURE_LIMITS = JsonLimits(16 * 2**20, containers=8 * MAX_LAYERS, values=32 * MAX_LAYERS)
"""A layer spec is two objects and up to six lists (a convolution's sizes) and at most about 30 values."""


# -- saving ---------------------------------------------------------------------------------------------------------
def architecture(model: Module) -> dict:
    """The JSON document ``save`` writes to ``architecture.json`` (``NotImplementedError`` for an unsaveable model)."""
    spec = to_json_value(layer_spec(model), "architecture")
    doc = {"format": FORMAT, "version": FORMAT_VERSION, "class": spec["class"], "config": spec["config"]}
    # Check now that the file would load back (catches a get_config that does not match its constructor).
    try:
        Builder(budget=None, where="architecture").check(spec, "architecture")
    except FormatError as e:
        raise TypeError(f"cannot save {type(model).__name__}: its config would not load back: {e}") from None
    return doc


def save(model: Module, path) -> None:
    """Save ``model``'s architecture and weights to the directory ``path`` (created if needed; files replaced).

    Writes ``model.safetensors`` then ``architecture.json``, each atomically. Every layer in the model must be
    registered and define ``get_config()`` (``NotImplementedError`` otherwise: use ``save_weights`` instead).
    Training mode and dropout generators are not saved; a loaded model starts in training mode.
    """
    path = os.fspath(path)
    doc = architecture(model)
    weights = safetensors_bytes(model.state_dict(), _weights_metadata(), type(model).__name__)
    os.makedirs(path, exist_ok=True)
    atomic_write(os.path.join(path, WEIGHTS_FILE), weights)
    atomic_write(os.path.join(path, ARCHITECTURE_FILE), dump_json(doc))


def save_weights(model: Module, path) -> None:
    """Save only ``model.state_dict()``, for any model (no registration needed).

    ``path`` ending in ``.safetensors`` is the file itself; any other path is a directory that gets
    ``model.safetensors`` (so ``load_weights`` also reads the weights of a directory made by ``save``).
    """
    file = _weights_path(os.fspath(path), create=True)
    atomic_write(file, safetensors_bytes(model.state_dict(), _weights_metadata(), type(model).__name__))


def _weights_metadata() -> dict:
    return {"format": FORMAT, "neuronkit_format_version": str(FORMAT_VERSION)}


def _weights_path(path: str, create: bool = False) -> str:
    if path.endswith(".safetensors"):
        return path
    if create:
        os.makedirs(path, exist_ok=True)
    return os.path.join(path, WEIGHTS_FILE)


# -- loading --------------------------------------------------------------------------------------------------------
def load(path) -> Module:
    """Rebuild the model saved by ``save(model, path)``: same architecture, bit-identical weights.

    Raises ``FormatError`` (a ``ValueError``) for anything wrong in the files, ``FileNotFoundError`` if ``path`` does
    not exist.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: {path} does not exist")
    if not os.path.isdir(path):
        raise FormatError(
            f"load: {path} is not a directory made by neuronkit.io.save (a weights file alone is read by load_weights)"
        )
    wfile, afile = os.path.join(path, WEIGHTS_FILE), os.path.join(path, ARCHITECTURE_FILE)
    with SafetensorsFile(wfile, "weights") as weights:  # the header only, checked; the data is read last
        spec = _check_document(read_json(afile, "architecture", ARCHITECTURE_LIMITS), afile)
        budget = max(COST_FACTOR * weights.elements, COST_FLOOR)
        with skip_init():  # every parameter and buffer is overwritten by the weights: no initialiser runs
            model = Builder(budget=budget, where=afile).build(spec, "architecture")
        _check_match(model, weights.tensors, wfile)
        arrays = weights.read()
    _assign(model, arrays, wfile)
    return model


def load_weights(model: Module, path) -> Module:
    """Copy the weights saved by ``save_weights`` (or ``save``) into ``model`` in place; returns ``model``.

    The names, shapes and dtypes must match ``model.state_dict()`` exactly, else ``FormatError`` lists the differences
    (before any data is read).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_weights: {path} does not exist")
    file = _weights_path(path)
    with SafetensorsFile(file, "weights") as weights:
        _check_match(model, weights.tensors, file)
        arrays = weights.read()
    _assign(model, arrays, file)
    return model


def _check_document(doc, where: str) -> dict:
    if not isinstance(doc, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    expected = {"format", "version", "class", "config"}
    if set(doc) != expected:
        raise FormatError(f"{where}: expected keys {sorted(expected)}, got {short(sorted(doc), 200)}")
    if doc["format"] != FORMAT:
        raise FormatError(f"{where}: format is {short(doc['format'])}, expected {FORMAT!r}")
    if type(doc["version"]) is not int or doc["version"] != FORMAT_VERSION:
        raise FormatError(
            f"{where}: format version {short(doc['version'])} is not supported (this neuronkit "
            f"reads version {FORMAT_VERSION})"
        )
    return {"class": doc["class"], "config": doc["config"]}


def _own_tensors(model: Module) -> dict:
    """state_dict name -> the Tensor itself (as ``Module.load_state_dict`` sees them)."""
    own = {}
    for name, m in model.named_modules():
        for table in ("_parameters", "_buffers"):
            for k, v in m.__dict__[table].items():
                if v is not None:
                    own[f"{name}.{k}" if name else k] = v
    return own


def _check_match(model: Module, tensors: dict, where: str) -> None:
    """FormatError listing every difference between ``model``'s parameters and buffers and the file's ``tensors``
    (name -> anything with ``shape`` and ``dtype``): missing and unexpected names, shapes, dtypes."""
    own = _own_tensors(model)
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    problems = []
    if missing:
        problems.append(f"missing {short(missing, 300)}")
    if unexpected:
        problems.append(f"unexpected {short(unexpected, 300)}")
    for k, t in own.items():
        a = tensors.get(k)
        if a is None:
            continue
        if tuple(a.shape) != tuple(t.data.shape):
            problems.append(f"{k!r} has shape {tuple(a.shape)}, the model expects {tuple(t.data.shape)}")
        elif a.dtype != t.data.dtype:
            problems.append(f"{k!r} has dtype {B.xp.dtype(a.dtype)}, the model expects {t.data.dtype}")
        if len(problems) >= 10:
            break
    if problems:
        raise FormatError(f"{where}: the weights do not match {type(model).__name__}: " + "; ".join(problems))


def _assign(model: Module, arrays: dict, where: str) -> None:
    """Copy the checked ``arrays`` into ``model`` (strictly: names and shapes were matched by ``_check_match``)."""
    try:
        model.load_state_dict(arrays, strict=True)
    except (KeyError, ValueError, TypeError) as e:
        raise FormatError(f"{where}: {e}") from e
