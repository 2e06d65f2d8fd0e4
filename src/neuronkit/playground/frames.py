"""What the page draws, computed from the live model: metrics, every neuron's heatmap over the input plane, the
weights of the edges, dead and saturated flags, and one neuron's details.

Everything here runs in eval mode without a graph (``no_grad``), on bounded subsets of the data (``EVAL_TRAIN``
training and ``EVAL_TEST`` test samples) and on a bounded grid, so that one frame costs a bounded time whatever the
data. Heatmaps travel as base64 bytes (one byte per pixel, ``0..255`` for ``-1..1``), weights as base64 float32.
"""

from __future__ import annotations

import base64

import numpy as np

from ..autograd.grad_mode import no_grad
from ..inspect.probes import RELU_LIKE, SIGMOID_LIKE, TANH_LIKE, activation_name
from ..nn.layers.dense import Dense
from ..tensor import Tensor
from .data import PlayData, features

EVAL_TRAIN, EVAL_TEST = 1000, 2000  # samples measured for each frame's metrics and flags
MAX_EDGES = 20000  # weights sent for drawing the edges (a larger net is drawn without them)
OUTPUT_GRID = 40  # pixels per side of the decision-boundary heatmap
HIST_BINS = 30


def dense_layers(model) -> list:
    """``(name, Dense)`` of every dense layer in order; the last is the output layer."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, Dense)]


def layer_outputs(model, x: np.ndarray) -> list:
    """The output (after its activation, and after any ablation hook) of every dense layer for inputs ``x``."""
    outs = []
    was = model.training
    if was:  # (switching walks every module: a frame switches once, around all its passes)
        model.eval()
    try:
        with no_grad():
            h = Tensor(np.ascontiguousarray(x, dtype=np.float32))
            for m in model:
                h = m(h)
                if isinstance(m, Dense):
                    outs.append(h.data)
    finally:
        if was:
            model.train(True)
    return outs


def metrics(logits: np.ndarray, y: np.ndarray) -> dict:
    """Cross-entropy loss (mean over samples) and accuracy of ``logits`` (n, classes) against labels ``y`` (n,)."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = float(-logp[np.arange(len(y)), y].mean()) if len(y) else float("nan")
    acc = float((logits.argmax(axis=1) == y).mean()) if len(y) else float("nan")
    return {"loss": loss, "accuracy": acc}


def accuracy(model, x, y) -> float:
    return metrics(layer_outputs(model, x)[-1], y)["accuracy"]


def flags(model, outs: list, layers=None) -> dict:
    """``dead`` (a ReLU-like unit never > 0 on the measured samples) and ``saturated`` (a sigmoid/tanh-like unit
    pinned at its bounds on more than 95 % of them): ``[layer, unit]`` pairs of the hidden layers."""
    dead, sat = [], []
    for i, ((_, m), o) in enumerate(zip((layers or dense_layers(model))[:-1], outs[:-1])):
        act = activation_name(m)
        if act in RELU_LIKE:
            dead += [[i, int(u)] for u in np.flatnonzero((o <= 0).all(axis=0))]
        elif act in SIGMOID_LIKE or act in TANH_LIKE:
            pinned = (o < 0.01) | (o > 0.99) if act in SIGMOID_LIKE else np.abs(o) > 0.99
            sat += [[i, int(u)] for u in np.flatnonzero(pinned.mean(axis=0) > 0.95)]
    return {"dead": dead, "saturated": sat}


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a).tobytes()).decode("ascii")


def _quantise(v: np.ndarray, act: str) -> np.ndarray:
    """Values (pixels, units) to bytes 0..255 for -1..1: bounded activations on their own scale, others divided by
    each unit's largest magnitude on the grid."""
    if act in SIGMOID_LIKE:
        s = v * 2 - 1
    elif act in TANH_LIKE:
        s = v
    else:
        s = v / np.maximum(np.abs(v).max(axis=0, keepdims=True), 1e-12)
    return np.round((np.clip(s, -1, 1) + 1) * 127.5).astype(np.uint8)


def grid_size(n_neurons: int) -> int:
    """Pixels per side of each neuron's heatmap (a divisor of ``OUTPUT_GRID``): smaller for larger nets, none past
    1024 neurons (bounded frames)."""
    return OUTPUT_GRID // 2 if n_neurons <= 160 else OUTPUT_GRID // 4 if n_neurons <= 1024 else 0


def plane(extent: float, g: int) -> np.ndarray:
    """(g*g, 2) points of a g x g grid over [-extent, extent]^2, row by row from the top (y = +extent) down."""
    t = (np.arange(g) + 0.5) / g * 2 * extent - extent
    xx, yy = np.meshgrid(t, t[::-1])
    return np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32)


def heatmaps(model, data: PlayData, feature_names: list, layers=None) -> dict:
    """Every neuron's output over the plane (inputs, hidden units, and the output's probability of class 1), from
    one pass over the ``OUTPUT_GRID`` grid; the neurons' heatmaps keep every k-th row and column of it."""
    layers = layers or dense_layers(model)
    g = grid_size(sum(m.out_features for _, m in layers[:-1]) + len(feature_names))
    x = features(plane(data.extent, OUTPUT_GRID), feature_names)
    outs = layer_outputs(model, x)
    out = {"grid": g, "output_grid": OUTPUT_GRID}
    out["output"] = _b64(_quantise(_class1(outs[-1])[:, None], "sigmoid").ravel())
    if g:
        k = OUTPUT_GRID // g

        def sub(a):  # (OUTPUT_GRID^2, units) -> (g^2, units)
            return a.reshape(OUTPUT_GRID, OUTPUT_GRID, -1)[::k, ::k].reshape(g * g, -1)

        out["inputs"] = _b64(_quantise(sub(x), "linear").T.ravel())
        out["hidden"] = [_b64(_quantise(sub(o), activation_name(m)).T.ravel()) for (_, m), o in zip(layers, outs[:-1])]
    return out


def _class1(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    return p[:, 1] / p.sum(axis=1)


def weights(model, layers=None) -> list | None:
    """Each dense layer's weights (out, in) as base64 float32 with its shape, or None past ``MAX_EDGES``."""
    layers = layers or dense_layers(model)
    if sum(m.weight.data.size for _, m in layers) > MAX_EDGES:
        return None
    return [{"shape": list(m.weight.data.shape), "w": _b64(m.weight.data.astype(np.float32))} for _, m in layers]


def data_message(data: PlayData, version: int) -> dict:
    """The data as the page draws it: 2-D points and labels (base64 float32 / uint8), or the set's sizes."""
    d = {
        "type": "data",
        "version": version,
        "name": data.name,
        "classes": data.classes,
        "sizes": {"train": len(data.y_train), "test": len(data.y_test)},
        "inputs": data.input_names if data.n_inputs <= 64 else data.n_inputs,
        "image_shape": list(data.image_shape) if data.image_shape else None,
    }
    if data.points_train is not None:
        d["extent"] = data.extent
        d["points"] = {
            "train": _b64(data.points_train.astype(np.float32)),
            "test": _b64(data.points_test.astype(np.float32)),
            "train_labels": _b64(data.y_train.astype(np.uint8)),
            "test_labels": _b64(data.y_test.astype(np.uint8)),
        }
    return d


def frame(model, data: PlayData, feature_names: list, step: int, epoch: int, full: bool = True) -> dict:
    """One frame: step, epoch, (2-D data) heatmaps and, when ``full``, train/test metrics, flags and edge weights
    (a page keeps the last of these it received: they need not change 40 times a second)."""
    f = {"type": "frame", "step": step, "epoch": epoch, "full": full}
    layers = dense_layers(model)
    was = model.training
    model.eval()
    try:
        if full:
            n_tr, n_te = min(EVAL_TRAIN, len(data.y_train)), min(EVAL_TEST, len(data.y_test))
            outs = layer_outputs(model, data.x_train[:n_tr])
            f["train"] = metrics(outs[-1], data.y_train[:n_tr])
            f["test"] = metrics(layer_outputs(model, data.x_test[:n_te])[-1], data.y_test[:n_te])
            f["measured"] = {"train": n_tr, "test": n_te}
            f["flags"] = flags(model, outs, layers)
            f["weights"] = weights(model, layers)
        if data.points_train is not None:
            f["heatmaps"] = heatmaps(model, data, feature_names, layers)
    finally:
        model.train(was)
    return f


def neuron(model, data: PlayData, layer: int, unit: int, probe=None, events=()) -> dict:
    """One neuron's details: weights, bias, activation, histogram of its output on the measured training samples,
    its probe history (mean output, active fraction, gradient norm, update ratio over the steps) and its events."""
    name, m = dense_layers(model)[layer]
    n_tr = min(EVAL_TRAIN, len(data.y_train))
    o = layer_outputs(model, data.x_train[:n_tr])[layer][:, unit].astype(np.float64)
    counts, edges = np.histogram(o, bins=HIST_BINS)
    d = {
        "type": "neuron",
        "layer": layer,
        "unit": unit,
        "activation": activation_name(m),
        "weights": m.weight.data[unit].astype(np.float64).tolist(),
        "bias": None if m.bias is None else float(m.bias.data[unit]),
        "inputs": data.input_names if layer == 0 else None,
        "image_shape": list(data.image_shape) if layer == 0 and data.image_shape else None,
        "histogram": {"counts": counts.tolist(), "edges": edges.tolist()},
        "output_mean": float(o.mean()),
    }
    if probe is not None and name in probe.layers:
        h = probe.history(name)
        d["history"] = {
            "step": h["step"].tolist(),
            **{k: h[k][:, unit].tolist() for k in ("out_mean", "active_frac", "grad_norm", "update_ratio")},
        }
    d["events"] = [e["message"] for e in events if e.get("layer") == name and e.get("unit") == unit][-20:]
    return d
