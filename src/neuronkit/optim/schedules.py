"""Learning-rate schedules that wrap an optimizer, with the step-by-step semantics of ``torch.optim.lr_scheduler``.

Construction sets every group's ``lr`` to the schedule's value at step 0 (for most schedules the base lr, which is
remembered as ``group["initial_lr"]``); each ``step()`` advances one step (or epoch) and writes the next lr into the
optimizer's groups. Each schedule is a closed-form function of the step count, so ``state_dict()`` is a small
JSON-ready dict and resuming is exact.
"""

from __future__ import annotations

import bisect
import math

from .optimizer import Optimizer, check, check_number

__all__ = [
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearWarmupCosine",
    "OneCycleLR",
    "ReduceLROnPlateau",
]


class LRScheduler:
    """Base class: subclasses define ``lr_at(base_lr, step)`` (or override ``get_lr()``).

    Attributes:
        optimizer: the wrapped optimizer.
        base_lrs: each group's lr at construction (``group["initial_lr"]``).
        last_epoch: the number of ``step()`` calls since construction (0 right after it).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        if last_epoch == -1:
            for g in optimizer.param_groups:
                g.setdefault("initial_lr", g["lr"])
        else:
            for i, g in enumerate(optimizer.param_groups):
                if "initial_lr" not in g:
                    raise KeyError(
                        f"{type(self).__name__}: param group {i} has no 'initial_lr', needed to resume "
                        f"from last_epoch={last_epoch}"
                    )
        self.base_lrs = [g["initial_lr"] for g in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, base_lr: float, step: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list:
        """The lr of each group at step ``last_epoch``."""
        return [self.lr_at(b, self.last_epoch) for b in self.base_lrs]

    def step(self) -> None:
        """Advance one step and set each group's lr."""
        self.last_epoch += 1
        lrs = self.get_lr()
        for g, lr in zip(self.optimizer.param_groups, lrs):
            g["lr"] = lr
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        """The lrs set by the latest ``step()`` (or construction), one per group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """Every attribute except the optimizer: JSON-serialisable."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore attributes saved by ``state_dict()``; the keys must be this schedule's."""
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: expected keys {sorted(expected)}, got {sorted(state_dict)}"
            )
        self.__dict__.update(state_dict)


class StepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every ``step_size`` steps: :math:`\eta_t = \eta_0 \gamma^{\lfloor t / s \rfloor}`.

    Args:
        optimizer: the wrapped optimizer.
        step_size: :math:`s`, steps between decays (>= 1).
        gamma: :math:`\gamma`. Defaults to 0.1.
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        check(isinstance(step_size, int) and step_size >= 1, "StepLR", "step_size", "an int >= 1", step_size)
        check_number("StepLR", "gamma", gamma, 0.0)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma ** (t // self.step_size)


class MultiStepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` at each milestone: :math:`\eta_t = \eta_0 \gamma^{\#\{m_i \le t\}}`.

    Args:
        optimizer: the wrapped optimizer.
        milestones: increasing step numbers.
        gamma: :math:`\gamma`. Defaults to 0.1.
    """

    def __init__(self, optimizer, milestones, gamma: float = 0.1, last_epoch: int = -1):
        ms = list(milestones)
        check(
            all(isinstance(m, int) for m in ms) and ms == sorted(ms),
            "MultiStepLR",
            "milestones",
            "a non-decreasing list of ints",
            ms,
        )
        check_number("MultiStepLR", "gamma", gamma, 0.0)
        self.milestones, self.gamma = ms, gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma ** bisect.bisect_right(self.milestones, t)


class ExponentialLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every step: :math:`\eta_t = \eta_0 \gamma^t`.

    Args:
        optimizer: the wrapped optimizer.
        gamma: :math:`\gamma` (> 0).
    """

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        check_number("ExponentialLR", "gamma", gamma, 0.0, low_open=True)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return base_lr * self.gamma**t


def _cosine(start, end, frac):
    return end + (start - end) * (1 + math.cos(math.pi * frac)) / 2


class CosineAnnealingLR(LRScheduler):
    r"""Cosine annealing without restarts (SGDR's schedule):
    :math:`\eta_t = \eta_{min} + \tfrac12(\eta_0 - \eta_{min})(1 + \cos(\pi t / T_{max}))`.

    Past ``T_max`` the cosine continues (rising again), as in PyTorch.

    Args:
        optimizer: the wrapped optimizer.
        T_max: :math:`T_{max}`, steps of one half period (>= 1).
        eta_min: :math:`\eta_{min}`. Defaults to 0.
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):
        check(isinstance(T_max, int) and T_max >= 1, "CosineAnnealingLR", "T_max", "an int >= 1", T_max)
        check_number("CosineAnnealingLR", "eta_min", eta_min, 0.0)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        return _cosine(base_lr, self.eta_min, t / self.T_max)


class LinearWarmupCosine(LRScheduler):
    r"""Linear warmup, then cosine decay to ``eta_min``; constant ``eta_min`` after ``total_steps``.

    With :math:`W` = ``warmup_steps``, :math:`T` = ``total_steps`` and :math:`f` = ``warmup_start_factor``:

    .. math::
        \eta_t = \begin{cases}
            \eta_0 \left(f + (1 - f)\, t / W\right) & t < W \\
            \eta_{min} + \tfrac12(\eta_0 - \eta_{min})\left(1 + \cos\left(\pi \frac{t - W}{T - W}\right)\right)
                & W \le t \le T \\
            \eta_{min} & t > T
        \end{cases}

    Args:
        optimizer: the wrapped optimizer.
        warmup_steps: :math:`W` (>= 0).
        total_steps: :math:`T` (> ``warmup_steps``).
        eta_min: :math:`\eta_{min}`. Defaults to 0.
        warmup_start_factor: :math:`f`, the fraction of the base lr at step 0. Defaults to 0.
    """

    def __init__(
        self,
        optimizer,
        warmup_steps: int,
        total_steps: int,
        eta_min: float = 0.0,
        warmup_start_factor: float = 0.0,
        last_epoch: int = -1,
    ):
        name = "LinearWarmupCosine"
        check(isinstance(warmup_steps, int) and warmup_steps >= 0, name, "warmup_steps", "an int >= 0", warmup_steps)
        check(
            isinstance(total_steps, int) and total_steps > warmup_steps,
            name,
            "total_steps",
            f"an int > warmup_steps ({warmup_steps})",
            total_steps,
        )
        check_number(name, "eta_min", eta_min, 0.0)
        check_number(name, "warmup_start_factor", warmup_start_factor, 0.0, 1.0)
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.eta_min, self.warmup_start_factor = eta_min, warmup_start_factor
        super().__init__(optimizer, last_epoch)

    def lr_at(self, base_lr, t):
        w, f = self.warmup_steps, self.warmup_start_factor
        if t < w:
            return base_lr * (f + (1 - f) * t / w)
        if t > self.total_steps:
            return self.eta_min
        return _cosine(base_lr, self.eta_min, (t - w) / (self.total_steps - w))


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy (Smith & Topin, 2018) with the semantics of ``torch.optim.lr_scheduler.OneCycleLR``.

    The lr rises from ``max_lr / div_factor`` to ``max_lr`` over the first ``pct_start`` of ``total_steps``, then
    falls to ``max_lr / div_factor / final_div_factor`` (with ``three_phase``: back to the initial lr first, then
    to the minimum). Each phase interpolates by ``anneal_strategy``: ``"cos"``,
    :math:`\text{end} + \tfrac12(\text{start} - \text{end})(1 + \cos \pi p)`, or ``"linear"``. Phase ends are at
    steps :math:`\text{pct\_start} \cdot T - 1` (and :math:`2\,\text{pct\_start} \cdot T - 2`) and :math:`T - 1`.
    Stepping past ``total_steps`` raises ``ValueError``.

    With ``cycle_momentum`` the momentum (``momentum`` of SGD/RMSprop, ``betas[0]`` of Adam-like optimizers) moves
    inversely, between ``max_momentum`` and ``base_momentum``.

    Args:
        optimizer: the wrapped optimizer; its lrs are replaced by the schedule's.
        max_lr: peak lr, a float or one per group.
        total_steps: :math:`T`; or give ``epochs`` and ``steps_per_epoch``.
        pct_start: fraction of steps spent rising. Defaults to 0.3.
        anneal_strategy: ``"cos"`` or ``"linear"``. Defaults to ``"cos"``.
        cycle_momentum: Defaults to True.
        base_momentum: Defaults to 0.85. max_momentum: Defaults to 0.95.
        div_factor: initial lr = max_lr / div_factor. Defaults to 25.
        final_div_factor: minimum lr = initial lr / final_div_factor. Defaults to 1e4.
        three_phase: Defaults to False.
    """

    def __init__(
        self,
        optimizer,
        max_lr,
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum=0.85,
        max_momentum=0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ):
        name = "OneCycleLR"
        if total_steps is None:
            check(
                isinstance(epochs, int) and epochs >= 1,
                name,
                "epochs (when total_steps is not given)",
                "an int >= 1",
                epochs,
            )
            check(
                isinstance(steps_per_epoch, int) and steps_per_epoch >= 1,
                name,
                "steps_per_epoch",
                "an int >= 1",
                steps_per_epoch,
            )
            total_steps = epochs * steps_per_epoch
        check(isinstance(total_steps, int) and total_steps >= 1, name, "total_steps", "an int >= 1", total_steps)
        check_number(name, "pct_start", pct_start, 0.0, 1.0)
        check(anneal_strategy in ("cos", "linear"), name, "anneal_strategy", "'cos' or 'linear'", anneal_strategy)
        check_number(name, "div_factor", div_factor, 0.0, low_open=True)
        check_number(name, "final_div_factor", final_div_factor, 0.0, low_open=True)
        groups = optimizer.param_groups
        max_lrs = _per_group(max_lr, groups, name, "max_lr")
        self.total_steps, self.anneal_strategy, self.cycle_momentum = total_steps, anneal_strategy, cycle_momentum
        if three_phase:
            self.phases = [
                {
                    "end_step": float(pct_start * total_steps) - 1,
                    "start": "initial_lr",
                    "end": "max_lr",
                    "start_m": "max_momentum",
                    "end_m": "base_momentum",
                },
                {
                    "end_step": float(2 * pct_start * total_steps) - 2,
                    "start": "max_lr",
                    "end": "initial_lr",
                    "start_m": "base_momentum",
                    "end_m": "max_momentum",
                },
                {
                    "end_step": total_steps - 1,
                    "start": "initial_lr",
                    "end": "min_lr",
                    "start_m": "max_momentum",
                    "end_m": "max_momentum",
                },
            ]
        else:
            self.phases = [
                {
                    "end_step": float(pct_start * total_steps) - 1,
                    "start": "initial_lr",
                    "end": "max_lr",
                    "start_m": "max_momentum",
                    "end_m": "base_momentum",
                },
                {
                    "end_step": total_steps - 1,
                    "start": "max_lr",
                    "end": "min_lr",
                    "start_m": "base_momentum",
                    "end_m": "max_momentum",
                },
            ]
        if last_epoch == -1:
            for g, m in zip(groups, max_lrs):
                g["initial_lr"] = m / div_factor
                g["max_lr"] = m
                g["min_lr"] = g["initial_lr"] / final_div_factor
        if cycle_momentum:
            if not all("momentum" in g or "betas" in g for g in groups):
                raise ValueError(
                    f"{name}: cycle_momentum=True needs an optimizer with 'momentum' or 'betas', "
                    f"got {type(optimizer).__name__}; pass cycle_momentum=False"
                )
            self.use_beta1 = "betas" in groups[0]
            if last_epoch == -1:
                for g, lo, hi in zip(
                    groups,
                    _per_group(base_momentum, groups, name, "base_momentum"),
                    _per_group(max_momentum, groups, name, "max_momentum"),
                ):
                    self._set_momentum(g, hi)
                    g["base_momentum"], g["max_momentum"] = lo, hi
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, g, m):
        if self.use_beta1:
            g["betas"] = (m, *g["betas"][1:])
        else:
            g["momentum"] = m

    def _anneal(self, start, end, pct):
        if self.anneal_strategy == "cos":
            return _cosine(start, end, pct)
        return (end - start) * pct + start

    def get_lr(self):
        t = self.last_epoch
        if t > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {t} times, but total_steps is {self.total_steps}")
        lrs = []
        for g in self.optimizer.param_groups:
            start_step = 0.0
            for i, ph in enumerate(self.phases):
                end_step = ph["end_step"]
                if t <= end_step or i == len(self.phases) - 1:
                    pct = (t - start_step) / (end_step - start_step)
                    lr = self._anneal(g[ph["start"]], g[ph["end"]], pct)
                    if self.cycle_momentum:
                        self._set_momentum(g, self._anneal(g[ph["start_m"]], g[ph["end_m"]], pct))
                    break
                start_step = end_step
            lrs.append(lr)
        return lrs


def _per_group(value, groups, owner, name):
    if isinstance(value, (list, tuple)):
        if len(value) != len(groups):
            raise ValueError(
                f"{owner}: expected {len(groups)} values of {name} (one per param group), got {len(value)}"
            )
        return list(value)
    return [value] * len(groups)


class ReduceLROnPlateau:
    r"""Reduce the lr by ``factor`` when a metric has stopped improving, as ``torch.optim.lr_scheduler``'s does.

    Each ``step(metric)`` compares ``metric`` with the best so far: in ``"min"`` mode with ``threshold_mode="rel"``
    it is better if :math:`m < \text{best}\,(1 - \text{threshold})` (``"max"``: :math:`m > \text{best}\,(1 +
    \text{threshold})`; ``"abs"``: :math:`m < \text{best} - \text{threshold}`). After more than ``patience`` steps
    without improvement every group's lr becomes :math:`\max(\text{lr} \cdot \text{factor}, \text{min\_lr})`
    (changes smaller than ``eps`` are skipped), then ``cooldown`` steps pass before bad steps count again.

    Args:
        optimizer: the wrapped optimizer.
        mode: ``"min"`` or ``"max"``. Defaults to ``"min"``.
        factor: multiplier (< 1). Defaults to 0.1.
        patience: bad steps tolerated. Defaults to 10.
        threshold: Defaults to 1e-4. threshold_mode: ``"rel"`` or ``"abs"``. Defaults to ``"rel"``.
        cooldown: Defaults to 0. min_lr: a float or one per group. Defaults to 0. eps: Defaults to 1e-8.
    """

    def __init__(
        self,
        optimizer,
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        threshold_mode: str = "rel",
        cooldown: int = 0,
        min_lr=0.0,
        eps: float = 1e-8,
    ):
        name = "ReduceLROnPlateau"
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{name}: expected an Optimizer, got {type(optimizer).__name__}")
        check(mode in ("min", "max"), name, "mode", "'min' or 'max'", mode)
        check(threshold_mode in ("rel", "abs"), name, "threshold_mode", "'rel' or 'abs'", threshold_mode)
        check_number(name, "factor", factor, 0.0, 1.0, high_open=True)
        check(isinstance(patience, int) and patience >= 0, name, "patience", "an int >= 0", patience)
        check(isinstance(cooldown, int) and cooldown >= 0, name, "cooldown", "an int >= 0", cooldown)
        check_number(name, "threshold", threshold, 0.0)
        self.optimizer = optimizer
        self.min_lrs = _per_group(min_lr, optimizer.param_groups, name, "min_lr")
        self.mode, self.factor, self.patience, self.threshold = mode, factor, patience, threshold
        self.threshold_mode, self.cooldown, self.eps = threshold_mode, cooldown, eps
        self.best = math.inf if mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < best * (1 - self.threshold) if self.threshold_mode == "rel" else a < best - self.threshold
        return a > best * (1 + self.threshold) if self.threshold_mode == "rel" else a > best + self.threshold

    def step(self, metric) -> None:
        """Record one value of the monitored metric and reduce the lr if it has plateaued."""
        current = float(metric)
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for g, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new = max(g["lr"] * self.factor, min_lr)
                if g["lr"] - new > self.eps:
                    g["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list:
        return list(self._last_lr)

    def state_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        expected = set(self.state_dict())
        if set(state_dict) != expected:
            raise ValueError(
                f"ReduceLROnPlateau.load_state_dict: expected keys {sorted(expected)}, got {sorted(state_dict)}"
            )
        self.__dict__.update(state_dict)
