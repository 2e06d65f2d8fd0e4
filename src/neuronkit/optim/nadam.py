"""NAdam: Adam with Nesterov momentum, in PyTorch's formulation with a momentum-decay schedule."""

from __future__ import annotations

import math

from .. import backend as B
from .adam import update_moments
from .optimizer import Optimizer, check_betas, check_number


class NAdam(Optimizer):
    r"""NAdam (Dozat, 2016), with the semantics of ``torch.optim.NAdam``.

    For each parameter :math:`\theta` with gradient :math:`g_t` at step :math:`t = 1, 2, \dots`:

    .. math::
        g_t &\leftarrow g_t + \lambda \theta_{t-1} \text{ (or } \theta_{t-1} \leftarrow (1 - \gamma\lambda)
              \theta_{t-1} \text{ if decoupled)} \\
        \mu_t &= \beta_1 \left(1 - \tfrac12 \, 0.96^{t\psi}\right), \quad
        \mu_{t+1} = \beta_1 \left(1 - \tfrac12 \, 0.96^{(t+1)\psi}\right), \quad
        \Pi_t = \textstyle\prod_{i=1}^t \mu_i \\
        m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
        d_t &= \sqrt{v_t / (1 - \beta_2^t)} + \epsilon \\
        \theta_t &= \theta_{t-1} - \gamma \frac{1 - \mu_t}{1 - \Pi_t} \frac{g_t}{d_t}
                    - \gamma \frac{\mu_{t+1}}{1 - \Pi_t \mu_{t+1}} \frac{m_t}{d_t}

    Args:
        params: parameters or parameter groups (see ``Optimizer``).
        lr: :math:`\gamma`. Defaults to 2e-3.
        betas: :math:`(\beta_1, \beta_2)`. Defaults to (0.9, 0.999).
        eps: :math:`\epsilon`. Defaults to 1e-8.
        weight_decay: :math:`\lambda`. Defaults to 0.
        momentum_decay: :math:`\psi`. Defaults to 4e-3.
        decoupled_weight_decay: decay the parameter directly (NAdamW) instead of adding to the gradient.
            Defaults to False.

    State per parameter: ``step`` (int), ``mu_product`` :math:`\Pi` (float), ``exp_avg`` :math:`m`,
    ``exp_avg_sq`` :math:`v`.
    """

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas=(0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
    ):
        super().__init__(
            params,
            dict(
                lr=lr,
                betas=tuple(betas) if isinstance(betas, list) else betas,
                eps=eps,
                weight_decay=weight_decay,
                momentum_decay=momentum_decay,
                decoupled_weight_decay=decoupled_weight_decay,
            ),
        )

    def validate(self, group):
        super().validate(group)
        check_betas("NAdam", group["betas"])
        check_number("NAdam", "eps", group["eps"], 0.0)
        check_number("NAdam", "weight_decay", group["weight_decay"], 0.0)
        check_number("NAdam", "momentum_decay", group["momentum_decay"], 0.0)

    def init_state(self, p, group):
        return {"step": 0, "mu_product": 1.0, "exp_avg": B.xp.zeros_like(p.data), "exp_avg_sq": B.xp.zeros_like(p.data)}

    def update(self, p, grad, state, group):
        xp = B.xp
        lr, (b1, b2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        psi = group["momentum_decay"]
        state["step"] += 1
        t = state["step"]
        if wd != 0:
            if group["decoupled_weight_decay"]:
                p.data *= 1 - lr * wd
            else:
                d = xp.multiply(p.data, wd, out=self.scratch(p, 1))
                d += grad
                grad = d
        mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
        mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
        state["mu_product"] *= mu
        mu_prod = state["mu_product"]
        tmp = self.scratch(p, 0)
        m, v = update_moments(state, grad, b1, b2, tmp)
        xp.sqrt(v, out=tmp)  # d = sqrt(v / (1 - beta2^t)) + eps
        tmp /= math.sqrt(1 - b2**t)
        tmp += eps
        c_grad = lr * (1.0 - mu) / (1.0 - mu_prod)
        c_mom = lr * mu_next / (1.0 - mu_prod * mu_next)
        s1 = xp.multiply(grad, c_grad, out=self.scratch(p, 1))  # grad may already live in this slot: fine
        s1 /= tmp
        p.data -= s1
        xp.multiply(m, c_mom, out=s1)
        s1 /= tmp
        p.data -= s1
