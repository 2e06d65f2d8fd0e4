"""Export a model to ONNX, the exchange format other runtimes (onnxruntime, TensorRT, OpenVINO, browsers) execute.

``export_onnx(model, example_input, path)`` walks the model through the same layer registry that ``save``/``load``
use (``neuronkit.nn.registry.LAYERS``): each layer's registered name selects one exporter in ``EXPORTERS``
(``io/onnx_layers.py``), which adds the layer's ONNX nodes with the ``onnx`` package's helpers
(``onnx.helper.make_node``, ``numpy_helper.from_array``). A layer without an ONNX equivalent stops the export with one
``ExportError`` naming its class and its path in the model.

The model is exported in evaluation mode (dropout is the identity, batch norm uses its running statistics). While
walking, every layer is also run on the example input, so each exporter sees its input's real shape and dtype; the
graph's batch axis stays symbolic (``"batch"``) unless ``dynamic_batch=False``.

``onnx`` is an optional dependency (``pip install neuronkit[onnx]``), imported only when an export runs.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass

import numpy as np

from ..autograd import no_grad
from ..nn.module import Module
from ..nn.registry import LAYERS
from ..tensor import Tensor
from .files import atomic_write

DEFAULT_OPSET = 17
"""ONNX opset written by default: 17 is the first with LayerNormalization and is run by every current runtime."""
MIN_OPSET = 17
INSTALL_HINT = "ONNX export needs the onnx package: pip install 'neuronkit[onnx]' (or pip install onnx onnxruntime)"
MAX_ONNX_BYTES = 2**31 - 1
"""A single-file ONNX model is one protobuf message, which cannot exceed 2 GiB."""


class ExportError(ValueError):
    """A model (or an input) that cannot be exported to ONNX; the message says which layer and why."""


@dataclass
class Value:
    """A value in the graph being built: its ONNX name and the array neuronkit computes for it on the example input
    (exporters read shapes and dtypes from ``data``). ``data`` is None for an absent optional input."""

    name: str
    data: np.ndarray | None


@dataclass
class Exporter:
    """How one registered layer class becomes ONNX nodes.

    ``fn(graph, module, path, *inputs: Value) -> str | list[str]`` adds the nodes and returns the name(s) of the
    layer's output(s), in the order of the module's (flattened) outputs. ``axes(module, n_inputs, n_outputs)``, used
    when the layer is the whole model, gives the symbolic axes ``({axis: name}, ...)`` of the graph's inputs and
    outputs (``"batch"``, ``"time"``); by default axis 0 of each is ``"batch"``.
    """

    fn: object
    axes: object = None


EXPORTERS: dict[str, Exporter] = {}
"""Registered layer name -> its Exporter. Add to it with ``register_onnx``."""


def register_onnx(*names: str, axes=None):
    """Decorator: ``fn`` exports the layers registered under ``names`` (keys of ``nn.registry.LAYERS``); ``axes`` as
    in ``Exporter``.

    A name that is not (yet) a registered layer is accepted, so an exporter may be listed before its layer lands.
    """

    def deco(fn):
        for name in names:
            if name in EXPORTERS and EXPORTERS[name].fn is not fn:
                raise ValueError(f"register_onnx: {name!r} already has an ONNX exporter")
            EXPORTERS[name] = Exporter(fn, axes)
        return fn

    return deco


def _require_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return onnx, helper, numpy_helper


def layer_name(module) -> str | None:
    """The name ``type(module)`` is registered under in the layer registry (exact class), or None."""
    cls = type(module)
    return next((k for k, c in LAYERS.items() if c is cls), None)


class Graph:
    """The ONNX graph under construction; exporters call its methods to add nodes and constants.

    ``op(op_type, *inputs, **attributes)`` adds one node and returns its output name (a list with ``outputs=n``);
    an input name ``""`` is an absent optional input. ``const(array)`` adds an initializer.
    """

    def __init__(self, opset: int, dtype: np.dtype):
        self.onnx, self.helper, self.numpy_helper = _require_onnx()
        self.opset, self.dtype = opset, np.dtype(dtype)
        self.nodes, self.initializers, self._count = [], [], {}
        self.path = ""  # the layer being exported: names its nodes

    def _fresh(self, stem: str) -> str:
        k = self._count.get(stem, 0)
        self._count[stem] = k + 1
        return stem if k == 0 else f"{stem}_{k}"

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attrs):
        stem = f"/{self.path}/{op_type}" if self.path else f"/{op_type}"
        name = self._fresh(stem)
        outs = [f"{name}_output_{i}" for i in range(outputs)]
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=name, **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, array, name: str = "const", dtype=None) -> str:
        """An initializer holding ``array`` (cast to ``dtype``; default: floats to the model dtype)."""
        a = np.asarray(array)
        if dtype is not None:
            a = a.astype(dtype)
        elif a.dtype.kind == "f":
            a = a.astype(self.dtype)
        full = self._fresh(f"{self.path}.{name}" if self.path else name)
        self.initializers.append(self.numpy_helper.from_array(np.array(a, order="C"), full))  # 0-d stays 0-d
        return full

    def scalar(self, v: float) -> str:
        """A float constant of the model dtype with shape (), for elementwise arithmetic."""
        return self.const(np.array(v, dtype=self.dtype), "c")

    def ints(self, values) -> str:
        """An int64 1-D constant (shapes, axes)."""
        return self.const(np.asarray(list(values), dtype=np.int64), "ints")

    def reduce(self, op_type: str, x: str, axes, keepdims: bool = False) -> str:
        """``ReduceMean``/``ReduceMax``/... over ``axes``: an attribute before opset 18, an input from 18 on."""
        if self.opset >= 18:
            return self.op(op_type, x, self.ints(axes), keepdims=int(keepdims))
        return self.op(op_type, x, axes=list(axes), keepdims=int(keepdims))

    def unsqueeze(self, x: str, axes) -> str:
        return self.op("Unsqueeze", x, self.ints(axes))

    def squeeze(self, x: str, axes) -> str:
        return self.op("Squeeze", x, self.ints(axes))

    def cast(self, x: str, dtype) -> str:
        return self.op("Cast", x, to=self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))

    def export(self, module, inputs, path: str):
        """Export ``module`` (a child, at ``path`` in the model) on ``inputs`` (Values); returns its output Value(s)."""
        name = layer_name(module)
        entry = EXPORTERS.get(name) if name is not None else None
        if entry is None:
            where = f"at {path!r}" if path else "(the model itself)"
            why = "it is not in the layer registry" if name is None else "it has no ONNX equivalent"
            raise ExportError(
                f"export_onnx: cannot export layer {type(module).__name__} {where}: {why} (exportable layers: "
                f"{', '.join(sorted(k for k in EXPORTERS if k in LAYERS))})"
            )
        outer, self.path = self.path, path
        try:
            names = entry.fn(self, module, path, *inputs)
        finally:
            self.path = outer
        out = module(*[None if v is None else v.data for v in inputs])
        datas = _flatten_outputs(out)
        names = [names] if isinstance(names, str) else list(names)
        if len(names) != len(datas):
            raise ExportError(
                f"export_onnx: the exporter of {name} at {path!r} gave {len(names)} outputs, the layer {len(datas)}"
            )
        values = [Value(n, d) for n, d in zip(names, datas)]
        return values[0] if len(values) == 1 else values


def _flatten_outputs(out) -> list:
    if isinstance(out, (tuple, list)):
        return [d for o in out for d in _flatten_outputs(o)]
    if out is None:
        return []
    return [out.data if isinstance(out, Tensor) else np.asarray(out)]


# -- the entry point ------------------------------------------------------------------------------------------------
def export_onnx(model: Module, example_input, path, *, dynamic_batch: bool = True, opset: int = DEFAULT_OPSET):
    """Write ``model`` as an ONNX file at ``path``; returns the ``onnx.ModelProto``.

    Args:
        model: a neuronkit model built from registered layers (``Sequential``, ``Dense``, ``Conv2d``, ...).
        example_input: one input batch (array or Tensor), or a tuple of them for a model with several inputs (a
            ``TextClassifier`` takes ``(tokens, lengths)``). Its shapes, bar the batch axis, are baked into the graph.
        path: the ``.onnx`` file to write (replaced atomically).
        dynamic_batch: make axis 0 of every input and output symbolic (``"batch"``), so any batch size runs
            (default True); the time axis of a sequence model's input (a text model's tokens) is symbolic too.
        opset: the ONNX operator set version (default 17; from 17 up to what the installed ``onnx`` knows).

    The graph's inputs are named ``input`` (one input) or after the model's ``forward`` arguments (``tokens``,
    ``lengths``); its output is ``output``. Floating inputs are in the model's dtype (float32), integer ones as given.
    Raises ``ExportError`` (a ``ValueError``) for a layer without an ONNX equivalent, naming it and its path.
    """
    onnx, helper, _ = _require_onnx()
    from . import onnx_layers  # noqa: F401  (fills EXPORTERS)

    if not isinstance(model, Module):
        raise TypeError(f"export_onnx: expected a neuronkit Module, got {type(model).__name__}")
    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise ExportError(f"export_onnx: opset must be an int from {MIN_OPSET} to {top}, got {opset!r}")
    dtype = _model_dtype(model)
    arrays, names = _example_arrays(model, example_input, dtype)
    g = Graph(opset, dtype)
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with no_grad():
            outs = g.export(model, [None if a is None else Value(n, a) for n, a in zip(names, arrays)], "")
    finally:
        for m, t in training.items():
            m.__dict__["training"] = t
    outs = outs if isinstance(outs, list) else [outs]
    entry = EXPORTERS[layer_name(model)]
    in_axes, out_axes = [{} for _ in arrays], [{} for _ in outs]
    if dynamic_batch:
        batch = lambda n: [{0: "batch"} for _ in range(n)]
        in_axes, out_axes = (
            entry.axes(model, len(arrays), len(outs)) if entry.axes else (batch(len(arrays)), batch(len(outs)))
        )
    graph_inputs = [_value_info(helper, n, a, ax) for n, a, ax in zip(names, arrays, in_axes) if a is not None]
    out_names = ["output"] if len(outs) == 1 else [f"output_{i}" for i in range(len(outs))]
    graph_outputs = []
    for value, out_name, axes in zip(outs, out_names, out_axes):
        _name_output(g, value.name, out_name, names)
        graph_outputs.append(_value_info(helper, out_name, value.data, axes))
    graph = helper.make_graph(g.nodes, type(model).__name__, graph_inputs, graph_outputs, g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=helper.find_min_ir_version_for(opsets),
        producer_name="neuronkit",
        producer_version=_version(),
        doc_string=f"{type(model).__name__} exported by neuronkit.export_onnx",
    )
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    if len(data) > MAX_ONNX_BYTES:
        raise ExportError(f"export_onnx: the model is {len(data)} bytes, over ONNX's 2 GiB limit for one file")
    atomic_write(os.fspath(path), data)
    return proto


def _version() -> str:
    from .. import __version__

    return __version__


def _model_dtype(model: Module) -> np.dtype:
    kinds = {t.data.dtype for t in (*model.parameters(), *model.buffers()) if t.data.dtype.kind == "f"}
    if not kinds:
        return np.dtype(np.float32)
    if kinds != {np.dtype(np.float32)}:
        raise ExportError(
            f"export_onnx: exports float32 models; this one holds {sorted(d.name for d in kinds)} parameters "
            f"(build it with dtype='float32')"
        )
    return np.dtype(np.float32)


def _example_arrays(model: Module, example_input, dtype) -> tuple:
    """``(arrays, names)``: the example inputs as NumPy arrays (floats in the model dtype) and the graph input names.
    A None stands for an optional argument left out before a given one (it is no graph input)."""
    items = list(example_input) if isinstance(example_input, (tuple, list)) else [example_input]
    arrays = []
    for i, x in enumerate(items):
        if x is None and i > 0:
            arrays.append(None)
            continue
        a = x.data if isinstance(x, Tensor) else np.asarray(x)
        if a.dtype.kind == "f":
            a = a.astype(dtype)
        elif a.dtype.kind not in "iub":
            raise ExportError(f"export_onnx: example input {i} has dtype {a.dtype}; expected numbers")
        if a.ndim == 0:
            raise ExportError(f"export_onnx: example input {i} is a scalar; expected a batch (batch first)")
        arrays.append(a)
    params = [
        p
        for p in inspect.signature(model.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in params if p.default is p.empty]
    if not len(required) <= len(arrays) <= len(params):
        want = ", ".join(p.name for p in params)
        raise ExportError(
            f"export_onnx: {type(model).__name__} takes {len(required)} input(s) ({want}); the example input gave "
            f"{len(arrays)}"
        )
    names = ["input"] if len(arrays) == 1 else [p.name for p in params[: len(arrays)]]
    return arrays, names


def _value_info(helper, name: str, a: np.ndarray, symbolic: dict):
    shape = [symbolic.get(i, d) for i, d in enumerate(a.shape)]
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(a.dtype), shape)


def _name_output(g: Graph, value: str, out_name: str, input_names) -> None:
    """Give the graph output its public name: rename the node output that holds it, or add an Identity when the value
    is a graph input or an initializer, or is also read by another node."""
    producer = next((n for n in g.nodes if value in n.output), None)
    consumed = any(value in n.input for n in g.nodes)
    if producer is None or consumed or value in input_names:
        g.nodes.append(g.helper.make_node("Identity", [value], [out_name], name=f"/{out_name}/Identity"))
        return
    producer.output[list(producer.output).index(value)] = out_name
