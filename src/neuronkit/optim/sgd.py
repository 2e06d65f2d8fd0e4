"""Stochastic gradient descent with optional momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

from .. import backend as B
from .optimizer import Optimizer, check_number


class SGD(Optimizer):
    r"""Stochastic gradient descent (optionally with momentum), with the semantics of ``torch.optim.SGD``.

    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1}                    && \text{if } \lambda \ne 0 \\
        b_t &= g_t                                                    && \text{if } t = 1 \\
        b_t &= \mu b_{t-1} + (1 - \tau) g_t                           && \text{if } t > 1 \\
        g_t &\leftarrow g_t + \mu b_t \text{ (Nesterov) or } b_t      && \text{if } \mu \ne 0 \\
        \theta_t &= \theta_{t-1} - \gamma g_t

    (the momentum buffer starts as the first gradient itself, not from zero).

    Args:
        params: parameters or parameter groups (see ``Optimizer``).
        lr: learning rate :math:`\gamma`. Defaults to 1e-3.
        momentum: momentum factor :math:`\mu`. Defaults to 0.
        dampening: dampening :math:`\tau` of the momentum. Defaults to 0.
        weight_decay: L2 penalty :math:`\lambda` added to the gradient. Defaults to 0.
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``). Defaults to False.

    State per parameter: ``step`` (int) and ``momentum_buffer`` (parameter-shaped, only when ``momentum != 0``).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(
            params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        )

    def validate(self, group):
        super().validate(group)
        check_number("SGD", "momentum", group["momentum"], 0.0)
        check_number("SGD", "dampening", group["dampening"])
        check_number("SGD", "weight_decay", group["weight_decay"], 0.0)
        if group["nesterov"]:
            if not (group["momentum"] > 0 and group["dampening"] == 0):
                raise ValueError(
                    "SGD: nesterov=True needs momentum > 0 and dampening == 0, got momentum="
                    f"{group['momentum']!r}, dampening={group['dampening']!r}"
                )

    def init_state(self, p, group):
        state = {"step": 0}
        if group["momentum"] != 0:
            state["momentum_buffer"] = p.data.copy()  # overwritten by the first gradient
        return state

    def update(self, p, grad, state, group):
        lr, mu, wd = group["lr"], group["momentum"], group["weight_decay"]
        if mu == 0 and wd == 0:  # plain SGD, the common case: p -= lr * grad
            if grad is self.released_grad:  # dropped after this step, seen by nobody else: scaled in place
                grad *= lr
                p.data -= grad
            else:  # through the scratch buffer: the gradient stays as it was
                tmp = self.scratch(p, 0)
                B.xp.multiply(grad, lr, out=tmp)
                p.data -= tmp
            state["step"] += 1
            return
        xp = B.xp
        d = grad
        if wd != 0:  # d = grad + wd * p, in a scratch buffer (the gradient itself stays untouched)
            d = xp.multiply(p.data, wd, out=self.scratch(p, 1))
            d += grad
        tmp = self.scratch(p, 0)
        if mu != 0:
            buf = state["momentum_buffer"]
            if state["step"] == 0:
                buf[...] = d
            else:
                buf *= mu
                if group["dampening"] != 0:
                    buf += xp.multiply(d, 1 - group["dampening"], out=tmp)
                else:
                    buf += d
            if group["nesterov"]:
                xp.multiply(buf, mu, out=tmp)
                tmp += d
                tmp *= lr
            else:
                xp.multiply(buf, lr, out=tmp)
        else:
            xp.multiply(d, lr, out=tmp)
        p.data -= tmp
        state["step"] += 1
