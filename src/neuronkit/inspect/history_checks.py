"""Checks of a run during and after training: its ``History`` (loss, accuracy, learning rate per epoch) and its probe
records (per-neuron statistics over the steps). See ``diagnose_training``."""

from __future__ import annotations

import math

import numpy as np

from .findings import (
    DEAD_CAPABLE,
    GRAD_RATIO_LOW,
    GRAD_RATIO_SPREAD,
    GRAD_TREND,
    SATURATED_FRAC,
    SATURATING,
    Finding,
    dead_finding,
    lr_words,
    saturation_finding,
)


# -- during / after training --------------------------------------------------------------------------------------
def _epochs(history) -> list:
    if history is None:
        return []
    if hasattr(history, "epochs"):
        return list(history.epochs)
    if isinstance(history, dict) and "epochs" in history:
        return list(history["epochs"])
    return list(history)


def _series(epochs, key) -> list:
    return [float(e[key]) for e in epochs if e.get(key) is not None]


def diagnose_training(history, probe=None, window: int = 3, plateau_epochs: int = 5) -> list:
    """Diagnose a run from its ``History`` (or a list of epoch records) and, when given, a ``Probe`` or
    ``ProbeCallback``.

    From the probe's newest ``window`` records: dead ReLU units (``active_frac == 0`` in all of them), saturated units
    (``saturated_frac > 0.95`` in the newest), vanishing gradients (a layer's gradient below ``1e-6`` of its weights,
    or fallen by 100x while the loss did not fall with it) and exploding ones (grown by 100x, or non-finite).
    From the history: learning rate too high (non-finite loss, loss rising over the last epochs, or swinging by more
    than half its size), too low (falling by less than 1% per epoch from the start), a plateau (no improvement of the
    best loss in the last ``plateau_epochs`` epochs) and overfitting (val_loss rising for 2 or more epochs while the
    training loss falls, or training accuracy more than 10 points above validation accuracy).
    """
    epochs = _epochs(history)
    findings: list = []
    with np.errstate(all="ignore"):
        if probe is not None:
            probe = getattr(probe, "probe", probe)  # a ProbeCallback holds its Probe
            if probe is not None:
                findings += _phase(_diagnose_probe(probe, epochs, window), "training")
        findings += _phase(_diagnose_history(epochs, plateau_epochs), "history")
    return findings


def _phase(findings, phase: str) -> list:
    for f in findings:
        f.phase = f.phase or phase
    return findings


def _diagnose_probe(probe, epochs, window) -> list:
    out = []
    losses = _series(epochs, "loss")
    converging = len(losses) >= 2 and math.isfinite(losses[-1]) and losses[-1] < 0.1 * losses[0]
    ratios = {}
    for name, rec in probe.layers.items():
        if rec.size:
            g = float(rec.layer["layer_grad_norm"][rec.order()[-1]])
            wn = float(np.sqrt(np.nansum(rec.unit["weight_norm"][rec.order()[-1]] ** 2)))
            if math.isfinite(g) and wn > 0:
                ratios[name] = g / wn
    best = max(ratios.values()) if ratios else 0.0
    for name, rec in probe.layers.items():
        n = rec.size
        if n == 0:
            continue
        idx = rec.order()
        last = idx[-min(window, n) :]
        u = rec.unit
        lr = float(rec.lr[idx[-1]])
        if rec.activation in DEAD_CAPABLE:
            dead = np.flatnonzero((u["active_frac"][last] == 0).all(0)).tolist()
            if dead:
                when = (
                    f"over the last {len(last)} probe records (steps {int(rec.steps[last[0]])} to "
                    f"{int(rec.steps[last[-1]])})"
                )
                out.append(dead_finding(name, dead, rec.units, when, lr))
        if rec.activation in SATURATING:
            sat = np.flatnonzero(u["saturated_frac"][idx[-1]] > SATURATED_FRAC).tolist()
            if sat:
                out.append(
                    saturation_finding(name, rec.activation, sat, rec.units, f"at step {int(rec.steps[idx[-1]])}")
                )
        g = rec.layer["layer_grad_norm"][idx]
        wn = float(np.sqrt(np.nansum(u["weight_norm"][idx[-1]] ** 2)))
        fix_lr = {"lr": lr / 10} if math.isfinite(lr) and lr > 0 else {}
        if g.size and not np.isfinite(g[-1]) and not np.isnan(g).all():
            out.append(
                Finding(
                    "exploding_gradient",
                    "error",
                    {"layer": name},
                    f"the weight gradient of layer {name} became non-finite by step {int(rec.steps[idx[-1]])}: the "
                    "weights have blown up and training cannot recover.",
                    f"use {lr_words(fix_lr, 'a much smaller learning rate')} and gradient clipping "
                    "(--clip-grad-norm 1).",
                    {**fix_lr, "clip_grad_norm": 1.0},
                )
            )
            continue
        fin = g[np.isfinite(g)]
        if fin.size == 0:
            continue
        first, now = float(fin[0]), float(fin[-1])
        # growth counts from a fed start (a layer whose first gradient was vanishing may grow 100x and be healthy)
        # to a gradient as large as the weights: the absolute expectation, not the layer's own first record
        fed = first / wn >= GRAD_RATIO_LOW if wn > 0 else first > 0
        if fin.size >= 2 and first > 0 and fed and now > GRAD_TREND * first and wn > 0 and now > wn:
            out.append(
                Finding(
                    "exploding_gradient",
                    "error" if now > 1e4 * first else "warning",
                    {"layer": name, "first": first, "last": now},
                    f"the weight-gradient norm of layer {name} grew from {first:.3g} to {now:.3g} ({now / first:.3g}x) "
                    "during training: the updates grow with it, and the run is heading towards divergence.",
                    f"use {lr_words(fix_lr)}, gradient clipping (--clip-grad-norm 1), or normalisation layers.",
                    {**fix_lr, "clip_grad_norm": 1.0},
                )
            )
        elif (
            wn > 0
            and not converging  # a model that has fitted its training data has small gradients by right
            and (now / wn < GRAD_RATIO_LOW or (len(ratios) >= 2 and now / wn < GRAD_RATIO_SPREAD * best))
        ):
            out.append(
                Finding(
                    "vanishing_gradient",
                    "warning",
                    {"layer": name, "grad_norm": now, "weight_norm": wn},
                    f"the weight gradient of layer {name} is only {now / wn:.2g} of its weights at step "
                    f"{int(rec.steps[idx[-1]])}"
                    + (f" ({now / wn / best:.2g} of the best-fed layer's)" if best > 0 else "")
                    + ": almost no learning signal reaches this layer, so it has stopped learning.",
                    "use relu-like activations with He initialisation (--activation relu --init he_uniform), "
                    "smaller initial weights for sigmoid/tanh (--init xavier_uniform), normalisation layers, or "
                    "residual connections.",
                    {"activation": "relu", "init": "he_uniform"},
                )
            )
        elif fin.size >= 2 and now < first / GRAD_TREND and not converging:
            out.append(
                Finding(
                    "vanishing_gradient",
                    "warning",
                    {"layer": name, "first": first, "last": now},
                    f"the weight-gradient norm of layer {name} fell from {first:.3g} to {now:.3g} "
                    "while the loss did not "
                    "fall with it: the learning signal is fading before this layer, so it has stopped learning.",
                    "use relu-like activations with He initialisation (--activation relu --init he_uniform), "
                    "normalisation layers, or residual connections.",
                    {"activation": "relu", "init": "he_uniform"},
                )
            )
    return out


def _diagnose_history(epochs, plateau_epochs) -> list:
    out = []
    losses = _series(epochs, "loss")
    if not losses:
        return out
    lrs = _series(epochs, "lr")
    lr = lrs[-1] if lrs else None
    lower = {"lr": lr / 10} if lr else {}
    n = len(losses)
    if not all(math.isfinite(v) for v in losses):
        bad = next(i for i, v in enumerate(losses) if not math.isfinite(v))
        out.append(
            Finding(
                "lr_too_high",
                "error",
                {"scope": "training", "epoch": bad + 1},
                f"the training loss became {losses[bad]} in epoch {bad + 1}"
                + (f" at learning rate {lr:g}" if lr else "")
                + ": the updates overshoot so far that the weights overflowed; "
                "nothing learned after that point counts.",
                f"use {lr_words(lower, 'a learning rate 10 times smaller')} and gradient clipping "
                "(--clip-grad-norm 1).",
                {**lower, "clip_grad_norm": 1.0},
            )
        )
        return out  # the other checks need finite losses
    rising = n >= 3 and losses[-1] > losses[-2] > losses[-3] and losses[-1] > min(losses) * 1.05
    diffs = np.diff(losses[-6:])
    sign_changes = int(np.sum(np.diff(np.sign(diffs)) != 0)) if diffs.size >= 2 else 0
    recent = losses[-6:]
    swing = (max(recent) - min(recent)) / max(min(recent), 1e-12)
    oscillating = n >= 4 and sign_changes >= 2 and swing > 0.5 and losses[-1] > 0.5 * losses[0]
    if rising or oscillating or (n >= 2 and losses[-1] > 1.5 * losses[0]):
        what = (
            "rose over the last epochs"
            if rising
            else f"swings up and down by {swing:.0%} from epoch to epoch"
            if oscillating
            else "ended higher than it started"
        )
        out.append(
            Finding(
                "lr_too_high",
                "error" if losses[-1] > losses[0] else "warning",
                {"scope": "training"},
                f"the training loss {what} ({losses[0]:.3g} at the start, {losses[-1]:.3g} now)"
                + (f" at learning rate {lr:g}" if lr else "")
                + ": the steps overshoot the minimum instead of settling "
                "into it.",
                f"use {lr_words(lower, 'a learning rate 10 times smaller')}, or a schedule that lowers it "
                "(--schedule cosine).",
                lower,
            )
        )
        return out
    lr_low = False
    if n >= 3 and losses[0] > 0:
        per_epoch = (losses[0] - losses[-1]) / losses[0] / (n - 1)
        if per_epoch < 0.01 and losses[-1] > 1e-3 and losses[-1] <= losses[0]:
            lr_low = True
            raise_lr = {"lr": lr * 10} if lr else {}
            out.append(
                Finding(
                    "lr_too_low",
                    "warning",
                    {"scope": "training"},
                    f"the training loss fell by only {per_epoch:.2%} per epoch over {n} epochs ({losses[0]:.4g} to "
                    f"{losses[-1]:.4g}) and is still far from 0"
                    + (f" at learning rate {lr:g}" if lr else "")
                    + ": the steps are so small that training would take far longer than it needs to.",
                    f"use {lr_words(raise_lr, 'a learning rate 10 times larger')}, or find one with a short "
                    "learning-rate range test.",
                    raise_lr,
                )
            )
    k = plateau_epochs
    if not lr_low and n > k and losses[-1] > 0.01 * losses[0]:
        before, last = min(losses[:-k]), min(losses[-k:])
        if last >= before * (1 - 1e-3):
            out.append(
                Finding(
                    "plateau",
                    "warning",
                    {"scope": "training", "epochs": k},
                    f"the training loss has not improved in the last {k} epochs (best {before:.4g} before them, "
                    f"{last:.4g} in them): training has stalled, and more epochs at these settings will not help.",
                    f"{lr_words(lower, 'lower the learning rate 10x')} or lower it as training goes "
                    "(--schedule cosine), "
                    "or give the model more capacity if the loss is still high (--hidden, e.g. --hidden 256).",
                    lower,
                )
            )
    over = _overfitting(epochs, losses)
    out += over or _underfitting(epochs, losses, lr_low)
    return out


def _overfitting(epochs, losses) -> list:
    out = []
    val = _series(epochs, "val_loss")
    fix = {"weight_decay": 1e-4, "dropout": 0.2}
    if len(val) >= 3 and len(val) == len(losses) and all(math.isfinite(v) for v in val):
        best = int(np.argmin(val))
        rises = len(val) - 1 - best
        gap = losses[-1] < OVERFIT_GAP * val[best]  # it fits its training data better than it ever did unseen data
        if rises >= 2 and val[-1] > val[-2] and val[-1] > val[best] * 1.02 and losses[-1] < losses[best] and gap:
            out.append(
                Finding(
                    "overfitting",
                    "warning",
                    {"scope": "training", "best_epoch": best + 1},
                    f"the validation loss has risen for {rises} epochs since epoch {best + 1} ({val[best]:.3g} to "
                    f"{val[-1]:.3g}) while the training loss kept falling ({losses[best]:.3g} to "
                    f"{losses[-1]:.3g}): the "
                    "network is memorising the training examples instead of learning what generalises to unseen data.",
                    f"add regularisation (--weight-decay {fix['weight_decay']:g}, --dropout {fix['dropout']:g}), get "
                    f"more data, or stop early (--patience 2 stops after 2 epochs without progress and keeps the "
                    f"weights of the best epoch, here epoch {best + 1}).",
                    {**fix, "early_stopping": best + 1},
                )
            )
            return out
    acc, vacc = _series(epochs, "accuracy"), _series(epochs, "val_accuracy")
    if acc and vacc and math.isfinite(acc[-1]) and math.isfinite(vacc[-1]):
        scale = 100.0 if max(acc[-1], vacc[-1]) <= 1.0 else 1.0  # accuracies as fractions or percent
        gap = (acc[-1] - vacc[-1]) * scale
        if gap > 10:
            out.append(
                Finding(
                    "overfitting",
                    "warning",
                    {"scope": "training", "gap": gap},
                    f"training accuracy is {acc[-1] * scale:.1f}% but validation accuracy only {vacc[-1] * scale:.1f}% "
                    f"(a gap of {gap:.1f} points): the network fits its training examples much better "
                    "than unseen ones.",
                    f"add regularisation (--weight-decay {fix['weight_decay']:g}, --dropout {fix['dropout']:g}), get "
                    "more data, or use a smaller network (--hidden, e.g. --hidden 32).",
                    fix,
                )
            )
    return out


OVERFIT_GAP = 0.9  # overfitting needs the training loss below this fraction of the best validation loss
UNDERFIT_SETTLED = 0.02  # the loss falls by less than this fraction per epoch over the last third of the epochs
UNDERFIT_FLATTENED = 5.0  # ... and this many times more slowly than in the first epoch: the curve has flattened
UNDERFIT_ACCURACY = 0.9  # ... while the training accuracy is still below this
UNDERFIT_GAP = 0.05  # ... and within this of the validation accuracy (else it is overfitting)


def _underfitting(epochs, losses, lr_low: bool) -> list:
    """The training loss has settled well above zero, with training accuracy low and close to validation accuracy:
    the model cannot fit even the data it trains on (too small, or too constrained). Needs the accuracies."""
    n = len(losses)
    acc, vacc = _series(epochs, "accuracy"), _series(epochs, "val_accuracy")
    if lr_low or n < 4 or not acc or not math.isfinite(acc[-1]):
        return []
    scale = 100.0 if acc[-1] > 1.0 else 1.0
    a = acc[-1] / scale
    va = vacc[-1] / scale if vacc and math.isfinite(vacc[-1]) else a
    start = n - max(2, n // 3) - 1
    k = n - 1 - start
    late = (losses[start] - losses[-1]) / losses[start] / k if losses[start] > 0 else 0.0
    early = (losses[0] - losses[1]) / losses[0] if losses[0] > 0 else 0.0
    settled = late < UNDERFIT_SETTLED and late * UNDERFIT_FLATTENED < early
    learned = losses[-1] < 0.9 * losses[0]  # it did learn something: not a learning rate or signal problem
    if not (settled and learned and a < UNDERFIT_ACCURACY and a - va < UNDERFIT_GAP):
        return []
    return [
        Finding(
            "underfitting",
            "warning",
            {"scope": "training", "accuracy": a, "val_accuracy": va},
            f"the training loss has settled at {losses[-1]:.3g} (from {losses[0]:.3g}; falling by {late:.1%} per epoch "
            f"over the last {k} epochs, {early:.0%} in the first) with training accuracy "
            f"{a:.1%}, close to validation accuracy {va:.1%}: the model cannot fit even the data it trains on, so it "
            "is too small or too constrained for the task.",
            "give the model more capacity (--hidden, e.g. --hidden 256 or --hidden 256,128), less regularisation "
            "(--weight-decay, --dropout), or better input features.",
            {},
        )
    ]
