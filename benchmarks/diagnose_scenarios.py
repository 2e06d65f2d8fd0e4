"""Scenarios of known cause for the diagnosis benchmark (``bench_diagnose.py``) and its tests.

Each scenario trains a small network on the 8x8 digits (1,400 training and 397 validation samples, standardised)
in a few seconds, with a cause known from the literature or by construction, and names the finding ``kind`` that a
correct diagnosis ranks first (None for a healthy run: nothing at warning level or above).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sklearn.datasets import load_digits

from neuronkit import creation, nn
from neuronkit.inspect import ProbeCallback, diagnose
from neuronkit.train import fit


def digits():
    """(x_train, y_train, x_val, y_val): the 1,797 digits standardised, split 1,400 / 397 with seed 0."""
    d = load_digits()
    x = d.data.astype(np.float64)
    x = ((x - x.mean(0)) / (x.std(0) + 1e-6)).astype(np.float32)
    idx = np.random.default_rng(0).permutation(len(x))
    tr, va = idx[:1400], idx[1400:]
    return x[tr], d.target[tr], x[va], d.target[va]


def mlp(sizes, act="relu", init=None, bias_init=None, seed=0):
    """Dense layers of ``sizes`` (input first), ``act`` on every hidden layer, the same init everywhere."""
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        layers.append(
            nn.Dense(a, b, activation=None if last else act, init=init, bias_init=bias_init, generator=1000 * seed + i)
        )
    return nn.Sequential(*layers)


def lenet_small(seed=0):
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, activation="relu", max_pool=2, generator=1000 * seed),
        nn.Conv2d(8, 16, 3, padding=1, activation="relu", max_pool=2, generator=1000 * seed + 1),
        nn.Flatten(),
        nn.Dense(64, 64, activation="relu", init="he_uniform", generator=1000 * seed + 2),
        nn.Dense(64, 10, generator=1000 * seed + 3),
    )


@dataclass
class Scenario:
    name: str
    expected: str | None  # the finding kind a correct diagnosis ranks first; None: healthy
    source: str  # where the cause is known from
    build: object  # (seed) -> model
    fit: dict = field(default_factory=dict)  # fit() arguments
    train_size: int = 1400
    images: bool = False


S = Scenario
SCENARIOS = [
    S(
        "he2015_xavier_relu30",
        "vanishing_signal",
        "He et al. 2015 Fig. 3: 30 ReLU layers with Xavier init do not learn",
        lambda seed: mlp([64] + [64] * 30 + [10], "relu", "xavier_uniform", "zeros", seed=seed),
        {"optimizer": "sgd", "lr": 0.01, "epochs": 3},
    ),
    S(
        "glorot2010_sigmoid",
        "saturation",
        "Glorot & Bengio 2010 Fig. 2: sigmoid 4x hidden, U(+-1/sqrt(n)), SGD: the top layer saturates at 0",
        lambda seed: mlp([64] + [200] * 4 + [10], "sigmoid", "default", "zeros", seed=seed),
        {"optimizer": "sgd", "lr": 0.3, "epochs": 8, "batch_size": 10},
    ),
    S(
        "dying_relu_big_lr",
        "dead_relu",
        "by construction: Adam at lr 0.05 pushes ReLU biases negative",
        lambda seed: mlp([64, 128, 128, 10], "relu", seed=seed),
        {"optimizer": "adam", "lr": 0.05, "epochs": 3},
    ),
    S(
        "exploding_deep_tanh",
        "exploding_gradient",
        "Poole et al. 2016: deep tanh with weight std 6/sqrt(n) is chaotic, gradients grow backwards",
        lambda seed: mlp([64] + [64] * 12 + [10], "tanh", "he_normal:6", "zeros", seed=seed),
        {"optimizer": "sgd", "lr": 0.01, "epochs": 2},
    ),
    S(
        "lr_too_high",
        "lr_too_high",
        "by construction: SGD at lr 3 on an MLP",
        lambda seed: mlp([64, 64, 10], "relu", "he_uniform", seed=seed),
        {"optimizer": "sgd", "lr": 3.0, "epochs": 4},
    ),
    S(
        "lr_too_low",
        "lr_too_low",
        "by construction: SGD at lr 1e-5",
        lambda seed: mlp([64, 64, 10], "relu", "he_uniform", seed=seed),
        {"optimizer": "sgd", "lr": 1e-5, "epochs": 4},
    ),
    S(
        "overfitting_tiny_set",
        "overfitting",
        "by construction: 40 training samples, 256 hidden units, 60 epochs",
        lambda seed: mlp([64, 256, 256, 10], "relu", "he_uniform", seed=seed),
        {"optimizer": "adam", "lr": 3e-3, "epochs": 60, "batch_size": 40},
        train_size=40,
    ),
    S(
        "underfitting_tiny_model",
        "underfitting",
        "by construction: a 1-unit bottleneck cannot separate 10 classes",
        lambda seed: mlp([64, 1, 10], "relu", "he_uniform", seed=seed),
        {"optimizer": "adam", "lr": 1e-2, "epochs": 15},
    ),
    S(
        "vanishing_deep_sigmoid",
        "vanishing_gradient",
        "Hochreiter 1991: sigmoid' <= 1/4, the gradient shrinks through each of 12 sigmoid layers",
        lambda seed: mlp([64] + [64] * 12 + [10], "sigmoid", seed=seed),
        {"optimizer": "sgd", "lr": 0.1, "epochs": 3},
    ),
    S(
        "healthy_mlp_he_adam",
        None,
        "MLP with He init and Adam",
        lambda seed: mlp([64, 128, 64, 10], "relu", "he_uniform", seed=seed),
        {"optimizer": "adam", "lr": 1e-3, "epochs": 8},
    ),
    S(
        "healthy_lenet_small",
        None,
        "a small LeNet (two conv + pool, two dense) with Adam",
        lenet_small,
        {"optimizer": "adam", "lr": 2e-3, "epochs": 4, "batch_size": 64},
        images=True,
    ),
    S(
        "healthy_deep_he_relu",
        None,
        "He et al. 2015: 16 ReLU layers with He init learn",
        lambda seed: mlp([64] + [96] * 16 + [10], "relu", "he_normal", "zeros", seed=seed),
        {"optimizer": "sgd", "lr": 0.02, "epochs": 5},
    ),
    S(
        "healthy_tuned_sigmoid",
        None,
        "sigmoid MLP with Xavier init and Adam",
        lambda seed: mlp([64, 64, 64, 10], "sigmoid", "xavier_uniform", seed=seed),
        {"optimizer": "adam", "lr": 3e-3, "epochs": 10},
    ),
]


@dataclass
class Outcome:
    scenario: Scenario
    findings: list  # ranked (inspect.diagnose)
    seconds: float
    val_accuracy: float | None
    seed: int = 0

    @property
    def first(self):
        serious = [f for f in self.findings if f.severity in ("error", "warning")]
        return serious[0] if serious else None

    @property
    def correct(self) -> bool:
        first = self.first
        if self.scenario.expected is None:
            return first is None
        return first is not None and first.kind == self.scenario.expected


def run(s: Scenario, seed: int = 0, data=None) -> Outcome:
    """Train scenario ``s`` with probes and diagnose it as ``neuronkit diagnose`` does."""
    xtr, ytr, xva, yva = data if data is not None else digits()
    if s.images:
        xtr, xva = xtr.reshape(-1, 1, 8, 8), xva.reshape(-1, 1, 8, 8)
    xtr, ytr = xtr[: s.train_size], ytr[: s.train_size]
    t0 = time.perf_counter()
    creation.manual_seed(seed)
    model = s.build(seed)
    creation.manual_seed(seed)
    initial = s.build(seed)
    kw = {"batch_size": 32, **s.fit}
    steps = (len(xtr) + kw["batch_size"] - 1) // kw["batch_size"] * kw["epochs"]
    cb = ProbeCallback(every=max(1, steps // 100))
    with np.errstate(all="ignore"):
        h = fit(
            model,
            (xtr, ytr),
            validation=(xva, yva),
            metrics=["accuracy"],
            callbacks=[cb],
            progress=False,
            seed=seed,
            **kw,
        )
        lr = kw["lr"] if kw.get("optimizer") == "sgd" else None
        findings = diagnose(model, (xva, yva), history=h, probe=cb, initial=initial, lr=lr)
    acc = h.epochs[-1].get("val_accuracy")
    return Outcome(s, findings, time.perf_counter() - t0, acc, seed)
