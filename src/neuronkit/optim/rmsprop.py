"""RMSprop: divide the gradient by a running root-mean-square of recent gradients."""

from __future__ import annotations

from .. import backend as B
from .optimizer import Optimizer, check_number


class RMSprop(Optimizer):
    r"""RMSprop (Hinton, 2012), with the semantics of ``torch.optim.RMSprop``.

    For each parameter :math:`\theta` with gradient :math:`g_t`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1}                   && \text{if } \lambda \ne 0 \\
        v_t &= \alpha v_{t-1} + (1 - \alpha) g_t^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha) g_t            && \text{if centered} \\
        d_t &= \sqrt{v_t - \bar g_t^2} + \epsilon \text{ if centered, else } \sqrt{v_t} + \epsilon \\
        b_t &= \mu b_{t-1} + g_t / d_t,\quad \theta_t = \theta_{t-1} - \gamma b_t  && \text{if } \mu > 0 \\
        \theta_t &= \theta_{t-1} - \gamma g_t / d_t                 && \text{otherwise}

    with :math:`v_0 = \bar g_0 = b_0 = 0`.

    Args:
        params: parameters or parameter groups (see ``Optimizer``).
        lr: learning rate :math:`\gamma`. Defaults to 1e-2.
        alpha: smoothing constant :math:`\alpha`. Defaults to 0.99.
        eps: :math:`\epsilon`. Defaults to 1e-8.
        weight_decay: L2 penalty :math:`\lambda`. Defaults to 0.
        momentum: :math:`\mu`. Defaults to 0.
        centered: normalise by an estimate of the gradient's variance instead of its second moment.
            Defaults to False.

    State per parameter: ``step``, ``square_avg`` :math:`v`, ``grad_avg`` :math:`\bar g` (if centered),
    ``momentum_buffer`` :math:`b` (if momentum > 0).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(
            params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)
        )

    def validate(self, group):
        super().validate(group)
        check_number("RMSprop", "alpha", group["alpha"], 0.0)
        check_number("RMSprop", "eps", group["eps"], 0.0)
        check_number("RMSprop", "weight_decay", group["weight_decay"], 0.0)
        check_number("RMSprop", "momentum", group["momentum"], 0.0)

    def init_state(self, p, group):
        state = {"step": 0, "square_avg": B.xp.zeros_like(p.data)}
        if group["centered"]:
            state["grad_avg"] = B.xp.zeros_like(p.data)
        if group["momentum"] > 0:
            state["momentum_buffer"] = B.xp.zeros_like(p.data)
        return state

    def update(self, p, grad, state, group):
        xp = B.xp
        lr, alpha, eps, wd, mu = group["lr"], group["alpha"], group["eps"], group["weight_decay"], group["momentum"]
        state["step"] += 1
        if wd != 0:
            d = xp.multiply(p.data, wd, out=self.scratch(p, 1))
            d += grad
            grad = d
        tmp = self.scratch(p, 0)
        v = state["square_avg"]
        v *= alpha
        xp.multiply(grad, grad, out=tmp)
        tmp *= 1 - alpha
        v += tmp
        if group["centered"]:
            ga = state["grad_avg"]
            ga *= alpha
            ga += xp.multiply(grad, 1 - alpha, out=tmp)
            xp.multiply(ga, ga, out=tmp)
            xp.subtract(v, tmp, out=tmp)
            xp.sqrt(tmp, out=tmp)
        else:
            xp.sqrt(v, out=tmp)
        tmp += eps
        xp.divide(grad, tmp, out=tmp)  # g / d; may overwrite the scratch holding grad only after reading it
        if mu > 0:
            buf = state["momentum_buffer"]
            buf *= mu
            buf += tmp
            xp.multiply(buf, lr, out=tmp)
        else:
            tmp *= lr
        p.data -= tmp
