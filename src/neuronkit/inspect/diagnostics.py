"""Diagnostics in plain language: what is wrong with a network before and during training, why it matters, and what
to try.

``check_before_training(model, (x, y))`` runs one forward and one backward on a real batch with forward hooks on every
layer (removed afterwards; the parameters' gradients are put back as they were) and checks:

- ``output_scale``: the standard deviation of the outputs (logits) is above ``10`` or below ``1e-3``;
- ``initial_loss``: for a classification loss, the first loss differs from ln(classes) by more than 50%: the network
  starts confident before it has learned anything;
- ``vanishing_activation`` / ``exploding_activation``: a hidden layer's output std is below ``1e-2`` or above ``1e2``
  times the input's std (the forward signal dies out or blows up for the chosen initialiser). The layer that gives the
  model's output is left out: its scale is the logits' (``output_scale``), which a classifier that learns grows on
  purpose as it becomes confident;
- ``vanishing_gradient``: a layer's weight-gradient norm divided by its weight norm is below ``1e-4`` (healthy
  networks show 1e-2 to 2), one plain step at ``lr`` would move the weights by less than ``1e-6`` of their norm, or the
  ratio is below ``1e-3`` times the best-fed layer's; ``exploding_gradient``: a non-finite gradient;
- ``vanishing_signal`` and ``exploding_gradient`` with depth (``inspect.depth``): the activations fade layer after
  layer until the output hardly depends on the input (He et al. 2015's 30 Xavier-initialised ReLU layers), or the
  weight gradients grow more than 100x from the last hidden layer back to the first;
- ``dead_relu``: ReLU units whose output is 0 for every example (a warning only on ``min_dead_samples`` inputs or a
  whole split, and from a quarter of a layer; fewer inputs: information);
- ``saturation``: sigmoid/tanh units whose slope is below a fifth of its peak on more than 95% of the inputs (the
  message says at which end).

``diagnose_training(history, probe)`` (``inspect.history_checks``) reads a ``History`` (per-epoch loss, val_loss,
accuracy, val_accuracy, lr) and optionally a ``Probe`` (or ``ProbeCallback``) and reports ``dead_relu``,
``saturation``, ``vanishing_gradient``, ``exploding_gradient``, ``lr_too_high``, ``lr_too_low``, ``plateau``,
``overfitting`` and ``underfitting``. ``inspect.diagnose`` runs both on a trained run and ranks the findings, root
cause first (``inspect.diagnosis``).

Each ``Finding`` names where (layer and units), says what happens and why it matters, proposes a remedy in words, and
carries a machine-usable ``fix`` (``{"lr": 0.001}``, ``{"activation": "leaky_relu"}``, ...) that ``neuronkit diagnose
--try-fix`` applies. Wherever a remedy is a setting of ``neuronkit train``, its text names the flag with the value
to try (``--weight-decay 0.0001``, ``--patience 2``; ``FIX_FLAGS`` maps each ``fix`` key to its flag).
``report(findings)`` renders them, worst first.
"""

from __future__ import annotations

import math

import numpy as np

from ..nn.activations import Activation
from ..nn.layers.conv import ConvNd
from ..nn.losses import get_loss
from ..tensor import Tensor
from .arrays import as_numpy, per_unit
from .depth import check_depth
from .findings import (  # noqa: F401 (re-exported: the names this module has always offered)
    ACT_RATIO_HIGH,
    ACT_RATIO_LOW,
    CLASSIFICATION_LOSSES,
    DEAD_CAPABLE,
    DEAD_MIN_SAMPLES,
    FIX_FLAGS,
    GRAD_RATIO_HIGH,
    GRAD_RATIO_LOW,
    GRAD_RATIO_SPREAD,
    GRAD_TREND,
    INITIAL_LOSS_TOL,
    OUTPUT_STD_HIGH,
    OUTPUT_STD_LOW,
    SATURATED_FRAC,
    SATURATING,
    SEVERITIES,
    STEP_LOW,
    Finding,
    act_name_of,
    dead_finding,
    report,
    saturation_finding,
)
from .history_checks import diagnose_training
from .probes import SATURATION_SLOPE, relative_slope

__all__ = ["Finding", "check_before_training", "diagnose_training", "report"]


# -- before training ----------------------------------------------------------------------------------------------
def _layers(model):
    """(name, module) of every layer worth measuring, in registration order: modules with their own parameters and
    standalone leaf modules; an activation owned by a Dense/conv layer is measured as part of that layer."""
    owned = {
        id(m.activation) for _, m in model.named_modules() if isinstance(getattr(m, "activation", None), Activation)
    }
    out = []
    for name, m in model.named_modules():
        if id(m) in owned:
            continue
        own_params = any(True for _ in m.named_parameters(recurse=False))
        leaf = not any(True for _ in m.named_children()) and m is not model
        if own_params or leaf:
            out.append((name or type(m).__name__, m))
    return out


def _split(batch):
    """``(inputs, y)``: the batch's inputs (one array, or several such as a text model's tokens and lengths) and
    its targets, as NumPy arrays."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            "check_before_training: batch must be a tuple (x, y) (or (x1, ..., xk, y) for a model of several inputs, "
            f"such as a text model's (tokens, lengths, labels)) of one real batch, got {type(batch).__name__}"
        )
    inputs = [np.asarray(as_numpy(v)) for v in batch[:-1]]
    return inputs, np.asarray(as_numpy(batch[-1]))


def _input_std(inputs, records) -> float:
    """The scale the layers' outputs are compared with: the float input's std; for integer inputs (token ids),
    the std of the first layer's output (the embedding vectors), which is where the signal starts."""
    if inputs[0].dtype.kind == "f":
        return float(np.std(inputs[0].astype(np.float64)))
    return float(np.std(records[0][2])) if records else 1.0


def check_before_training(
    model,
    batch,
    loss="cross_entropy",
    num_classes: int | None = None,
    when: str = "at initialisation",
    lr: float | None = None,
    min_dead_samples: int = DEAD_MIN_SAMPLES,
) -> list:
    """Check a freshly initialised ``model`` on one real ``batch`` ``(x, y)`` before training it (``(x1, ..., xk,
    y)`` for a model of several inputs: a text model's ``(tokens, lengths, labels)``).

    One forward (with forward hooks on every layer, removed afterwards) and one backward of ``loss(model(x), y)``.
    The gradients the parameters had before the call are put back afterwards (``None`` for a fresh model), and the
    weights are not changed. ``num_classes`` defaults to the size of the output's last axis. Returns a list of
    ``Finding`` (see the module docstring); an empty list means nothing looked wrong. ``when`` is how the messages
    name the moment checked (e.g. ``"after training"`` for the layer checks of a trained model). ``lr``: the learning
    rate of a plain gradient step, to judge how far one step moves the weights (None: not judged; leave it None for
    optimizers that normalise their steps, such as Adam). ``min_dead_samples``: how many inputs it takes to call a
    ReLU unit dead (pass ``len(x)`` when ``batch`` is a whole validation or test split); on fewer, silent units are
    information only.
    """
    inputs, y = _split(batch)
    loss_name = loss.lower() if isinstance(loss, str) else type(loss).__name__.lower()
    loss_fn = get_loss(loss) if isinstance(loss, str) else loss
    records: list = []  # (name, module, output array) in forward order
    handles = []
    for name, m in _layers(model):

        def hook(module, inputs, output, _name=name):
            if isinstance(output, Tensor):
                records.append((_name, module, np.array(as_numpy(output), dtype=np.float64)))

        handles.append(m.register_forward_hook(hook))
    params = list(model.named_parameters())
    saved = [(p, p.grad) for _, p in params]
    for _, p in params:
        p.grad = None
    try:
        out = model(*[Tensor(v) for v in inputs])
        target = y if y.dtype.kind in "iub" else Tensor(y)
        value = loss_fn(out, target)
        value.backward()
        loss_value = float(value.item())
        logits = np.asarray(as_numpy(out), dtype=np.float64)
        grads = {}
        for name, m in _layers(model):
            w = getattr(m, "weight", None)
            if w is None or not hasattr(w, "grad"):
                continue
            g = None if w.grad is None else np.asarray(as_numpy(w.grad), dtype=np.float64)
            grads[name] = (np.asarray(as_numpy(w), dtype=np.float64), g)
    finally:
        for h in handles:
            h.remove()
        for p, g in saved:
            p.grad = g
    findings: list = []
    with np.errstate(all="ignore"):
        in_std = _input_std(inputs, records)
        findings += _check_output(logits, loss_value, loss_name, num_classes, when)
        findings += _check_layers(records, in_std, when, len(y) >= min_dead_samples, output=logits)
        grad_rows = _grad_rows(grads)
        findings += _check_grads(grad_rows, lr)
        findings += check_depth(records, grad_rows, in_std, when, lr)
    phase = "init" if when == "at initialisation" else "trained"
    for f in findings:
        f.phase = f.phase or phase
    return findings


def _check_output(logits, loss_value, loss_name, num_classes, when) -> list:
    out = []
    std = float(np.std(logits))
    if not math.isfinite(std) or std > OUTPUT_STD_HIGH:
        out.append(
            Finding(
                "output_scale",
                "error" if not math.isfinite(std) or std > 100 * OUTPUT_STD_HIGH else "warning",
                {"scope": "output", "std": std},
                f"the outputs (logits) {when} have standard deviation {std:.3g} (expected about 0.1 to 1): "
                "the softmax is saturated from the first step, so the first updates are huge and erratic.",
                "scale the initial weights down (--init he_uniform or --init xavier_uniform instead of a large "
                "custom scale), or scale the last layer's weights by 0.1 or less.",
                {"init": "he_uniform"},
            )
        )
    elif std < OUTPUT_STD_LOW:
        out.append(
            Finding(
                "output_scale",
                "warning",
                {"scope": "output", "std": std},
                f"the outputs {when} hardly vary (standard deviation {std:.3g}): the signal has died out on "
                "its way through the network, so every input gets the same prediction and the gradients are tiny.",
                "use He initialisation for ReLU layers (--init he_uniform; --init xavier_uniform for tanh/sigmoid), "
                "or normalise the inputs (--standardize, on by default).",
                {"init": "he_uniform"},
            )
        )
    if loss_name in CLASSIFICATION_LOSSES:
        c = num_classes if num_classes is not None else (logits.shape[-1] if logits.ndim else 1)
        if c >= 2:
            expected = math.log(c)
            if not math.isfinite(loss_value) or abs(loss_value - expected) > INITIAL_LOSS_TOL * expected:
                high = not math.isfinite(loss_value) or loss_value > expected
                why = (
                    "the network starts confident before it has learned anything, and confidently wrong on many "
                    "examples, so the first gradients are large and training starts by undoing the initialisation"
                    if high
                    else "the loss is lower than guessing allows before any training, which suggests a "
                    "bug: labels leaking into the inputs, or a mismatch between the loss and the outputs"
                )
                out.append(
                    Finding(
                        "initial_loss",
                        "error" if not math.isfinite(loss_value) else "warning",
                        {"scope": "loss", "loss": loss_value, "expected": expected},
                        f"the initial loss is {loss_value:.3g} but a network that knows nothing about {c} classes "
                        f"should start near ln({c}) = {expected:.3g}: {why}.",
                        "start with small logits: a standard initialiser (--init he_uniform or --init "
                        "xavier_uniform), or the last layer's weights scaled down to about 0.01."
                        if high
                        else "check the data pipeline and that the loss matches the outputs "
                        "(--loss; logits for cross_entropy).",
                        {"init": "he_uniform"} if high else {},
                    )
                )
    return out


def _is_output(a, output) -> bool:
    """Whether a layer's output ``a`` is the model's output (the logits): the layer that gives it."""
    return output is not None and a.shape == output.shape and np.array_equal(a, output, equal_nan=True)


def _check_layers(records, in_std, when, enough: bool = True, output=None) -> list:
    out = []
    base = in_std if in_std > 0 and math.isfinite(in_std) else 1.0
    conv_context = False
    for name, module, a in records:
        if isinstance(module, ConvNd):
            conv_context = True
        elif getattr(module, "weight", None) is not None:
            conv_context = False
        std = float(np.std(a))
        ratio = std / base
        act = act_name_of(module)
        if _is_output(a, output) and math.isfinite(ratio):
            pass  # the logits' scale: output_scale judges it; a non-finite output is still an exploding one
        elif not math.isfinite(ratio) or ratio > ACT_RATIO_HIGH:
            out.append(
                Finding(
                    "exploding_activation",
                    "error" if not math.isfinite(ratio) else "warning",
                    {"layer": name, "std": std, "ratio": ratio},
                    f"{when}, the outputs of layer {name} have standard deviation {std:.3g}, {ratio:.3g} times the "
                    "input's: the forward signal grows layer by layer, so later layers saturate or overflow and the "
                    "gradients explode.",
                    "use an initialiser matched to the activation (--init he_uniform for ReLU, "
                    "--init xavier_uniform for tanh/sigmoid) or add normalisation layers.",
                    {"init": "he_uniform" if act in DEAD_CAPABLE else "xavier_uniform"},
                )
            )
        elif ratio < ACT_RATIO_LOW:
            out.append(
                Finding(
                    "vanishing_activation",
                    "warning",
                    {"layer": name, "std": std, "ratio": ratio},
                    f"{when}, the outputs of layer {name} have standard deviation {std:.3g}, only {ratio:.2g} of the "
                    "input's: "
                    "the forward signal fades layer by layer, so later layers see almost constant inputs and the "
                    "gradients that reach early layers are tiny.",
                    "use He initialisation for ReLU layers (--init he_uniform; --init xavier_uniform for "
                    "tanh/sigmoid), fewer layers (--hidden), or normalisation layers.",
                    {"init": "he_uniform" if act in DEAD_CAPABLE else "xavier_uniform"},
                )
            )
        if act is None:
            continue
        u = per_unit(a, conv_context)
        if act in DEAD_CAPABLE:
            dead = np.flatnonzero((u <= 0).all(1)).tolist()
            if dead:
                out.append(dead_finding(name, dead, u.shape[0], f"of these {u.shape[1]} {when}", enough=enough))
        elif act in SATURATING:
            slope = relative_slope(act, u)
            sat = np.flatnonzero((slope < SATURATION_SLOPE).mean(1) > SATURATED_FRAC).tolist()
            if sat:
                low = int((u[sat].mean(1) < SATURATING[act]).sum())
                out.append(saturation_finding(name, act, sat, u.shape[0], when, low))
    return out


def _grad_rows(grads) -> list:
    """(name, weight norm, gradient norm, ratio) of each layer with a weight gradient, in forward order."""
    rows = []
    for name, (w, g) in grads.items():
        if g is None:
            continue
        wn, gn = float(np.linalg.norm(w)), float(np.linalg.norm(g))
        rows.append((name, wn, gn, gn / wn if wn > 0 else (math.inf if gn > 0 else 0.0)))
    return rows


def _check_grads(rows, lr=None) -> list:
    """Per layer: a non-finite gradient (error), and a gradient too small to learn from, judged absolutely
    (``|g| / |w| < GRAD_RATIO_LOW``, or one step at ``lr`` moving the weights by less than ``STEP_LOW`` of their norm)
    or against the best-fed layer (``GRAD_RATIO_SPREAD``). Growth with depth is ``check_depth``'s."""
    out = []
    finite = [r[3] for r in rows if math.isfinite(r[3])]
    best = max(finite) if finite else 0.0
    for name, wn, gn, ratio in rows:
        if not math.isfinite(ratio):
            out.append(
                Finding(
                    "exploding_gradient",
                    "error",
                    {"layer": name, "grad_norm": gn, "weight_norm": wn, "ratio": ratio},
                    f"the weight gradient of layer {name} is not finite (norm {gn:.3g}, weights {wn:.3g}): the "
                    "first step would destroy the weights.",
                    "use a smaller learning rate (--lr), gradient clipping (--clip-grad-norm 1), a standard "
                    "initialiser (--init he_uniform), or normalisation layers.",
                    {"clip_grad_norm": 1.0, "init": "he_uniform"},
                )
            )
            continue
        step = None if lr is None else lr * ratio
        low = ratio < GRAD_RATIO_LOW or (step is not None and step < STEP_LOW)
        low = low or (len(rows) >= 2 and ratio < GRAD_RATIO_SPREAD * best)
        if low:
            rel = f", {ratio / best:.2g} of the best-fed layer's" if best > 0 else ""
            moves = "" if step is None else f"; one step at learning rate {lr:g} moves them by {step:.2g} of their norm"
            out.append(
                Finding(
                    "vanishing_gradient",
                    "warning",
                    {"layer": name, "grad_norm": gn, "weight_norm": wn, "ratio": ratio},
                    f"the weight gradient of layer {name} is only {ratio:.2g} of its weights (norm {gn:.3g} vs "
                    f"{wn:.3g}{rel}{moves}): almost no learning signal reaches this layer, so it will barely change "
                    "during training.",
                    "use relu-like activations with He initialisation (--activation relu --init he_uniform), "
                    "smaller initial weights for sigmoid/tanh (--init xavier_uniform), normalisation layers, or "
                    "residual connections.",
                    {"activation": "relu", "init": "he_uniform"},
                )
            )
    return out
