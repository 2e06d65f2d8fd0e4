"""Initialisers: fill a parameter in place, drawing from an explicit generator.

Every random initialiser takes ``generator=`` (an int seed or a ``numpy.random.Generator``; None uses neuronkit's
default generator, reset by ``neuronkit.manual_seed``). Fan-in and fan-out of a weight of shape (out, in, *kernel)
are ``in * prod(kernel)`` and ``out * prod(kernel)``, as in PyTorch.

``skip_init()`` builds layers without initialising them, for a model whose weights are loaded next.
"""

from __future__ import annotations

import contextlib
import contextvars
import math

from .. import backend as B
from ..creation import get_generator

_GAINS = {"linear": 1.0, "identity": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "selu": 0.75}
# Convolutions are linear maps: gain 1, as in PyTorch.
_GAINS.update({f"conv{t}{d}d": 1.0 for t in ("", "_transpose") for d in (1, 2, 3)})


def calculate_gain(nonlinearity: str = "linear", param: float | None = None) -> float:
    """The recommended scale for an activation (PyTorch's values): relu sqrt(2), tanh 5/3, leaky_relu
    sqrt(2 / (1 + slope^2)), selu 3/4, linear, sigmoid and conv*/conv_transpose* 1."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        known = sorted(_GAINS) + ["leaky_relu"]
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; known: {known}")
    return _GAINS[nonlinearity]


_SKIP = contextvars.ContextVar("neuronkit_skip_init", default=False)


@contextlib.contextmanager
def skip_init():
    """Within this block every initialiser here checks its arguments and returns the tensor as it is, drawing
    nothing: layers built inside keep the memory their constructor allocated (``empty``: arbitrary values) and cost
    no initialisation time (an orthogonal 4096 x 4096 init is a QR of that size). For a model whose every
    parameter and buffer is overwritten next, as ``neuronkit.io.load`` does: never train a model built here without
    loading its weights. The default generator is not advanced. Thread- and context-local."""
    token = _SKIP.set(True)
    try:
        yield
    finally:
        _SKIP.reset(token)


def skipping_init() -> bool:
    """True inside ``skip_init()``."""
    return _SKIP.get()


def fans(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of ``shape``; 1-D shapes count as (n, n)."""
    if len(shape) < 1:
        raise ValueError("fan-in and fan-out are undefined for a 0-d tensor")
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(t, arr):
    if _SKIP.get():
        return t
    t.data[...] = arr
    return t


def zeros_(t):
    """Fill with 0."""
    return _fill(t, 0)


def ones_(t):
    """Fill with 1."""
    return _fill(t, 1)


def constant_(t, value: float):
    """Fill with ``value``."""
    return _fill(t, value)


def uniform_(t, low: float = 0.0, high: float = 1.0, generator=None):
    """Draw from U(low, high)."""
    if _SKIP.get():
        return t
    return _fill(t, get_generator(generator).uniform(low, high, t.shape))


def normal_(t, mean: float = 0.0, std: float = 1.0, generator=None):
    """Draw from N(mean, std^2)."""
    if _SKIP.get():
        return t
    return _fill(t, get_generator(generator).normal(mean, std, t.shape))


def xavier_uniform_(t, gain: float = 1.0, generator=None):
    """Glorot/Xavier uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010)."""
    fi, fo = fans(t.shape)
    a = gain * math.sqrt(6.0 / (fi + fo))
    return uniform_(t, -a, a, generator)


def xavier_normal_(t, gain: float = 1.0, generator=None):
    """Glorot/Xavier normal: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = fans(t.shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fi + fo)), generator)


def _fan(t, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fi, fo = fans(t.shape)
    return fi if mode == "fan_in" else fo


def kaiming_uniform_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He/Kaiming uniform: U(-b, b) with b = gain * sqrt(3 / fan) (He et al. 2015); with the defaults (a=0, leaky
    relu) gain = sqrt(2), the choice for ReLU networks."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(t, mode))
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(t, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", generator=None):
    """He/Kaiming normal: N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(t, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(_fan(t, mode)), generator)


def lecun_uniform_(t, generator=None):
    """LeCun uniform: U(-b, b) with b = sqrt(3 / fan_in) (variance 1 / fan_in; for SELU networks)."""
    b = math.sqrt(3.0 / fans(t.shape)[0])
    return uniform_(t, -b, b, generator)


def lecun_normal_(t, generator=None):
    """LeCun normal: N(0, 1 / fan_in)."""
    return normal_(t, 0.0, 1.0 / math.sqrt(fans(t.shape)[0]), generator)


def orthogonal_(t, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix scaled by ``gain`` (Saxe et al. 2014): QR of a Gaussian matrix, signs fixed so the
    result is uniformly distributed. Shapes beyond 2-D are flattened to (out, rest)."""
    if t.ndim < 2:
        raise ValueError(f"orthogonal_: needs at least 2 dimensions, got shape {tuple(t.shape)}")
    if _SKIP.get():
        return t
    rows, cols = t.shape[0], math.prod(t.shape[1:])
    flat = get_generator(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = B.xp.linalg.qr(flat)
    q = q * B.xp.sign(B.xp.diag(r))
    if rows < cols:
        q = q.T
    return _fill(t, gain * q.reshape(t.shape))


INITIALIZERS = {
    "zeros": zeros_,
    "ones": ones_,
    "constant": constant_,
    "uniform": uniform_,
    "normal": normal_,
    "xavier_uniform": xavier_uniform_,
    "glorot_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "glorot_normal": xavier_normal_,
    "kaiming_uniform": kaiming_uniform_,
    "he_uniform": kaiming_uniform_,
    "kaiming_normal": kaiming_normal_,
    "he_normal": kaiming_normal_,
    "lecun_uniform": lecun_uniform_,
    "lecun_normal": lecun_normal_,
    "orthogonal": orthogonal_,
}


# -- initialisers with a parameter, named by a spec string ("uniform:0.05") ---------------------------------------
SPEC_MAX_LEN = 200  # a spec comes from a command line, a TOML file or a saved model: bounded
PARAM_MAX = 1e6  # |parameter| above this would overflow float32 weights or be a typo; refused
# name -> (what the parameter is, its default, whether it must be > 0, the distribution in words)
SCHEMES = {
    "default": ("gain", 1.0, True, "U(-g/sqrt(fan_in), g/sqrt(fan_in)), PyTorch's nn.Linear rule"),
    "uniform": ("bound", None, True, "U(-b, b); without a bound U(0, 1), as nn.init.uniform_"),
    "normal": ("std", 1.0, True, "N(0, s^2)"),
    "constant": ("value", 0.0, False, "every value v"),
    "zeros": (None, None, False, "every value 0"),
    "ones": (None, None, False, "every value 1"),
    "xavier_uniform": ("gain", 1.0, True, "U(-a, a), a = g sqrt(6 / (fan_in + fan_out))"),
    "glorot_uniform": ("gain", 1.0, True, "U(-a, a), a = g sqrt(6 / (fan_in + fan_out))"),
    "xavier_normal": ("gain", 1.0, True, "N(0, s^2), s = g sqrt(2 / (fan_in + fan_out))"),
    "glorot_normal": ("gain", 1.0, True, "N(0, s^2), s = g sqrt(2 / (fan_in + fan_out))"),
    "kaiming_uniform": ("gain", math.sqrt(2.0), True, "U(-b, b), b = g sqrt(3 / fan_in), g = sqrt(2)"),
    "he_uniform": ("gain", math.sqrt(2.0), True, "U(-b, b), b = g sqrt(3 / fan_in), g = sqrt(2)"),
    "kaiming_normal": ("gain", math.sqrt(2.0), True, "N(0, s^2), s = g / sqrt(fan_in), g = sqrt(2)"),
    "he_normal": ("gain", math.sqrt(2.0), True, "N(0, s^2), s = g / sqrt(fan_in), g = sqrt(2)"),
    "lecun_uniform": ("gain", 1.0, True, "U(-b, b), b = g sqrt(3 / fan_in)"),
    "lecun_normal": ("gain", 1.0, True, "N(0, s^2), s = g / sqrt(fan_in)"),
    "orthogonal": ("gain", 1.0, True, "a (semi-)orthogonal matrix times g"),
}
BIAS_SCHEMES = ("default", "uniform", "normal", "constant", "zeros", "ones")  # those that need no weight shape
DEFAULT_INIT_TEXT = "U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases (PyTorch's nn.Linear/Conv rule)"


def _fmt(v: float) -> str:
    return repr(float(v)) if v != int(v) or abs(v) >= 1e16 else str(int(v))


class Init:
    """A named initialiser with its one parameter, e.g. ``Init("uniform", 0.05)`` for U(-0.05, 0.05): callable
    as ``init(tensor, generator=None)`` like the functions above, and saved with a model as its spec string
    (``str(init)`` is ``"uniform:0.05"``; ``parse_init`` reads it back).

    Parameters by name (see ``SCHEMES``): ``uniform:B`` U(-B, B); ``normal:S`` N(0, S^2); ``constant:V``;
    ``default:G``, ``xavier_*:G``, ``kaiming_*``/``he_*:G``, ``lecun_*:G``, ``orthogonal:G`` scale the scheme by gain
    G (``he_uniform:1`` is ``lecun_uniform``); ``zeros`` and ``ones`` take none. Without a parameter a scheme is
    the registered function with its defaults. Parameters must be finite, at most 1e6 in size, and positive except
    ``constant``'s.
    """

    def __init__(self, name: str, param: float | None = None):
        if not isinstance(name, str) or name not in SCHEMES:
            raise ValueError(f"unknown initializer {name!r}; known: {sorted(SCHEMES)} (e.g. 'uniform:0.05')")
        what, _, positive, _ = SCHEMES[name]
        if param is not None:
            if what is None:
                raise ValueError(f"initializer {name!r} takes no parameter, got {param!r}")
            if isinstance(param, bool) or not isinstance(param, (int, float)):
                raise ValueError(f"initializer {name!r}: its {what} must be a number, got {param!r}")
            param = float(param)
            if not math.isfinite(param) or abs(param) > PARAM_MAX or (positive and param <= 0):
                sign = "positive, " if positive else ""
                raise ValueError(
                    f"initializer {name!r}: its {what} must be {sign}finite and at most {PARAM_MAX:g}, got {param!r}"
                )
        self.name, self.param = name, param

    def __call__(self, t, generator=None):
        n, p = self.name, self.param
        if n in ("zeros", "ones"):
            return INITIALIZERS[n](t)
        if n == "constant":
            return constant_(t, 0.0 if p is None else p)
        if p is None:
            return default_(t, generator=generator) if n == "default" else INITIALIZERS[n](t, generator=generator)
        if n == "default":
            return default_(t, gain=p, generator=generator)
        if n == "uniform":
            return uniform_(t, -p, p, generator)
        if n == "normal":
            return normal_(t, 0.0, p, generator)
        if n.startswith(("kaiming", "he_", "lecun")):  # gain / sqrt(fan_in) scaling, gain given
            fan = fans(t.shape)[0]
            if n.endswith("uniform"):
                b = p * math.sqrt(3.0 / fan)
                return uniform_(t, -b, b, generator)
            return normal_(t, 0.0, p / math.sqrt(fan), generator)
        return INITIALIZERS[n](t, gain=p, generator=generator)

    def __str__(self) -> str:
        return self.name if self.param is None else f"{self.name}:{_fmt(self.param)}"

    def __repr__(self) -> str:
        return f"Init({str(self)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Init) and (self.name, self.param) == (other.name, other.param)

    def __hash__(self) -> int:
        return hash((self.name, self.param))

    def describe(self) -> str:
        """The distribution in words, e.g. ``uniform:0.05 = U(-0.05, 0.05)``."""
        what, default, _, text = SCHEMES[self.name]
        p = self.param if self.param is not None else default
        if self.name == "uniform" and p is not None:
            return f"{self} = U(-{_fmt(p)}, {_fmt(p)})"
        if self.name == "normal":
            return f"{self} = N(0, {_fmt(p)}^2)"
        if self.name == "constant":
            return f"{self} = {_fmt(p)} everywhere"
        gain = f" with gain {p:.4g}" if what == "gain" else ""
        return f"{self}: {text}{gain}"


def default_(t, gain: float = 1.0, generator=None):
    """The default rule of ``Dense``/``Linear``/``Conv``: U(-g/sqrt(fan_in), g/sqrt(fan_in)) (g = 1: PyTorch's
    ``nn.Linear``, Kaiming uniform with a = sqrt(5); for a 1-D tensor fan_in is its length)."""
    b = gain / math.sqrt(fans(t.shape)[0])
    return uniform_(t, -b, b, generator)


def parse_init(spec) -> Init:
    """``"name"`` or ``"name:number"`` (or an ``Init``) as an ``Init``; ``ValueError`` naming what was expected."""
    if isinstance(spec, Init):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"an initializer spec must be a string such as 'uniform:0.05', got {type(spec).__name__}")
    if len(spec) > SPEC_MAX_LEN:
        raise ValueError(f"an initializer spec is at most {SPEC_MAX_LEN} characters, got {len(spec)}")
    name, sep, value = spec.strip().partition(":")
    name = name.strip().lower()
    if name not in SCHEMES:
        raise ValueError(f"unknown initializer {name!r}; known: {sorted(SCHEMES)} (e.g. 'uniform:0.05')")
    if not sep:
        return Init(name)
    try:
        param = float(value)
    except ValueError:
        what = SCHEMES[name][0] or "no parameter"
        raise ValueError(f"initializer {spec!r}: expected {name}:NUMBER (its {what}), got {value.strip()!r}") from None
    return Init(name, param)


def get_initializer(name):
    """The initialiser ``name`` names: a registered name (see ``INITIALIZERS``) gives its function, a spec with a
    parameter (``"uniform:0.05"``) an ``Init``; a callable is returned unchanged."""
    if callable(name):
        return name
    if isinstance(name, str) and name in INITIALIZERS:
        return INITIALIZERS[name]
    return parse_init(name)


def init_spec(init) -> str | None:
    """The JSON form of a layer's ``init``: None for the default rule, else a spec string. A function that is not
    registered is saved as ``"custom:NAME"``: the model's weights are saved, but rebuilding it from the file
    cannot re-run that function (``reset_parameters`` then says so)."""
    if init is None:
        return None
    if isinstance(init, Init):
        return str(init)
    if isinstance(init, str):
        return str(parse_init(init)) if not init.startswith("custom:") else init[:SPEC_MAX_LEN]
    for key, fn in INITIALIZERS.items():
        if fn is init:
            return key
    name = getattr(init, "__qualname__", None) or type(init).__name__
    return f"custom:{name}"[:SPEC_MAX_LEN]


class CustomInit:
    """A saved model's record of an initialiser function that was not saved: it refuses to run."""

    def __init__(self, spec: str):
        self.spec = spec

    def __call__(self, t, generator=None):
        if _SKIP.get():  # a model being loaded: its weights come from the file
            return t
        raise ValueError(
            f"the initializer {self.spec!r} was a Python function, not saved with the model; pass init= a "
            "registered name or spec (e.g. 'uniform:0.05') to reset these parameters"
        )

    def __str__(self) -> str:
        return self.spec


def resolve_init(init, bias: bool = False):
    """A layer's ``init`` (or ``bias_init`` with ``bias=True``) checked and made callable: None stays None (the
    default rule), a string is parsed (``"custom:NAME"`` becomes a ``CustomInit``), an ``Init`` or a function is kept.
    A bias takes only ``BIAS_SCHEMES`` (the others need a weight's fan-out)."""
    if init is None:
        return None
    if isinstance(init, str) and init.startswith("custom:"):
        return CustomInit(init[:SPEC_MAX_LEN])
    if callable(init) and not isinstance(init, Init):
        return init
    spec = parse_init(init)
    if bias and spec.name not in BIAS_SCHEMES:
        raise ValueError(
            f"bias_init {str(spec)!r}: a bias takes one of {', '.join(BIAS_SCHEMES)} (with a parameter, e.g. "
            "'zeros', 'constant:0.1', 'uniform:0.05', 'normal:0.01')"
        )
    return spec


def init_layer_(weight, bias, init, bias_init, generator=None):
    """Initialise a layer's ``weight`` (out, in, *kernel) and ``bias`` (out,) or None from one stream: ``init``
    None is the default rule (``default_``), ``bias_init`` None draws the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    with the weight's fan_in (as PyTorch does), ``"default:G"`` scales that range by G."""
    # One stream for weight and bias: passing an int seed to both would restart it, and the bias would repeat the
    # first weight draws (both ranges are 1/sqrt(fan_in) by default).
    rng = get_generator(generator)
    w_init = resolve_init(init)
    if w_init is None:
        default_(weight, generator=rng)
    else:
        w_init(weight, generator=rng)
    if bias is None:
        return
    b_init = resolve_init(bias_init, bias=True)
    if b_init is None or (isinstance(b_init, Init) and b_init.name == "default"):
        gain = 1.0 if b_init is None or b_init.param is None else b_init.param
        b = gain / math.sqrt(fans(weight.shape)[0])
        uniform_(bias, -b, b, generator=rng)
    else:
        b_init(bias, generator=rng)
