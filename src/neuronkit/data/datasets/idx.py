"""IDX files (the MNIST format), optionally gzipped: one reader, ``read_idx``, with validated headers.

Layout: 2 zero bytes, a type byte (0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64), a
byte with the number of dimensions, then one big-endian uint32 per dimension, then the data, big-endian, C order.
So the magic numbers are 2049 (0x00000801: ubyte, 1-D labels) and 2051 (0x00000803: ubyte, 3-D images).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IdxFormatError", "parse_idx", "read_idx", "write_idx"]

_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {v.newbyteorder("="): k for k, v in _TYPES.items()}


class IdxFormatError(ValueError):
    """A file is not a well-formed IDX file."""


def decompress(raw: bytes, name: str) -> bytes:
    """``raw`` gunzipped when it starts with gzip's magic bytes, else unchanged; ``name`` names the file in errors."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise IdxFormatError(f"{name}: corrupt gzip data ({e})") from None


def parse_idx(data: bytes, name: str = "<bytes>", expected_magic: int | None = None) -> np.ndarray:
    """The array held in the (decompressed) IDX bytes ``data``; ``name`` is used in error messages."""
    if len(data) < 4:
        raise IdxFormatError(f"{name}: not an IDX file: {len(data)} bytes, expected at least a 4-byte header")
    magic = int.from_bytes(data[:4], "big")
    if data[0] != 0 or data[1] != 0 or data[2] not in _TYPES or data[3] == 0:
        raise IdxFormatError(
            f"{name}: bad IDX magic number {magic} (0x{magic:08x}): expected 0x0000TTDD with a known type byte TT "
            "and DD >= 1 dimensions, e.g. 2049 for labels or 2051 for images"
        )
    if expected_magic is not None and magic != expected_magic:
        raise IdxFormatError(f"{name}: IDX magic number {magic}, expected {expected_magic}")
    dtype, ndim = _TYPES[data[2]], data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxFormatError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header} header bytes, file has {len(data)}"
        )
    dims = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise IdxFormatError(
            f"{name}: IDX file {what}: header says shape {dims} of {dtype.newbyteorder('=').name} = {expected} data "
            f"bytes, the file holds {actual}"
        )
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path, expected_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not: detected from the content) into a native-endian NumPy array.

    Raises ``FileNotFoundError`` for a missing file and ``IdxFormatError`` (a ``ValueError``) for a bad magic
    number, an unknown type, or a size that does not match the header's dimensions (truncated or padded files).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    return parse_idx(decompress(path.read_bytes(), str(path)), str(path), expected_magic)


def write_idx(path, array, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file (gzipped when ``compress`` or when the name ends in ``.gz``)."""
    path = Path(path)
    a = np.asarray(array)
    code = _CODES.get(a.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"write_idx: dtype {a.dtype} has no IDX type; use uint8, int8, int16, int32, float32, float64")
    if a.ndim == 0 or a.ndim > 255:
        raise ValueError(f"write_idx: expected 1 to 255 dimensions, got shape {a.shape}")
    header = bytes([0, 0, code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    data = header + np.ascontiguousarray(a, dtype=_TYPES[code]).tobytes()
    if compress or (compress is None and path.suffix == ".gz"):
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path
