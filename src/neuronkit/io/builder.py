"""Rebuilding a model from its architecture's layer specs, only through the layer registry.

``Builder(budget, where).build(spec, at)`` checks a ``{"class": name, "config": {...}}`` spec (and the specs nested
in it) against ``neuronkit.nn.registry.LAYERS`` and each constructor's signature, read as text (annotations and
defaults, never evaluated), converts the JSON values to what the signature allows, estimates what each constructor
will allocate against ``budget``, and only then calls it. ``check`` does the same without constructing anything.
Every problem is a ``FormatError`` naming the file and the path of the spec.
"""

from __future__ import annotations

import inspect

from ..nn.module import Module
from ..nn.registry import LAYERS
from .errors import FormatError
from .files import is_passthrough, short

MAX_LAYERS = 10_000
"""Most layer specs one architecture may hold."""
MAX_INT = 2**53
"""Largest magnitude of an integer config value."""
MAX_STR = 4096
MAX_LIST = 100_000
COST_FACTOR, COST_FLOOR = 8, 2**20
"""Constructors may allocate at most ``max(COST_FACTOR * elements in the weights file, COST_FLOOR)`` array elements
in all (estimated before each is called): a file cannot make ``load`` allocate far more memory than it holds."""
FLOAT_DTYPES = ("float16", "float32", "float64")
"""The values a config argument called ``dtype`` may take."""


# -- rebuilding through the registry ----------------------------------------------------------------------------------
class _Kind:
    """One alternative of an argument's type: "none", "bool", "int", "float", "str", "list", "tuple", "dict", "json",
    or "module" (a nested layer spec; ``cls`` the expected base class)."""

    __slots__ = ("name", "items", "cls")

    def __init__(self, name: str, items=None, cls=None):
        self.name, self.items, self.cls = name, items, cls

    def __repr__(self):
        if self.name in ("list", "tuple"):
            return f"{self.name}[{' | '.join(map(repr, self.items))}]" if self.items else self.name
        if self.name == "module":
            return f"layer spec ({self.cls.__name__ if self.cls else 'Module'})"
        return self.name


_SCALARS = [_Kind("none"), _Kind("bool"), _Kind("int"), _Kind("float"), _Kind("str")]
_ANY = [*_SCALARS, _Kind("list", [_Kind("json")]), _Kind("dict")]


def _split_top(s: str, sep: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _parse_annotation(text: str) -> list[_Kind]:
    """The JSON kinds an annotation string allows (``"int | tuple[int, int] | None"``); unknown names add nothing.
    Annotations are read as text, never evaluated."""
    kinds = []
    for part in _split_top(text, "|"):
        base, _, inner = part.partition("[")
        inner = inner[:-1] if inner.endswith("]") else inner
        base = base.strip().split(".")[-1]
        if base == "Optional":
            kinds += _parse_annotation(inner) + [_Kind("none")]
        elif base == "Union":
            for sub in _split_top(inner, ","):
                kinds += _parse_annotation(sub)
        elif base in ("None", "NoneType"):
            kinds.append(_Kind("none"))
        elif base in ("bool", "int", "float", "str"):
            kinds.append(_Kind(base))
        elif base in ("list", "List", "Sequence", "Iterable"):
            kinds.append(_Kind("list", _parse_annotation(inner) if inner else [_Kind("json")]))
        elif base in ("tuple", "Tuple"):
            items = [k for a in _split_top(inner, ",") if a != "..." for k in _parse_annotation(a)] if inner else []
            kinds.append(_Kind("tuple", items or [_Kind("json")]))
        elif base in ("dict", "Dict", "Mapping"):
            kinds.append(_Kind("dict"))
        elif base == "Any":
            kinds += _ANY
        elif base == "Module":
            kinds.append(_Kind("module", cls=Module))
        elif base in LAYERS:
            kinds.append(_Kind("module", cls=LAYERS[base]))
    return kinds


def _kinds_of_default(default) -> list[_Kind]:
    if default is inspect.Parameter.empty:
        return list(_ANY)
    if default is None:
        return list(_SCALARS)
    if isinstance(default, bool):
        return [_Kind("bool")]
    if isinstance(default, int):
        return [_Kind("int")]
    if isinstance(default, float):
        return [_Kind("float")]
    if isinstance(default, str):
        return [_Kind("str")]
    if isinstance(default, (list, tuple)):
        return [_Kind("list", list(_SCALARS))]
    return []


class _Param:
    __slots__ = ("kinds", "required", "var")

    def __init__(self, kinds, required, var):
        self.kinds, self.required, self.var = kinds, required, var


_PARAMS_CACHE: dict = {}


def _constructor_params(cls) -> dict:
    """Config key -> _Param for ``cls``'s constructor: names, whether required, and the JSON kinds allowed."""
    if cls in _PARAMS_CACHE:
        return _PARAMS_CACHE[cls]
    sig = inspect.signature(cls)
    params = {}
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            for k, v in (getattr(cls, "defaults", None) or {}).items():  # activations: options with defaults
                params[k] = _Param(_kinds_of_default(v), False, False)
            continue
        ann = p.annotation
        if ann is p.empty:
            kinds = []
        elif isinstance(ann, str):
            kinds = _parse_annotation(ann)
        else:
            kinds = _parse_annotation(ann.__name__ if isinstance(ann, type) else str(ann).replace("typing.", ""))
        if not kinds:
            kinds = _kinds_of_default(p.default)
        if p.default is None and not any(k.name == "none" for k in kinds):
            kinds.append(_Kind("none"))
        if p.kind is p.VAR_POSITIONAL:
            params[p.name] = _Param([_Kind("list", kinds)], False, True)
        else:
            params[p.name] = _Param(kinds, p.default is p.empty, False)
    _PARAMS_CACHE[cls] = params
    return params


def _is_spec(v) -> bool:
    return isinstance(v, dict) and "class" in v


def _cost(cls, config: dict, where: str) -> int:
    """Estimated array elements ``cls(**config)`` allocates: ``cls.config_cost(config)`` if defined, else the product
    of the config's integers >= 2 (nested layer specs are counted on their own)."""
    custom = getattr(cls, "config_cost", None)
    if custom is not None:
        try:
            c = custom(config)
        except Exception as e:
            raise FormatError(f"{where}: {cls.__name__}.config_cost failed on this config: {e}") from e
        if type(c) is not int or c < 0:
            raise FormatError(f"{where}: {cls.__name__}.config_cost returned {short(c)}")
        return c
    cost, stack = 1, list(config.values())
    while stack:
        v = stack.pop()
        if type(v) is int and v >= 2:
            cost *= v
            if cost > 2**64:
                return cost
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict) and not _is_spec(v):
            stack.extend(v.values())
    return cost


class Builder:
    """Checks layer specs against the registry and the constructors' signatures, then builds the modules."""

    def __init__(self, budget, where: str):
        self.budget, self.where, self.spent, self.layers = budget, where, 0, 0

    def fail(self, at: str, msg: str):
        raise FormatError(f"{self.where}: {at}: {msg}")

    def check(self, spec, at: str) -> None:
        """Validate without constructing anything (used by ``save``)."""
        self._resolve(spec, at, build=False)

    def build(self, spec, at: str) -> Module:
        return self._resolve(spec, at, build=True)

    def _resolve(self, spec, at: str, build: bool):
        self.layers += 1
        if self.layers > MAX_LAYERS:
            self.fail(at, f"more than {MAX_LAYERS} layers")
        if not isinstance(spec, dict) or set(spec) != {"class", "config"}:
            got = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
            self.fail(at, f"a layer must be {{'class': name, 'config': {{...}}}}, got {short(got)}")
        name, config = spec["class"], spec["config"]
        if not isinstance(name, str) or name not in LAYERS:
            self.fail(at, f"unknown layer class {short(name)}: not in the layer registry (known: {sorted(LAYERS)})")
        cls = LAYERS[name]
        if not isinstance(config, dict):
            self.fail(at, f"config of {name} must be a JSON object, got {type(config).__name__}")
        try:
            params = _constructor_params(cls)
        except (TypeError, ValueError) as e:
            self.fail(at, f"the signature of {name} cannot be read: {e}")
        args, kwargs = [], {}
        for key, value in config.items():
            p = params.get(key)
            if p is None:
                self.fail(at, f"{name} takes no argument {short(key)} (it takes {sorted(params)})")
            value = self._convert(value, p.kinds, f"{at}.config.{key}", build, key)
            if p.var:
                args = list(value)
            else:
                kwargs[key] = value
        missing = [k for k, p in params.items() if p.required and k not in config]
        if missing:
            self.fail(at, f"{name} config lacks required argument(s) {missing}")
        if not build:
            return None
        if self.budget is not None:
            self.spent += _cost(cls, config, f"{self.where}: {at}")
            if self.spent > self.budget:
                self.fail(
                    at,
                    f"the layers would allocate over {self.budget} array elements, far more than the "
                    f"weights file holds",
                )
        try:
            module = cls(*args, **kwargs)
        except BaseException as e:
            if is_passthrough(e):
                raise
            self.fail(at, f"{name}(...) rejected its config: {type(e).__name__}: {e}")
        if not isinstance(module, Module):
            self.fail(at, f"{name} did not build a Module")
        return module

    def _convert(self, value, kinds, at: str, build: bool, key: str | None = None):
        names = {k.name for k in kinds}
        if value is None:
            if "none" in names or "json" in names:
                return None
        elif isinstance(value, bool):
            if "bool" in names or "json" in names:
                return value
        elif isinstance(value, int):
            if names & {"int", "float", "json"}:
                if abs(value) > MAX_INT:
                    self.fail(at, f"integer {short(value)} is out of range (|n| <= 2**53)")
                return value
        elif isinstance(value, float):
            if "float" in names or "json" in names:
                return value
        elif isinstance(value, str):
            if "str" in names or "json" in names:
                if len(value) > MAX_STR:
                    self.fail(at, f"string of {len(value)} characters is too long")
                if key == "dtype" and value not in FLOAT_DTYPES:
                    self.fail(at, f"dtype {short(value)} is not one of {list(FLOAT_DTYPES)}")
                return value
        elif isinstance(value, list):
            seq = next((k for k in kinds if k.name in ("list", "tuple")), None)
            if seq is None and "json" in names:
                seq = _Kind("list", [_Kind("json")])
            if seq is not None:
                if len(value) > MAX_LIST:
                    self.fail(at, f"list of {len(value)} items is too long")
                items = [self._convert(v, seq.items, f"{at}[{i}]", build) for i, v in enumerate(value)]
                wants_list = any(k.name == "list" for k in kinds)
                return items if wants_list or seq.name == "list" else tuple(items)
        elif isinstance(value, dict):
            module_kind = next((k for k in kinds if k.name == "module"), None)
            if module_kind is not None and _is_spec(value):
                m = self._resolve(value, at, build)
                if build and not isinstance(m, module_kind.cls):
                    self.fail(at, f"expected a {module_kind.cls.__name__}, got {type(m).__name__}")
                return m
            if "dict" in names or "json" in names:
                for k, v in value.items():
                    self._convert(v, [_Kind("json")], f"{at}.{k}", build)
                return value
        self.fail(
            at, f"expected {' | '.join(map(repr, kinds)) or 'nothing'}, got {type(value).__name__} {short(value)}"
        )
