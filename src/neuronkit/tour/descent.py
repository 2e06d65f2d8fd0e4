"""How does a network learn? Gradient descent: step every weight a little against its gradient, and the loss falls.

A 1 -> 16 (tanh) -> 1 network in float64 fits ``y = sin(2x)`` on 64 points of [-2, 2] by full-batch gradient descent
(``w <- w - lr * dLoss/dw``, plain SGD without momentum), from the same initial weights at three learning rates. The
gradient says which way is downhill only near the current weights: a small step follows it and the loss falls every
step; a step too large overshoots the valley and lands higher up, and each overshoot makes the next gradient steeper.
"""

from __future__ import annotations

import numpy as np

from .. import nn, optim
from ..autograd import no_grad
from ..nn.losses import mse_loss
from ..tensor import Tensor
from .result import Result, train_full_batch

HIDDEN, POINTS = 16, 64
SMALL_LR, MIDDLE_LR, LARGE_LR = 0.1, 0.3, 0.5
STEPS, LARGE_STEPS = 200, 20
MIN_FRACTION_FALLING, MAX_FINAL_RATIO = 0.99, 0.1  # the claim: falls at >= 99% of steps, ends <= 10% of the start


def build(seed: int) -> nn.Sequential:
    rng = np.random.default_rng([seed, 1])
    return nn.Sequential(
        nn.Dense(1, HIDDEN, activation="tanh", generator=rng, dtype="float64"),
        nn.Dense(HIDDEN, 1, generator=rng, dtype="float64"),
    )


def descend(seed: int, x, y, lr: float, steps: int) -> tuple:
    """(model, losses): ``steps`` steps of full-batch gradient descent at ``lr`` from the seed's initial weights.
    Stops early once the loss is no longer finite (it has diverged)."""
    model = build(seed)
    opt = optim.SGD(model.parameters(), lr=lr)
    losses = []
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(steps):
            losses += train_full_batch(model, x, y, mse_loss, opt, 1)
            if not np.isfinite(losses[-1]):
                break
    return model, np.array(losses)


def run(seed: int = 0) -> Result:
    x = np.linspace(-2.0, 2.0, POINTS)[:, None]
    y = Tensor(np.sin(2 * x))
    runs = {
        lr: descend(seed, x, y, lr, n) for lr, n in ((SMALL_LR, STEPS), (MIDDLE_LR, STEPS), (LARGE_LR, LARGE_STEPS))
    }
    small, middle, large = (runs[lr][1] for lr in (SMALL_LR, MIDDLE_LR, LARGE_LR))
    falling = np.diff(small) < 0
    fig = {
        "small_lr": SMALL_LR,
        "steps": len(small),
        "first_loss": float(small[0]),
        "final_loss": float(small[-1]),
        "final_over_first": float(small[-1] / small[0]),
        "fraction_of_steps_falling": float(falling.mean()),
        "steps_rising": int((~falling).sum()),
        "middle_lr": MIDDLE_LR,
        "middle_steps_rising": int((np.diff(middle) > 0).sum()),
        "middle_final_loss": float(middle[-1]),
        "large_lr": LARGE_LR,
        "large_steps": len(large),
        "large_final_loss": float(large[-1]),
        "large_final_over_first": float(large[-1] / large[0]),
        "large_fraction_of_steps_rising": float((np.diff(large) > 0).mean()),
        "small_losses": small.tolist(),
        "middle_losses": middle.tolist(),
        "large_losses": large.tolist(),
    }
    holds = (
        fig["fraction_of_steps_falling"] >= MIN_FRACTION_FALLING
        and fig["final_over_first"] <= MAX_FINAL_RATIO
        and fig["large_final_over_first"] > 1
    )
    f = fig
    if not np.isfinite(middle[-1]) or middle[-1] > middle[0]:
        middle_words = f"and ended at {middle[-1]:.3g}, above its start: this step size already diverges"
    else:
        middle_words = (
            f"(a step overshot the valley and landed higher on the other side) and stood at "
            f"{middle[-1]:.4f} at the end, against {small[-1]:.4f} for the small steps: at the edge of "
            f"stability the loss bounces instead of falling"
        )
    explanation = (
        f"Mean squared error of a 1 -> {HIDDEN} -> 1 tanh network fitting sin(2x), full-batch gradient descent. "
        f"At lr = {SMALL_LR:g}, measured before each of {f['steps']} steps, the loss was lower than at the step "
        f"before {f['fraction_of_steps_falling']:.1%} of the time ({f['steps_rising']} rises), and fell from "
        f"{f['first_loss']:.4f} to {f['final_loss']:.4f}, {f['final_over_first']:.1%} of where it started.\n"
        f"From the same weights at lr = {MIDDLE_LR:g} the loss rose at {f['middle_steps_rising']} of "
        f"{len(middle) - 1} steps {middle_words}. At lr = {LARGE_LR:g} it rose at "
        f"{f['large_fraction_of_steps_rising']:.0%} of steps and after "
        f"{f['large_steps']} steps stood at {f['large_final_loss']:.3g}, {f['large_final_over_first']:.3g} times "
        f"its start: gradient descent diverged. The gradient is only a local slope; the learning rate decides "
        f"whether a step stays where that slope is true."
    )
    return Result(
        name="descent",
        title="How does gradient descent lower the loss?",
        claim=f"with a small learning rate ({SMALL_LR:g}) full-batch gradient descent lowers the loss at >= "
        f"{MIN_FRACTION_FALLING:.0%} of steps, to <= {MAX_FINAL_RATIO:.0%} of its start; with a too-large one "
        f"({LARGE_LR:g}) the loss goes up",
        figures=fig,
        holds=bool(holds),
        explanation=explanation,
        plot=lambda figure: _plot(figure, x, runs, fig),
    )


def _plot(figure, x, runs, d) -> None:
    ax, ax2 = figure.subplots(1, 2)
    colors = {SMALL_LR: "tab:green", MIDDLE_LR: "tab:orange", LARGE_LR: "tab:red"}
    for lr, (_, losses) in runs.items():
        ax.plot(np.arange(len(losses)), losses, color=colors[lr], label=f"lr = {lr:g}")
    ax.set_yscale("log")
    first = d["first_loss"]
    ax.set_ylim(min(d["final_loss"], first) / 3, first * 1e3)  # the diverging run leaves the top of the picture
    large = d["large_final_loss"]
    ax.annotate(
        f"lr = {LARGE_LR:g}: {large:.2g} after {d['large_steps']} steps",
        (d["large_steps"], first * 1e3),
        textcoords="offset points",
        xytext=(5, -12),
        color=colors[LARGE_LR],
        fontsize=8,
    )
    ax.set_xlabel("step")
    ax.set_ylabel("loss (MSE, log scale)")
    ax.set_title("loss per gradient-descent step")
    ax.legend()
    ax2.plot(x[:, 0], np.sin(2 * x[:, 0]), "k.", markersize=4, label="data: sin(2x)")
    with no_grad():
        fitted = runs[SMALL_LR][0](Tensor(x)).data[:, 0]
    ax2.plot(x[:, 0], fitted, color=colors[SMALL_LR], label=f"network after {d['steps']} steps at lr = {SMALL_LR:g}")
    ax2.set_xlabel("x")
    ax2.set_title("what the small steps learned")
    ax2.legend(fontsize=8)
