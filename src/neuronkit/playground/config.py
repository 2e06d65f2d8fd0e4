"""``PlaygroundConfig``: every setting the page can change, checked against fixed caps before anything is built.

The page sends its settings as a JSON object; ``parse_config`` turns it into a ``PlaygroundConfig`` or raises
``ProtocolError`` with one line naming the field, what was expected and what arrived. Unknown fields are refused (a
typo must not silently fall back to a default). The caps bound what one message can make the server allocate: at
most ``MAX_LAYERS`` hidden layers of ``MAX_UNITS`` units, batches of ``MAX_BATCH``, ``MAX_SAMPLES`` generated points.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..nn.activations import ACTIVATIONS
from ..nn.init import INITIALIZERS
from ..optim import OPTIMIZERS

MAX_LAYERS = 16  # hidden layers (TensorFlow Playground: 6)
MAX_UNITS = 512  # units per hidden layer (TensorFlow Playground: 8)
MAX_BATCH = 4096
MAX_SAMPLES = 5000  # points of a generated 2-D set
MAX_SEED = 2**31 - 1
TOY_SETS = ("circles", "xor", "gaussians", "spirals", "moons")
FEATURES = ("x1", "x2", "x1^2", "x2^2", "x1x2", "sin_x1", "sin_x2")
ACTIVATION_NAMES = tuple(
    sorted(n for n in ACTIVATIONS if n not in ("softmax", "log_softmax", "identity", "swish")) + ["linear"]
)
INIT_NAMES = ("auto", *sorted(n for n in INITIALIZERS if n not in ("constant",)))
# settings that change the model or the data: changing one rebuilds the run from its seed. The others (lr, l2) are
# applied to the live optimizer.
LIVE_KEYS = ("lr", "l2")


class ProtocolError(ValueError):
    """A message from the page that cannot be accepted; the text is sent back to it as the error reply."""


@dataclass
class PlaygroundConfig:
    """One playground experiment: data, network and training settings (all JSON; defaults below)."""

    data: str = "spirals"  # a 2-D set (TOY_SETS), "digits", "mnist" (with --data-dir) or "file" (--data)
    noise: float = 0.1  # std of the Gaussian noise added to 2-D points
    test_ratio: float = 0.5  # part of a generated 2-D set held out as test data
    samples: int = 500  # points of a generated 2-D set
    features: list = field(default_factory=lambda: ["x1", "x2"])  # the model's inputs for 2-D data
    hidden: list = field(default_factory=lambda: [8, 8])  # hidden layer sizes
    activations: list = field(default_factory=lambda: ["tanh", "tanh"])  # one per hidden layer
    optimizer: str = "adam"
    lr: float = 0.03
    batch_size: int = 16
    l2: float = 0.0  # the optimizer's weight decay
    dropout: float = 0.0  # after each hidden layer
    init: str = "auto"  # weight initialiser of every layer; auto: each layer's default
    seed: int = 0  # data, initial weights, shuffling and dropout

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def is_2d(self) -> bool:
        return self.data in TOY_SETS


def _number(name, v, lo, hi, integer=False):
    ok = isinstance(v, int) if integer else isinstance(v, (int, float))
    if isinstance(v, bool) or not ok or not (math.isfinite(v) and lo <= v <= hi):
        kind = "an integer" if integer else "a number"
        raise ProtocolError(f"{name}: expected {kind} in [{lo}, {hi}], got {_show(v)}")
    return int(v) if integer else float(v)


def _choice(name, v, allowed):
    if not isinstance(v, str) or v not in allowed:
        raise ProtocolError(f"{name}: expected one of {', '.join(allowed)}, got {_show(v)}")
    return v


def _show(v) -> str:
    s = repr(v)
    return s if len(s) <= 40 else s[:37] + "..."


def _list(name, v, max_len, min_len=0):
    if not isinstance(v, list) or not min_len <= len(v) <= max_len:
        raise ProtocolError(f"{name}: expected a list of {min_len} to {max_len} items, got {_show(v)}")
    return v


def parse_config(obj, datasets=()) -> PlaygroundConfig:
    """A checked ``PlaygroundConfig`` from the JSON object ``obj``; missing fields keep their defaults.

    ``datasets``: the data names this server offers besides the 2-D sets (``digits``, ``mnist``, ``file``)."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"config: expected an object, got {_show(obj)}")
    known = {f.name for f in dataclasses.fields(PlaygroundConfig)}
    extra = sorted(k for k in obj if k not in known)
    if extra:
        raise ProtocolError(f"config: unknown field {_show(extra[0])}; known: {', '.join(sorted(known))}")
    c = PlaygroundConfig(**{k: v for k, v in obj.items()})
    c.data = _choice("data", c.data, (*TOY_SETS, *datasets))
    c.noise = _number("noise", c.noise, 0.0, 1.0)
    c.test_ratio = _number("test_ratio", c.test_ratio, 0.1, 0.9)
    c.samples = _number("samples", c.samples, 20, MAX_SAMPLES, integer=True)
    feats = _list("features", c.features, len(FEATURES), 1)
    c.features = [_choice("features", f, FEATURES) for f in feats]
    if len(set(c.features)) != len(c.features):
        raise ProtocolError(f"features: each feature at most once, got {_show(c.features)}")
    hidden = _list("hidden", c.hidden, MAX_LAYERS)
    c.hidden = [_number(f"hidden[{i}]", h, 1, MAX_UNITS, integer=True) for i, h in enumerate(hidden)]
    acts = _list("activations", c.activations, MAX_LAYERS)
    if len(acts) != len(c.hidden):
        raise ProtocolError(f"activations: expected one per hidden layer ({len(c.hidden)}), got {len(acts)}")
    c.activations = [_choice(f"activations[{i}]", a, ACTIVATION_NAMES) for i, a in enumerate(acts)]
    c.optimizer = _choice("optimizer", c.optimizer, tuple(sorted(OPTIMIZERS)))
    c.lr = _number("lr", c.lr, 1e-6, 10.0)
    c.batch_size = _number("batch_size", c.batch_size, 1, MAX_BATCH, integer=True)
    c.l2 = _number("l2", c.l2, 0.0, 1.0)
    c.dropout = _number("dropout", c.dropout, 0.0, 0.9)
    c.init = _choice("init", c.init, INIT_NAMES)
    c.seed = _number("seed", c.seed, 0, MAX_SEED, integer=True)
    return c


def needs_rebuild(old: PlaygroundConfig, new: PlaygroundConfig) -> bool:
    """Whether going from ``old`` to ``new`` changes the data or the model (anything but ``LIVE_KEYS``)."""
    a, b = old.to_dict(), new.to_dict()
    return any(a[k] != b[k] for k in a if k not in LIVE_KEYS)
