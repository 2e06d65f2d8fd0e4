"""The picture of one neuron for ``neuronkit inspect``: its weights, its history over training, and the inputs that
excite it most, in one PNG."""

from __future__ import annotations

import numpy as np

from .figures import new_figure, png_bytes


def unit_figure(view, image_shape=None, top_images=None, classes=None) -> bytes:
    """PNG of a ``inspect.unit.UnitView``: weights (as an image when they have ``image_shape``, else a bar per
    input), history panels when the run has probes, and ``top_images`` (the top inputs as images) when given."""
    has_hist = view.history is not None and len(view.history["step"]) > 0
    k = len(top_images) if top_images is not None else 0
    rows = 1 + (1 if has_hist else 0) + (1 if k else 0)
    fig, axes = new_figure(10.0, 2.9 * rows, cols=3, rows=rows)
    for ax in axes.ravel():
        ax.axis("off")
    w = view.weight
    shape = tuple(w.shape[1:]) if view.kind == "conv" and w.ndim == 3 else image_shape
    ax = axes[0, 0]
    ax.axis("on")
    if shape is not None and int(np.prod(shape)) == w.size:
        img = w.reshape(shape)
        img = img if img.ndim == 2 else img.mean(0)
        m = np.abs(img).max() or 1.0
        ax.imshow(img, cmap="RdBu_r", vmin=-m, vmax=m, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("weights (red +, blue -)", fontsize=9)
    else:
        ax.bar(np.arange(w.size), w.ravel(), color=np.where(w.ravel() >= 0, "#c0392b", "#2874a6"))
        ax.set_xlabel("input")
        ax.set_title("weights", fontsize=9)
    info = axes[0, 1]
    info.text(
        0.0,
        0.95,
        f"layer {view.layer} ({view.type}), unit {view.unit}\n"
        f"output = {view.activation}(w . x + b)\nbias b = {view.bias:.4g}\n"
        f"|w| = {np.sqrt((w**2).sum()):.4g} over {w.size} weights\n"
        f"events: {len(view.events)}",
        va="top",
        fontsize=10,
        family="monospace",
    )
    if has_hist:
        h = view.history
        s = h["step"]
        panels = [
            ("pre-activation mean +- std", [("pre_mean", None)]),
            ("fraction of batch active", [("active_frac", None)]),
            ("bias and weight norm", [("bias", "bias"), ("weight_norm", "weight norm")]),
        ]
        for ax, (title, series) in zip(axes[1], panels):
            ax.axis("on")
            for key, label in series:
                ax.plot(s, h[key], label=label)
            if title.startswith("pre"):
                ax.fill_between(s, h["pre_mean"] - h["pre_std"], h["pre_mean"] + h["pre_std"], alpha=0.25)
            if title.startswith("fraction"):
                ax.set_ylim(-0.02, 1.02)
            if len(series) > 1:
                ax.legend(fontsize=7)
            for e in view.events:
                ax.axvline(e["step"], color="#c0392b", ls=":", lw=1)
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("training step", fontsize=8)
            ax.grid(alpha=0.3)
    if k:
        row = axes[-1]
        strip = np.concatenate(
            [np.pad(im if im.ndim == 2 else im.mean(0), ((0, 0), (0, 1)), constant_values=np.nan) for im in top_images],
            axis=1,
        )
        big = fig.add_subplot(row[0].get_gridspec()[-1, :])
        big.imshow(strip, cmap="gray_r", interpolation="nearest")
        big.set_xticks([])
        big.set_yticks([])
        labels = [
            f"{r:.3g}" + ("" if y is None else f" ({classes[int(y)] if classes else y})") for _, r, y in view.top[:k]
        ]
        big.set_title("inputs that excite it most: " + ", ".join(labels), fontsize=9)
    return png_bytes(fig)
