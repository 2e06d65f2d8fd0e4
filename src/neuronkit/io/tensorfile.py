"""safetensors files, read header first: nothing is read past the header until it has been checked against itself
and against the file's size, and the data is then read straight into one array per tensor.

A safetensors file is an 8-byte little-endian header length ``n``, ``n`` bytes of JSON header
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}``) and the data section,
which the tensors' byte spans must tile exactly. Writing goes through the ``safetensors`` library; reading is ours,
so that a hostile file costs at most about its header's parse before it is refused (see ``MAX_*``).
"""

from __future__ import annotations

import math
import os
import warnings
from typing import NamedTuple

import safetensors.numpy as st_numpy

from .. import backend as B
from .errors import FormatError, NonFiniteWarning
from .files import atomic_write, open_regular, read_exact, short
from .jsonio import JsonLimits, parse_json

MAX_FILE_BYTES = 2**36
"""Largest weights file read (64 GiB)."""
MAX_TENSORS = 65_536
"""Most tensors in one file. The largest file neuronkit writes holds at most about 60,000: an architecture of
``MAX_LAYERS`` = 10,000 layers with at most five tensors each (BatchNorm), or an Adam(amsgrad) state of three arrays
for each of up to 20,000 parameters. (Public dense models hold about a thousand: ResNet-152 ~930, LLaMA-70B 723.)"""
MAX_HEADER_BYTES = 16 * 2**20
"""Largest header (16 MiB): 256 bytes per tensor at ``MAX_TENSORS``; an entry is about 80 bytes plus its name."""
MAX_NDIM = 32
HEADER_LIMITS = JsonLimits(MAX_HEADER_BYTES, containers=3 * MAX_TENSORS + 64, values=12 * MAX_TENSORS + 4096)
"""An entry is one object and two lists and about ``6 + ndim`` values (ndim up to 6 on average)."""

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


class TensorInfo(NamedTuple):
    """One header entry, checked: dtype, shape, and the byte span ``[begin, end)`` in the data section."""

    dtype: object
    shape: tuple
    begin: int
    end: int


# -- the header -----------------------------------------------------------------------------------------------------
_KEYS = {"dtype", "shape", "data_offsets"}


def _check_entry(name, info, body: int, where: str) -> TensorInfo:
    if type(info) is dict and info.keys() == _KEYS:  # the usual case, checked with no message built
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if (
            type(code) is str
            and code in DTYPES
            and type(shape) is list
            and len(shape) <= MAX_NDIM
            and (not shape or (set(map(type, shape)) == _INT and min(shape) >= 0))
            and type(offsets) is list
            and len(offsets) == 2
            and set(map(type, offsets)) == _INT
            and 0 <= offsets[0] <= offsets[1] <= body
            and offsets[1] - offsets[0] == math.prod(shape) * DTYPES[code].itemsize
        ):
            return TensorInfo(DTYPES[code], tuple(shape), offsets[0], offsets[1])
    return _entry_error(name, info, body, where)


def _entry_error(name, info, body: int, where: str):
    """Raise the ``FormatError`` saying what is wrong with the header entry ``info``."""
    w = f"{where}: tensor {short(name)}"
    if type(info) is not dict or info.keys() != _KEYS:
        got = sorted(info) if isinstance(info, dict) else type(info).__name__
        raise FormatError(f"{w}: expected keys ['data_offsets', 'dtype', 'shape'], got {short(got)}")
    code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if type(code) is not str or code not in DTYPES:
        raise FormatError(f"{w}: dtype {short(code)} is not one of {sorted(DTYPES)} (floats and integers only)")
    # set(map(type, ...)) checks every item in C: ints only (a bool's type is bool)
    if (
        type(shape) is not list
        or len(shape) > MAX_NDIM
        or (shape and (set(map(type, shape)) != _INT or min(shape) < 0))
    ):
        raise FormatError(f"{w}: shape must be a list of at most {MAX_NDIM} non-negative ints, got {short(shape)}")
    if type(offsets) is not list or len(offsets) != 2 or set(map(type, offsets)) != _INT:
        raise FormatError(f"{w}: data_offsets must be [begin, end] ints, got {short(offsets)}")
    begin, end = offsets
    if not 0 <= begin <= end <= body:
        raise FormatError(f"{w}: data_offsets {offsets} fall outside the {body}-byte data section")
    nbytes = math.prod(shape) * DTYPES[code].itemsize
    if end - begin != nbytes:
        raise FormatError(f"{w}: shape {shape} of {code} needs {nbytes} bytes, data_offsets give {end - begin}")
    raise AssertionError(f"{w}: rejected entry with no reason found")  # pragma: no cover


_INT = {int}


def _check_tiling(tensors: dict, body: int, where: str) -> None:
    """The spans cover the data section exactly: no gap, no overlap, nothing left after the last."""
    pos = 0
    for begin, end, name in sorted([(t.begin, t.end, name) for name, t in tensors.items()]):
        if begin != pos:
            why = "overlaps the tensor before it" if begin < pos else "leaves a gap before it"
            raise FormatError(f"{where}: tensor {short(name)} at bytes {begin}..{end} {why}")
        pos = end
    if pos != body:
        raise FormatError(f"{where}: {body - pos} bytes of data after the last tensor")


def check_header(header, body: int, where: str) -> tuple[dict, dict]:
    """``(name -> TensorInfo, metadata)`` from a parsed header, for a data section of ``body`` bytes.

    Checks: a JSON object; ``__metadata__`` maps strings to strings; at most ``MAX_TENSORS`` entries; each has
    exactly ``dtype`` (a float or integer code), ``shape`` (non-negative ints) and ``data_offsets`` whose span lies
    in the data section and is exactly the shape's byte size; the spans tile the data section.
    """
    if type(header) is not dict:
        raise FormatError(f"{where}: the header must be a JSON object, got {type(header).__name__}")
    header = dict(header)
    meta = header.pop("__metadata__", None)
    meta = {} if meta is None else meta
    if type(meta) is not dict or not all(isinstance(v, str) for v in meta.values()):
        raise FormatError(f"{where}: __metadata__ must map strings to strings")
    if len(header) > MAX_TENSORS:
        raise FormatError(f"{where}: {len(header)} tensors, more than the limit of {MAX_TENSORS}")
    tensors = {name: _check_entry(name, info, body, where) for name, info in header.items()}
    _check_tiling(tensors, body, where)
    return tensors, meta


def read_header(fd: int, size: int, where: str) -> tuple[dict, dict, int]:
    """``(tensors, metadata, data_start)`` of the open file ``fd`` of ``size`` bytes, positioned at its start:
    reads the 8-byte length and the header, and nothing more."""
    if size < 8:
        raise FormatError(f"{where}: truncated: {size} bytes, a safetensors file has at least 8")
    n = int.from_bytes(read_exact(fd, 8, where), "little")
    if n > size - 8:
        raise FormatError(f"{where}: header length {n} is more than the {size - 8} bytes after it (truncated?)")
    if n > MAX_HEADER_BYTES:
        raise FormatError(f"{where}: header of {n} bytes is over the limit of {MAX_HEADER_BYTES}")
    # no depth walk: check_header accepts nothing nested deeper than an entry's lists
    header = parse_json(read_exact(fd, n, where), f"{where} header", HEADER_LIMITS, depth=False)
    tensors, meta = check_header(header, size - 8 - n, where)
    return tensors, meta, 8 + n


# -- the data -------------------------------------------------------------------------------------------------------
def _read_into(f, a, where: str, name) -> None:
    view = memoryview(a.reshape(-1).view(B.xp.uint8))
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise FormatError(f"{where}: the file ended inside tensor {short(name)} (it changed while it was read)")
        got += n


def _nonfinite(a) -> int:
    """How many NaN or infinite values ``a`` holds (0 at the cost of a min and a max when there are none)."""
    if a.dtype.kind != "f" or a.size == 0 or (B.xp.isfinite(a.min()) and B.xp.isfinite(a.max())):
        return 0
    flat, step = a.reshape(-1), 2**20
    return sum(int(B.xp.count_nonzero(~B.xp.isfinite(flat[i : i + step]))) for i in range(0, flat.size, step))


def warn_nonfinite(arrays: dict, where: str) -> None:
    """One ``NonFiniteWarning`` naming the tensors of ``arrays`` that hold NaN or infinity, with their counts."""
    bad = [(k, n, a.size) for k, a in arrays.items() if (n := _nonfinite(a))]
    if bad:
        listed = ", ".join(f"{short(k)} ({n} of {size})" for k, n, size in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        warnings.warn(
            f"{where}: NaN or infinite values in {len(bad)} tensor(s): {listed}{more}", NonFiniteWarning, stacklevel=3
        )


class SafetensorsFile:
    """An open safetensors file whose header is read and checked (``tensors``, ``metadata``, ``elements``); the data
    is read by ``read()``. A context manager: leaving it closes the file.

    ``FormatError`` for anything wrong in the file (see ``check_header``), before any of the data is read.
    """

    def __init__(self, path, what: str = "weights"):
        self.path = os.fspath(path)
        self.fd, self.size = open_regular(self.path, what, MAX_FILE_BYTES)
        try:
            self.tensors, self.metadata, self.data_start = read_header(self.fd, self.size, self.path)
        except BaseException:
            self.close()
            raise
        self.elements = sum(math.prod(t.shape) for t in self.tensors.values())

    def read(self, warn: bool = True) -> dict:
        """name -> a new NumPy array for every tensor, read in file order; with ``warn``, a ``NonFiniteWarning`` when
        some hold NaN or infinity."""
        arrays = {}
        with open(self.fd, "rb", closefd=False) as f:
            f.seek(self.data_start)
            for name, t in sorted(self.tensors.items(), key=lambda kv: kv[1].begin):
                arrays[name] = B.xp.empty(t.shape, dtype=t.dtype)
                _read_into(f, arrays[name], self.path, name)
        if warn:
            warn_nonfinite(arrays, self.path)
        return arrays

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_safetensors(path, what: str = "weights", warn: bool = True) -> tuple[dict, dict]:
    """``(name -> array, metadata)`` of the safetensors file ``path``, checked (``FormatError``) before its data is
    read; with ``warn``, a ``NonFiniteWarning`` when arrays hold NaN or infinity."""
    with SafetensorsFile(path, what) as f:
        return f.read(warn), f.metadata


def write_safetensors(path, arrays: dict, metadata: dict | None = None) -> None:
    """Write name -> array (float or integer dtypes) to the safetensors file ``path``, atomically."""
    atomic_write(os.fspath(path), safetensors_bytes(arrays, metadata or None, os.fspath(path)))


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
