"""Careful file primitives: bounded reads of regular files and atomic writes.

Reading never blocks on a FIFO or a device and never allocates more than the caller's limit; anything wrong with
the path (missing, not a regular file, a symbolic-link loop, over the limit) is a ``FormatError`` naming it. Writing
goes through a temporary file, fsync and ``os.replace``, so a reader sees the old file or the whole new one; an
operating-system failure (disk full, file-size limit) is a ``WriteError`` naming the file.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile

from .errors import FormatError, WriteError

_MISSING = (errno.ENOENT, errno.ENOTDIR)
TEMP_FILE = re.compile(r"\..+\.([0-9]{1,10})\.tmp")
"""The name of a temporary file of ``atomic_write``; group 1 is the writer's PID."""
_UNREADABLE_PATH = {errno.ELOOP: "a symbolic link loop", errno.ENAMETOOLONG: "a path too long for the system"}


def short(value, n: int = 60) -> str:
    """``repr(value)`` cut to ``n`` characters (for messages that quote what a file holds)."""
    r = repr(value)
    return r if len(r) <= n else r[: n - 3] + "..."


def is_passthrough(e: BaseException) -> bool:
    """Exceptions never turned into ``FormatError``: the user's interrupt and interpreter shutdown."""
    return isinstance(e, (KeyboardInterrupt, SystemExit, GeneratorExit))


# -- reading --------------------------------------------------------------------------------------------------------
def open_regular(path: str, what: str, limit: int) -> tuple[int, int]:
    """``(fd, size)`` of the regular file ``path``, opened for reading; the caller closes ``fd``.

    A missing file, a symbolic-link loop, a directory, a FIFO or device (which could block forever) or a file over
    ``limit`` bytes raises ``FormatError`` before anything is read. Other OS errors (permissions) pass through.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno in _MISSING:
            raise FormatError(f"{what}: {path} does not exist") from e
        if e.errno in _UNREADABLE_PATH:
            raise FormatError(f"{what}: {path} is {_UNREADABLE_PATH[e.errno]}, not a file") from e
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{what}: {path} is not a regular file")
        if st.st_size > limit:
            raise FormatError(f"{what}: {path} is {st.st_size} bytes, more than the limit of {limit}")
    except BaseException:
        os.close(fd)
        raise
    return fd, st.st_size


def read_exact(fd: int, n: int, what: str) -> bytes:
    """The next ``n`` bytes of ``fd``; ``FormatError`` if the file ends first (it shrank while being read)."""
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 2**30))
        if not chunk:
            raise FormatError(f"{what}: the file ended after {got} of {n} bytes (it changed while it was read)")
        chunks.append(chunk)
        got += len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_file(path: str, what: str, limit: int) -> bytes:
    """The bytes of the regular file ``path`` (at most ``limit`` of them; see ``open_regular`` for what fails)."""
    fd, size = open_regular(path, what, limit)
    try:
        data = read_exact(fd, size, f"{what}: {path}")
        if os.read(fd, 1):
            raise FormatError(f"{what}: {path} grew while it was read")
        return data
    finally:
        os.close(fd)


# -- writing --------------------------------------------------------------------------------------------------------
def write_error(e: OSError, path: str, doing: str = "write") -> WriteError:
    """``e`` as a one-line ``WriteError`` naming ``path`` (keeps ``errno``)."""
    if isinstance(e, WriteError):
        return e
    reason = e.strerror or str(e)
    return WriteError(f"cannot {doing} {path}: {reason}", e.errno, reason)


def fsync_dir(directory: str) -> None:
    """Make renames and new entries in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        try:
            os.close(fd)
        except OSError:  # never fails a write that already happened
            pass


def atomic_write(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the whole new one, never a part: a temporary
    file in the same directory (``.NAME.XXXX.PID.tmp``: a kill leaves it, ``TEMP_FILE`` finds it), flushed and
    fsync'ed, then ``os.replace``, then the directory fsync'ed.

    An OS failure (``ENOSPC``, ``EFBIG``, permissions...) raises ``WriteError`` naming ``path``; the old file, if
    any, is untouched and the temporary file removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=f".{os.getpid()}.tmp", dir=directory)
    except OSError as e:
        raise write_error(e, path) from None
    try:
        try:
            view, done = memoryview(data), 0
            while done < len(view):  # unbuffered: a failed write is not retried by a flush at close
                done += os.write(fd, view[done : done + 2**30])
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.chmod(tmp, 0o644)  # mkstemp makes 0600 files
        except OSError:
            pass
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise write_error(e, path) from None
        raise
    fsync_dir(directory)
