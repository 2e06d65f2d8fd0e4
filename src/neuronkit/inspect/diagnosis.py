"""A diagnosis, not a log: every check of a run, grouped, deduplicated and ranked with the likely root cause first.

``diagnose(model, batch, history=..., probe=..., initial=...)`` runs ``check_before_training`` on the initial model
(the start the training had) and on the trained one, and ``diagnose_training`` on the history and the probe, then
``rank``s the findings.
"""

from __future__ import annotations

from .diagnostics import check_before_training, diagnose_training

__all__ = ["diagnose"]


def diagnose(model, batch, history=None, probe=None, initial=None, loss="cross_entropy", lr=None) -> list:
    """All findings about a run, ranked (see ``rank``)."""
    findings = []
    if initial is not None:
        findings += check_before_training(initial, batch, loss=loss, lr=lr)
    was = model.training
    model.eval()
    try:
        findings += [
            f
            for f in check_before_training(model, batch, loss=loss, when="after training")
            if f.kind not in ("output_scale", "initial_loss")
        ]
    finally:
        model.train(was)
    findings += diagnose_training(history, probe)
    return findings
