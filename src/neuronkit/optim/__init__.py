"""Optimizers, learning-rate schedules and gradient clipping.

Every optimizer subclasses ``Optimizer`` and writes only its per-parameter ``update``; the base class owns parameter
groups, per-parameter state, the step loop and ``state_dict()`` / ``load_state_dict()``. ``make_optimizer("adam",
params, lr=...)`` builds one by name from ``OPTIMIZERS``.
"""

from __future__ import annotations

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .clip import clip_grad_norm, clip_grad_value
from .lion import Lion
from .nadam import NAdam
from .optimizer import Optimizer
from .registry import OPTIMIZERS, make_optimizer
from .rmsprop import RMSprop
from .schedules import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearWarmupCosine,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    StepLR,
)
from .sgd import SGD

__all__ = [
    "OPTIMIZERS",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "ExponentialLR",
    "LRScheduler",
    "LinearWarmupCosine",
    "Lion",
    "MultiStepLR",
    "NAdam",
    "OneCycleLR",
    "Optimizer",
    "RMSprop",
    "ReduceLROnPlateau",
    "StepLR",
    "clip_grad_norm",
    "clip_grad_value",
    "make_optimizer",
]
