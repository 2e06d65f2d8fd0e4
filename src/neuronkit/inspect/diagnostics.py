"""Diagnostics in plain language: what is wrong with a network before and during training, why it matters, and what
to try.

``check_before_training(model, (x, y))`` runs one forward and one backward on a real batch with forward hooks on every
layer (removed afterwards; the parameters' gradients are put back as they were) and checks:

- ``output_scale``: the standard deviation of the outputs (logits) is above ``10`` or below ``1e-3``;
- ``initial_loss``: for a classification loss, the first loss differs from ln(classes) by more than 50%: the network
  starts confident before it has learned anything;
- ``vanishing_activation`` / ``exploding_activation``: a layer's output std is below ``1e-2`` or above ``1e2`` times
  the input's std (the forward signal dies out or blows up for the chosen initialiser);
- ``vanishing_gradient`` / ``exploding_gradient``: a layer's weight-gradient norm divided by its weight norm is below
  ``1e-6`` (or below ``1e-3`` times that ratio in the best-fed layer: the signal fades on its way back) or above
  ``1``;
- ``dead_relu``: ReLU units whose output is 0 for every example of the batch;
- ``saturation``: sigmoid/tanh units pinned at their bounds (more than 95% of the batch) from the start.

``diagnose_training(history, probe)`` reads a ``History`` (per-epoch loss, val_loss, accuracy, val_accuracy, lr) and
optionally a ``Probe`` (or ``ProbeCallback``) and reports ``dead_relu``, ``saturation``, ``vanishing_gradient``,
``exploding_gradient``, ``lr_too_high``, ``lr_too_low``, ``plateau`` and ``overfitting``.

Each ``Finding`` names where (layer and units), says what happens and why it matters, proposes a remedy in words, and
carries a machine-usable ``fix`` (``{"lr": 0.001}``, ``{"activation": "leaky_relu"}``, ...) that ``neuronkit diagnose
--try-fix`` applies. Wherever a remedy is a setting of ``neuronkit train``, its text names the flag with the value
to try (``--weight-decay 0.0001``, ``--patience 2``; ``FIX_FLAGS`` maps each ``fix`` key to its flag).
``report(findings)`` renders them, worst first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..nn.activations import Activation
from ..nn.layers.conv import ConvNd
from ..nn.losses import get_loss
from ..tensor import Tensor
from .arrays import as_numpy, per_unit
from .probes import activation_name

__all__ = ["Finding", "check_before_training", "diagnose_training", "report"]

SEVERITIES = ("error", "warning", "info")
CLASSIFICATION_LOSSES = ("cross_entropy", "nll", "crossentropyloss", "nllloss")
DEAD_CAPABLE = ("relu", "relu6")  # activations whose gradient is exactly 0 for negative inputs
SATURATING = {
    "sigmoid": (0.01, 0.99),
    "hard_sigmoid": (0.01, 0.99),
    "tanh": (-0.99, 0.99),
    "hard_tanh": (-0.99, 0.99),
    "softsign": (-0.99, 0.99),
}

# thresholds (module constants so that callers and tests can read them)
OUTPUT_STD_HIGH, OUTPUT_STD_LOW = 10.0, 1e-3
INITIAL_LOSS_TOL = 0.5  # relative difference from ln(classes)
ACT_RATIO_LOW, ACT_RATIO_HIGH = 1e-2, 1e2
GRAD_RATIO_LOW, GRAD_RATIO_HIGH = 1e-6, 1.0
GRAD_RATIO_SPREAD = 1e-3  # a layer whose gradient/weight ratio is below this times the largest layer's is starved
SATURATED_FRAC = 0.95
GRAD_TREND = 100.0  # a layer gradient norm that grows (or shrinks) by this factor over the probe's records
FIX_FLAGS = {
    "lr": "--lr",
    "activation": "--activation",
    "init": "--init",
    "dropout": "--dropout",
    "weight_decay": "--weight-decay",
    "clip_grad_norm": "--clip-grad-norm",
    "early_stopping": "--patience",
    "max_len": "--max-len",
}
"""The ``neuronkit train`` flag that applies each ``Finding.fix`` key (``early_stopping``, the best epoch, is applied
by ``--patience``: stop when the validation loss has not improved for that many epochs, keeping the best weights)."""


def _lr(fix: dict, words: str = "a smaller learning rate") -> str:
    """``words`` with the flag: ``a smaller learning rate (--lr 0.01)``, or ``(--lr)`` when no value is proposed."""
    return f"{words} (--lr {fix['lr']:.3g})" if "lr" in fix else f"{words} (--lr)"


@dataclass
class Finding:
    """One diagnosis.

    ``kind``: what was found (``"dead_relu"``, ``"saturation"``, ``"vanishing_gradient"``, ``"exploding_gradient"``,
    ``"vanishing_activation"``, ``"exploding_activation"``, ``"lr_too_high"``, ``"lr_too_low"``, ``"plateau"``,
    ``"overfitting"``, ``"output_scale"``, ``"initial_loss"``). ``severity``: ``"info"``, ``"warning"`` or
    ``"error"``. ``where``: e.g. ``{"layer": "0", "units": [3, 17]}`` (``{}`` for the whole run). ``message``: what
    happens and why it matters. ``remedy``: what to try, in words. ``fix``: the same as settings a program can apply.
    """

    kind: str
    severity: str
    where: dict = field(default_factory=dict)
    message: str = ""
    remedy: str = ""
    fix: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding: severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def place(self) -> str:
        if "layer" in self.where:
            return f"layer {self.where['layer']}"
        if "layers" in self.where:
            return "layers " + ", ".join(str(n) for n in self.where["layers"])
        return self.where.get("scope", "model")

    def __str__(self) -> str:
        text = f"{self.severity.upper()} {self.place}: {self.message}"
        return text + (f" Try: {self.remedy}" if self.remedy else "")

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "where": self.where,
            "message": self.message,
            "remedy": self.remedy,
            "fix": self.fix,
        }


def report(findings) -> str:
    """The text of all findings, worst first (errors, then warnings, then info; ties keep their order)."""
    if not findings:
        return "No problems found."
    ordered = sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
    return "\n".join(str(f) for f in ordered)


# -- helpers ------------------------------------------------------------------------------------------------------


def _units_text(units, limit: int = 10) -> str:
    shown = ", ".join(str(u) for u in units[:limit])
    return shown + (f" and {len(units) - limit} more" if len(units) > limit else "")


def _fraction_severity(frac: float) -> str:
    return "error" if frac >= 0.5 else "warning" if frac >= 0.1 else "info"


def _act_name(module) -> str | None:
    if isinstance(module, Activation):
        return module.name
    name = activation_name(module)
    return None if name == "linear" else name


def _dead_finding(layer: str, units: list, total: int, when: str, lr=None) -> Finding:
    frac = len(units) / max(total, 1)
    fix = {"activation": "leaky_relu", "init": "he_uniform"}
    if lr is not None and math.isfinite(lr) and lr > 0:
        fix["lr"] = lr / 10
    return Finding(
        "dead_relu",
        _fraction_severity(frac),
        {"layer": layer, "units": units},
        f"{len(units)} of {total} ReLU units in layer {layer} (units {_units_text(units)}) never fire on any input "
        f"{when}: their output and their gradient are 0, so they pass no gradient back and cannot learn again.",
        f"use leaky_relu or elu (--activation leaky_relu), {_lr(fix)}, He initialisation (--init he_uniform), or "
        "biases that start at 0 or slightly positive.",
        fix,
    )


def _saturation_finding(layer: str, act: str, units: list, total: int, when: str) -> Finding:
    frac = len(units) / max(total, 1)
    return Finding(
        "saturation",
        _fraction_severity(frac),
        {"layer": layer, "units": units},
        f"{len(units)} of {total} {act} units in layer {layer} (units {_units_text(units)}) are pinned at their "
        f"bounds for more than {SATURATED_FRAC:.0%} of the inputs {when}: there the slope of {act} is almost 0, so "
        f"almost no gradient passes through them and they (and the layers before them) learn very slowly.",
        "use smaller initial weights (--init xavier_uniform for sigmoid/tanh), normalise the inputs (--standardize, "
        "on by default), add batch or layer normalisation, or switch to relu-like activations (--activation relu).",
        {"init": "xavier_uniform"},
    )


# -- before training ----------------------------------------------------------------------------------------------
def _layers(model):
    """(name, module) of every layer worth measuring, in registration order: modules with their own parameters and
    standalone leaf modules; an activation owned by a Dense/conv layer is measured as part of that layer."""
    owned = {
        id(m.activation) for _, m in model.named_modules() if isinstance(getattr(m, "activation", None), Activation)
    }
    out = []
    for name, m in model.named_modules():
        if id(m) in owned:
            continue
        own_params = any(True for _ in m.named_parameters(recurse=False))
        leaf = not any(True for _ in m.named_children()) and m is not model
        if own_params or leaf:
            out.append((name or type(m).__name__, m))
    return out


def _split(batch):
    """``(inputs, y)``: the batch's inputs (one array, or several such as a text model's tokens and lengths) and
    its targets, as NumPy arrays."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            "check_before_training: batch must be a tuple (x, y) (or (x1, ..., xk, y) for a model of several inputs, "
            f"such as a text model's (tokens, lengths, labels)) of one real batch, got {type(batch).__name__}"
        )
    inputs = [np.asarray(as_numpy(v)) for v in batch[:-1]]
    return inputs, np.asarray(as_numpy(batch[-1]))


def _input_std(inputs, records) -> float:
    """The scale the layers' outputs are compared with: the float input's std; for integer inputs (token ids),
    the std of the first layer's output (the embedding vectors), which is where the signal starts."""
    if inputs[0].dtype.kind == "f":
        return float(np.std(inputs[0].astype(np.float64)))
    return float(np.std(records[0][2])) if records else 1.0


def check_before_training(
    model, batch, loss="cross_entropy", num_classes: int | None = None, when: str = "at initialisation"
) -> list:
    """Check a freshly initialised ``model`` on one real ``batch`` ``(x, y)`` before training it (``(x1, ..., xk,
    y)`` for a model of several inputs: a text model's ``(tokens, lengths, labels)``).

    One forward (with forward hooks on every layer, removed afterwards) and one backward of ``loss(model(x), y)``.
    The gradients the parameters had before the call are put back afterwards (``None`` for a fresh model), and the
    weights are not changed. ``num_classes`` defaults to the size of the output's last axis. Returns a list of
    ``Finding`` (see the module docstring); an empty list means nothing looked wrong. ``when`` is how the messages
    name the moment checked (e.g. ``"after training"`` for the layer checks of a trained model).
    """
    inputs, y = _split(batch)
    loss_name = loss.lower() if isinstance(loss, str) else type(loss).__name__.lower()
    loss_fn = get_loss(loss) if isinstance(loss, str) else loss
    records: list = []  # (name, module, output array) in forward order
    handles = []
    for name, m in _layers(model):

        def hook(module, inputs, output, _name=name):
            if isinstance(output, Tensor):
                records.append((_name, module, np.array(as_numpy(output), dtype=np.float64)))

        handles.append(m.register_forward_hook(hook))
    params = list(model.named_parameters())
    saved = [(p, p.grad) for _, p in params]
    for _, p in params:
        p.grad = None
    try:
        out = model(*[Tensor(v) for v in inputs])
        target = y if y.dtype.kind in "iub" else Tensor(y)
        value = loss_fn(out, target)
        value.backward()
        loss_value = float(value.item())
        logits = np.asarray(as_numpy(out), dtype=np.float64)
        grads = {}
        for name, m in _layers(model):
            w = getattr(m, "weight", None)
            if w is None or not hasattr(w, "grad"):
                continue
            g = None if w.grad is None else np.asarray(as_numpy(w.grad), dtype=np.float64)
            grads[name] = (np.asarray(as_numpy(w), dtype=np.float64), g)
    finally:
        for h in handles:
            h.remove()
        for p, g in saved:
            p.grad = g
    findings: list = []
    with np.errstate(all="ignore"):
        findings += _check_output(logits, loss_value, loss_name, num_classes, when)
        findings += _check_layers(records, _input_std(inputs, records), when)
        findings += _check_grads(grads)
    return findings


def _check_output(logits, loss_value, loss_name, num_classes, when) -> list:
    out = []
    std = float(np.std(logits))
    if not math.isfinite(std) or std > OUTPUT_STD_HIGH:
        out.append(
            Finding(
                "output_scale",
                "error" if not math.isfinite(std) or std > 100 * OUTPUT_STD_HIGH else "warning",
                {"scope": "output", "std": std},
                f"the outputs (logits) {when} have standard deviation {std:.3g} (expected about 0.1 to 1): "
                "the softmax is saturated from the first step, so the first updates are huge and erratic.",
                "scale the initial weights down (--init he_uniform or --init xavier_uniform instead of a large "
                "custom scale), or scale the last layer's weights by 0.1 or less.",
                {"init": "he_uniform"},
            )
        )
    elif std < OUTPUT_STD_LOW:
        out.append(
            Finding(
                "output_scale",
                "warning",
                {"scope": "output", "std": std},
                f"the outputs {when} hardly vary (standard deviation {std:.3g}): the signal has died out on "
                "its way through the network, so every input gets the same prediction and the gradients are tiny.",
                "use He initialisation for ReLU layers (--init he_uniform; --init xavier_uniform for tanh/sigmoid), "
                "or normalise the inputs (--standardize, on by default).",
                {"init": "he_uniform"},
            )
        )
    if loss_name in CLASSIFICATION_LOSSES:
        c = num_classes if num_classes is not None else (logits.shape[-1] if logits.ndim else 1)
        if c >= 2:
            expected = math.log(c)
            if not math.isfinite(loss_value) or abs(loss_value - expected) > INITIAL_LOSS_TOL * expected:
                high = not math.isfinite(loss_value) or loss_value > expected
                why = (
                    "the network starts confident before it has learned anything, and confidently wrong on many "
                    "examples, so the first gradients are large and training starts by undoing the initialisation"
                    if high
                    else "the loss is lower than guessing allows before any training, which suggests a "
                    "bug: labels leaking into the inputs, or a mismatch between the loss and the outputs"
                )
                out.append(
                    Finding(
                        "initial_loss",
                        "error" if not math.isfinite(loss_value) else "warning",
                        {"scope": "loss", "loss": loss_value, "expected": expected},
                        f"the initial loss is {loss_value:.3g} but a network that knows nothing about {c} classes "
                        f"should start near ln({c}) = {expected:.3g}: {why}.",
                        "start with small logits: a standard initialiser (--init he_uniform or --init "
                        "xavier_uniform), or the last layer's weights scaled down to about 0.01."
                        if high
                        else "check the data pipeline and that the loss matches the outputs "
                        "(--loss; logits for cross_entropy).",
                        {"init": "he_uniform"} if high else {},
                    )
                )
    return out


def _check_layers(records, in_std, when) -> list:
    out = []
    base = in_std if in_std > 0 and math.isfinite(in_std) else 1.0
    conv_context = False
    for name, module, a in records:
        if isinstance(module, ConvNd):
            conv_context = True
        elif getattr(module, "weight", None) is not None:
            conv_context = False
        std = float(np.std(a))
        ratio = std / base
        act = _act_name(module)
        if not math.isfinite(ratio) or ratio > ACT_RATIO_HIGH:
            out.append(
                Finding(
                    "exploding_activation",
                    "error" if not math.isfinite(ratio) else "warning",
                    {"layer": name, "std": std, "ratio": ratio},
                    f"{when}, the outputs of layer {name} have standard deviation {std:.3g}, {ratio:.3g} times the "
                    "input's: the forward signal grows layer by layer, so later layers saturate or overflow and the "
                    "gradients explode.",
                    "use an initialiser matched to the activation (--init he_uniform for ReLU, "
                    "--init xavier_uniform for tanh/sigmoid) or add normalisation layers.",
                    {"init": "he_uniform" if act in DEAD_CAPABLE else "xavier_uniform"},
                )
            )
        elif ratio < ACT_RATIO_LOW:
            out.append(
                Finding(
                    "vanishing_activation",
                    "warning",
                    {"layer": name, "std": std, "ratio": ratio},
                    f"{when}, the outputs of layer {name} have standard deviation {std:.3g}, only {ratio:.2g} of the "
                    "input's: "
                    "the forward signal fades layer by layer, so later layers see almost constant inputs and the "
                    "gradients that reach early layers are tiny.",
                    "use He initialisation for ReLU layers (--init he_uniform; --init xavier_uniform for "
                    "tanh/sigmoid), fewer layers (--hidden), or normalisation layers.",
                    {"init": "he_uniform" if act in DEAD_CAPABLE else "xavier_uniform"},
                )
            )
        if act is None:
            continue
        u = per_unit(a, conv_context)
        if act in DEAD_CAPABLE:
            dead = np.flatnonzero((u <= 0).all(1)).tolist()
            if dead:
                out.append(_dead_finding(name, dead, u.shape[0], f"in this batch {when}"))
        elif act in SATURATING:
            lo, hi = SATURATING[act]
            sat = np.flatnonzero(((u < lo) | (u > hi)).mean(1) > SATURATED_FRAC).tolist()
            if sat:
                out.append(_saturation_finding(name, act, sat, u.shape[0], when))
    return out


def _check_grads(grads) -> list:
    out = []
    rows = []
    for name, (w, g) in grads.items():
        if g is None:
            continue
        wn, gn = float(np.linalg.norm(w)), float(np.linalg.norm(g))
        rows.append((name, wn, gn, gn / wn if wn > 0 else (math.inf if gn > 0 else 0.0)))
    finite = [r[3] for r in rows if math.isfinite(r[3])]
    best = max(finite) if finite else 0.0
    for name, wn, gn, ratio in rows:
        low = ratio < GRAD_RATIO_LOW or (len(rows) >= 2 and ratio < GRAD_RATIO_SPREAD * best)
        if not math.isfinite(ratio) or ratio > GRAD_RATIO_HIGH:
            out.append(
                Finding(
                    "exploding_gradient",
                    "error" if not math.isfinite(ratio) else "warning",
                    {"layer": name, "grad_norm": gn, "weight_norm": wn, "ratio": ratio},
                    f"the weight gradient of layer {name} is {ratio:.3g} times as large as its "
                    f"weights (norm {gn:.3g} vs "
                    f"{wn:.3g}): one step at an ordinary learning rate would change the weights beyond recognition.",
                    "use a smaller learning rate (--lr), gradient clipping (--clip-grad-norm 1), a standard "
                    "initialiser (--init he_uniform), or normalisation layers.",
                    {"clip_grad_norm": 1.0, "init": "he_uniform"},
                )
            )
        elif low:
            rel = f", {ratio / best:.2g} of the best-fed layer's" if best > 0 else ""
            out.append(
                Finding(
                    "vanishing_gradient",
                    "warning",
                    {"layer": name, "grad_norm": gn, "weight_norm": wn, "ratio": ratio},
                    f"the weight gradient of layer {name} is only {ratio:.2g} of its weights (norm {gn:.3g} vs "
                    f"{wn:.3g}{rel}): almost no learning signal reaches this layer, so it will barely change during "
                    "training.",
                    "use relu-like activations with He initialisation (--activation relu --init he_uniform), "
                    "smaller initial weights for sigmoid/tanh (--init xavier_uniform), normalisation layers, or "
                    "residual connections.",
                    {"activation": "relu", "init": "he_uniform"},
                )
            )
    return out


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
                findings += _diagnose_probe(probe, epochs, window)
        findings += _diagnose_history(epochs, plateau_epochs)
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
                out.append(_dead_finding(name, dead, rec.units, when, lr))
        if rec.activation in SATURATING:
            sat = np.flatnonzero(u["saturated_frac"][idx[-1]] > SATURATED_FRAC).tolist()
            if sat:
                out.append(
                    _saturation_finding(name, rec.activation, sat, rec.units, f"at step {int(rec.steps[idx[-1]])}")
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
                    f"use {_lr(fix_lr, 'a much smaller learning rate')} and gradient clipping (--clip-grad-norm 1).",
                    {**fix_lr, "clip_grad_norm": 1.0},
                )
            )
            continue
        fin = g[np.isfinite(g)]
        if fin.size == 0:
            continue
        first, now = float(fin[0]), float(fin[-1])
        if fin.size >= 2 and first > 0 and now > GRAD_TREND * first:
            out.append(
                Finding(
                    "exploding_gradient",
                    "error" if now > 1e4 * first else "warning",
                    {"layer": name, "first": first, "last": now},
                    f"the weight-gradient norm of layer {name} grew from {first:.3g} to {now:.3g} ({now / first:.3g}x) "
                    "during training: the updates grow with it, and the run is heading towards divergence.",
                    f"use {_lr(fix_lr)}, gradient clipping (--clip-grad-norm 1), or normalisation layers.",
                    {**fix_lr, "clip_grad_norm": 1.0},
                )
            )
        elif wn > 0 and (now / wn < GRAD_RATIO_LOW or (len(ratios) >= 2 and now / wn < GRAD_RATIO_SPREAD * best)):
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
                f"use {_lr(lower, 'a learning rate 10 times smaller')} and gradient clipping (--clip-grad-norm 1).",
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
                f"use {_lr(lower, 'a learning rate 10 times smaller')}, or a schedule that lowers it "
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
                    f"use {_lr(raise_lr, 'a learning rate 10 times larger')}, or find one with a short "
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
                    f"{_lr(lower, 'lower the learning rate 10x')} or lower it as training goes (--schedule cosine), "
                    "or give the model more capacity if the loss is still high (--hidden, e.g. --hidden 256).",
                    lower,
                )
            )
    out += _overfitting(epochs, losses)
    return out


def _overfitting(epochs, losses) -> list:
    out = []
    val = _series(epochs, "val_loss")
    fix = {"weight_decay": 1e-4, "dropout": 0.2}
    if len(val) >= 3 and len(val) == len(losses) and all(math.isfinite(v) for v in val):
        best = int(np.argmin(val))
        rises = len(val) - 1 - best
        if rises >= 2 and val[-1] > val[-2] and val[-1] > val[best] * 1.02 and losses[-1] < losses[best]:
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
