"""Insight into the neurons while a network learns (layer 3: attaches to ``nn`` through hooks only): probes,
per-neuron history and events, whole-model gradient checks."""

from __future__ import annotations

from .callback import ProbeCallback
from .events import EventDetector
from .gradcheck import GradientReport, ParamCheck, check_gradients
from .probes import LayerRecord, Probe, ProbeHistory, load_history

__all__ = ["EventDetector", "GradientReport", "LayerRecord", "ParamCheck", "Probe", "ProbeCallback", "ProbeHistory",
           "check_gradients", "load_history"]  # fmt: skip
