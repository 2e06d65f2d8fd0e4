"""``Finding``: one diagnosis (what, where, why it matters, what to try), the thresholds every check reads, and the
finding builders that the checks before and during training share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..nn.activations import Activation
from .probes import activation_name

__all__ = ["Finding", "report"]

SEVERITIES = ("error", "warning", "info")
CLASSIFICATION_LOSSES = ("cross_entropy", "nll", "crossentropyloss", "nllloss")
DEAD_CAPABLE = ("relu", "relu6")  # activations whose gradient is exactly 0 for negative inputs
SATURATING = {"sigmoid": 0.5, "hard_sigmoid": 0.5, "tanh": 0.0, "hard_tanh": 0.0, "softsign": 0.0}
"""The saturating activations, each with the middle of its range: a saturated unit below it sits at the low end."""

# thresholds (module constants so that callers and tests can read them)
OUTPUT_STD_HIGH, OUTPUT_STD_LOW = 10.0, 1e-3
INITIAL_LOSS_TOL = 0.5  # relative difference from ln(classes)
ACT_RATIO_LOW, ACT_RATIO_HIGH = 1e-2, 1e2
GRAD_RATIO_LOW, GRAD_RATIO_HIGH = 1e-4, 10.0  # |weight gradient| / |weight|: 1e-2 to 2 on healthy networks
STEP_LOW = 1e-6  # one plain step (lr * |g| / |w|) that moves the weights by less than this cannot train them
GRAD_GROWTH = 100.0  # weight gradients that grow by this much from the last hidden layer back to the first explode
GRAD_RATIO_SPREAD = 1e-3  # a layer whose gradient/weight ratio is below this times the largest layer's is starved
SATURATED_FRAC = 0.95  # a unit is saturated when its slope is small (probes.SATURATION_SLOPE) on this many inputs
DEAD_MIN_SAMPLES = 1000  # "dead" needs this many inputs (or a whole split); fewer: information only
DEAD_WARN_FRAC = 0.25  # dead units are a warning from a quarter of a layer: healthy ReLU layers often lose 10-20%
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


def lr_words(fix: dict, words: str = "a smaller learning rate") -> str:
    """``words`` with the flag: ``a smaller learning rate (--lr 0.01)``, or ``(--lr)`` when no value is proposed."""
    return f"{words} (--lr {fix['lr']:.3g})" if "lr" in fix else f"{words} (--lr)"


@dataclass
class Finding:
    """One diagnosis.

    ``kind``: what was found (``"dead_relu"``, ``"saturation"``, ``"vanishing_gradient"``, ``"exploding_gradient"``,
    ``"vanishing_activation"``, ``"exploding_activation"``, ``"lr_too_high"``, ``"lr_too_low"``, ``"plateau"``,
    ``"overfitting"``, ``"output_scale"``, ``"initial_loss"``, ``"vanishing_signal"``, ``"underfitting"``).
    ``severity``: ``"info"``, ``"warning"`` or ``"error"``. ``where``: e.g. ``{"layer": "0", "units": [3, 17]}``
    (``{}`` for the whole run). ``message``: what happens and why it matters. ``remedy``: what to try, in words.
    ``fix``: the same as settings a program can apply. ``phase``: when it was seen (``"init"``, ``"trained"``,
    ``"training"``, ``"history"``). ``details``: the findings a ranked finding groups or explains.
    """

    kind: str
    severity: str
    where: dict = field(default_factory=dict)
    message: str = ""
    remedy: str = ""
    fix: dict = field(default_factory=dict)
    phase: str = ""  # "init", "trained" (the trained model on data), "training" (probe records) or "history"
    details: list = field(default_factory=list)  # the findings this one groups or explains (see inspect.diagnosis)

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"Finding: severity must be one of {SEVERITIES}, got {self.severity!r}")

    @property
    def place(self) -> str:
        if "layer" in self.where:
            return f"layer {self.where['layer']}"
        if "layers" in self.where:
            return layers_text(self.where["layers"])
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
            "phase": self.phase,
            "details": [d.to_dict() for d in self.details],
        }


def report(findings) -> str:
    """The text of all findings, worst first (errors, then warnings, then info; ties keep their order)."""
    if not findings:
        return "No problems found."
    ordered = sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
    return "\n".join(str(f) for f in ordered)


# -- helpers ------------------------------------------------------------------------------------------------------


def layers_text(names) -> str:
    """``layer 3``, ``layers 20-28`` (consecutive integer names as a range), ``layers 1, 4, 7-9``."""
    names = [str(n) for n in names]
    if len(names) == 1:
        return f"layer {names[0]}"
    if not all(n.isdigit() for n in names):
        return "layers " + ", ".join(names)
    nums, parts = sorted({int(n) for n in names}), []
    start = prev = nums[0]
    for n in nums[1:] + [None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return "layers " + ", ".join(parts)


def units_text(units, limit: int = 10) -> str:
    shown = ", ".join(str(u) for u in units[:limit])
    return shown + (f" and {len(units) - limit} more" if len(units) > limit else "")


def fraction_severity(frac: float, warn: float = 0.1) -> str:
    """error from half of a layer's units, warning from ``warn`` of them, else info."""
    return "error" if frac >= 0.5 else "warning" if frac >= warn else "info"


def act_name_of(module) -> str | None:
    if isinstance(module, Activation):
        return module.name
    name = activation_name(module)
    return None if name == "linear" else name


def dead_finding(layer: str, units: list, total: int, when: str, lr=None, enough: bool = True) -> Finding:
    """``enough``: whether the evidence covers enough inputs to call the units dead (``DEAD_MIN_SAMPLES`` inputs or a
    whole split); if not, the finding is information only."""
    frac = len(units) / max(total, 1)
    fix = {"activation": "leaky_relu", "init": "he_uniform"}
    if lr is not None and math.isfinite(lr) and lr > 0:
        fix["lr"] = lr / 10
    doubt = "" if enough else " (too few inputs to be sure they are dead, not just sparse)"
    return Finding(
        "dead_relu",
        fraction_severity(frac, DEAD_WARN_FRAC) if enough else "info",
        {"layer": layer, "units": units, "total": total},
        f"{len(units)} of {total} ReLU units in layer {layer} (units {units_text(units)}) never fire on any input "
        f"{when}{doubt}: their output and their gradient are 0, so they pass no gradient back and cannot learn again.",
        f"use leaky_relu or elu (--activation leaky_relu), {lr_words(fix)}, He initialisation (--init he_uniform), or "
        "biases that start at 0 or slightly positive.",
        fix,
    )


def saturation_finding(layer: str, act: str, units: list, total: int, when: str, low: int = 0) -> Finding:
    """``low``: how many of ``units`` sit at the low end (near 0 for sigmoid, -1 for tanh); the rest at the high end."""
    frac = len(units) / max(total, 1)
    lo_word = "0" if act in ("sigmoid", "hard_sigmoid") else "-1"
    high = len(units) - low
    end = (
        f"at the low end (outputs near {lo_word})"
        if high == 0
        else "at the high end (outputs near 1)"
        if low == 0
        else f"{low} at the low end (near {lo_word}), {high} at the high end (near 1)"
    )
    return Finding(
        "saturation",
        fraction_severity(frac),
        {"layer": layer, "units": units, "total": total, "low": low, "high": high},
        f"{len(units)} of {total} {act} units in layer {layer} (units {units_text(units)}) are saturated {end} on "
        f"more than {SATURATED_FRAC:.0%} of the inputs {when}: there the slope of {act} is under a fifth of its "
        "peak, so little gradient passes through them and they (and the layers before them) learn very slowly.",
        "use smaller initial weights (--init xavier_uniform for sigmoid/tanh), normalise the inputs (--standardize, "
        "on by default), add batch or layer normalisation, or switch to relu-like activations (--activation relu).",
        {"init": "xavier_uniform"},
    )
