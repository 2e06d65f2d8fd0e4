"""Strict JSON, read with bounded cost and checked against a small schema, written with no NaN in it.

Reading (``read_json``, ``parse_json``): UTF-8 only; no NaN/Infinity literals, no number out of the float range or
longer than a few hundred characters, no repeated key in an object, at most ``MAX_JSON_DEPTH`` levels of nesting;
and before anything is parsed, the file's size and an upper bound on the objects, lists and values it holds
(counted in its raw bytes, a few milliseconds for megabytes) are checked against the ``JsonLimits`` of its kind, so
that no file can make the parser allocate far more than its legitimate worst case. ``check_json`` then checks the
document's shape against a schema and names the first path that is wrong. Every failure is a ``FormatError``
naming the file.

Writing (``dumps_json``, ``write_json``): always strict JSON (``allow_nan=False``); a non-finite float is written
as ``null`` (a NaN loss is "no value", and a standard JSON reader must be able to read every file neuronkit writes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from .. import backend as B
from .errors import FormatError
from .files import atomic_write, read_file, short

MAX_JSON_DEPTH = 128
"""Deepest nesting of lists and objects accepted in any JSON read."""
MAX_INT_DIGITS = 40
"""Longest integer literal accepted (a 128-bit generator state has 39 digits; longer numbers are no size, index,
count or state neuronkit uses, and converting them costs time quadratic in their length)."""
MAX_NUMBER_CHARS = 400


@dataclass(frozen=True)
class JsonLimits:
    """What one kind of JSON file may hold, checked before it is parsed.

    ``max_bytes``: the file's size. ``containers``: objects plus lists (count of ``{`` and ``[``). ``values``: an
    upper bound on its values (``,`` plus ``{`` plus ``[``). Both counts are taken over the raw bytes, so text
    inside strings counts too: an over-estimate, never an under-estimate. Files that grow with a run's length
    (history) add ``*_per_kib`` for each KiB of file. Parsed JSON costs about 100 bytes of memory per value and 150
    per container, so these bound the parse's memory and time."""

    max_bytes: int
    containers: int
    values: int
    containers_per_kib: int = 0
    values_per_kib: int = 0

    def check(self, data: bytes, what: str) -> int:
        """``FormatError`` naming ``what`` when ``data`` is over a limit; else the count of ``{`` and ``[``."""
        if len(data) > self.max_bytes:
            raise FormatError(f"{what}: {len(data)} bytes, more than the limit of {self.max_bytes}")
        kib = len(data) // 1024
        containers = data.count(b"{") + data.count(b"[")
        cap = self.containers + kib * self.containers_per_kib
        if containers > cap:
            raise FormatError(f"{what}: up to {containers} objects and lists, more than the limit of {cap}")
        values = containers + data.count(b",")
        cap = self.values + kib * self.values_per_kib
        if values > cap:
            raise FormatError(f"{what}: up to {values} values, more than the limit of {cap}")
        return containers


SMALL = JsonLimits(max_bytes=2**20, containers=2**12, values=2**16)
"""A small settings file (a pointer, a run's configuration without its class list)."""


# -- reading --------------------------------------------------------------------------------------------------------
def _reject_constant(name):
    raise FormatError(f"{name} is not a JSON number")


def _parse_int(s: str) -> int:
    if len(s) > MAX_INT_DIGITS + 1:
        raise FormatError(f"integer literal of {len(s)} characters is too large")
    return int(s)


def _parse_float(s: str) -> float:
    if len(s) > MAX_NUMBER_CHARS:
        raise FormatError(f"number literal of {len(s)} characters is too long")
    v = float(s)
    if not math.isfinite(v):
        raise FormatError(f"number {s[:40]} is out of the float range")
    return v


def _pairs(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise FormatError(f"key {short(k)} appears twice in one object")
            seen.add(k)
    return d


def _check_depth(obj, what: str) -> None:
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise FormatError(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
        children = node.values() if type(node) is dict else node
        stack.extend((v, depth + 1) for v in children if type(v) is dict or type(v) is list)


def parse_json(data: bytes, what: str, limits: JsonLimits, depth: bool = True, nonfinite: bool = False):
    """Decode strict JSON (see the module docstring) within ``limits``; any failure is a ``FormatError`` naming
    ``what``. ``depth=False`` skips the walk that checks ``MAX_JSON_DEPTH`` (the parser itself stops near 1,000
    levels): for a caller whose own checks accept nothing nested more than a few levels. ``nonfinite=True`` reads
    the literals ``NaN``, ``Infinity`` and ``-Infinity`` as floats: for the history files neuronkit wrote before its
    JSON was strict."""
    containers = limits.check(data, what)
    return _parse(data, what, depth and containers > MAX_JSON_DEPTH, nonfinite)


def _parse(data: bytes, what: str, depth: bool = True, nonfinite: bool = False):
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{what}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        obj = json.loads(
            text,
            parse_constant=float if nonfinite else _reject_constant,
            parse_int=_parse_int,
            parse_float=_parse_float,
            object_pairs_hook=_pairs,
        )
    except FormatError as e:
        raise FormatError(f"{what}: {e}") from e
    except RecursionError as e:
        raise FormatError(f"{what}: JSON nested too deeply") from e
    except ValueError as e:  # json.JSONDecodeError and int() limits
        raise FormatError(f"{what}: not valid JSON ({e})") from e
    if depth and (type(obj) is dict or type(obj) is list):
        _check_depth(obj, what)
    return obj


def read_json(path, what: str, limits: JsonLimits, schema=None, nonfinite: bool = False):
    """The JSON document in file ``path``, parsed within ``limits`` (``nonfinite``: see ``parse_json``) and, with
    ``schema``, checked by ``check_json``. ``what`` says what the file is in the message when it is missing or not a
    regular file."""
    path = str(path)
    obj = parse_json(read_file(path, what, limits.max_bytes), path, limits, nonfinite=nonfinite)
    if schema is not None:
        check_json(obj, schema, path)
    return obj


def read_jsonl(path, what: str, limits: JsonLimits, schema=None, nonfinite: bool = False) -> list:
    """The documents of the JSON Lines file ``path`` (one per non-blank line), the whole file within ``limits``,
    each checked against ``schema`` (``nonfinite``: see ``parse_json``); a damaged line is a ``FormatError`` naming
    the file and the line."""
    path = str(path)
    data = read_file(path, what, limits.max_bytes)
    limits.check(data, path)
    docs = []
    for i, line in enumerate(data.split(b"\n"), 1):
        if line.strip():
            docs.append(_parse(line, f"{path} line {i}", nonfinite=nonfinite))
            if schema is not None:
                check_json(docs[-1], schema, f"{path} line {i}")
    return docs


# -- schemas --------------------------------------------------------------------------------------------------------
class Range:
    """Schema: an int (not a bool) in ``[lo, hi]`` (``hi`` None: no upper bound)."""

    def __init__(self, lo: int, hi: int | None = None):
        self.lo, self.hi = lo, hi

    def ok(self, v) -> bool:
        return type(v) is int and v >= self.lo and (self.hi is None or v <= self.hi)

    def __str__(self):
        return f"an int >= {self.lo}" if self.hi is None else f"an int in [{self.lo}, {self.hi}]"


_NAMES = {int: "an int", float: "a number", str: "a string", bool: "true or false", dict: "an object", list: "a list"}


def describe(schema) -> str:
    """What ``schema`` accepts, in words."""
    if schema is None:
        return "null"
    if isinstance(schema, tuple):
        return " or ".join(describe(s) for s in schema)
    if isinstance(schema, dict):
        return "an object"
    if isinstance(schema, list):
        return f"a list of {describe(schema[0])}" if schema else "a list"
    return _NAMES.get(schema, str(schema))


def _json_type(v) -> str:
    for t, name in ((bool, "true/false"), (int, "int"), (float, "number"), (str, "string"), (dict, "object")):
        if isinstance(v, t):
            return name
    return "list" if isinstance(v, list) else "null"


def _matches_leaf(v, schema) -> bool:
    if schema is None:
        return v is None
    if isinstance(schema, Range):
        return schema.ok(v)
    if schema is float:
        return type(v) is float or type(v) is int
    if schema in (int, str, bool, dict, list):
        return type(v) is schema
    if isinstance(schema, dict):
        return type(v) is dict
    if isinstance(schema, list):
        return type(v) is list
    raise TypeError(f"check_json: {schema!r} is not a schema")


def check_json(value, schema, where: str, at: str = "") -> None:
    """Check the parsed JSON ``value`` against ``schema``; ``FormatError`` naming ``where`` and the first wrong path.

    A schema is ``int``, ``float`` (any number), ``str``, ``bool``, ``None``, ``dict`` / ``list`` (any object /
    list), a ``Range``, a tuple of alternatives, ``[item schema]`` (a list whose every item matches), or a dict
    ``{key: schema}``: an object with those keys (``"key?"``: optional; ``"*"``: the schema of every other key;
    without ``"*"`` other keys are allowed and not checked).
    """
    alternatives = schema if isinstance(schema, tuple) else (schema,)
    for s in alternatives:
        if _matches_leaf(value, s):
            if isinstance(s, dict):
                _check_object(value, s, where, at)
            elif isinstance(s, list) and s:
                for i, item in enumerate(value):
                    check_json(item, s[0], where, f"{at}[{i}]")
            return
    raise FormatError(
        f"{where}: {at or 'the document'} must be {describe(schema)}, got {_json_type(value)} {short(value)}"
    )


def _check_object(obj: dict, schema: dict, where: str, at: str) -> None:
    prefix = f"{at}." if at else ""
    for key, sub in schema.items():
        if key == "*":
            continue
        name = key[:-1] if key.endswith("?") else key
        if name in obj:
            check_json(obj[name], sub, where, prefix + name)
        elif not key.endswith("?"):
            raise FormatError(f"{where}: {prefix + name} is missing (expected {describe(sub)})")
    if "*" in schema:
        known = {k[:-1] if k.endswith("?") else k for k in schema}
        for k, v in obj.items():
            if k not in known:
                check_json(v, schema["*"], where, f"{prefix}{k}")


# -- writing --------------------------------------------------------------------------------------------------------
def to_json_value(value, where: str):
    """``value`` as plain JSON (tuples to lists, NumPy scalars to Python numbers), or ``TypeError`` / ``ValueError``
    naming ``where`` for anything JSON cannot hold exactly (objects, non-finite floats, non-string keys)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, B.xp.bool_):
        return bool(value)
    if isinstance(value, (int, B.xp.integer)):
        return int(value)
    if isinstance(value, (float, B.xp.floating)):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}: JSON holds only finite numbers")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [to_json_value(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has a key {k!r} of type {type(k).__name__}: JSON keys must be strings")
            out[k] = to_json_value(v, f"{where}.{k}")
        return out
    raise TypeError(f"{where} is a {type(value).__name__} ({short(value)}), which JSON cannot hold")


def _numpy_default(o):
    if isinstance(o, (B.xp.generic, B.xp.ndarray)):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} ({short(o)}) cannot be written as JSON")


def _finite_or_null(o):
    """A copy of ``o`` with NaN and infinities (Python or NumPy) replaced by None."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite_or_null(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_null(v) for v in o]
    if isinstance(o, (B.xp.generic, B.xp.ndarray)):
        return _finite_or_null(o.tolist())
    return o


def dumps_json(obj, indent: int | None = None) -> str:
    """``obj`` as strict JSON text: NumPy numbers and arrays as JSON numbers and lists, NaN and infinities as
    ``null`` (never the non-standard ``NaN``); ``TypeError`` for anything else JSON cannot hold."""
    try:
        return json.dumps(obj, indent=indent, allow_nan=False, ensure_ascii=False, default=_numpy_default)
    except ValueError:  # a non-finite float somewhere: the rare path, a converted copy
        return json.dumps(_finite_or_null(obj), indent=indent, allow_nan=False, ensure_ascii=False)


def dump_json(obj) -> bytes:
    """``obj`` as an indented strict JSON file's bytes (see ``dumps_json``)."""
    return (dumps_json(obj, indent=2) + "\n").encode("utf-8")


def write_json(path, obj, indent: int | None = 2) -> None:
    """Write ``obj`` to ``path`` as strict JSON (see ``dumps_json``), atomically (see ``atomic_write``)."""
    atomic_write(str(path), (dumps_json(obj, indent=indent) + "\n").encode("utf-8"))
