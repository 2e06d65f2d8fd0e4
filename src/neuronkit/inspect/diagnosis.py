"""A diagnosis, not a log: every check of a run, grouped, deduplicated and ranked with the likely root cause first.

``diagnose(model, batch, history=..., probe=..., initial=...)`` runs ``check_before_training`` on the initial model
(the start the training had) and on the trained one, and ``diagnose_training`` on the history and the probe, and
returns ``rank(findings)``:

1. **Grouped**: findings of one kind become one finding naming all their layers (``layers 20-28: ...``) and phases
   (at initialisation, after training, during training), instead of one line per layer and per phase. Information
   (``info``) and serious findings of a kind are grouped apart.
2. **Explained**: a root cause absorbs the symptoms it explains (``EXPLAINS``): a signal that vanishes with depth
   explains dead units, small gradients and a flat loss downstream; gradients that explode at initialisation explain
   saturated units and a diverging loss; saturated or dead units explain small gradients and a stalled loss. The
   absorbed findings stay in the root's ``details`` (``--verbose``, ``--json``) and its message names them.
3. **Ranked**: worst severity first, and within a severity the root causes before their symptoms (``PRIORITY``).
"""

from __future__ import annotations

from .diagnostics import check_before_training, diagnose_training
from .findings import DEAD_WARN_FRAC, SEVERITIES, Finding, fraction_severity

__all__ = ["EXPLAINS", "PRIORITY", "diagnose", "rank", "render"]

PRIORITY = (
    "vanishing_signal",
    "exploding_gradient",
    "lr_too_high",
    "vanishing_gradient",
    "saturation",
    "dead_relu",
    "exploding_activation",
    "vanishing_activation",
    "underfitting",
    "overfitting",
    "output_scale",
    "initial_loss",
    "lr_too_low",
    "plateau",
)
"""Root causes before the symptoms they produce, for findings of the same severity."""

EXPLAINS = {
    "vanishing_signal": (
        "dead_relu",
        "vanishing_gradient",
        "vanishing_activation",
        "output_scale",
        "lr_too_low",
        "plateau",
        "underfitting",
        "saturation",
    ),
    "exploding_gradient": (
        "exploding_activation",
        "output_scale",
        "initial_loss",
        "saturation",
        "lr_too_high",
        "dead_relu",
        "plateau",
        "underfitting",
    ),
    "lr_too_high": (
        "exploding_gradient",
        "exploding_activation",
        "vanishing_activation",
        "output_scale",
        "dead_relu",
        "saturation",
        "plateau",
        "underfitting",
        "vanishing_gradient",
    ),
    "vanishing_gradient": ("lr_too_low", "plateau", "underfitting", "saturation", "vanishing_activation"),
    "saturation": ("vanishing_gradient", "vanishing_activation", "lr_too_low", "plateau", "underfitting"),
    "dead_relu": ("vanishing_gradient", "vanishing_activation", "lr_too_high", "lr_too_low", "plateau", "underfitting"),
    "underfitting": ("plateau",),
}
"""``root: symptoms``: a serious finding of the root kind absorbs serious findings of these kinds, subject to
``_can_explain`` (a root seen only during training does not explain what was already there at initialisation, a
finite rise of the loss does not explain a run that diverged to NaN, ...)."""

NAMES = {
    "vanishing_signal": "a signal vanishing with depth",
    "exploding_gradient": "exploding gradients",
    "lr_too_high": "a learning rate too high",
    "vanishing_gradient": "vanishing gradients",
    "saturation": "saturated units",
    "dead_relu": "dead ReLU units",
    "exploding_activation": "exploding activations",
    "vanishing_activation": "vanishing activations",
    "output_scale": "the output scale",
    "initial_loss": "the initial loss",
    "underfitting": "underfitting",
    "overfitting": "overfitting",
    "lr_too_low": "a slowly falling loss",
    "plateau": "a plateau",
}
PHASE_WORDS = {"init": "at initialisation", "trained": "after training", "training": "during training"}


def diagnose(
    model, batch, history=None, probe=None, initial=None, loss="cross_entropy", lr=None, whole_split: bool = True
) -> list:
    """All findings about a run, ranked (see ``rank``).

    ``model``: the trained model; ``batch``: ``(x, y)``, by default a whole validation or test split (``whole_split``:
    then units silent on all of it are called dead, whatever its size); ``initial``: the model as training started
    (rebuilt from the same seed), checked at initialisation; ``history``/``probe``: as ``diagnose_training`` takes
    them; ``lr``: the learning rate of plain SGD steps (None for optimizers that normalise their steps)."""
    n = len(batch[0]) if whole_split else None
    kw = {} if n is None else {"min_dead_samples": n}
    findings = []
    if initial is not None:
        findings += check_before_training(initial, batch, loss=loss, lr=lr, **kw)
    was = model.training
    model.eval()
    try:
        trained = check_before_training(model, batch, loss=loss, when="after training", **kw)
    finally:
        model.train(was)
    # trained outputs are meant to be confident; the depth trend of a trained model is its learned representation
    findings += [f for f in trained if f.kind not in ("output_scale", "initial_loss", "vanishing_signal")]
    findings += diagnose_training(history, probe)
    if probe is not None:
        _confirm_dead(findings)
    _judge_init_by_training(findings, history)
    _judge_scale_by_training(findings, history)
    return rank(findings)


def _confirm_dead(findings) -> None:
    """Dead means both: silent on the whole split after training ("trained") and without output or gradient across
    the probe's last records ("training"). Units seen by only one of the two are information (sparse, or silent on
    a few batches); the severity of the rest is that of the confirmed fraction."""
    by_phase: dict = {"trained": {}, "training": {}}
    for f in findings:
        if f.kind == "dead_relu" and f.phase in by_phase:
            by_phase[f.phase][str(f.where.get("layer"))] = f
    for phase, other in (("trained", "training"), ("training", "trained")):
        for layer, f in by_phase[phase].items():
            twin = by_phase[other].get(layer)
            units = set(f.where.get("units", []))
            confirmed = sorted(units & set(twin.where.get("units", []))) if twin is not None else []
            total = f.where.get("total") or 0
            sev = fraction_severity(len(confirmed) / total, DEAD_WARN_FRAC) if confirmed and total else "info"
            if SEVERITIES.index(sev) > SEVERITIES.index(f.severity):
                f.severity = sev
                f.message += (
                    f" Only {len(confirmed)} of them also had no output and no gradient across the last probe records."
                    if phase == "trained"
                    else f" Only {len(confirmed)} of them are also silent on the whole split after training."
                )


def _judge_init_by_training(findings, history) -> None:
    """What the training showed overrides a warning about the start: units silent at initialisation but alive after
    training were not dead; a confident start (initial loss, large outputs) that training recovered from was
    harmless. Those become information."""
    dead_after = {f.where.get("layer") for f in findings if f.kind == "dead_relu" and f.phase != "init" and _serious(f)}
    epochs = getattr(history, "epochs", history) or []
    losses = [e.get("loss") for e in epochs if isinstance(e, dict) and e.get("loss") is not None]
    for f in findings:
        if f.phase != "init" or not _serious(f):
            continue
        if f.kind == "dead_relu" and f.where.get("layer") not in dead_after:
            f.severity = "info"
            f.message += " Training revived them: they fire after training."
        if f.kind == "initial_loss" and f.where.get("loss", 0) > f.where.get("expected", 0):
            start = f.where["loss"]
            if losses and _finite(start) and all(_finite(v) for v in losses) and min(losses) < 0.5 * start:
                f.severity = "info"
                f.message += f" Harmless here: training brought the loss down to {min(losses):.3g}."


def _judge_scale_by_training(findings, history) -> None:
    """Activations that are large after training are an explosion only if training went wrong. When the training
    loss stayed finite and fell (its last epoch below 0.9 of its first, and within 10 % of its best), a trained
    layer's scale was learned along with a falling loss: its ``exploding_activation`` becomes information."""
    epochs = getattr(history, "epochs", history) or []
    losses = [e.get("loss") for e in epochs if isinstance(e, dict)]
    if len(losses) < 2 or not all(_finite(v) for v in losses):
        return
    if not (losses[-1] < 0.9 * losses[0] and losses[-1] <= 1.1 * min(losses)):
        return
    for f in findings:
        if f.kind == "exploding_activation" and f.phase == "trained" and _serious(f) and _finite(f.where.get("std")):
            f.severity = "info"
            f.message += (
                f" Not an explosion here: the training loss fell from {losses[0]:.3g} to {losses[-1]:.3g} while this "
                "scale was learned."
            )


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and v == v and abs(v) != float("inf")


def _serious(f) -> bool:
    return f.severity in ("error", "warning")


def _layers_of(f) -> list:
    if "layer" in f.where:
        return [str(f.where["layer"])]
    return [str(n) for n in f.where.get("layers", [])]


def _phases(group) -> str:
    seen = [p for p in ("init", "trained", "training", "history") if any(f.phase == p for f in group)]
    words = [PHASE_WORDS[p] for p in seen if p in PHASE_WORDS]
    return " and ".join(words)


def _group(kind: str, members: list) -> Finding:
    """One finding for all ``members`` (same kind, same seriousness)."""
    worst = min(members, key=_worst_key)
    if len(members) == 1:
        return worst
    fix: dict = {}
    for f in sorted(members, key=_worst_key):  # every member's remedy settings, the worst member's values first
        for k, v in f.fix.items():
            fix.setdefault(k, v)
    remedy = max(members, key=lambda f: (len(f.fix), -_worst_key(f)[0])).remedy
    layers = list(dict.fromkeys(n for f in members for n in _layers_of(f)))
    if len(layers) <= 1:  # one place seen in several phases: the worst one speaks for all
        out = Finding(kind, worst.severity, dict(worst.where), worst.message, remedy, fix)
        out.phase, out.details = worst.phase, [f for f in members if f is not worst]
        out.message = _with_phases(worst.message, members)
        return out
    where = {"layers": layers}
    units = sum(len(f.where.get("units", [])) for f in members if f.phase == worst.phase)
    if units:
        where["units"] = units
    text = f"{len(layers)} layers, seen {_phases(members)}" + (f", {units} units in all" if units else "")
    text += f"; the worst, {worst.place}: {worst.message}"
    out = Finding(kind, worst.severity, where, text, remedy, fix, worst.phase, members)
    return out


def _worst_key(f: Finding):
    """Severity first, then the larger share of a layer's units, then the smaller gradient ratio."""
    share = len(f.where.get("units", [])) / f.where["total"] if f.where.get("total") else 0.0
    return (SEVERITIES.index(f.severity), -share, f.where.get("ratio", 0.0) or 0.0)


def _with_phases(message: str, members: list) -> str:
    phases = _phases(members)
    return message if not phases or len({f.phase for f in members}) < 2 else f"{message} (seen {phases})"


def _can_explain(root: Finding, symptom: Finding) -> bool:
    if root.phase in ("training", "trained", "history") and symptom.phase == "init":
        return False  # what was there before training cannot be caused by what training did
    if root.kind == "dead_relu" and symptom.kind == "lr_too_high" and symptom.severity == "error":
        return False  # a loss gone to NaN is the cause, not the dead units
    if root.kind == "dead_relu" and root.phase == "init" and symptom.kind == "lr_too_high":
        return False
    if root.kind == "vanishing_signal" and symptom.kind == "output_scale":
        return symptom.where.get("std", 1.0) < 1.0  # a vanishing signal explains small outputs, not large ones
    if root.kind == "exploding_gradient" and symptom.kind == "output_scale":
        return symptom.where.get("std", 0.0) > 1.0
    if root.kind == "exploding_gradient" and root.phase != "init":
        return symptom.kind != "lr_too_high"  # during training, a high learning rate is the likelier cause
    return True


def _explain(findings: list) -> list:
    """Move each serious symptom into the details of the best-ranked serious root that explains it."""
    ordered = sorted(findings, key=_key)
    kept: list = []
    for f in ordered:
        root = next(
            (r for r in kept if _serious(r) and f.kind in EXPLAINS.get(r.kind, ()) and _can_explain(r, f)),
            None,
        )
        if root is None or not _serious(f):
            kept.append(f)
            continue
        root.details.append(f)
    for r in kept:
        explained = [d for d in r.details if d.kind != r.kind]
        if explained:
            names = []
            for d in explained:
                text = NAMES.get(d.kind, d.kind) + (f" ({d.place})" if _layers_of(d) else "")
                if text not in names:
                    names.append(text)
            r.message = f"{r.message} It explains: {'; '.join(names)}."
    return kept


def _key(f: Finding):
    prio = PRIORITY.index(f.kind) if f.kind in PRIORITY else len(PRIORITY)
    if f.kind == "exploding_gradient" and f.phase != "init":  # during training: a symptom of the learning rate first
        prio = PRIORITY.index("lr_too_high") + 0.5
    return (SEVERITIES.index(f.severity), prio)


def rank(findings) -> list:
    """Group, explain and order ``findings`` (see the module docstring); returns new ``Finding`` objects (the
    originals end up in their ``details``)."""
    groups: dict = {}
    for f in findings:
        groups.setdefault((f.kind, _serious(f)), []).append(f)
    grouped = [_group(kind, members) for (kind, _), members in groups.items()]
    return sorted(_explain(grouped), key=_key)


def render(ranked, limit: int | None = 10, verbose: bool = False) -> str:
    """Ranked findings as text, one line each, worst first: at most ``limit`` lines (None: all), with a closing line
    saying how many were left out; ``verbose`` adds every grouped and explained finding, indented, under its line."""
    if not ranked:
        return "No problems found."
    shown = ranked if limit is None or verbose else ranked[:limit]
    lines = []
    for f in shown:
        lines.append(str(f))
        if verbose:
            lines += ["    " + str(d) for d in _flatten(f.details)]
    left = len(ranked) - len(shown)
    if left:
        lines.append(f"... and {left} more findings of lower rank (--verbose shows all)")
    return "\n".join(lines)


def _flatten(details) -> list:
    out = []
    for d in details:
        out.append(d)
        out += _flatten(d.details)
    return out
