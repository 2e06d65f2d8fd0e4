"""Lion: evolved sign momentum (Chen et al., 2023)."""

from __future__ import annotations

from .. import backend as B
from .optimizer import Optimizer, check_betas, check_number


class Lion(Optimizer):
    r"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"), as in lucidrains/lion-pytorch.

    For each parameter :math:`\theta` with gradient :math:`g_t`:

    .. math::
        \theta_{t-1} &\leftarrow (1 - \gamma\lambda)\,\theta_{t-1}  \qquad \text{(decoupled weight decay)} \\
        u_t &= \operatorname{sign}\big(\beta_1 m_{t-1} + (1 - \beta_1) g_t\big) \\
        \theta_t &= \theta_{t-1} - \gamma u_t \\
        m_t &= \beta_2 m_{t-1} + (1 - \beta_2) g_t

    with :math:`m_0 = 0`. Every coordinate moves by exactly :math:`\gamma` per step, so Lion wants a learning rate
    3-10x smaller than AdamW's and a weight decay 3-10x larger.

    Args:
        params: parameters or parameter groups (see ``Optimizer``).
        lr: :math:`\gamma`. Defaults to 1e-4.
        betas: :math:`(\beta_1, \beta_2)`. Defaults to (0.9, 0.99).
        weight_decay: :math:`\lambda`. Defaults to 0.

    State per parameter: ``step`` (int) and ``exp_avg`` :math:`m` (parameter-shaped).
    """

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        super().__init__(
            params, dict(lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas, weight_decay=weight_decay)
        )

    def validate(self, group):
        super().validate(group)
        check_betas("Lion", group["betas"])
        check_number("Lion", "weight_decay", group["weight_decay"], 0.0)

    def init_state(self, p, group):
        return {"step": 0, "exp_avg": B.xp.zeros_like(p.data)}

    def update(self, p, grad, state, group):
        xp = B.xp
        lr, (b1, b2), wd = group["lr"], group["betas"], group["weight_decay"]
        state["step"] += 1
        if wd != 0:
            p.data *= 1 - lr * wd
        m = state["exp_avg"]
        u = xp.multiply(grad, 1 - b1, out=self.scratch(p, 0))
        u += xp.multiply(m, b1, out=self.scratch(p, 1))
        xp.sign(u, out=u)
        u *= lr
        p.data -= u
        m *= b2
        m += xp.multiply(grad, 1 - b2, out=u)
