"""The dataset registry: ``DATASETS`` maps a name to its loader and metadata; ``load_dataset`` returns its splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..split import train_test_split
from . import toy
from .embedded import load_sklearn
from .mnist import IDX_SOURCES, load_idx_dataset

__all__ = ["DATASETS", "DatasetInfo", "Splits", "load_dataset"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a registered dataset is: ``size`` samples in all, each of ``shape``, labelled with ``classes``."""

    name: str
    loader: Callable = field(repr=False)
    kind: str  # "toy" (generated), "embedded" (scikit-learn), "idx" (local files or download), "text" (local files)
    size: int | None  # total samples (train + test); None where it depends on n_samples
    shape: tuple  # one sample's shape; () for text (a sample is a string of any length)
    classes: tuple  # class names, index = label
    source: str
    license: str
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class Splits:
    """A dataset's splits as NumPy arrays. Unpacks as ``(x_train, y_train), (x_test, y_test) = splits``."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: DatasetInfo | None = None

    @property
    def train(self):
        return self.x_train, self.y_train

    @property
    def test(self):
        return self.x_test, self.y_test

    def __iter__(self):
        yield self.train
        yield self.test

    def __repr__(self) -> str:
        name = self.info.name if self.info else "?"
        return (
            f"Splits({name}: train x{self.x_train.shape} y{self.y_train.shape}, "
            f"test x{self.x_test.shape} y{self.y_test.shape})"
        )


def _split(x, y, test_size, seed):
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_size, stratify=True, seed=seed)
    return x_tr, y_tr, x_te, y_te


def _toy_loader(fn):
    def load(test_size=0.2, seed=0, **kwargs):
        x, y = fn(seed=seed, **kwargs)
        # the split draws from its own stream, derived from the same seed, so that it is repeatable too
        return _split(x, y, test_size, None if seed is None else np.random.default_rng([int(seed), 1]))

    load.__doc__ = f"Generate with ``{fn.__name__}(seed=seed, **kwargs)``, then split off ``test_size`` (stratified)."
    return load


def _sklearn_loader(name):
    def load(test_size=0.2, seed=0):
        x, y, _ = load_sklearn(name)
        return _split(x, y, test_size, seed)

    return load


def _idx_loader(name):
    def load(data_dir=None, download=False, **kwargs):
        return load_idx_dataset(name, data_dir=data_dir, download=download, **kwargs)

    return load


def _text_loader(name):
    def load(data_dir=None, seed=0, verify=True):
        from ..text import load_text_dataset  # data.text reads its files with this package's helpers

        return load_text_dataset(name, data_dir=data_dir, seed=seed, verify=verify)

    return load


_SK = "scikit-learn (sklearn.datasets), bundled copy of the UCI Machine Learning Repository set"
DATASETS: dict[str, DatasetInfo] = {
    "xor": DatasetInfo(
        "xor",
        _toy_loader(toy.make_xor),
        "toy",
        None,
        (2,),
        ("same sign", "different sign"),
        "generated",
        "n/a",
        "Points in [-1, 1]^2; class 1 where x0 and x1 have different signs.",
    ),
    "circles": DatasetInfo(
        "circles",
        _toy_loader(toy.make_circles),
        "toy",
        None,
        (2,),
        ("outer", "inner"),
        "generated",
        "n/a",
        "Two concentric noisy circles.",
    ),
    "moons": DatasetInfo(
        "moons",
        _toy_loader(toy.make_moons),
        "toy",
        None,
        (2,),
        ("upper", "lower"),
        "generated",
        "n/a",
        "Two interleaving half circles.",
    ),
    "spirals": DatasetInfo(
        "spirals",
        _toy_loader(toy.make_spirals),
        "toy",
        None,
        (2,),
        ("0", "1", "2"),
        "generated",
        "n/a",
        "Interleaved spiral arms (n_classes=3 by default).",
    ),
    "blobs": DatasetInfo(
        "blobs",
        _toy_loader(toy.make_blobs),
        "toy",
        None,
        (2,),
        ("0", "1", "2"),
        "generated",
        "n/a",
        "Isotropic Gaussian blobs (centers=3 by default).",
    ),
    "digits": DatasetInfo(
        "digits",
        _sklearn_loader("digits"),
        "embedded",
        1797,
        (64,),
        tuple(str(d) for d in range(10)),
        _SK,
        "CC BY 4.0",
        "8x8 handwritten digits, pixel values 0..16, flattened.",
    ),
    "iris": DatasetInfo(
        "iris",
        _sklearn_loader("iris"),
        "embedded",
        150,
        (4,),
        ("setosa", "versicolor", "virginica"),
        _SK,
        "CC BY 4.0",
        "Fisher's iris: sepal and petal length and width (cm).",
    ),
    "wine": DatasetInfo(
        "wine",
        _sklearn_loader("wine"),
        "embedded",
        178,
        (13,),
        ("class_0", "class_1", "class_2"),
        _SK,
        "CC BY 4.0",
        "Chemical analysis of wines from three cultivars.",
    ),
    "breast_cancer": DatasetInfo(
        "breast_cancer",
        _sklearn_loader("breast_cancer"),
        "embedded",
        569,
        (30,),
        ("malignant", "benign"),
        _SK,
        "CC BY 4.0",
        "Wisconsin diagnostic breast cancer: 30 features of cell nuclei.",
    ),
    "mnist": DatasetInfo(
        "mnist",
        _idx_loader("mnist"),
        "idx",
        70000,
        (28, 28),
        tuple(str(d) for d in range(10)),
        "http://yann.lecun.com/exdb/mnist/ (LeCun, Cortes, Burges)",
        "CC BY-SA 3.0",
        "Handwritten digits, 60,000 train + 10,000 test, 28x28 grey.",
    ),
    "fashion_mnist": DatasetInfo(
        "fashion_mnist",
        _idx_loader("fashion_mnist"),
        "idx",
        70000,
        (28, 28),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        "https://github.com/zalandoresearch/fashion-mnist (Zalando Research)",
        "MIT",
        "Zalando article images, 60,000 train + 10,000 test, 28x28 grey.",
    ),
    "kmnist": DatasetInfo(
        "kmnist",
        _idx_loader("kmnist"),
        "idx",
        70000,
        (28, 28),
        ("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
        "https://github.com/rois-codh/kmnist (ROIS-DS CODH)",
        "CC BY-SA 4.0",
        "Kuzushiji (cursive Japanese) characters, 60,000 train + 10,000 test, 28x28 grey.",
    ),
    "sms_spam": DatasetInfo(
        "sms_spam",
        _text_loader("sms_spam"),
        "text",
        5574,
        (),
        ("ham", "spam"),
        "https://archive.ics.uci.edu/dataset/228/sms+spam+collection (Almeida, Hidalgo)",
        "CC BY 4.0",
        "SMS Spam Collection v.1: 4,827 ham and 747 spam text messages; split 80/20 stratified with the seed.",
    ),
    "sentiment": DatasetInfo(
        "sentiment",
        _text_loader("sentiment"),
        "text",
        3000,
        (),
        ("negative", "positive"),
        "https://archive.ics.uci.edu/dataset/331/sentiment+labelled+sentences (Kotzias et al. 2015)",
        "CC BY 4.0",
        "Amazon, IMDB and Yelp review sentences, 1,500 positive and 1,500 negative; split 80/20 stratified.",
    ),
    "sst2": DatasetInfo(
        "sst2",
        _text_loader("sst2"),
        "text",
        70042,
        (),
        ("negative", "positive"),
        "GLUE SST-2 (https://gluebenchmark.com; Socher et al. 2013) and its labelled test split",
        "none stated",
        "Stanford Sentiment Treebank, binary: 67,349 training phrases, 872 validation and 1,821 test sentences.",
    ),
}
assert set(IDX_SOURCES) <= set(DATASETS)


def load_dataset(name: str, data_dir=None, download: bool = False, **kwargs) -> Splits:
    """Load a registered dataset's train/test splits as NumPy arrays.

    Args:
        name: a key of ``DATASETS``.
        data_dir: for IDX sets (mnist, fashion_mnist, kmnist): a folder holding ``<name>/<files>`` or the files
            themselves. Defaults to ``$NEURONKIT_DATA``.
        download: for IDX sets: fetch missing files into the cache (``$NEURONKIT_CACHE``, ``~/.cache/neuronkit``),
            checksum-checked. Defaults to False.
        **kwargs: toy sets: ``n_samples``, ``noise``, ``seed`` (default 0), ``test_size`` (0.2) and the generator's
            own options; embedded sets: ``test_size``, ``seed`` (the split is stratified); IDX sets: ``base_url``,
            ``checksums``, ``cache_dir``, ``dtype`` (see ``load_idx_dataset``).

    Returns:
        ``Splits`` with ``x_train, y_train, x_test, y_test`` and ``info``; unpacks as
        ``(x_train, y_train), (x_test, y_test)``. Text sets (sms_spam, sentiment, sst2; ``data_dir``, ``seed``,
        ``verify``) return ``neuronkit.data.text.TextSplits`` instead: lists of strings and their labels.
    """
    info = DATASETS.get(name)
    if info is None:
        raise KeyError(f"unknown dataset {name!r}; available: {', '.join(sorted(DATASETS))}")
    if info.kind == "text":
        if download:
            raise ValueError(f"{name!r} is read from local files only: it takes no download (see its error message)")
        return info.loader(data_dir=data_dir, **kwargs)
    if info.kind == "idx":
        parts = info.loader(data_dir=data_dir, download=download, **kwargs)
    else:
        if data_dir is not None or download:
            raise ValueError(
                f"{name!r} is {'generated' if info.kind == 'toy' else 'embedded'}: it takes no data_dir or download"
            )
        try:
            parts = info.loader(**kwargs)
        except TypeError as e:
            raise TypeError(f"load_dataset({name!r}): {e}") from None
    return Splits(*parts, info=info)
