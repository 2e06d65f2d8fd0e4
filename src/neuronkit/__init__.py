"""neuronkit: a deep-learning library built from first principles, with a view inside every neuron.

The engine: ``Tensor`` with reverse-mode automatic differentiation on NumPy. The functional ops (``neuronkit.relu``,
``neuronkit.softmax_cross_entropy``, ...), ``neuronkit.cross_entropy`` (the loss) and creation functions are available
at the top level.
"""

from __future__ import annotations

from . import backend, data, nn, ops, optim, train
from .autograd import Function, GraphFreedError, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import num_threads, set_num_threads, tune_allocator
from .creation import (
    arange,
    eye,
    full,
    full_like,
    manual_seed,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    tensor,
    zeros,
    zeros_like,
)
from .gradcheck import GradcheckResult, gradcheck
from .io import FormatError, export_onnx, load, save
from .nn.losses import cross_entropy  # PyTorch's cross_entropy; the fused op is neuronkit.softmax_cross_entropy
from .ops import *  # the functional API: neuronkit.relu, neuronkit.matmul, ...
from .tensor import Tensor

float32 = backend.xp.float32
float64 = backend.xp.float64
int64 = backend.xp.int64

__version__ = "0.1.0"
