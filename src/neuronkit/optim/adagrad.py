"""Adagrad: per-coordinate learning rates from the running sum of squared gradients."""

from __future__ import annotations

from .. import backend as B
from .optimizer import Optimizer, check_number


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011), with the semantics of ``torch.optim.Adagrad``.

    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1}        && \text{if } \lambda \ne 0 \\
        \tilde\gamma_t &= \gamma / (1 + (t - 1)\eta) \\
        s_t &= s_{t-1} + g_t^2 \\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t \, g_t / (\sqrt{s_t} + \epsilon)

    with :math:`s_0` = ``initial_accumulator_value``.

    Args:
        params: parameters or parameter groups (see ``Optimizer``).
        lr: learning rate :math:`\gamma`. Defaults to 1e-2.
        lr_decay: :math:`\eta`. Defaults to 0.
        weight_decay: L2 penalty :math:`\lambda`. Defaults to 0.
        initial_accumulator_value: :math:`s_0`. Defaults to 0.
        eps: :math:`\epsilon`. Defaults to 1e-10.

    State per parameter: ``step`` (int) and ``sum`` :math:`s` (parameter-shaped).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                lr_decay=lr_decay,
                weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value,
                eps=eps,
            ),
        )

    def validate(self, group):
        super().validate(group)
        check_number("Adagrad", "lr_decay", group["lr_decay"], 0.0)
        check_number("Adagrad", "weight_decay", group["weight_decay"], 0.0)
        check_number("Adagrad", "initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        check_number("Adagrad", "eps", group["eps"], 0.0)

    def init_state(self, p, group):
        return {"step": 0, "sum": B.xp.full_like(p.data, group["initial_accumulator_value"])}

    def update(self, p, grad, state, group):
        xp = B.xp
        lr, wd = group["lr"], group["weight_decay"]
        state["step"] += 1
        if wd != 0:
            d = xp.multiply(p.data, wd, out=self.scratch(p, 1))
            d += grad
            grad = d
        clr = lr / (1 + (state["step"] - 1) * group["lr_decay"])
        tmp = self.scratch(p, 0)
        s = state["sum"]
        s += xp.multiply(grad, grad, out=tmp)
        xp.sqrt(s, out=tmp)
        tmp += group["eps"]
        xp.divide(grad, tmp, out=tmp)
        tmp *= clr
        p.data -= tmp
