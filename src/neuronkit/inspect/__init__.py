"""Insight into the neurons while a network learns (layer 3: attaches to ``nn`` through hooks only): probes,
per-neuron history and events, plain-language diagnostics, whole-model gradient checks."""

from __future__ import annotations

from .attribution import Attribution, integrated_gradients
from .callback import GradCheckCallback, ProbeCallback
from .diagnosis import diagnose
from .diagnostics import Finding, check_before_training, diagnose_training, report
from .events import EventDetector
from .gradcheck import GradientReport, ParamCheck, check_gradients
from .probes import LayerRecord, Probe, ProbeHistory, StoredLayer, load_history
from .sequence_callback import SequenceProbeCallback

__all__ = [
    "Attribution",
    "EventDetector",
    "Finding",
    "GradCheckCallback",
    "GradientReport",
    "LayerRecord",
    "ParamCheck",
    "Probe",
    "ProbeCallback",
    "ProbeHistory",
    "SequenceProbeCallback",
    "StoredLayer",
    "check_before_training",
    "check_gradients",
    "diagnose",
    "diagnose_training",
    "integrated_gradients",
    "load_history",
    "report",
]
