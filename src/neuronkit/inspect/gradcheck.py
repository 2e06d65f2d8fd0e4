"""``check_gradients``: a float64 check of a whole model's backpropagated gradients on a real batch, layer by layer.

The op-level ``neuronkit.autograd.gradcheck`` checks one function of small tensors completely. This checks a model as
it is used: one forward and backward of ``loss(model(x), y)`` gives every parameter's analytical gradient, and for a
seeded sample of up to ``max_per_param`` entries of each parameter the central difference
``(L(w + eps) - L(w - eps)) / (2 eps)`` gives the numerical one. Everything runs in float64: each parameter's and
buffer's array is swapped for a float64 copy for the duration of the check and the original array objects are put
back afterwards (in a ``finally``), so the model leaves bit-exactly as it came, dtype included. The model is in
evaluation mode during the check (dropout off, batch norm on its running statistics, so the loss is a deterministic
function of the weights); each module's own mode is restored afterwards.

An entry passes when ``|a - n| <= atol + rtol * max(|a|, |n|)`` with ``rtol = 1e-4`` and ``atol = 1e-6`` by default
(``a`` analytical, ``n`` numerical). Central differences in float64 with ``eps = 1e-6`` are accurate to about
``1e-10 * |L|`` plus ``eps**2`` times the third derivative, so a correct backward sits near relative error 1e-8 or
below; a wrong one (a missing term, a wrong factor) is off by percent. ``atol`` keeps entries whose gradient is
essentially zero from failing on rounding noise. A sampled entry whose perturbation crosses a kink (a ReLU at 0, a
max-pool tie) can fail spuriously; with random data this is rare, and rerunning with another ``seed`` tells.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn.losses import get_loss
from ..tensor import Tensor

__all__ = ["ParamCheck", "GradientReport", "check_gradients"]


@dataclass
class ParamCheck:
    """One parameter's result: the largest absolute and relative error over its checked entries."""

    name: str  # dotted parameter name, e.g. "0.weight"
    layer: str  # owning module's dotted name ("" for the model itself)
    layer_desc: str  # e.g. "Dense 784 -> 128"
    param: str  # the parameter's own name within its layer, e.g. "weight"
    shape: tuple
    checked: int  # entries compared
    max_abs_error: float
    max_rel_error: float
    ok: bool
    worst_index: tuple = ()  # index of the entry with the largest relative error
    analytical: float = 0.0  # analytical and numerical gradient at that entry
    numerical: float = 0.0

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


@dataclass
class GradientReport:
    """The result of :func:`check_gradients`: one :class:`ParamCheck` row per parameter, in ``named_parameters`` order.

    ``ok`` is True when every checked entry passed; ``worst`` is the row with the largest relative error (None when
    nothing was checked); ``layers()`` groups the rows by owning module; ``str(report)`` is a readable table.
    """

    rows: list = field(default_factory=list)
    loss: float = float("nan")
    eps: float = 1e-6
    rtol: float = 1e-4
    atol: float = 1e-6
    batch_size: int = 0

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    def __bool__(self) -> bool:
        return self.ok

    @property
    def worst(self):
        if not self.rows:
            return None
        return max(self.rows, key=lambda r: (not r.ok, _nan_high(r.max_rel_error)))

    def layers(self) -> dict:
        """Layer name -> ``{"desc", "max_abs_error", "max_rel_error", "ok"}`` over that layer's parameters."""
        out: dict = {}
        for r in self.rows:
            d = out.setdefault(r.layer, {"desc": r.layer_desc, "max_abs_error": 0.0, "max_rel_error": 0.0, "ok": True})
            d["max_abs_error"] = max(d["max_abs_error"], _nan_high(r.max_abs_error))
            d["max_rel_error"] = max(d["max_rel_error"], _nan_high(r.max_rel_error))
            d["ok"] = d["ok"] and r.ok
        return out

    def __str__(self) -> str:
        if not self.rows:
            return "gradient check: the model has no parameter that requires a gradient"
        heads = {r.layer: _layer_head(r) for r in self.rows}
        hw = max(len(h) for h in heads.values())
        pw = max(len(r.param) for r in self.rows)
        lines = [
            f"gradient check (float64, batch of {self.batch_size}, loss {self.loss:.6g}, eps {self.eps:g}; "
            f"pass: |a - n| <= {self.atol:g} + {self.rtol:g} * max(|a|, |n|))"
        ]
        for r in self.rows:
            lines.append(
                f"{heads[r.layer] + ':':<{hw + 1}} {r.param:<{pw}} max rel err {r.max_rel_error:.1e}  "
                f"max abs err {r.max_abs_error:.1e}  ({r.checked} of {r.size} entries)  {'ok' if r.ok else 'FAIL'}"
            )
        w = self.worst
        if self.ok:
            lines.append(
                f"ok: all {len(self.rows)} parameters pass (worst: {_layer_head(w)} {w.param}, "
                f"rel err {w.max_rel_error:.1e})"
            )
        else:
            bad = [r for r in self.rows if not r.ok]
            lines.append(
                f"FAILED: {len(bad)} of {len(self.rows)} parameters; worst: {_layer_head(w)} {w.param} at index "
                f"{w.worst_index}: backprop {w.analytical:.6g}, finite differences {w.numerical:.6g} "
                f"(rel err {w.max_rel_error:.1e})"
            )
        return "\n".join(lines)


def _nan_high(v: float) -> float:
    return math.inf if math.isnan(v) else v


def _layer_head(r: ParamCheck) -> str:
    return f"layer {r.layer} ({r.layer_desc})" if r.layer else f"model ({r.layer_desc})"


def _describe(module) -> str:
    """``"Dense 784 -> 128"``: the type and the positional part of ``extra_repr`` (settings ``k=v`` left out)."""
    try:
        extra = module.extra_repr()
    except Exception:  # a description must never break the check
        extra = ""
    parts = [p.strip() for p in extra.split(",") if p.strip() and "=" not in p]
    return " ".join([type(module).__name__, ", ".join(parts)]).strip()


def _as_float64(v):
    a = np.asarray(v.data if isinstance(v, Tensor) else v)
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def check_gradients(
    model,
    batch,
    loss="cross_entropy",
    eps: float = 1e-6,
    max_per_param: int = 20,
    seed: int = 0,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> GradientReport:
    """Check ``model``'s backpropagated gradients against float64 central differences on ``batch = (x, y)``
    (or ``(x1, ..., xk, y)`` for a model of several inputs, such as a text model's ``(tokens, lengths, labels)``).

    ``loss`` is a loss name (see ``neuronkit.nn.losses.get_loss``) or a loss module, called as ``loss(model(x), y)``
    and reduced to a scalar. Integer inputs (token ids, lengths) are passed as they are. For each parameter that
    requires a gradient, up to ``max_per_param`` entries (all of them when it has fewer; otherwise a sample drawn
    with ``numpy.random.default_rng(seed)``) are perturbed by ``+-eps``. Entry errors are ``|a - n|`` and
    ``|a - n| / max(|a|, |n|, 1e-8)``; an entry passes when ``|a - n| <= atol + rtol * max(|a|, |n|)``. The
    model's arrays, gradients and train/eval modes are restored afterwards. Returns a :class:`GradientReport`.
    """
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(f"check_gradients: batch must be a pair (x, y), got {type(batch).__name__}")
    if eps <= 0 or max_per_param < 1:
        raise ValueError(
            f"check_gradients: need eps > 0 and max_per_param >= 1, got eps={eps}, max_per_param={max_per_param}"
        )
    loss_fn = get_loss(loss)
    xs = [Tensor(_as_float64(v)) for v in batch[:-1]]
    y = batch[-1] if not isinstance(batch[-1], Tensor) else batch[-1].data
    y = Tensor(_as_float64(y)) if np.asarray(y).dtype.kind == "f" else np.asarray(y)

    modules = dict(model.named_modules())
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    tensors = {id(t): t for _, t in model.named_parameters()}
    tensors.update({id(t): t for _, t in model.named_buffers()})
    saved_data = {k: t.data for k, t in tensors.items()}
    saved_grad = {k: t.grad for k, t in tensors.items()}
    saved_modes = [(m, m.training) for m in modules.values()]
    rng = np.random.default_rng(seed)

    def objective() -> float:
        with no_grad():
            return float(np.asarray(loss_fn(model(*xs), y).data, dtype=np.float64).sum())

    report = GradientReport(eps=eps, rtol=rtol, atol=atol, batch_size=len(xs[0].data))
    try:
        for t in tensors.values():
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(np.float64)
            t.grad = None
        model.eval()
        out = loss_fn(model(*xs), y)
        if out.data.size != 1:
            raise ValueError(f"check_gradients: the loss must reduce to a scalar, got shape {tuple(out.data.shape)}")
        report.loss = float(out.data.reshape(()))
        out.backward()
        grads = {
            n: (np.zeros_like(p.data) if p.grad is None else np.array(p.grad.data, dtype=np.float64)) for n, p in named
        }

        for name, p in named:
            owner, _, pname = name.rpartition(".")
            flat = p.data.reshape(-1)  # a view: writes perturb the parameter
            if flat.size <= max_per_param:
                idx = np.arange(flat.size)
            else:
                idx = np.sort(rng.choice(flat.size, size=max_per_param, replace=False))
            a = grads[name].reshape(-1)[idx]
            n = np.empty(len(idx))
            for k, j in enumerate(idx):
                orig = flat[j]
                flat[j] = orig + eps
                plus = objective()
                flat[j] = orig - eps
                minus = objective()
                flat[j] = orig
                n[k] = (plus - minus) / (2 * eps)
            diff = np.abs(a - n)
            scale = np.maximum(np.abs(a), np.abs(n))
            rel = diff / np.maximum(scale, 1e-8)
            with np.errstate(invalid="ignore"):
                passed = bool(np.all(diff <= atol + rtol * scale)) and bool(np.all(np.isfinite(a) & np.isfinite(n)))
            w = int(np.nanargmax(rel)) if len(rel) and not np.all(np.isnan(rel)) else 0
            report.rows.append(
                ParamCheck(
                    name=name,
                    layer=owner,
                    layer_desc=_describe(modules.get(owner, model)),
                    param=pname,
                    shape=tuple(p.data.shape),
                    checked=len(idx),
                    max_abs_error=float(np.max(diff)) if len(diff) else 0.0,
                    max_rel_error=float(np.max(rel)) if len(rel) else 0.0,
                    ok=passed,
                    worst_index=tuple(int(i) for i in np.unravel_index(int(idx[w]), p.data.shape)) if len(idx) else (),
                    analytical=float(a[w]) if len(a) else 0.0,
                    numerical=float(n[w]) if len(n) else 0.0,
                )
            )
    finally:
        for k, t in tensors.items():
            t.data = saved_data[k]
            t.grad = saved_grad[k]
        for m, mode in saved_modes:
            m.__dict__["training"] = mode
    return report
