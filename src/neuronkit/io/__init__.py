"""Saving and loading with no Python object serialisation: weights in safetensors, everything else in JSON,
rebuilt through a registry.

- ``save(model, path)`` / ``load(path)``: architecture (``architecture.json``) and weights (``model.safetensors``) in
  the directory ``path``; only layers in ``neuronkit.nn.registry.LAYERS`` can be rebuilt.
- ``save_weights(model, path)`` / ``load_weights(model, path)``: weights only, for any model.
- ``save_optimizer(opt, path)`` / ``load_optimizer(opt, path)``: optimizer state (``optimizer.json`` and
  ``optimizer.safetensors``), e.g. next to the model in one checkpoint directory.
- ``export_onnx(model, example_input, path)``: the model as an ONNX graph for other runtimes (needs the optional
  ``onnx`` package, imported only then).

A truncated, oversized, inconsistent or hostile file raises ``FormatError`` (a ``ValueError``) and nothing else.
"""

from .errors import FormatError
from .model import FORMAT_VERSION, architecture, load, load_weights, save, save_weights
from .onnx import ExportError, export_onnx
from .optimizer import load_optimizer, save_optimizer

__all__ = [
    "FORMAT_VERSION",
    "ExportError",
    "FormatError",
    "architecture",
    "export_onnx",
    "load",
    "load_optimizer",
    "load_weights",
    "save",
    "save_optimizer",
    "save_weights",
]
