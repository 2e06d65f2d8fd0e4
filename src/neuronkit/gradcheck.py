"""``neuronkit.gradcheck``: backpropagated gradients against float64 central differences, for any tensor function."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import backend as B
from .tensor import Tensor


@dataclass
class GradcheckResult:
    """Per input: the largest absolute and relative error between analytical and numerical gradients.

    ``ok`` is True when every element satisfies ``|analytical - numerical| <= atol + rtol * |numerical|``.
    Relative error is ``|a - n| / max(|n|, atol)``. Inputs that do not require grad have None entries.
    """

    ok: bool
    max_abs_error: list = field(default_factory=list)
    max_rel_error: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok


def gradcheck(fn, *inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, raise_exception: bool = False):
    """Check ``fn``'s gradients with respect to each input that requires grad, in float64.

    ``fn`` takes the tensors ``inputs`` and returns one tensor. Every floating input is copied to float64; for each
    element the numerical derivative ``(f(x + eps) - f(x - eps)) / (2 eps)`` of every output is compared with the
    Jacobian from ``backward()`` (one backward per output element). Defaults follow PyTorch (eps 1e-6, atol 1e-5,
    rtol 1e-3). Returns a :class:`GradcheckResult`; with ``raise_exception=True`` a failure raises ``AssertionError``.
    """
    xp = B.xp
    ins = []
    for t in inputs:
        if isinstance(t, Tensor) and t.data.dtype.kind == "f":
            ins.append(Tensor.from_array(t.data.astype(xp.float64), False).requires_grad_(t.requires_grad))
        else:
            ins.append(t)
    wrt = [i for i, t in enumerate(ins) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad; create the inputs with requires_grad=True")

    out = fn(*ins)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    n_out = out.data.size
    analytical = {i: xp.zeros((n_out, ins[i].data.size)) for i in wrt}
    for k in range(n_out):
        for i in wrt:
            ins[i].grad = None
        out = fn(*ins)
        seed = xp.zeros(out.data.size)
        seed[k] = 1.0
        out.backward(seed.reshape(out.data.shape))
        for i in wrt:
            if ins[i].grad is not None:
                analytical[i][k] = ins[i].grad.data.reshape(-1)

    abs_err, rel_err, ok = [None] * len(ins), [None] * len(ins), True
    for i in wrt:
        x = ins[i].data
        numerical = xp.zeros_like(analytical[i])
        for j in range(x.size):
            at = xp.unravel_index(j, x.shape)  # (in place whatever the memory layout: a reshape could be a copy)
            orig = x[at]
            x[at] = orig + eps
            plus = fn(*ins).data.astype(xp.float64).reshape(-1)
            x[at] = orig - eps
            minus = fn(*ins).data.astype(xp.float64).reshape(-1)
            x[at] = orig
            numerical[:, j] = (plus - minus) / (2 * eps)
        a = analytical[i]
        diff = xp.abs(a - numerical)
        with xp.errstate(invalid="ignore"):
            abs_err[i] = float(diff.max()) if diff.size else 0.0
            rel_err[i] = float((diff / xp.maximum(xp.abs(numerical), atol)).max()) if diff.size else 0.0
            bad = ~(diff <= atol + rtol * xp.abs(numerical))
        # Both sides NaN or matching infinities count as agreement.
        bad &= ~((xp.isnan(a) & xp.isnan(numerical)) | ((a == numerical) & xp.isinf(a)))
        if bad.any():
            ok = False
    result = GradcheckResult(ok, abs_err, rel_err)
    if raise_exception and not ok:
        raise AssertionError(f"gradcheck failed: max abs error per input {abs_err}, max rel error {rel_err}")
    return result
