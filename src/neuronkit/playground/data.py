"""The playground's data: the 2-D sets generated from the seed, digits, MNIST, text sets as bags of words, and a file
given on the command line.

Every set becomes a ``PlayData``: model inputs (float32), integer labels, the class names and, for 2-D sets, the raw
points (for drawing) and the extra input features computed from them (``x1^2``, ``x1x2``, ``sin_x1``, ...). Named
and file data arrive as ``Arrays`` from a provider the server was started with; the page only ever names a set, never
a path. A text set arrives as word counts (``bag_of_words``: one input per word of its vocabulary, learned from the
training texts), so the page's dense network, ``fit`` loop and neuron views work on it as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data import Standardize, train_test_split
from ..data.datasets.toy import make_circles, make_moons, make_spirals, make_xor
from .config import PlaygroundConfig


@dataclass
class Arrays:
    """Train and test arrays of a named or file dataset, as loaded (before standardisation)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    image_shape: tuple | None = None  # (H, W) when samples are images: the page draws first-layer weights as images
    input_names: list | None = None  # one per input (a text set's words); default pixel i / x_i
    test_texts: list | None = None  # a text set's test texts, shown for the inputs that excite a unit most
    standardize: bool = True  # False: the inputs as they are (a text set's word counts)


@dataclass
class PlayData:
    """One experiment's data, ready for the model (see the module docstring)."""

    name: str
    x_train: np.ndarray  # (n_train, n_inputs) float32
    y_train: np.ndarray  # (n_train,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    classes: list
    input_names: list  # one per model input
    points_train: np.ndarray | None = None  # (n_train, 2) raw 2-D points, for drawing
    points_test: np.ndarray | None = None
    extent: float = 1.0  # the drawn plane is [-extent, extent]^2
    image_shape: tuple | None = None
    standardize: Standardize | None = None
    test_texts: list | None = None  # a text set's test texts (its inputs are word counts)

    @property
    def n_inputs(self) -> int:
        return int(self.x_train.shape[1])


def make_gaussians(n_samples: int, noise: float, seed) -> tuple:
    """Two Gaussian clusters centred at (0.5, 0.5) (class 0) and (-0.5, -0.5) (class 1), std 0.1 + ``noise``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % 2
    centres = np.array([[0.5, 0.5], [-0.5, -0.5]])
    x = centres[y] + rng.normal(0.0, 0.1 + noise, size=(n_samples, 2))
    perm = rng.permutation(n_samples)
    return x[perm].astype(np.float32), y[perm].astype(np.int64)


def _generate(cfg: PlaygroundConfig) -> tuple:
    n, noise, seed = cfg.samples, cfg.noise, cfg.seed
    if cfg.data == "circles":
        return make_circles(n, noise=noise, seed=seed)
    if cfg.data == "xor":
        return make_xor(n, noise=noise, seed=seed)
    if cfg.data == "moons":
        x, y = make_moons(n, noise=noise, seed=seed)
        return (x - np.array([0.5, 0.25], dtype=np.float32)) / np.float32(1.2), y  # centred on the plane
    if cfg.data == "spirals":
        return make_spirals(n, n_classes=2, noise=noise, seed=seed)
    return make_gaussians(n, noise, seed)


def features(points: np.ndarray, names: list) -> np.ndarray:
    """The model inputs for 2-D ``points`` (n, 2): one column per feature name (``config.FEATURES``)."""
    x1, x2 = points[:, 0], points[:, 1]
    table = {
        "x1": lambda: x1,
        "x2": lambda: x2,
        "x1^2": lambda: x1 * x1,
        "x2^2": lambda: x2 * x2,
        "x1x2": lambda: x1 * x2,
        "sin_x1": lambda: np.sin(x1),
        "sin_x2": lambda: np.sin(x2),
    }
    return np.stack([table[n]() for n in names], axis=1).astype(np.float32)


def make_2d(cfg: PlaygroundConfig) -> PlayData:
    """A generated 2-D set split into train and test (stratified, from the seed), with ``cfg.features`` as inputs."""
    x, y = _generate(cfg)
    p_tr, p_te, y_tr, y_te = train_test_split(
        x, y, test_size=cfg.test_ratio, stratify=True, seed=np.random.default_rng([cfg.seed, 1])
    )
    extent = float(np.ceil(max(np.abs(x).max(), 1.0) * 12) / 10)  # 10 % margin, rounded to 0.1
    return PlayData(
        cfg.data,
        features(p_tr, cfg.features),
        y_tr,
        features(p_te, cfg.features),
        y_te,
        ["0", "1"],
        list(cfg.features),
        p_tr,
        p_te,
        extent,
    )


def from_arrays(name: str, a: Arrays) -> PlayData:
    """Named or file data: flattened to (n, features) and standardised with training-split statistics (one mean and
    std for images, so a rare pixel is not blown up; per feature for tables), as ``neuronkit train`` does."""
    x_tr = np.asarray(a.x_train, dtype=np.float32).reshape(len(a.x_train), -1)
    x_te = np.asarray(a.x_test, dtype=np.float32).reshape(len(a.x_test), -1)
    t = Standardize(per_feature=a.image_shape is None).fit(x_tr) if a.standardize else None
    names = [f"pixel {i}" for i in range(x_tr.shape[1])] if a.image_shape else [f"x{i}" for i in range(x_tr.shape[1])]
    return PlayData(
        name,
        x_tr if t is None else t(x_tr).astype(np.float32),
        np.asarray(a.y_train, dtype=np.int64),
        x_te if t is None else t(x_te).astype(np.float32),
        np.asarray(a.y_test, dtype=np.int64),
        list(a.classes),
        list(a.input_names) if a.input_names is not None else names,
        image_shape=a.image_shape,
        standardize=t,
        test_texts=a.test_texts,
    )


def bag_of_words(ids: np.ndarray, lengths: np.ndarray, vocab_size: int) -> np.ndarray:
    """(n, vocab_size - 1) float32: how often each token id 1.. (``<unk>`` first, then the words) occurs in each text,
    from the concatenated ``ids`` of the texts and each text's number of tokens (``TextEncoder.encode``)."""
    rows = np.repeat(np.arange(len(lengths)), lengths)
    out = np.zeros((len(lengths), vocab_size - 1), dtype=np.float32)
    np.add.at(out, (rows, ids - 1), 1.0)
    return out
