"""Fit a two-layer network, written with bare neuronkit tensors, to three interleaved spirals.

No layers, no optimizer classes: the weights are tensors, the forward pass is three lines, ``loss.backward()``
computes every gradient by reverse-mode autodiff, and gradient descent is one in-place line per parameter. Prints the
loss falling and the accuracy on held-out points the network never trained on.

Run: ``python examples/spirals_engine.py`` (or ``make demo``).
"""

from __future__ import annotations

import math
import time

import numpy as np

import neuronkit as nk


def spirals(n_per_class: int, classes: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """``classes`` spiral arms of ``n_per_class`` 2-D points each; labels are the arm index."""
    xs, ys = [], []
    for c in range(classes):
        r = np.linspace(0.05, 1.0, n_per_class)
        theta = np.linspace(c * 2 * math.pi / classes, c * 2 * math.pi / classes + 4.0, n_per_class)
        theta = theta + rng.normal(0, noise, n_per_class)
        xs.append(np.stack([r * np.sin(theta), r * np.cos(theta)], axis=1))
        ys.append(np.full(n_per_class, c))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys)


def main(seed: int = 0, hidden: int = 64, steps: int = 2000, lr: float = 0.5) -> float:
    rng = np.random.default_rng(seed)
    x, y = spirals(300, 3, 0.35, rng)
    order = rng.permutation(len(x))
    split = int(0.8 * len(x))
    train, test = order[:split], order[split:]
    x_train, y_train = nk.tensor(x[train]), y[train]
    x_test, y_test = nk.tensor(x[test]), y[test]

    # Layer 1: 2 inputs -> `hidden` ReLU neurons; layer 2: hidden -> 3 output neurons (one score per class).
    # Each row of a weight matrix is one neuron's weights (shape (out, in), as in PyTorch).
    w1 = nk.randn(hidden, 2, generator=rng) * math.sqrt(2 / 2)
    w2 = nk.randn(3, hidden, generator=rng) * math.sqrt(2 / hidden)
    params = [p.detach().requires_grad_() for p in (w1, nk.zeros(hidden), w2, nk.zeros(3))]
    w1, b1, w2, b2 = params

    print(
        f"neuronkit {nk.__version__}: 2 -> {hidden} (relu) -> 3 network on {len(train)} spiral points, "
        f"{len(test)} held out"
    )
    start = time.perf_counter()
    for step in range(steps + 1):
        hidden_out = nk.relu(nk.linear(x_train, w1, b1))  # (N, hidden)
        logits = nk.linear(hidden_out, w2, b2)  # (N, 3)
        loss = nk.cross_entropy(logits, y_train)
        loss.backward()
        with nk.no_grad():
            for p in params:  # gradient descent: w <- w - lr * dL/dw, in place
                p.data -= lr * p.grad.data
                p.grad = None
        if step % (steps // 10) == 0:
            acc = (logits.data.argmax(axis=1) == y_train).mean()
            print(f"  step {step:5d}  loss {loss.item():.4f}  train accuracy {acc:6.1%}")

    with nk.no_grad():
        test_logits = nk.linear(nk.relu(nk.linear(x_test, w1, b1)), w2, b2)
    test_acc = float((test_logits.data.argmax(axis=1) == y_test).mean())
    print(f"held-out accuracy {test_acc:.1%} (chance: 33.3%) after {time.perf_counter() - start:.1f} s")
    return test_acc


if __name__ == "__main__":
    main()
