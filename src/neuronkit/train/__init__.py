"""Training: metrics (the training loop, callbacks and checkpoints follow)."""

from .metrics import *
from .metrics import __all__
