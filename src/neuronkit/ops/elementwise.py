"""Elementwise arithmetic: add, sub, mul, div, neg, pow, exp, log, sqrt, abs, maximum, minimum, clip, where, astype.

Binary ops broadcast as NumPy does; their backward sums the gradient back over broadcast axes (``unbroadcast``).
Gradients are only computed for inputs that need them (``self.next[i] is not None``).
"""

from __future__ import annotations

from .. import backend as B
from ..autograd.function import Function
from ..tensor import Tensor
from ._util import as_tensor, unbroadcast
from .registry import register


def _binary(cls, a, b):
    if type(a) is not Tensor:
        if type(b) is not Tensor:
            b = as_tensor(b)
        a = as_tensor(a, b)
        b = _float_if_int(b, a)
    if type(b) is not Tensor:
        b = as_tensor(b, a)
        a = _float_if_int(a, b)
    return cls.apply(a, b)


def _float_if_int(t, lifted):
    """An integer tensor meeting a Python float becomes float32 (as in PyTorch), not float64 (NumPy's promotion)."""
    if lifted.data.dtype.kind == "f" and t.data.dtype.kind in "biu" and lifted.data.ndim == 0:
        return Tensor.from_array(t.data.astype(B.DEFAULT_FLOAT), False)
    return t


class Add(Function):
    name = "add"

    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return a + b

    def backward(self, g):
        return unbroadcast(g, self.sa), unbroadcast(g, self.sb)


class Sub(Function):
    name = "sub"

    def forward(self, a, b):
        self.sa, self.sb = a.shape, b.shape
        return a - b

    def backward(self, g):
        return unbroadcast(g, self.sa), (None if self.next[1] is None else unbroadcast(-g, self.sb))


class Mul(Function):
    name = "mul"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, g):
        a, b = self.a, self.b
        ga = None if self.next[0] is None else unbroadcast(g * b, a.shape)
        gb = None if self.next[1] is None else unbroadcast(g * a, b.shape)
        return ga, gb


class Div(Function):
    name = "div"

    def forward(self, a, b):
        self.a, self.b = a, b
        return a / b

    def backward(self, g):
        a, b = self.a, self.b
        ga = gb = None
        gb_ = g / b
        if self.next[0] is not None:
            ga = unbroadcast(gb_, a.shape)
        if self.next[1] is not None:
            gb = unbroadcast(-gb_ * a / b, b.shape)
        return ga, gb


class Pow(Function):
    name = "pow"

    def forward(self, a, b):
        self.a, self.b = a, b
        self.out = a**b
        return self.out

    def backward(self, g):
        xp = B.xp
        a, b = self.a, self.b
        ga = gb = None
        if self.next[0] is not None:
            ga = unbroadcast(g * b * a ** (b - 1), a.shape)
        if self.next[1] is not None:
            # d(a^b)/db = a^b ln a; PyTorch's convention: 0 where a == 0 and b >= 0 (not 0 * -inf = nan).
            with xp.errstate(divide="ignore", invalid="ignore"):
                d = self.out * xp.log(a)
            d = xp.where((a == 0) & (b >= 0), 0, d)
            gb = unbroadcast(g * d, b.shape)
        return ga, gb


class Maximum(Function):
    name = "maximum"
    pick = staticmethod(lambda a, b: a > b)
    op = staticmethod(lambda a, b: B.xp.maximum(a, b))

    def forward(self, a, b):
        self.a, self.b = a, b
        return self.op(a, b)

    def backward(self, g):
        a, b = self.a, self.b
        # Ties split the gradient evenly, as PyTorch does.
        wa = self.pick(a, b) + 0.5 * (a == b)
        ga = None if self.next[0] is None else unbroadcast(g * wa, a.shape)
        gb = None if self.next[1] is None else unbroadcast(g * (1 - wa), b.shape)
        return ga, gb


class Minimum(Maximum):
    name = "minimum"
    pick = staticmethod(lambda a, b: a < b)
    op = staticmethod(lambda a, b: B.xp.minimum(a, b))


@register("add")
def add(a, b) -> Tensor:
    """``a + b`` with broadcasting."""
    return _binary(Add, a, b)


@register("sub")
def sub(a, b) -> Tensor:
    """``a - b`` with broadcasting."""
    return _binary(Sub, a, b)


@register("mul")
def mul(a, b) -> Tensor:
    """``a * b`` with broadcasting."""
    return _binary(Mul, a, b)


@register("div")
def div(a, b) -> Tensor:
    """``a / b`` (true division) with broadcasting."""
    return _binary(Div, a, b)


@register("pow")
def pow(a, b) -> Tensor:  # noqa: A001 - mirrors the operator's name
    """``a ** b`` with broadcasting; both may require gradients (d/db = a^b ln a)."""
    return _binary(Pow, a, b)


@register("maximum")
def maximum(a, b) -> Tensor:
    """Elementwise maximum; where ``a == b`` each receives half the gradient."""
    return _binary(Maximum, a, b)


@register("minimum")
def minimum(a, b) -> Tensor:
    """Elementwise minimum; where ``a == b`` each receives half the gradient."""
    return _binary(Minimum, a, b)


class Unary(Function):
    """``y = f(x, **params)`` elementwise; backward multiplies by ``df(x, y, **params)`` from the saved input and
    output. Shared by the activation functions."""

    def forward(self, x, **params):
        self.x, self.params = x, params
        self.y = self.f(x, **params)
        return self.y

    def backward(self, g):
        return (g * self.df(self.x, self.y, **self.params),)


class Neg(Function):
    name = "neg"

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Exp(Unary):
    name = "exp"
    f = staticmethod(lambda x: B.xp.exp(x))
    df = staticmethod(lambda x, y: y)


class Log(Unary):
    name = "log"
    f = staticmethod(lambda x: B.xp.log(x))

    def backward(self, g):
        return (g / self.x,)


class Sqrt(Unary):
    name = "sqrt"
    f = staticmethod(lambda x: B.xp.sqrt(x))

    def backward(self, g):
        return (g / (2 * self.y),)


class Abs(Unary):
    name = "abs"
    f = staticmethod(lambda x: B.xp.abs(x))
    df = staticmethod(lambda x, y: B.xp.sign(x))


@register("neg")
def neg(x) -> Tensor:
    """``-x``."""
    return Neg.apply(as_tensor(x))


@register("exp")
def exp(x) -> Tensor:
    """``e ** x``."""
    return Exp.apply(as_tensor(x))


@register("log")
def log(x) -> Tensor:
    """Natural logarithm; ``log(0) = -inf`` and ``log(x < 0) = nan`` as IEEE says."""
    return Log.apply(as_tensor(x))


@register("sqrt")
def sqrt(x) -> Tensor:
    """Square root; the gradient at 0 is inf."""
    return Sqrt.apply(as_tensor(x))


@register("abs")
def abs(x) -> Tensor:  # noqa: A001
    """Absolute value; the gradient at 0 is 0 (sign(0))."""
    return Abs.apply(as_tensor(x))


class Clip(Function):
    name = "clip"

    def forward(self, x, lo=None, hi=None):
        self.x, self.lo, self.hi = x, lo, hi
        return B.xp.clip(x, lo, hi)

    def backward(self, g):
        x = self.x
        mask = None
        if self.lo is not None:
            mask = x >= self.lo
        if self.hi is not None:
            m = x <= self.hi
            mask = m if mask is None else mask & m
        return (g if mask is None else g * mask,)


@register("clip")
def clip(x, min=None, max=None) -> Tensor:  # noqa: A002
    """Limit ``x`` to ``[min, max]`` (either may be None). The gradient flows where ``min <= x <= max``."""
    if min is None and max is None:
        raise ValueError("clip: at least one of min and max must be given")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min must not exceed max, got min={min}, max={max}")
    return Clip.apply(as_tensor(x), lo=min, hi=max)


class Where(Function):
    name = "where"

    def forward(self, a, b, cond):
        self.cond = cond
        self.sa, self.sb = a.shape, b.shape
        return B.xp.where(self.cond, a, b)

    def backward(self, g):
        c = self.cond
        ga = None if self.next[0] is None else unbroadcast(B.xp.where(c, g, 0), self.sa)
        gb = None if self.next[1] is None else unbroadcast(B.xp.where(c, 0, g), self.sb)
        return ga, gb


@register("where")
def where(cond, a, b) -> Tensor:
    """``a`` where ``cond`` is true, else ``b`` (all three broadcast). ``cond`` receives no gradient."""
    c = cond.data if isinstance(cond, Tensor) else B.asarray(cond)
    if c.dtype.kind != "b":
        raise TypeError(f"where: cond must be a boolean tensor, got dtype {c.dtype}")
    if not isinstance(a, Tensor):
        a = as_tensor(a, b if isinstance(b, Tensor) else None)
    if not isinstance(b, Tensor):
        b = as_tensor(b, a)
    try:
        full = B.xp.broadcast_shapes(c.shape, a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"where: cannot broadcast cond {tuple(c.shape)}, a {tuple(a.shape)} and b {tuple(b.shape)} together"
        ) from None
    return Where.apply(a, b, cond=B.xp.broadcast_to(c, full))


class AsType(Function):
    name = "astype"

    def forward(self, x, dtype):
        self.src = x.dtype
        return x.astype(dtype)

    def backward(self, g):
        return (g.astype(self.src),)


@register("astype")
def astype(x, dtype) -> Tensor:
    """``x`` converted to ``dtype``; the gradient is converted back. Integer results do not track gradients."""
    x = as_tensor(x)
    dt = B.dtype(dtype)
    if dt.kind != "f":
        return Tensor.from_array(x.data.astype(dt), False)
    return AsType.apply(x, dtype=dt)
