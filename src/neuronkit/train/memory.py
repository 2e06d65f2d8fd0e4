"""How much memory training a model takes, estimated before anything is allocated, and the check against the machine.

Training holds, besides the data:

- the parameters, ``P`` values;
- their gradients, ``P`` more;
- the optimizer's state, ``slots * P`` (``OPTIMIZER_SLOTS``: Adam keeps two moments, SGD without momentum none),
  and for an optimizer with state one more ``P`` for the temporaries of its update;
- the activations of one batch: each layer's output (and, for a convolution, its im2col columns) is kept for the
  backward pass, and the backward pass makes a gradient of each, so about ``2 * batch * A`` values, where ``A`` is
  the values per sample that the layers keep (``LayerCost.activations``).

``estimate_memory`` adds these up from ``LayerCost`` s, which ``dense_cost``/``conv2d_cost`` compute from layer
sizes alone, so a model can be judged before it is built (``neuronkit train`` does that), or which ``model_costs``
reads from a built model (``fit`` does that). ``check_memory`` compares the total with what the machine can give
(``backend.available_memory``: MemAvailable, and ``ulimit -v`` where set) and raises ``MemoryLimitError``, one line
naming both, when it does not fit. It is an estimate: NumPy's temporaries come and go around it; the test suite
checks it against the measured peak of real training steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import backend as B
from ..nn import Flatten

__all__ = [
    "OPTIMIZER_SLOTS",
    "LayerCost",
    "MemoryEstimate",
    "MemoryLimitError",
    "check_fit_memory",
    "check_memory",
    "conv2d_cost",
    "dense_cost",
    "estimate_memory",
    "eval_batch_size",
    "model_costs",
    "sample_costs",
]

OPTIMIZER_SLOTS = {"sgd": 0, "adam": 2, "adamw": 2, "nadam": 2, "rmsprop": 1, "adagrad": 1, "lion": 1}
"""Parameter-shaped state arrays each optimizer keeps (SGD: 1 with momentum; RMSprop: 2 when centered)."""

KEPT_PER_ACTIVATION = 2  # each kept activation (forward) and its gradient (backward) live at the same time

EVAL_BATCH = 1024
"""``fit``'s validation batch where it fits ``EVAL_BYTES``: large batches mean fewer Python calls per epoch."""

EVAL_BYTES = 32 << 20
"""What one validation batch's forward pass may take by the estimate (``eval_batch_size``). LeNet's second
convolution needs about 0.25 MB per image for its im2col: at 1,024 images the validation pass was the CLI's peak,
107 MiB above the rest of the run."""


class MemoryLimitError(MemoryError):
    """Training would need more memory than the machine can give (raised before allocating it)."""


@dataclass(frozen=True)
class LayerCost:
    """One layer's share: ``params`` parameter values, and ``activations`` values per sample kept for backward."""

    params: int
    activations: int


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes training takes: parameters, gradients, optimizer state, and the activations of one batch."""

    parameters: int
    gradients: int
    optimizer_state: int
    activations: int
    batch_size: int = 0  # the batch whose activations are counted
    optimizer: str = ""
    activations_of: str = "a batch"  # which batch that is ("a batch", "a validation batch")

    @property
    def total(self) -> int:
        return self.parameters + self.gradients + self.optimizer_state + self.activations

    def __str__(self) -> str:
        f = B.format_bytes
        parts = [f"parameters {f(self.parameters)}"]
        if self.gradients:
            parts.append(f"gradients {f(self.gradients)}")
        if self.optimizer_state:
            parts.append(f"{self.optimizer or 'optimizer'} state {f(self.optimizer_state)}")
        if self.activations:
            parts.append(f"activations of {self.activations_of} of {self.batch_size} {f(self.activations)}")
        return f"about {f(self.total)} ({', '.join(parts)})"


def dense_cost(in_features: int, out_features: int, bias: bool = True, activation: bool = False) -> LayerCost:
    """A ``Dense(in_features, out_features)``: ``in * out (+ out)`` parameters; it keeps its output (twice with an
    activation: the pre-activation for the activation's backward, and the activation)."""
    return LayerCost(
        in_features * out_features + (out_features if bias else 0), out_features * (2 if activation else 1)
    )


def conv2d_cost(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    in_hw: tuple,
    padding: int = 0,
    stride: int = 1,
    max_pool: int | None = None,
    bias: bool = True,
) -> tuple:
    """``(LayerCost, output (H, W))`` of a ``Conv2d`` on ``in_hw`` inputs: ``C_out * C_in * k * k (+ C_out)``
    parameters; it keeps its im2col columns (``C_in k k`` values per output position) and its output. With
    ``max_pool`` the convolution, ReLU and pooling are one op (``ops/conv_fused.py``): the output before pooling is
    not kept, only the pooled output and each window's winner (counted as one more pooled output)."""
    h, w = ((d + 2 * padding - kernel_size) // stride + 1 for d in in_hw)
    cols = in_channels * kernel_size * kernel_size * h * w
    oh, ow = (h // max_pool, w // max_pool) if max_pool else (h, w)
    kept = cols + (2 * out_channels * oh * ow if max_pool else out_channels * h * w)
    params = out_channels * in_channels * kernel_size * kernel_size + (out_channels if bias else 0)
    return LayerCost(params, kept), (oh, ow)


def _slots(optimizer) -> tuple:
    """``(state arrays per parameter, name)`` of an optimizer name or instance (unknown names: two, as Adam)."""
    if optimizer is None:
        return 0, ""
    if isinstance(optimizer, str):
        return OPTIMIZER_SLOTS.get(optimizer.lower(), 2), optimizer.lower()
    name = type(optimizer).__name__.lower()
    slots = OPTIMIZER_SLOTS.get(name, 2)
    groups = getattr(optimizer, "param_groups", [])
    if name == "sgd" and any(g.get("momentum", 0) for g in groups):
        slots = 1
    if name == "rmsprop" and any(g.get("centered", False) for g in groups):
        slots = 2
    return slots, name


def estimate_memory(costs, batch_size: int = 0, optimizer=None, itemsize: int = 4, eval_batch: int = 0):
    """A ``MemoryEstimate`` of training layers with ``costs`` (``LayerCost`` s) on batches of ``batch_size``.

    ``optimizer``: a name in ``OPTIMIZER_SLOTS`` or an ``Optimizer``; None with ``batch_size`` 0 gives the
    parameters alone (what building the model takes). ``itemsize``: bytes per value (4 for float32).
    ``eval_batch``: also count one forward pass without gradients on batches of this size (validation), which keeps
    only a layer's input and output at a time.
    """
    costs = list(costs)
    p = sum(c.params for c in costs)
    training = batch_size > 0 or optimizer is not None
    slots, name = _slots(optimizer)
    kept = sum(c.activations for c in costs)
    widest = max((c.activations for c in costs), default=0)
    train_act, eval_act = KEPT_PER_ACTIVATION * batch_size * kept, 2 * eval_batch * widest
    return MemoryEstimate(
        parameters=p * itemsize,
        gradients=p * itemsize if training else 0,
        optimizer_state=(slots + (slots > 0)) * p * itemsize,  # the state, and one temporary of its update
        activations=max(train_act, eval_act) * itemsize,
        batch_size=batch_size if train_act >= eval_act else eval_batch,
        optimizer=name,
        activations_of="a batch" if train_act >= eval_act else "a validation batch",
    )


def model_costs(model, sample_shape: tuple) -> list:
    """``LayerCost`` s of a built model for samples of ``sample_shape``: its parameters, and the outputs of its
    layers found by one forward pass on a single zero sample (``Module.summary``; no gradients, eval mode), with a
    2-D convolution's im2col columns added."""
    summary = model.summary((1, *sample_shape))
    modules = dict(model.named_modules())
    costs, prev = [LayerCost(0, math.prod(sample_shape))], tuple(sample_shape)
    for name, _, shape, n in summary.rows:
        if not isinstance(shape, tuple):
            continue
        m = modules.get(name)
        if isinstance(m, Flatten):  # a view of its input: nothing new is kept
            prev = shape[1:]
            continue
        conv = _conv_cost(m, prev)
        kept = math.prod(shape[1:]) * (2 if _has_activation(m) else 1)  # the pre-activation is kept too
        costs.append(LayerCost(n, kept) if conv is None else conv)
        prev = shape[1:]
    return costs


def _has_activation(m) -> bool:
    """Whether a layer applies an activation module of its own (a Dense with ``activation="relu"``)."""
    act = getattr(m, "activation", None)
    return act is not None and not isinstance(act, str) and type(act).__name__ != "Identity"


def _conv_cost(m, in_shape: tuple) -> LayerCost | None:
    """The ``conv2d_cost`` of a square-kernel ``Conv2d`` with int stride and padding, else None."""
    k = getattr(m, "kernel_size", None)
    if k is None or len(k) != 2 or k[0] != k[1] or len(in_shape) != 3:
        return None
    stride, padding = getattr(m, "stride", None), getattr(m, "padding", None)
    if not (isinstance(stride, int) and isinstance(padding, int)):
        return None
    bias = getattr(m, "bias", None) is not None
    pool = getattr(m, "max_pool", None)
    cost, _ = conv2d_cost(m.in_channels, m.out_channels, k[0], in_shape[1:], padding, stride, pool, bias)
    return cost


def check_memory(estimate: MemoryEstimate, what: str = "training", available=None, already: int = 0) -> None:
    """Raise ``MemoryLimitError`` when ``estimate.total - already`` bytes (``already``: what exists already, such
    as the parameters of a built model) exceed ``available`` (default ``backend.available_memory()``; nothing is
    checked where the machine cannot tell)."""
    avail = B.available_memory() if available is None else available
    if avail is None:
        return
    need = estimate.total - already
    if need > avail.bytes:
        more = f"{B.format_bytes(need)} more than it holds, " if already else ""
        raise MemoryLimitError(
            f"{what} needs {estimate}: {more}more than the {B.format_bytes(avail.bytes)} of memory available "
            f"({avail.source}); choose a smaller model or batch size"
        )


def sample_costs(model, loader):
    """``(model_costs, itemsize)`` of ``model`` on the loader's first sample and of its parameters' dtype; None for
    data whose first sample has no array shape or a model a zero sample cannot run (token ids, several inputs...)."""
    try:
        first = loader.dataset[0]
        x = first[0] if isinstance(first, tuple) else first
        shape = tuple(x.shape)
    except (AttributeError, IndexError, TypeError, KeyError):
        return None
    try:
        costs = model_costs(model, shape)
    except Exception:  # best effort, no judgement
        return None
    params = list(model.parameters())
    return costs, params[0].data.dtype.itemsize if params else 4


def eval_batch_size(measured, batch_size: int) -> int:
    """``fit``'s validation batch for a model of ``measured`` costs (``sample_costs``; None: not known) trained on
    batches of ``batch_size``: ``EVAL_BATCH`` samples, fewer where one batch's forward pass (its widest layer, twice:
    input and output) would need more than ``EVAL_BYTES``, and never fewer than the training batch."""
    if measured is None:
        return max(batch_size, EVAL_BATCH)
    costs, itemsize = measured
    widest = max((c.activations for c in costs), default=0)
    return max(batch_size, min(EVAL_BATCH, EVAL_BYTES // max(1, 2 * widest * itemsize)))


def check_fit_memory(model, loader, optimizer, eval_batch: int, measured) -> None:
    """``fit``'s check before its first step: the gradients, optimizer state and activations still to come (the
    parameters exist) against the memory available. ``measured``: ``sample_costs(model, loader)``; None (the costs
    could not be measured) skips the check."""
    if measured is None:
        return
    costs, itemsize = measured
    est = estimate_memory(costs, loader.batch_size, optimizer, itemsize=itemsize, eval_batch=eval_batch)
    check_memory(est, f"training {type(model).__name__}", already=est.parameters)
