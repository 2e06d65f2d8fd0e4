"""The report's section on a text run, "Reading the texts": the most confidently wrong test texts with each
token's attribution (integrated gradients, coloured), attention maps of a few test texts (when the model attends),
and the test phrases that excite a few units most (the peak token marked).

``TextReport`` holds what is shown (computed by the command line from the run); ``text_section_html(t)`` renders it
(every text is escaped), ``attention_plot`` draws one text's attention per head.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from . import figures as F

MAX_TOKENS = 60  # tokens of a text shown in the report (the rest is elided)


@dataclass
class Mistake:
    """A test text the model got wrong: its tokens and each one's push towards the predicted class."""

    index: int
    words: list
    scores: np.ndarray
    true: str
    pred: str
    confidence: float
    error: float  # the attributions' completeness error (relative)


@dataclass
class UnitPhrases:
    """The test texts that excite one unit most: ``(words, peak index, response)`` each, strongest first."""

    layer: str
    unit: int
    hits: list


@dataclass
class TextReport:
    mistakes: list = field(default_factory=list)
    attention: list = field(default_factory=list)  # Plots
    units: list = field(default_factory=list)


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _token_span(word: str, share: float) -> str:
    """A token with a background from red (pushes against) through white to green (pushes towards)."""
    a = min(1.0, abs(share))
    rgb = (255, int(255 - 140 * a), int(255 - 140 * a)) if share < 0 else (int(255 - 140 * a), 255, int(255 - 140 * a))
    return f'<span class="tok" style="background:rgb{rgb}" title="{share:+.3f}">{_esc(word)}</span>'


def _mistake_html(m: Mistake) -> str:
    scale = float(np.abs(m.scores).max()) or 1.0
    words = m.words[:MAX_TOKENS]
    body = " ".join(_token_span(w, s / scale) for w, s in zip(words, m.scores))
    more = f" ... ({len(m.words) - MAX_TOKENS} more tokens)" if len(m.words) > MAX_TOKENS else ""
    return (
        f"<li><b>true {_esc(m.true)}, predicted {_esc(m.pred)} ({m.confidence:.0%})</b>, test text {m.index} "
        f"<small>(completeness error {m.error:.2%})</small><br>{body}{more}</li>"
    )


def _unit_html(u: UnitPhrases) -> str:
    rows = []
    for words, peak, response in u.hits:
        lo = max(0, min(peak - 8, len(words) - 16))
        shown = [f"<mark>{_esc(w)}</mark>" if lo + k == peak else _esc(w) for k, w in enumerate(words[lo : lo + 16])]
        rows.append(
            f"<li>{response:.3g}: {'... ' if lo else ''}{' '.join(shown)}{' ...' if lo + 16 < len(words) else ''}</li>"
        )
    return f"<h4>layer {_esc(u.layer)}, unit {u.unit}</h4><ul>{''.join(rows)}</ul>"


def text_section_html(t: TextReport) -> str:
    """The section's HTML (without its plots, which the page draws with the others)."""
    parts = []
    if t.mistakes:
        parts.append(
            "<h3>Most confidently wrong test texts</h3><p>Each token coloured by how much it pushed the prediction "
            "towards the (wrong) predicted class (green) or against it (red): integrated gradients on the "
            "embeddings, the attributions adding up to the change of the class score from an all-zero text.</p>"
            f"<ol class='mistakes'>{''.join(_mistake_html(m) for m in t.mistakes)}</ol>"
        )
    if t.units:
        parts.append(
            "<h3>What a few units respond to</h3><p>The test texts that excite each unit most, the token where it "
            "peaks (or that contributes most, for a unit with one value per text) marked.</p>"
            + "".join(_unit_html(u) for u in t.units)
        )
    return "".join(parts)


def attention_plot(weights: np.ndarray, words: list, layer: str, index: int) -> F.Plot:
    """One text's attention in layer ``layer``: per head, the (tokens x tokens) weights (rows: queries)."""
    h, n = weights.shape[0], len(words)
    fig, axes = F.new_figure(2.6 * h + 0.6, 2.8, cols=h)
    for i, ax in enumerate(axes[0]):
        ax.imshow(weights[i, :n, :n], cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(f"head {i}", fontsize=8)
        ticks = list(range(n)) if n <= 20 else list(range(0, n, max(1, n // 10)))
        ax.set_xticks(ticks, [words[k] for k in ticks], rotation=90, fontsize=6)
        ax.set_yticks(ticks, [words[k] for k in ticks], fontsize=6)
    return F.Plot(
        f"attention-{layer}-{index}",
        f"Attention in {layer}, test text {index}",
        "Each row: how one token (the query) spreads its attention over the text's tokens (columns); darker is more.",
        F.png_bytes(fig),
        {"layer": layer, "text": index, "tokens": list(words[:n]), "weights": np.round(weights[:, :n, :n], 4).tolist()},
    )
