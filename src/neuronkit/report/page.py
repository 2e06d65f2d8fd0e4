"""One self-contained HTML page for a run: every plot is an inline PNG, the style is inline, nothing is fetched, so
the file opens offline and can be mailed or archived as it is.

``ReportData`` holds what the page shows; ``build_report(data)`` returns the HTML; ``write_report(path, data)``
writes it atomically. Each plot's numbers are embedded next to it as JSON (``<script type="application/json"
class="plot-data">``), so what a picture shows can be checked against the run's own files.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from . import figures as F

SEVERITY_COLORS = {"error": "#c0392b", "warning": "#d68910", "info": "#2874a6"}
MAX_EVENTS = 200
MAX_MISTAKES = 16
MAX_CONFUSION_CLASSES = 20
"""Classes drawn in the confusion matrix: beyond this, the ``MAX_CONFUSION_CLASSES - 1`` classes with the most test
errors (then the most test samples) are drawn, and all the others are summed in one "other" row and column."""


@dataclass
class ReportData:
    """What a report shows. Only ``title`` and ``epochs`` are required; every other part is drawn when present.

    ``epochs``: per-epoch records (``loss``, ``val_loss``, metrics, ``lr``). ``probes``: a ``Probe`` or a saved
    ``ProbeHistory``. ``first_layer``: ``(name, weight array (units, inputs...), shape to draw one unit's weights
    in, or None to draw them as inputs when those are images)``. ``image_shape``: the (H, W) or
    (C, H, W) shape of one input when inputs are images. ``test``: ``(inputs, labels, outputs)`` of the test data for
    the confusion matrix and the most confidently wrong examples (classification). ``findings``: diagnostics
    (``inspect.Finding``); ``events``: the probe's events (dicts). ``text``: a text run's ``report.text.TextReport``.
    """

    title: str
    epochs: list
    subtitle: str = ""
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    summary: str = ""
    probes: object = None
    first_layer: tuple | None = None
    image_shape: tuple | None = None
    classes: list | None = None
    test: tuple | None = None
    findings: list = field(default_factory=list)
    events: list = field(default_factory=list)
    text: object = None  # a text run's report.text.TextReport: mistakes with attributions, attention, unit phrases


def _esc(v) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.3g}"
    return str(v)


def _table(rows, head=None, cls="kv") -> str:
    out = [f'<table class="{cls}">']
    if head:
        out.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in head) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{_esc(_fmt(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "".join(out)


# Inside <script>, "</script" ends the element and "<!--" followed by "<script" keeps a later "</script>" from ending
# it (the rest of the page becomes script text); JSON may write any character as \uXXXX, so none of these survive.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def script_json(obj) -> str:
    """``obj`` as strict JSON (no NaN/Infinity) that is safe inside an HTML ``<script>`` element: ``<``, ``>`` and
    ``&`` are written as ``\\u003c``, ``\\u003e``, ``\\u0026`` (``JSON.parse`` and ``json.loads`` read them back)."""
    return json.dumps(obj, allow_nan=False).translate(_SCRIPT_SAFE)


def _plot_html(p: F.Plot) -> str:
    b64 = base64.b64encode(p.png).decode("ascii")
    data = script_json(p.data)
    return (
        f'<figure class="plot" id="plot-{_esc(p.key)}" data-plot="{_esc(p.key)}">'
        f"<h3>{_esc(p.title)}</h3>"
        f'<img src="data:image/png;base64,{b64}" alt="{_esc(p.title)}">'
        f"<figcaption>{_esc(p.caption)}</figcaption>"
        f'<script type="application/json" class="plot-data">{data}</script></figure>'
    )


def predicted_confidence(out: np.ndarray, rows: int = 1024) -> tuple:
    """``(pred, conf)``: each row's predicted class (argmax of the (N, C) outputs) and its softmax probability,
    ``1 / sum_j exp(z_j - max z)``, computed in float64 ``rows`` rows at a time (memory O(rows * C), not O(N * C))."""
    pred = np.asarray(out).argmax(1)
    conf = np.empty(len(pred))
    for s in range(0, len(pred), rows):
        z = np.asarray(out[s : s + rows], dtype=np.float64)
        z -= z.max(axis=1, keepdims=True)
        conf[s : s + rows] = 1.0 / np.exp(z, out=z).sum(axis=1)
    return pred, conf


def make_plots(d: ReportData) -> dict:
    """The plots of the report by section name, in page order; a section without data has none."""
    sections: dict = {"Learning": [], "Inside the neurons": [], "Test data": []}
    metrics = (
        [
            k
            for k in d.epochs[0]
            if not k.startswith("val_")
            and k not in ("epoch", "loss", "lr", "time", "steps")
            and isinstance(d.epochs[0][k], (int, float))
        ]
        if d.epochs
        else []
    )
    if d.epochs:
        sections["Learning"].append(F.curves(d.epochs, "loss"))
        sections["Learning"] += [F.curves(d.epochs, m) for m in metrics]
        sections["Learning"].append(F.learning_rate(d.epochs, d.probes))
    if d.probes is not None and getattr(d.probes, "layers", None):
        sections["Inside the neurons"] += [F.histograms(d.probes), F.unit_health(d.probes), F.grad_norms(d.probes)]
    if d.first_layer is not None:
        name, w, img = (*d.first_layer, None)[:3]
        w = np.asarray(w)
        if img is None and d.image_shape is not None and math.prod(d.image_shape) == math.prod(w.shape[1:]):
            img = d.image_shape
        sections["Inside the neurons"].append(F.first_layer_weights(w, img, name))
    if d.test is not None and d.classes:
        x, y, out = d.test
        y = np.asarray(y).astype(np.int64)
        pred, conf = predicted_confidence(out)
        sections["Test data"].append(confusion_plot(y, pred, list(d.classes)))
        wrong = np.flatnonzero(pred != y)
        top = wrong[np.argsort(-conf[wrong], kind="stable")][:MAX_MISTAKES]
        if len(top) and d.image_shape is not None and math.prod(d.image_shape) == math.prod(np.shape(x)[1:]):
            shape = tuple(d.image_shape)
            imgs = [np.asarray(x[i], dtype=np.float64).reshape(shape) for i in top]
            sections["Test data"].append(F.confident_mistakes(imgs, y[top], pred[top], conf[top], d.classes, top))
    return sections


def confusion_summary(y: np.ndarray, pred: np.ndarray, n_classes: int, k: int = MAX_CONFUSION_CLASSES) -> tuple:
    """``(matrix, shown)``: the confusion matrix of true labels ``y`` against predictions ``pred`` (both (N,) ints in
    ``[0, n_classes)``), over at most ``k`` rows and columns. With ``n_classes <= k`` it is the whole (C, C) matrix and
    ``shown`` is every class. Otherwise ``shown`` holds the ``k - 1`` classes with the most errors (a sample of the
    class predicted as another, plus a sample of another class predicted as it; ties broken by more test samples, then
    by the lower index), in index order, and the last row and column sum every other class. Memory is O(N + C + k^2),
    never C^2."""
    if n_classes <= k:
        return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes), None
    support = np.bincount(y, minlength=n_classes)
    wrong = pred != y
    errors = np.bincount(y[wrong], minlength=n_classes) + np.bincount(pred[wrong], minlength=n_classes)
    order = np.lexsort((np.arange(n_classes), -support, -errors))  # the last key sorts first
    shown = np.sort(order[: k - 1])
    slot = np.full(n_classes, k - 1, dtype=np.int64)  # every class not shown goes to the "other" slot
    slot[shown] = np.arange(k - 1)
    return np.bincount(slot[y] * k + slot[pred], minlength=k * k).reshape(k, k), shown


def confusion_plot(y: np.ndarray, pred: np.ndarray, classes: list) -> F.Plot:
    """The confusion matrix plot, summarised by ``confusion_summary`` when there are many classes (and says so)."""
    c = len(classes)
    matrix, shown = confusion_summary(y, pred, c)
    if shown is None:
        return F.confusion(matrix, classes)
    rest = c - len(shown)
    labels = [str(classes[i]) for i in shown] + [f"other {rest:,}"]
    note = (
        f"Of the {c:,} classes, the {len(shown)} involved in the most test errors (then with the most test samples) "
        f"are drawn; the other {rest:,} are summed in the last row and column."
    )
    return F.confusion(matrix, labels, note=note, extra={"shown": shown.tolist(), "total_classes": c})


def _details_html(details) -> str:
    """The findings a ranked finding groups or explains, folded away under it."""
    if not details:
        return ""
    rows = "".join(f"<li>{_esc(str(d))}</li>" for d in details)
    return f"<details><summary>{len(details)} grouped or explained findings</summary><ul>{rows}</ul></details>"


def _findings_html(findings) -> str:
    """The findings in the order given: ``inspect.diagnose``'s ranking, root causes first."""
    if not findings:
        return "<p>No problems found.</p>"
    items = []
    for f in findings:
        color = SEVERITY_COLORS.get(f.severity, "#555")
        items.append(
            f'<li class="finding {f.severity}"><span class="badge" style="background:{color}">'
            f"{_esc(f.severity.upper())}</span> <b>{_esc(f.place)}</b>: {_esc(f.message)} "
            f"<i>Try: {_esc(f.remedy)}</i>{_details_html(getattr(f, 'details', []))}</li>"
        )
    return f'<ul class="findings">{"".join(items)}</ul>'


def _reading_html(t) -> str:
    """The section on a text run's texts (``report.text``), or "" when there is none."""
    if t is None:
        return ""
    from .text import text_section_html

    body = text_section_html(t)
    if t.attention:
        body += "<h3>Attention</h3><div class='plots'>" + "".join(_plot_html(p) for p in t.attention) + "</div>"
    return f"<section id='reading-the-texts'><h2>Reading the texts</h2>{body}</section>" if body else ""


def _events_html(events) -> str:
    if not events:
        return "<p>No unit died, saturated, exploded or went silent while it was watched.</p>"
    rows = [
        (e.get("step"), e.get("layer"), e.get("unit"), e.get("kind"), e.get("message")) for e in events[:MAX_EVENTS]
    ]
    more = (
        f"<p>{len(events) - MAX_EVENTS} more events are in the run's probes.json.</p>"
        if len(events) > MAX_EVENTS
        else ""
    )
    return _table(rows, ("step", "layer", "unit", "event", "what happened"), cls="events") + more


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#1f3b57;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;opacity:.85}nav{padding:8px 28px;background:#e8eef4;position:sticky;top:0}
nav a{margin-right:16px;color:#1f3b57;text-decoration:none;font-weight:600}main{padding:8px 28px 40px}
section{margin-top:18px}h2{border-bottom:2px solid #1f3b57;padding-bottom:4px}
.plots{display:flex;flex-wrap:wrap;gap:16px}figure.plot{background:#fff;border:1px solid #ddd;border-radius:6px;
margin:0;padding:10px;max-width:100%}figure.plot h3{margin:0 0 6px;font-size:15px}figure.plot img{max-width:100%;
display:block}figcaption{font-size:13px;color:#555;max-width:480px;margin-top:6px}
table{border-collapse:collapse;background:#fff;font-size:14px}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#f0f3f6}pre{background:#fff;border:1px solid #ddd;padding:10px;
overflow:auto;font-size:13px}.badge{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}
ul.findings li{margin-bottom:8px}
.tok{padding:0 2px;border-radius:2px}ol.mistakes li{margin-bottom:10px}.cols{display:flex;flex-wrap:wrap;gap:24px}
"""


def build_report(d: ReportData) -> str:
    """The whole report as one HTML string (see the module docstring)."""
    sections = make_plots(d)
    parts = ["<section id='overview'><h2>Overview</h2><div class='cols'>"]
    if d.metrics:
        parts.append("<div><h3>Test metrics</h3>" + _table(d.metrics.items()) + "</div>")
    if d.settings:
        parts.append("<div><h3>Settings</h3>" + _table(d.settings.items()) + "</div>")
    parts.append("</div>")
    if d.summary:
        parts.append(f"<h3>Model</h3><pre>{_esc(d.summary)}</pre>")
    parts.append("</section>")
    for title, plots in sections.items():
        if plots:
            sid = title.lower().replace(" ", "-")
            parts.append(
                f"<section id='{sid}'><h2>{_esc(title)}</h2><div class='plots'>"
                + "".join(_plot_html(p) for p in plots)
                + "</div></section>"
            )
    reading = _reading_html(d.text)
    parts.append(reading)
    parts.append(f"<section id='diagnostics'><h2>Diagnostics</h2>{_findings_html(d.findings)}</section>")
    parts.append(f"<section id='events'><h2>Events</h2>{_events_html(d.events)}</section>")
    nav = "".join(
        f"<a href='#{s}'>{_esc(t)}</a>"
        for s, t in [
            ("overview", "Overview"),
            *[(t.lower().replace(" ", "-"), t) for t, p in sections.items() if p],
            *([("reading-the-texts", "Reading the texts")] if reading else []),
            ("diagnostics", "Diagnostics"),
            ("events", "Events"),
        ]
    )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<link rel='icon' href='data:,'><title>{_esc(d.title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{_esc(d.title)}</h1><p>{_esc(d.subtitle)}</p></header><nav>{nav}</nav>"
        f"<main>{''.join(parts)}</main></body></html>\n"
    )


def write_report(path, d: ReportData) -> str:
    """Write ``build_report(d)`` to ``path`` atomically; returns the path."""
    from ..io import atomic_write

    atomic_write(os.fspath(path), build_report(d).encode("utf-8"))
    return os.fspath(path)
