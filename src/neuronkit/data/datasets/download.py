"""Downloads: atomic (temp file + rename), sha256-checked, progress on a terminal only."""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["ChecksumError", "DownloadError", "cache_dir", "download", "sha256_of"]


class DownloadError(OSError):
    """A file could not be fetched (network failure, HTTP error)."""


class ChecksumError(ValueError):
    """A file's sha256 is not the one recorded for it."""


def cache_dir() -> Path:
    """Where downloads are kept: ``$NEURONKIT_CACHE`` or ``~/.cache/neuronkit``."""
    env = os.environ.get("NEURONKIT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "neuronkit"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _progress(name: str, done: int, total: int | None) -> None:
    if total:
        sys.stderr.write(f"\rdownloading {name}: {done / 1e6:.1f}/{total / 1e6:.1f} MB ({100 * done // total}%)")
    else:
        sys.stderr.write(f"\rdownloading {name}: {done / 1e6:.1f} MB")
    sys.stderr.flush()


def download(url: str, dest, sha256: str | None = None, timeout: float = 60.0, progress: bool | None = None) -> Path:
    """Fetch ``url`` to ``dest`` atomically; with ``sha256``, a file whose checksum differs is removed and refused.

    The bytes go to a temporary file beside ``dest`` that is renamed into place only when complete and verified,
    so an interrupted download never leaves a partial file under the final name. Progress is written to stderr
    only when it is a terminal (``progress=None``) or when ``progress=True``.

    Raises:
        DownloadError: on an HTTP error (e.g. 404) or a network failure, naming the URL.
        ChecksumError: when the downloaded bytes do not have the expected sha256.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    h = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as r:
                total = r.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                done = 0
                while chunk := r.read(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    done += len(chunk)
                    if progress:
                        _progress(dest.name, done, total)
            if progress:
                sys.stderr.write("\n")
        except urllib.error.HTTPError as e:
            raise DownloadError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            reason = getattr(e, "reason", e)
            raise DownloadError(
                f"could not download {url}: {reason} (no network? put a local copy in a folder and pass data_dir= "
                "or set NEURONKIT_DATA)"
            ) from None
        got = h.hexdigest()
        if sha256 is not None and got != sha256.lower():
            raise ChecksumError(
                f"checksum mismatch for {url}: expected sha256 {sha256}, got {got}; the downloaded file was removed"
            )
        os.replace(tmp, dest)
        tmp = None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
    return dest
