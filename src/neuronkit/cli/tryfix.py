"""``neuronkit diagnose RUN --try-fix``: a diagnosis's remedy tried as an experiment, not offered as a guess.

For each distinct ``fix`` among the findings, a short training (``epochs`` epochs) runs from the same start as the
original settings: the same seed (so the same initial weights where the architecture and initialiser are unchanged,
and the same shuffling), the same data split and standardisation. Both are measured the same way: the last epoch's
training loss, the loss and accuracy on the validation split (the test split when the run has none), and the
fraction of dead units (ReLU hidden units whose output is 0 for every validation input, among the ReLU-like ones)
and of saturated ones (sigmoid/tanh-like units pinned at their bounds for 95% of those inputs).
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from .. import creation
from ..inspect.probes import RELU_LIKE, SATURATION_SLOPE, SIGMOID_LIKE, TANH_LIKE, relative_slope
from ..nn.activations import Identity
from ..nn.layers.dense import Dense
from ..tensor import Tensor
from . import config as C
from . import data as D
from . import text
from . import training as T
from .models import build_model

DEFAULT_EPOCHS = 3  # a trial's epochs, unless a finding needs more of them to show up

# fix keys a short re-run can apply, and the TrainConfig field each sets
APPLICABLE = {
    "lr": "lr",
    "activation": "activation",
    "init": "init",
    "dropout": "dropout",
    "weight_decay": "weight_decay",
    "clip_grad_norm": "clip_grad_norm",
    "max_len": "max_len",  # text runs: tokens kept per text
}


@dataclasses.dataclass
class Trial:
    """One short training: its settings and what was measured."""

    label: str
    changes: dict
    loss: float
    eval_loss: float
    accuracy: float | None
    dead_frac: float | None
    saturated_frac: float | None
    stopped: str | None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def distinct_fixes(findings) -> list:
    """``[(finding kinds, applicable changes, skipped keys)]``: one entry per distinct applicable fix."""
    out, seen = [], {}
    for f in findings:
        changes = {k: v for k, v in f.fix.items() if k in APPLICABLE}
        skipped = sorted(k for k in f.fix if k not in APPLICABLE)
        if not changes:
            continue
        key = tuple(sorted(changes.items()))
        if key in seen:
            seen[key][0].append(f.kind)
        else:
            seen[key] = ([f.kind], changes, skipped)
            out.append(seen[key])
    return out


def first_seen(findings, epochs: list) -> dict:
    """``{kind: epochs}``: for each finding with a fix that the run's history shows, the fewest epochs of that history
    in which ``diagnose_training`` finds it (overfitting needs the validation loss to rise for 2 epochs after its
    best, so it shows at best + 3 at the earliest). Findings of the model or the probes are not in it."""
    from ..inspect.diagnostics import diagnose_training

    kinds, out = {f.kind for f in findings if f.fix}, {}
    for k in range(1, len(epochs) + 1):
        for f in diagnose_training(epochs[:k]):
            if f.kind in kinds:
                out.setdefault(f.kind, k)
    return out


def trial_epochs(findings, epochs: list, run_epochs: int, asked: int | None = None) -> tuple:
    """``(n, note)``: the epochs each trial trains, and why. ``asked`` (``--fix-epochs``) is used as given, with a
    note when a finding showed up later than that in the run; otherwise ``DEFAULT_EPOCHS``, or as many as the
    latest finding took to show up (so that the trial can show it, and its remedy's effect on it), at most the run's
    own ``run_epochs``."""
    seen = first_seen(findings, epochs)
    late = {k: e for k, e in seen.items() if e > (asked or DEFAULT_EPOCHS)}
    when = ", ".join(f"{k} first showed at epoch {e}" for k, e in sorted(late.items(), key=lambda kv: kv[1]))
    if asked is not None:
        n = min(asked, run_epochs)
        return n, (f"{when} of the run: {n} epoch(s) may be too few to show it" if late else "")
    n = min(max([DEFAULT_EPOCHS, *seen.values()]), run_epochs)
    return n, (f"{n} epochs, as {when} of the run" if late else "")


def unit_fractions(model, x) -> tuple:
    """(dead fraction, saturated fraction) over the hidden Dense units with a ReLU-like / saturating activation."""
    outs = {}
    handles = []
    for name, m in model.named_modules():
        act = getattr(m, "activation", None)
        if isinstance(m, Dense) and act is not None and not isinstance(act, Identity):
            handles.append(
                m.register_forward_hook(
                    lambda mod, i, o, name=name: outs.setdefault(name, []).append(np.asarray(o.data))
                )
            )
    model.eval()
    batches = (
        (b[:2] for b in x) if hasattr(x, "dataset") else ((Tensor(x[s : s + 512]),) for s in range(0, len(x), 512))
    )
    try:
        for inputs in batches:  # arrays 512 rows at a time, or a text loader's (tokens, lengths)
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
        model.train()
    dead = dead_n = sat = sat_n = 0
    for name, m in model.named_modules():
        if name not in outs:
            continue
        o = np.concatenate(outs[name]).reshape(-1, m.out_features)
        act = m.activation.name
        if act in RELU_LIKE:  # only relu and relu6 have a zero gradient below 0: leaky, elu, gelu... cannot die
            dead += int((o <= 0).all(0).sum()) if act in ("relu", "relu6") else 0
            dead_n += o.shape[1]
        elif act in SIGMOID_LIKE or act in TANH_LIKE:
            pinned = relative_slope(act, o.astype(np.float64)) < SATURATION_SLOPE
            sat += int((pinned.mean(0) > 0.95).sum())
            sat_n += o.shape[1]
    return (dead / dead_n if dead_n else None), (sat / sat_n if sat_n else None)


def run_trial(cfg, info, loss: str, train, held, label: str, changes: dict, callbacks=()) -> Trial:
    """Train a fresh model from ``cfg`` (with ``changes`` applied) and measure it on ``held`` = (x, y). A text run
    (``train`` None) reads its texts again with the trial's settings (a remedy may change ``max_len``). ``callbacks``:
    more training callbacks (the playground's time limit)."""
    settings = {
        **cfg.to_dict(),
        **{APPLICABLE[k]: v for k, v in changes.items()},
        "out": None,
        "probe_every": 0,
        "patience": None,
        "gradcheck_every": 0,
    }
    c = C.validate(C.TrainConfig(**settings))
    if train is None:
        _, info, train, val, test, _ = text.prepare(c)
        held = val if val is not None else test
    creation.manual_seed(c.seed)
    model = build_model(c, tuple(info["model_input_shape"]), info["num_outputs"], text.vocab_size(info))
    trainer = T.make_trainer(c, model, loss, info["task"], train, callbacks=callbacks)[0]
    with np.errstate(all="ignore"):
        history = trainer.fit(train, epochs=c.epochs, batch_size=c.batch_size)
        result = trainer.evaluate(held)
        dead, sat = unit_fractions(model, held if hasattr(held, "dataset") else held[0])
    last = history.epochs[-1]["loss"] if history.epochs else float("nan")
    acc = result.get("accuracy") if info["task"] == "classification" else None
    return Trial(label, changes, float(last), float(result["loss"]), acc, dead, sat, history.stopped_early)


def try_fixes(cfg, loaded, findings, epochs: int, stream=None, callbacks=()) -> tuple:
    """``(where, trials)``: the original settings and each distinct fix, trained ``epochs`` epochs each (a schedule
    spans those epochs, for every trial alike). A line per trial goes to ``stream`` (e.g. stderr) when given.
    ``callbacks``: more training callbacks for each trial, or a function returning fresh ones for each."""
    if loaded is None:  # a text run: each trial reads its texts (see run_trial)
        _, info, _, val, test, _ = text.prepare(dataclasses.replace(cfg))
        loss, train = T.loss_name(cfg, "classification"), None
        held, where = (val, "validation split") if val is not None else (test, "test split")
        size = len(held.dataset)
    else:
        info, train, val, test = T.prepare(cfg, loaded)
        loss = T.loss_name(cfg, loaded.task)
        held, where = (val, "validation split") if val is not None else (test, "test split")
        size = len(held[0])
    short = dataclasses.replace(cfg, epochs=epochs)
    plan = [("original settings", {})]
    for kinds, changes, skipped in distinct_fixes(findings):
        label = "proposed for " + ", ".join(dict.fromkeys(kinds))
        if skipped:
            label += f" (not applied: {', '.join(skipped)})"
        plan.append((label, changes))
    trials = []
    for i, (label, changes) in enumerate(plan):
        t0 = time.perf_counter()
        extra = callbacks() if callable(callbacks) else callbacks
        trials.append(run_trial(short, info, loss, train, held, label, changes, extra))
        if stream is not None:
            what = "original" if i == 0 else f"remedy {i}"
            print(
                f"try-fix: {what} trained ({i + 1}/{len(plan)}, {time.perf_counter() - t0:.1f}s)",
                file=stream,
                flush=True,
            )
    return f"{where}, {size} samples", trials


def _num(v, pct=False) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if pct:
        return f"{v:.1%}"
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.3g}"


def render(trials, epochs: int, where: str, seed: int) -> str:
    """The trials as a table, then each remedy's changes and a verdict measured against the original."""
    lines = [
        f"try-fix: {epochs} epoch(s) of training from the same start (seed {seed}, same data) for the original "
        f"settings and each remedy, measured on the {where}:"
    ]
    head = ("settings", "train loss", "held-out loss", "accuracy", "dead units", "saturated units")
    rows = [head]
    for i, t in enumerate(trials):
        rows.append(
            (
                "original" if i == 0 else f"remedy {i}",
                _num(t.loss),
                _num(t.eval_loss),
                _num(t.accuracy, True),
                _num(t.dead_frac, True),
                _num(t.saturated_frac, True),
            )
        )
    widths = [max(len(r[j]) for r in rows) for j in range(len(head))]
    lines += [
        "  " + "  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in rows
    ]
    base = trials[0]
    for i, t in enumerate(trials[1:], 1):
        changes = ", ".join(f"{k}={v}" for k, v in t.changes.items())
        lines.append(f"remedy {i} ({t.label}): {changes}")
        lines.append("  " + verdict(base, t))
    return "\n".join(lines)


def _better(a, b, lower_is_better: bool) -> bool | None:
    """Whether b is better than a (None when either is missing); a non-finite value is always worse."""
    if a is None or b is None:
        return None
    fa, fb = math.isfinite(a), math.isfinite(b)
    if not fb:
        return False
    if not fa:
        return True
    return b < a if lower_is_better else b > a


def verdict(base: Trial, t: Trial) -> str:
    """One line: what the remedy changed, with the numbers."""
    parts = []
    if t.accuracy is not None and base.accuracy is not None:
        parts.append(
            f"accuracy {base.accuracy:.1%} -> {t.accuracy:.1%} ({(t.accuracy - base.accuracy) * 100:+.1f} points)"
        )
    parts.append(f"held-out loss {_num(base.eval_loss)} -> {_num(t.eval_loss)}")
    if base.dead_frac is not None and t.dead_frac is not None and (base.dead_frac or t.dead_frac):
        parts.append(f"dead units {base.dead_frac:.0%} -> {t.dead_frac:.0%}")
    if base.saturated_frac is not None and t.saturated_frac is not None and (base.saturated_frac or t.saturated_frac):
        parts.append(f"saturated units {base.saturated_frac:.0%} -> {t.saturated_frac:.0%}")
    better = _better(base.eval_loss, t.eval_loss, True)
    if t.accuracy is not None and base.accuracy is not None and t.accuracy != base.accuracy:
        better = t.accuracy > base.accuracy
    word = {True: "helps", False: "does not help", None: "cannot be judged"}[better]
    return f"{word}: " + "; ".join(parts)


def loaded_for(cfg, data_dir):
    """The run's data again (``data_dir`` overrides the saved folder of the data files); None for a text run, whose
    trials each read their texts."""
    if data_dir is not None:
        cfg.data_dir = data_dir
    return None if text.is_text_config(cfg) else D.load_data(cfg)
