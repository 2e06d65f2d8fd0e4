"""The report's plots, drawn with matplotlib (the Agg canvas: no display, no pyplot state) into PNG bytes.

Each function returns a ``Plot``: the PNG, a caption, and ``data``: the numbers it shows (so a test, or a person
reading the HTML source, can check the picture against the run's files).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

COLORS = {"train": "#1f77b4", "validation": "#ff7f0e"}
DPI = 80


@dataclass
class Plot:
    key: str
    title: str
    caption: str
    png: bytes
    data: dict = field(default_factory=dict)


def new_figure(w: float = 6.0, h: float = 3.4, cols: int = 1, rows: int = 1):
    """A matplotlib figure of ``w`` x ``h`` inches drawn off-screen (no pyplot state), with a (rows, cols) axes grid."""
    fig = Figure(figsize=(w, h), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def png_bytes(fig) -> bytes:
    """``fig`` rendered as PNG bytes at the report's resolution."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def _finite(values) -> list:
    """Values as floats, with None for missing and non-finite ones (JSON and matplotlib both accept them)."""
    out = []
    for v in values:
        f = None if v is None else float(v)
        out.append(f if f is not None and math.isfinite(f) else None)
    return out


def _series(epochs, key):
    return _finite(e.get(key) for e in epochs)


def curves(epochs, metric: str) -> Plot:
    """Training vs validation curve of ``metric`` ("loss", "accuracy", ...) per epoch."""
    x = [int(e["epoch"]) for e in epochs]
    train, val = _series(epochs, metric), _series(epochs, f"val_{metric}")
    fig, ax = new_figure()
    ax = ax[0, 0]
    ax.plot(x, [np.nan if v is None else v for v in train], "o-", color=COLORS["train"], label=f"training {metric}")
    has_val = any(v is not None for v in val)
    if has_val:
        ax.plot(
            x, [np.nan if v is None else v for v in val], "s-", color=COLORS["validation"], label=f"validation {metric}"
        )
    if metric == "loss" and all(v is None or v > 0 for v in train + val) and any(v for v in train):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend()
    caption = (
        f"{metric} on the training data (averaged over each epoch's steps)"
        + (" and on the validation data (measured after each epoch)" if has_val else "")
        + "."
    )
    data = {"epoch": x, "train": train, **({"validation": val} if has_val else {})}
    return Plot(f"curve-{metric}", f"{metric.capitalize()}: training vs validation", caption, png_bytes(fig), data)


def learning_rate(epochs, probes=None) -> Plot:
    """The learning rate: at every probe record when the run has probes (finer), else per epoch."""
    fig, ax = new_figure(6.0, 2.6)
    ax = ax[0, 0]
    steps = lr = None
    if probes is not None and probes.layers:
        rec = next(iter(probes.layers.values()))
        steps, lr = [int(s) for s in rec.steps], _finite(rec.lr)
    if steps:
        ax.plot(steps, [np.nan if v is None else v for v in lr], color="#2ca02c")
        ax.set_xlabel("training step")
        data = {"step": steps, "lr": lr}
    else:
        x = [int(e["epoch"]) for e in epochs]
        lr = _series(epochs, "lr")
        ax.plot(x, [np.nan if v is None else v for v in lr], "o-", color="#2ca02c")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        data = {"epoch": x, "lr": lr}
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return Plot("lr", "Learning rate", "The learning rate the optimizer used.", png_bytes(fig), data)


def histograms(probes) -> Plot:
    """Per probed layer: the distribution of the layer's outputs at each record, as a heat map over time."""
    names = list(probes.layers)
    fig, axes = new_figure(6.0, 2.2 * len(names), rows=len(names))
    data = {}
    for ax, name in zip(axes[:, 0], names):
        rec = probes.layers[name]
        h = np.asarray(rec.hist, dtype=np.float64)
        edges = np.asarray(rec.hist_edges)
        steps = [int(s) for s in rec.steps]
        frac = h / np.maximum(h.sum(1, keepdims=True), 1)
        if len(steps):
            right = steps[-1] if steps[-1] > steps[0] else steps[0] + 1
            ax.imshow(
                frac.T,
                aspect="auto",
                origin="lower",
                cmap="viridis",
                interpolation="nearest",
                norm=LogNorm(vmin=1e-4, vmax=1.0, clip=True),
                extent=(steps[0], right, edges[0], edges[-1]),
            )
        ax.set_title(f"layer {name} ({rec.activation}, {rec.units} units)", fontsize=10)
        ax.set_ylabel("output value")
        data[name] = {"steps": steps, "counts": h.astype(int).tolist()}
    axes[-1, 0].set_xlabel("training step")
    return Plot(
        "histograms",
        "Activation histograms over time",
        "Each column is one probe record: the share of the layer's outputs (all units, the whole batch) in "
        "each value bin, brighter = more (log colour scale, from 0.01% to 100%). Values outside the range fall "
        "into the edge bins.",
        png_bytes(fig),
        data,
    )


def unit_health(probes) -> Plot:
    """Per layer over time: the fraction of dead units (never active in a record) and of saturated ones."""
    fig, ax = new_figure()
    ax = ax[0, 0]
    data = {}
    for name, rec in probes.layers.items():
        steps = [int(s) for s in rec.steps]
        dead = (np.asarray(rec.unit["active_frac"]) == 0).mean(1) if rec.size else np.zeros(0)
        sat = (np.asarray(rec.unit["saturated_frac"]) > 0.95).mean(1) if rec.size else np.zeros(0)
        if rec.activation != "linear":
            ax.plot(steps, dead, label=f"layer {name}: dead")
            if sat.any():
                ax.plot(steps, sat, "--", label=f"layer {name}: saturated")
        data[name] = {"steps": steps, "dead": _finite(dead), "saturated": _finite(sat)}
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("training step")
    ax.set_ylabel("fraction of units")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return Plot(
        "unit-health",
        "Dead and saturated units over time",
        "Dead: a unit whose output was not positive for any example of the recorded batch. Saturated: a "
        "sigmoid/tanh unit pinned at its bounds for more than 95% of the batch.",
        png_bytes(fig),
        data,
    )


def grad_norms(probes) -> Plot:
    fig, ax = new_figure()
    ax = ax[0, 0]
    data = {}
    for name, rec in probes.layers.items():
        steps = [int(s) for s in rec.steps]
        g = _finite(rec.layer["layer_grad_norm"])
        ax.plot(steps, [np.nan if v is None else v for v in g], label=f"layer {name}")
        data[name] = {"steps": steps, "grad_norm": g}
    if any(v for d in data.values() for v in d["grad_norm"] if v is not None):
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("weight-gradient norm")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return Plot(
        "grad-norms",
        "Gradient norms per layer",
        "The L2 norm of each layer's weight gradient at each probe record (log scale). A norm that falls to "
        "almost nothing means the layer has stopped learning; one that grows by orders of magnitude means "
        "the run is diverging.",
        png_bytes(fig),
        data,
    )


def _grid(n: int) -> tuple:
    cols = min(n, 8)
    return cols, math.ceil(n / cols)


def _mosaic(images, cols: int, label_rows: int) -> tuple:
    """One array holding ``images`` (each (h, w)) on a grid with gaps (NaN: drawn as background) and room above
    each for ``label_rows`` lines of text; returns (mosaic, cell height, cell width, label height). One ``imshow``
    of a mosaic draws many times faster than one axes per image."""
    h, w = images[0].shape
    gap = max(1, h // 8)
    label_h = math.ceil(0.9 * label_rows * max(h, 8) / 4) if label_rows else 0
    ch, cw = h + gap + label_h, w + gap
    rows = math.ceil(len(images) / cols)
    out = np.full((rows * ch, cols * cw), np.nan)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        out[r * ch + label_h : r * ch + label_h + h, c * cw : c * cw + w] = img
    return out, ch, cw, label_h


def _image_grid(images, labels, cmap, symmetric: bool, fontsize: float = 7):
    cols, rows = _grid(len(images))
    mosaic, ch, cw, label_h = _mosaic(images, cols, len(labels[0].split("\n")) if labels else 0)
    fig, ax = new_figure(1.15 * cols, 1.3 * rows)
    ax = ax[0, 0]
    if symmetric:
        m = float(np.nanmax(np.abs(mosaic))) or 1.0
        ax.imshow(mosaic, cmap=cmap, vmin=-m, vmax=m, interpolation="nearest")
    else:
        ax.imshow(mosaic, cmap=cmap, interpolation="nearest")
    for i, text in enumerate(labels):
        r, c = divmod(i, cols)
        ax.text(c * cw + (cw - 1) / 2, r * ch + label_h / 2, text, ha="center", va="center", fontsize=fontsize)
    ax.axis("off")
    return fig


def first_layer_weights(weight: np.ndarray, image_shape: tuple | None, layer: str, max_units: int = 32) -> Plot:
    """The first layer's weights: one small image per unit when the inputs are images, else a heat map."""
    w = np.asarray(weight, dtype=np.float64)
    units = w.shape[0]
    if image_shape is not None:
        k = min(units, max_units)
        imgs = []
        for i in range(k):
            img = w[i].reshape(image_shape)
            img = img if img.ndim == 2 else img.mean(0)  # (C, H, W): the channels averaged
            imgs.append(img / (np.abs(img).max() or 1.0))  # each unit on its own scale
        fig = _image_grid(imgs, [f"unit {i}" for i in range(k)], "RdBu_r", symmetric=True)
        caption = (
            f"The weights of the first {k} of {units} units of layer {layer}, each drawn in the shape of its "
            "input: red pixels push the unit's weighted sum up, blue ones down (each unit on its own scale)."
        )
    else:
        fig, ax = new_figure()
        ax = ax[0, 0]
        m = np.abs(w).max() or 1.0
        im = ax.imshow(w, cmap="RdBu_r", vmin=-m, vmax=m, aspect="auto", interpolation="nearest")
        fig.colorbar(im, ax=ax)
        ax.set_xlabel("input feature")
        ax.set_ylabel("unit")
        caption = f"The weight matrix of layer {layer}: one row per unit, one column per input feature."
    norms = np.sqrt((w.reshape(units, -1) ** 2).sum(1))
    return Plot(
        "first-weights",
        "First-layer weights",
        caption,
        png_bytes(fig),
        {"layer": layer, "shape": list(w.shape), "norms": _finite(norms)},
    )


def confusion(matrix: np.ndarray, classes: list, note: str = "", extra: dict | None = None) -> Plot:
    """The (C, C) confusion matrix with a label per row and column; ``note`` ends the caption and ``extra`` joins the
    embedded data (``report.page.confusion_plot`` summarises a matrix with many classes before drawing it)."""
    m = np.asarray(matrix, dtype=np.int64)
    c = len(classes)
    fig, ax = new_figure(min(1.0 + 0.45 * c, 7.0), min(0.8 + 0.45 * c, 6.5))
    ax = ax[0, 0]
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(c), classes, rotation=90 if c > 10 else 0, fontsize=8)
    ax.set_yticks(range(c), classes, fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if c <= 20:
        hi = m.max() or 1
        for i in range(c):
            for j in range(c):
                ax.text(
                    j,
                    i,
                    str(m[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if m[i, j] > hi / 2 else "black",
                )
    return Plot(
        "confusion",
        "Confusion matrix (test data)",
        "Rows: the true class; columns: the class the network predicted. The diagonal counts the correct answers."
        + (" " + note if note else ""),
        png_bytes(fig),
        {"matrix": m.tolist(), "classes": list(classes), **(extra or {})},
    )


def confident_mistakes(images, true, pred, conf, classes, indices) -> Plot:
    """The most confidently wrong test examples, drawn as images with true and predicted class."""
    imgs = [im if im.ndim == 2 else im.mean(0) for im in images]
    labels = [f"true {classes[t]}\npred {classes[p]} {c:.0%}" for t, p, c in zip(true, pred, conf)]
    fig = _image_grid(imgs, labels, "gray_r", symmetric=False, fontsize=6.5)
    return Plot(
        "mistakes",
        "Most confidently wrong test examples",
        "Test examples the network got wrong with the highest confidence in its wrong answer (the softmax "
        "probability of the predicted class). They often reveal ambiguous or mislabelled data.",
        png_bytes(fig),
        {
            "index": [int(i) for i in indices],
            "true": [int(t) for t in true],
            "pred": [int(p) for p in pred],
            "confidence": _finite(conf),
        },
    )
