"""Insight into the neurons while a network learns (layer 3: attaches to ``nn`` through hooks only): probes,
per-neuron history and events, plain-language diagnostics, whole-model gradient checks."""

from __future__ import annotations

from .callback import GradCheckCallback, ProbeCallback
from .diagnosis import diagnose
from .diagnostics import Finding, check_before_training, diagnose_training, report
from .events import EventDetector
from .gradcheck import GradientReport, ParamCheck, check_gradients
from .probes import LayerRecord, Probe, ProbeHistory, StoredLayer, load_history

__all__ = [
    "EventDetector",
    "Finding",
    "GradCheckCallback",
    "GradientReport",
    "LayerRecord",
    "ParamCheck",
    "Probe",
    "ProbeCallback",
    "ProbeHistory",
    "StoredLayer",
    "check_before_training",
    "check_gradients",
    "diagnose",
    "diagnose_training",
    "load_history",
    "report",
]
