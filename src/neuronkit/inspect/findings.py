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


def units_text(units, limit: int = 10) -> str:
    shown = ", ".join(str(u) for u in units[:limit])
    return shown + (f" and {len(units) - limit} more" if len(units) > limit else "")


def fraction_severity(frac: float) -> str:
    return "error" if frac >= 0.5 else "warning" if frac >= 0.1 else "info"


def act_name_of(module) -> str | None:
    if isinstance(module, Activation):
        return module.name
    name = activation_name(module)
    return None if name == "linear" else name


def dead_finding(layer: str, units: list, total: int, when: str, lr=None) -> Finding:
    frac = len(units) / max(total, 1)
    fix = {"activation": "leaky_relu", "init": "he_uniform"}
    if lr is not None and math.isfinite(lr) and lr > 0:
        fix["lr"] = lr / 10
    return Finding(
        "dead_relu",
        fraction_severity(frac),
        {"layer": layer, "units": units},
        f"{len(units)} of {total} ReLU units in layer {layer} (units {units_text(units)}) never fire on any input "
        f"{when}: their output and their gradient are 0, so they pass no gradient back and cannot learn again.",
        f"use leaky_relu or elu (--activation leaky_relu), {lr_words(fix)}, He initialisation (--init he_uniform), or "
        "biases that start at 0 or slightly positive.",
        fix,
    )


def saturation_finding(layer: str, act: str, units: list, total: int, when: str) -> Finding:
    frac = len(units) / max(total, 1)
    return Finding(
        "saturation",
        fraction_severity(frac),
        {"layer": layer, "units": units},
        f"{len(units)} of {total} {act} units in layer {layer} (units {units_text(units)}) are pinned at their "
        f"bounds for more than {SATURATED_FRAC:.0%} of the inputs {when}: there the slope of {act} is almost 0, so "
        f"almost no gradient passes through them and they (and the layers before them) learn very slowly.",
        "use smaller initial weights (--init xavier_uniform for sigmoid/tanh), normalise the inputs (--standardize, "
        "on by default), add batch or layer normalisation, or switch to relu-like activations (--activation relu).",
        {"init": "xavier_uniform"},
    )
