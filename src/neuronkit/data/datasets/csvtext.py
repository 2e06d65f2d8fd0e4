"""Reading a CSV file's text: its encoding (UTF-8, refused in one line otherwise), its chunks of whole lines, its
first row, and the column names in messages."""

from __future__ import annotations

import csv
import difflib
import re
from pathlib import Path

from .errors import DataFileError, existing_file

__all__ = [
    "CHUNK_BYTES",
    "blank_pattern",
    "cells",
    "column_list",
    "count_lines",
    "decode",
    "first_row",
    "is_number",
    "maybe_blank",
    "missing_column",
    "open_csv",
    "raw_chunks",
    "read_csv_header",
]


BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}
CHUNK_BYTES = 1 << 18  # bytes parsed per call: enough to amortise the call, few enough that temporaries stay small


def open_csv(p: Path):
    """The file opened for binary reading, past a UTF-8 byte-order mark; UTF-16/32 files are refused."""
    fh = open(p, "rb")
    head = fh.read(4)
    for bom, name in BOMS.items():
        if head.startswith(bom):
            fh.close()
            raise DataFileError(
                f"{p}: row 1, column 1: the file is {name} text (it starts with a {name} byte-order mark); expected "
                "UTF-8 (or ASCII): save it as UTF-8"
            )
    fh.seek(3 if head.startswith(b"\xef\xbb\xbf") else 0)
    return fh


def raw_chunks(fh, size: int | None = None):
    """``(bytes, number of its first line)`` for successive chunks of whole lines of the open binary file ``fh``,
    each without its last line end (``size`` bytes read at a time; default ``CHUNK_BYTES``)."""
    pending, line, size = [], 1, size or CHUNK_BYTES
    while True:
        raw = fh.read(size)
        if not raw:
            break
        cut = raw.rfind(b"\n") + 1
        if cut == 0:  # no line end yet: keep the piece (joined once, so a long line costs its length, not its square)
            pending.append(raw)
            continue
        whole = b"".join([*pending, raw[:cut]])
        pending = [raw[cut:]]
        yield whole[:-1], line
        line += whole.count(b"\n")
    rest = b"".join(pending)
    if rest:
        yield rest, line


def decode(raw: bytes, p: Path, first_line: int, delimiter: str, names=None) -> str:
    """``raw`` (whole lines) as text; one line naming row and column (by name when ``names`` are known) for bytes
    that are not UTF-8 text."""
    nul = raw.find(b"\x00")
    try:
        if nul >= 0:
            raise UnicodeDecodeError("utf-8", raw, nul, nul + 1, "NUL byte")
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + raw.count(b"\n", 0, e.start)
        col = raw.count(delimiter.encode(), raw.rfind(b"\n", 0, e.start) + 1, e.start)
        col = repr(names[col]) if names is not None and col < len(names) else col + 1
        what = "a NUL byte (UTF-16 or binary data?)" if e.reason == "NUL byte" else f"byte 0x{raw[e.start]:02x}"
        raise DataFileError(
            f"{p}: row {line}, column {col}: {what} is not UTF-8 text; expected a UTF-8 (or ASCII) CSV file: save it "
            "as UTF-8 (e.g. from a Latin-1 or Windows-1252 export)"
        ) from None


def cells(line: str, delimiter: str) -> list:
    return next(csv.reader([line.rstrip("\r")], delimiter=delimiter))


def blank_pattern(delimiter: str):
    """A line holding nothing but spaces and delimiters (skipped, as csv.reader-based readers skip it)."""
    return re.compile(r"^[ \t\r" + re.escape(delimiter) + r"]*$")


def maybe_blank(text: str, delimiter: str) -> bool:
    """Whether the chunk may hold a blank line: one that starts with a space, a delimiter or a line end (a search
    for a line end followed by one of those, which runs at memchr speed), or a first or last line that starts or
    ends with one; a hit is checked line by line."""
    starts = " \t\r\n" + delimiter
    if not text or text[0] in starts or text[-1] in starts:  # the first or the last line may be blank
        return True
    return re.search("\n[" + re.escape(starts) + "]", text) is not None


def first_row(p: Path, delimiter: str):
    """``(cells, line number)`` of the first non-blank line, or None for a file with none."""
    blank = blank_pattern(delimiter)
    with open_csv(p) as fh:
        for number, raw in enumerate(fh, 1):  # line by line: only the first row is decoded here
            text = decode(raw.rstrip(b"\n"), p, number, delimiter)
            if not blank.match(text):
                return [c.strip() for c in cells(text, delimiter)], number
    return None


def is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_csv_header(path, delimiter: str = ",") -> list | None:
    """The first row's cells when it is a header (some cell is not a number), None when it holds only numbers.

    Raises ``FileNotFoundError`` for a missing file and ``DataFileError`` for an empty one or one that is not UTF-8.
    """
    p = existing_file(path)
    first = first_row(p, delimiter)
    if first is None:
        raise DataFileError(f"{p}: the file is empty")
    cells = first[0]
    return None if all(is_number(c) for c in cells) else cells


# -- columns ------------------------------------------------------------------------------------------------------
def column_list(names, head: int = 6, tail: int = 3) -> str:
    """Column names for a message: all of a few, the first ``head`` and last ``tail`` of many, with the count."""
    names = list(names)
    if len(names) <= head + tail + 1:
        return ", ".join(repr(n) for n in names)
    shown = [repr(n) for n in names[:head]] + ["..."] + [repr(n) for n in names[-tail:]]
    return ", ".join(shown) + f" ({len(names)} columns)"


def missing_column(p, name: str, names) -> DataFileError:
    """``no target column 'lable'; did you mean 'label'? the columns are ...``: the closest names first."""
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=3, cutoff=0.6)
    hint = f" did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return DataFileError(f"{p}: no target column {name!r};{hint} the columns are {column_list(names)}")


def count_lines(p: Path) -> int:
    n, last = 0, b"\n"
    with open(p, "rb") as fh:
        while raw := fh.read(1 << 24):
            n += raw.count(b"\n")
            last = raw[-1:]
    return n + (last != b"\n")
