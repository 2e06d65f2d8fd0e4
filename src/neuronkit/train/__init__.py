"""Training: ``fit``/``evaluate``/``predict``, callbacks, resumable checkpoints, the ``History``, and metrics."""

from . import callbacks, checkpoint
from .callbacks import (
    Callback,
    ClipGradNorm,
    CSVLogger,
    EarlyStopping,
    JSONLLogger,
    LRScheduler,
    ModelCheckpoint,
    ProgressBar,
    StopOnNaN,
)
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .fit import Trainer, evaluate, fit, predict
from .history import History
from .metrics import *
from .metrics import __all__ as _metrics_all
from .oversubscription import ContentionDetector, WarnOnOversubscription

__all__ = [
    "CSVLogger",
    "Callback",
    "ClipGradNorm",
    "ContentionDetector",
    "EarlyStopping",
    "History",
    "JSONLLogger",
    "LRScheduler",
    "ModelCheckpoint",
    "ProgressBar",
    "StopOnNaN",
    "Trainer",
    "WarnOnOversubscription",
    "callbacks",
    "checkpoint",
    "evaluate",
    "fit",
    "latest_checkpoint",
    "load_checkpoint",
    "predict",
    "save_checkpoint",
    *_metrics_all,
]
