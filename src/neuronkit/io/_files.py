"""Careful file primitives for ``neuronkit.io``: bounded reads, atomic writes, strict JSON and a checked safetensors
reader. Everything a file's contents can get wrong ends in ``FormatError``; nothing here imports or calls a name
taken from a file.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile

import safetensors.numpy as st_numpy

from .. import backend as B
from .errors import FormatError

MAX_JSON_BYTES = 16 * 2**20
"""Largest architecture / optimizer JSON file read (16 MiB); a real one is a few KiB."""
MAX_HEADER_BYTES = 100_000_000
"""Largest safetensors header accepted (the safetensors library's own limit)."""
MAX_FILE_BYTES = 2**36
"""Largest weights file read (64 GiB)."""
MAX_JSON_DEPTH = 128
"""Deepest nesting of lists and objects accepted in any JSON read."""
MAX_INT_DIGITS = 20
"""Longest integer literal accepted in JSON (bigger numbers are no size, index or count neuronkit can use)."""
MAX_TENSORS = 1_000_000
MAX_NDIM = 32

DTYPES = {
    "F16": B.xp.dtype("<f2"),
    "F32": B.xp.dtype("<f4"),
    "F64": B.xp.dtype("<f8"),
    "I8": B.xp.dtype("i1"),
    "I16": B.xp.dtype("<i2"),
    "I32": B.xp.dtype("<i4"),
    "I64": B.xp.dtype("<i8"),
    "U8": B.xp.dtype("u1"),
    "U16": B.xp.dtype("<u2"),
    "U32": B.xp.dtype("<u4"),
    "U64": B.xp.dtype("<u8"),
}
"""safetensors dtype codes neuronkit reads and writes: floats and integers only."""


def _short(value, n: int = 60) -> str:
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def _passthrough(e: BaseException) -> bool:
    """Exceptions never turned into ``FormatError``: the user's interrupt and interpreter shutdown."""
    return isinstance(e, (KeyboardInterrupt, SystemExit, GeneratorExit))


# -- reading --------------------------------------------------------------------------------------------------------
def read_file(path: str, what: str, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit`` of them).

    A missing file, a directory, a FIFO or device (which could block forever) or a file over ``limit`` raises
    ``FormatError`` before anything is allocated. Other OS errors (permissions) pass through unchanged.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise FormatError(f"{what}: {path} does not exist") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{what}: {path} is not a regular file")
        size = st.st_size
        if size > limit:
            raise FormatError(f"{what}: {path} is {size} bytes, more than the limit of {limit}")
        chunks, got = [], 0
        while got < size:
            chunk = os.read(fd, min(size - got, 2**30))
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        if got != size or os.read(fd, 1):
            raise FormatError(f"{what}: {path} changed size while it was read")
        return b"".join(chunks)
    finally:
        os.close(fd)


# -- JSON -----------------------------------------------------------------------------------------------------------
def _reject_constant(name):
    raise FormatError(f"{name} is not a JSON number")


def _parse_int(s: str) -> int:
    if len(s) > MAX_INT_DIGITS + 1:
        raise FormatError(f"integer literal of {len(s)} characters is too large")
    return int(s)


def _parse_float(s: str) -> float:
    if len(s) > 400:
        raise FormatError(f"number literal of {len(s)} characters is too long")
    v = float(s)
    if not math.isfinite(v):
        raise FormatError(f"number {s[:40]} is out of the float range")
    return v


def _pairs(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise FormatError(f"key {_short(k)} appears twice in one object")
        d[k] = v
    return d


def parse_json(data: bytes, what: str):
    """Decode strict JSON: UTF-8, no NaN/Infinity, no out-of-range or absurdly long numbers, no repeated keys, at most
    ``MAX_JSON_DEPTH`` levels of nesting. Any failure is a ``FormatError`` naming ``what``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"{what}: not UTF-8 text ({e.reason} at byte {e.start})") from e
    try:
        obj = json.loads(
            text,
            parse_constant=_reject_constant,
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
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth > MAX_JSON_DEPTH:
                raise FormatError(f"{what}: JSON nested more than {MAX_JSON_DEPTH} levels deep")
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return obj


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
    raise TypeError(f"{where} is a {type(value).__name__} ({_short(value)}), which JSON cannot hold")


def dump_json(obj) -> bytes:
    return (json.dumps(obj, indent=2, allow_nan=False, ensure_ascii=False) + "\n").encode("utf-8")


# -- safetensors ----------------------------------------------------------------------------------------------------
def parse_safetensors(data: bytes, what: str) -> tuple[dict, dict]:
    """(name -> array, metadata) from the bytes of a safetensors file, checked before safetensors sees them.

    Checks: the 8-byte little-endian header length fits the file and ``MAX_HEADER_BYTES``; the header is a strict JSON
    object; every entry has exactly ``dtype`` (a float or integer code), ``shape`` (non-negative ints) and
    ``data_offsets`` whose span is exactly the shape's byte size; spans tile the data section with no gap, overlap or
    leftover; ``__metadata__`` maps strings to strings.
    """
    if len(data) < 8:
        raise FormatError(f"{what}: truncated: {len(data)} bytes, a safetensors file has at least 8")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise FormatError(f"{what}: header length {n} is more than the {len(data) - 8} bytes after it (truncated?)")
    if n > MAX_HEADER_BYTES:
        raise FormatError(f"{what}: header of {n} bytes is over the limit of {MAX_HEADER_BYTES}")
    header = parse_json(data[8 : 8 + n], f"{what} header")
    if not isinstance(header, dict):
        raise FormatError(f"{what}: the header must be a JSON object, got {type(header).__name__}")
    header = dict(header)
    meta = header.pop("__metadata__", None)
    if meta is None:
        meta = {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{what}: __metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise FormatError(f"{what}: {len(header)} tensors, more than the limit of {MAX_TENSORS}")
    body = len(data) - 8 - n
    spans = []
    for name, info in header.items():
        w = f"{what}: tensor {_short(name)}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            got = sorted(info) if isinstance(info, dict) else type(info).__name__
            raise FormatError(f"{w}: expected keys ['data_offsets', 'dtype', 'shape'], got {_short(got)}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(code, str) or code not in DTYPES:
            raise FormatError(f"{w}: dtype {_short(code)} is not one of {sorted(DTYPES)} (floats and integers only)")
        if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(type(d) is int and d >= 0 for d in shape):
            raise FormatError(f"{w}: shape must be a list of at most {MAX_NDIM} non-negative ints, got {_short(shape)}")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise FormatError(f"{w}: data_offsets must be [begin, end] ints, got {_short(offsets)}")
        begin, end = offsets
        if not 0 <= begin <= end <= body:
            raise FormatError(f"{w}: data_offsets {offsets} fall outside the {body}-byte data section")
        nbytes = math.prod(shape) * DTYPES[code].itemsize
        if end - begin != nbytes:
            raise FormatError(f"{w}: shape {shape} of {code} needs {nbytes} bytes, data_offsets give {end - begin}")
        spans.append((begin, end, name))
    spans.sort(key=lambda s: (s[0], s[1]))
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            why = "overlaps the tensor before it" if begin < pos else "leaves a gap before it"
            raise FormatError(f"{what}: tensor {_short(name)} at bytes {begin}..{end} {why}")
        pos = end
    if pos != body:
        raise FormatError(f"{what}: {body - pos} bytes of data after the last tensor")
    try:
        arrays = st_numpy.load(data)
    except BaseException as e:  # safetensors raises its own errors and, on a Rust panic, a BaseException
        if _passthrough(e):
            raise
        raise FormatError(f"{what}: safetensors could not read it: {e}") from e
    if set(arrays) != set(header):
        raise FormatError(f"{what}: safetensors read different tensor names than the header lists")
    for name, a in arrays.items():
        info = header[name]
        if a.dtype != DTYPES[info["dtype"]] or list(a.shape) != info["shape"]:
            raise FormatError(
                f"{what}: tensor {_short(name)} read back as {a.dtype}{a.shape}, header says "
                f"{info['dtype']}{info['shape']}"
            )
    return arrays, meta


def safetensors_bytes(arrays: dict, metadata: dict, where: str) -> bytes:
    """Serialise name -> array (float or integer dtypes only) as safetensors bytes."""
    out = {}
    for name, a in arrays.items():
        a = B.xp.asarray(a)
        if a.dtype.newbyteorder("<") not in DTYPES.values():
            raise TypeError(f"{where}: {name!r} has dtype {a.dtype}; only float and integer arrays can be saved")
        # asarray(order="C") keeps a 0-d array 0-d (ascontiguousarray would make it 1-d)
        out[name] = B.xp.asarray(a.astype(a.dtype.newbyteorder("<"), copy=False), order="C")
    return st_numpy.save(out, metadata=metadata)


# -- writing --------------------------------------------------------------------------------------------------------
def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part: a temporary
    file in the same directory, flushed and fsync'ed, then ``os.replace``."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        try:
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        except OSError:
            pass
        finally:
            os.close(dfd)
