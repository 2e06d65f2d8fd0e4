"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay and optional AMSGrad."""

from __future__ import annotations

import math

from .. import backend as B
from .optimizer import Optimizer, check_betas, check_number


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), with the semantics of ``torch.optim.Adam``.

    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1}              && \text{(Adam: L2 penalty, if } \lambda \ne 0) \\
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\theta_{t-1} && \text{(AdamW: decoupled decay)} \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        \hat v_t &= \max(\hat v_{t-1}, v_t) \text{ if amsgrad, else } v_t \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1 - \beta_1^t}
                    \frac{m_t}{\sqrt{\hat v_t} / \sqrt{1 - \beta_2^t} + \epsilon}

    with :math:`m_0 = v_0 = \hat v_0 = 0`.

    Args:
        params: parameters or parameter groups (see ``Optimizer``).
        lr: learning rate :math:`\gamma`. Defaults to 1e-3.
        betas: :math:`(\beta_1, \beta_2)`, decay rates of the moment averages. Defaults to (0.9, 0.999).
        eps: :math:`\epsilon`, added to the denominator for stability. Defaults to 1e-8.
        weight_decay: :math:`\lambda`. Defaults to 0 (Adam) and 1e-2 (AdamW).
        amsgrad: keep the running maximum of :math:`v_t` (Reddi et al., 2018). Defaults to False.

    State per parameter: ``step`` (int), ``exp_avg`` :math:`m`, ``exp_avg_sq`` :math:`v`, and ``max_exp_avg_sq``
    :math:`\hat v` when ``amsgrad``; all parameter-shaped, in the parameter's dtype
    (float32 for a float16 parameter).
    """

    decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas) if isinstance(betas, list) else betas,
                eps=eps,
                weight_decay=weight_decay,
                amsgrad=amsgrad,
            ),
        )

    def validate(self, group):
        super().validate(group)
        name = type(self).__name__
        check_betas(name, group["betas"])
        check_number(name, "eps", group["eps"], 0.0)
        check_number(name, "weight_decay", group["weight_decay"], 0.0)

    def init_state(self, p, group):
        state = {"step": 0, "exp_avg": B.xp.zeros_like(p.data), "exp_avg_sq": B.xp.zeros_like(p.data)}
        if group["amsgrad"]:
            state["max_exp_avg_sq"] = B.xp.zeros_like(p.data)
        return state

    def update(self, p, grad, state, group):
        xp = B.xp
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if self.decoupled:
                p.data *= 1 - lr * wd
            else:  # grad + wd * p, in a scratch buffer
                d = xp.multiply(p.data, wd, out=self.scratch(p, 1))
                d += grad
                grad = d
        if not group["amsgrad"] and self._jit_step(p, grad, state, lr, b1, b2, eps, t):
            return
        tmp = self.scratch(p, 0)
        m, v = update_moments(state, grad, b1, b2, tmp)
        if group["amsgrad"]:
            vmax = state["max_exp_avg_sq"]
            xp.maximum(vmax, v, out=vmax)
            v = vmax
        step_size = lr / (1 - b1**t)
        xp.sqrt(v, out=tmp)
        tmp /= math.sqrt(1 - b2**t)
        tmp += eps
        xp.divide(m, tmp, out=tmp)
        tmp *= step_size
        p.data -= tmp

    def _jit_step(self, p, grad, state, lr, b1, b2, eps, t) -> bool:
        """The compiled kernel (``backend.jit()``), in one pass, where it applies (float32/float64, contiguous
        arrays of one dtype, of any size: for a small MLP's six parameters the kernel's step takes 71 us, the NumPy
        code's 18 passes with the subnormal flush 84 us); False to take the NumPy code. The scalars go in as the NumPy
        code's operations round them (Python floats to the arrays' dtype), so the results are the same bit for bit."""
        d = p.data
        if d.dtype.name not in ("float32", "float64"):
            return False
        k, m, v = B.jit(), state["exp_avg"], state["exp_avg_sq"]
        if k is None:
            return False
        if not all(type(x) in (float, int) for x in (lr, b1, b2, eps)):  # (NumPy scalars: NumPy's own promotion)
            return False
        if any(a.dtype != d.dtype or not a.flags.c_contiguous for a in (grad, m, v)) or not d.flags.c_contiguous:
            return False
        f = d.dtype.type
        scalars = (b1, 1 - b1, b2, 1 - b2, math.sqrt(1 - b2**t), eps, lr / (1 - b1**t), B.xp.finfo(f).tiny)
        k.adam_step(d.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1), *map(f, scalars))
        return True


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), the semantics of ``torch.optim.AdamW``.

    The update is Adam's (see ``Adam``) except that weight decay shrinks the parameter directly instead of being
    added to the gradient: :math:`\theta_{t-1} \leftarrow (1 - \gamma\lambda)\theta_{t-1}` before the Adam step.

    Args:
        lr: Defaults to 1e-3. betas: Defaults to (0.9, 0.999). eps: Defaults to 1e-8.
        weight_decay: :math:`\lambda`. Defaults to 1e-2. amsgrad: Defaults to False.
    """

    decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


def update_moments(state, grad, b1, b2, tmp):
    """Adam's moment estimates in place: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2`` (``tmp``: scratch),
    each then with its subnormal values set to 0 (``flush_subnormal``). Returns (m, v). Shared by Adam, AdamW and
    NAdam."""
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m *= b1
    m += B.xp.multiply(grad, 1 - b1, out=tmp)
    v *= b2
    B.xp.multiply(grad, grad, out=tmp)
    tmp *= 1 - b2
    v += tmp
    flush_subnormal(m, tmp)
    flush_subnormal(v, tmp)
    return m, v


def flush_subnormal(a, tmp) -> None:
    """Set the subnormal values of the float array ``a`` (nonzero, below ``finfo.tiny``: 1.2e-38 in float32) to 0.

    A weight whose gradient stays 0 (a unit that never fires, a pixel that is always blank) has its first moment
    shrunk by 0.9 each step, into the subnormal range after about 700 steps, where it stays while tiny gradients
    keep feeding it. Every operation on a subnormal number costs the CPU some 100 times an ordinary one: after 2
    epochs of LeNet on MNIST, 30 % of the first dense layer's moments were subnormal and Adam's step took 6-7.5 ms
    instead of 0.56 ms, a third of the training step (benchmarks/RESULTS.md). Such a moment moves its weight by
    less than 1e-30; as 0 it moves it by nothing. (PyTorch keeps them unless ``torch.set_flush_denormal(True)``.)
    """
    if a.dtype.kind == "f":
        B.xp.abs(a, out=tmp)
        B.xp.copyto(a, 0, where=tmp < B.xp.finfo(a.dtype).tiny)
