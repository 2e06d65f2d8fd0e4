"""``Result``: what one tour experiment measured, the claim it tests, and its picture; plus the helpers they share.

An experiment is a function ``run(seed=0) -> Result``. ``holds`` is computed from ``figures`` (the measured numbers),
never written down in advance; ``plot(fig)`` draws the picture on a ``matplotlib.figure.Figure`` and ``draw(out)``
saves it as ``out/<name>.png`` with the Agg (file-only) backend, without pyplot and its global state.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor

__all__ = ["Result", "accuracy", "train_full_batch"]


@dataclass
class Result:
    """One experiment's outcome.

    ``name``: the experiment's key in ``EXPERIMENTS`` (and its picture's file name); ``title``: the question it
    answers; ``claim``: the statement tested; ``figures``: the measured numbers (JSON-able); ``holds``: whether the
    claim holds for those numbers; ``explanation``: plain language quoting the numbers; ``plot``: draws the picture
    on a ``matplotlib.figure.Figure``; ``size``: the picture's size in inches; ``seconds``: the experiment's run time.
    """

    name: str
    title: str
    claim: str
    figures: dict
    holds: bool
    explanation: str
    plot: Callable | None = field(default=None, repr=False, compare=False)
    size: tuple = (10.0, 4.0)
    seconds: float = 0.0

    def draw(self, out) -> Path:
        """Save the picture as ``out/<name>.png`` (the folder is created); returns its path."""
        if self.plot is None:
            raise ValueError(f"experiment {self.name!r} has no picture")
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as e:  # pragma: no cover - matplotlib is a dependency
            raise ImportError("the tour's pictures need matplotlib: pip install matplotlib") from e
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        fig = Figure(figsize=self.size, dpi=100, layout="constrained")
        FigureCanvasAgg(fig)  # the Agg canvas: PNG output with no display and no pyplot state
        self.plot(fig)
        path = out / f"{self.name}.png"
        fig.savefig(path, format="png")
        return path

    def to_dict(self) -> dict:
        """The JSON-able part: name, title, claim, holds, figures, explanation, seconds."""
        return {
            "name": self.name,
            "title": self.title,
            "claim": self.claim,
            "holds": bool(self.holds),
            "figures": jsonable(self.figures),
            "explanation": self.explanation,
            "seconds": round(self.seconds, 3),
        }

    def report(self, width: int = 100) -> str:
        """The claim, the explanation (wrapped, paragraphs kept) and the verdict, as plain text."""
        lines = textwrap.wrap(f"claim: {self.claim}", width, subsequent_indent="       ")
        for para in self.explanation.split("\n"):
            lines += textwrap.wrap(para, width) if para.strip() else [""]
        lines.append(f"-> {'holds' if self.holds else 'DOES NOT HOLD'} ({self.seconds:.2f} s)")
        return "\n".join("  " + line if line else "" for line in lines)


def jsonable(v):
    """``v`` with NumPy scalars and arrays turned into Python numbers and lists; non-finite floats as strings."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(v) else str(float(v))
    return v


def train_full_batch(model, x, y, loss_fn, optimizer, steps: int) -> list:
    """``steps`` steps of full-batch training; returns the loss before each step (a list of floats).

    ``x``: a float array (N, in); ``y``: labels or targets as ``loss_fn(model(x), y)`` takes them.
    """
    xt = Tensor(x)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(xt), y)
        losses.append(float(loss.item()))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return losses


def accuracy(model, x, y) -> float:
    """The fraction of ``x`` classified as ``y``: argmax of the outputs, or output > 0.5 for one sigmoid output."""
    with no_grad():
        out = model(Tensor(x)).data
    pred = (out[:, 0] > 0.5).astype(np.int64) if out.shape[-1] == 1 else out.argmax(axis=-1)
    return float((pred == np.asarray(y)).mean())
