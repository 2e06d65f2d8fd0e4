"""Saving and loading with no Python object serialisation: weights in safetensors, everything else in JSON,
rebuilt through a registry.

- ``save(model, path)`` / ``load(path)``: architecture (``architecture.json``) and weights (``model.safetensors``) in
  the directory ``path``; only layers in ``neuronkit.nn.registry.LAYERS`` can be rebuilt.
- ``save_weights(model, path)`` / ``load_weights(model, path)``: weights only, for any model.
- ``save_optimizer(opt, path)`` / ``load_optimizer(opt, path)``: optimizer state (``optimizer.json`` and
  ``optimizer.safetensors``), e.g. next to the model in one checkpoint directory.
- The careful file primitives the rest of neuronkit writes and reads its files with: ``atomic_write``,
  ``write_json`` / ``dumps_json`` (strict JSON, NaN written as null), ``read_json`` (bounded by ``JsonLimits``,
  checked by ``check_json``), ``read_safetensors`` / ``write_safetensors``.
- ``export_onnx(model, example_input, path)``: the model as an ONNX graph for other runtimes (needs the optional
  ``onnx`` package, imported only then).

A truncated, oversized, inconsistent or hostile file raises ``FormatError`` (a ``ValueError``) and nothing else, at
the cost of reading its header: caps on sizes and counts and the header's consistency with the file's size are
checked before any data is read, and a model is built without running its initialisers when its weights follow.
Weights holding NaN or infinity load with a ``NonFiniteWarning``. A file that cannot be written (disk full) raises
``WriteError`` and leaves the previous file in place.
"""

from .errors import FormatError, NonFiniteWarning, WriteError
from .files import atomic_write, fsync_dir
from .jsonio import SMALL, JsonLimits, Range, check_json, dumps_json, read_json, read_jsonl, write_json
from .model import FORMAT_VERSION, architecture, load, load_weights, save, save_weights
from .onnx import ExportError, export_onnx
from .optimizer import load_optimizer, save_optimizer
from .tensorfile import read_safetensors, write_safetensors

__all__ = [
    "FORMAT_VERSION",
    "SMALL",
    "ExportError",
    "FormatError",
    "JsonLimits",
    "NonFiniteWarning",
    "Range",
    "WriteError",
    "architecture",
    "atomic_write",
    "check_json",
    "dumps_json",
    "fsync_dir",
    "export_onnx",
    "load",
    "load_optimizer",
    "load_weights",
    "read_json",
    "read_jsonl",
    "read_safetensors",
    "save",
    "save_optimizer",
    "save_weights",
    "write_json",
    "write_safetensors",
]
