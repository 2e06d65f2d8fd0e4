"""A run's cache of its parsed CSV file, so that its later commands do not parse the file again.

``neuronkit train --data my.csv`` parses the file once and writes the splits it made to ``RUN/data-cache/``:
``x_train.npy``, ``y_train.npy``, ``x_test.npy``, ``y_test.npy``, ``test_rows.npy`` (plain ``.npy`` arrays of numbers,
never of objects) and ``meta.json`` (the source file's absolute path, size and modification time, the settings that
decide the splits, and the class names). ``evaluate``, ``report``, ``inspect``, ``diagnose``, ``gradcheck`` and
``--resume`` read the cache instead of the file while the file's size and modification time are unchanged; a stale or
damaged cache is rebuilt from the file. The cache costs disk about the size of the parsed data (4 bytes per value).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

CACHE = "data-cache"
FORMAT = 1
ARRAYS = ("x_train", "y_train", "x_test", "y_test", "test_rows")
KEYS = ("target", "task", "seed", "test_fraction")  # the settings that decide what load_data returns
FIELDS = ("name", "task", "classes", "source", "target_name", "pixel_max", "row_word")  # Loaded's other fields


def _stat(path: Path) -> dict:
    st = path.stat()
    return {"path": os.fspath(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _source(cfg, meta: dict) -> Path | None:
    """The data file the cache must match: ``cfg.data`` as given, or, when that path does not exist from here
    (a relative path, a command run from another folder), the file the cache was made from."""
    given = Path(cfg.data).expanduser()
    if given.exists():
        return given
    recorded = Path(meta.get("file", {}).get("path", ""))
    return recorded if recorded.name == given.name and recorded.is_file() else None


def _valid(cfg, meta) -> bool:
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("file"), dict):
        return False
    if meta.get("settings") != {k: getattr(cfg, k) for k in KEYS}:
        return False
    src = _source(cfg, meta)
    return src is not None and _stat(src) == meta["file"]


def load(cfg, make):
    """The cached splits as ``make(**fields)`` (a ``Loaded``), or None without a current cache in ``cfg.out``."""
    if cfg.out is None:
        return None
    root = Path(cfg.out) / CACHE
    try:
        meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
        if not _valid(cfg, meta):
            return None
        arrays = {k: np.load(root / f"{k}.npy", allow_pickle=False) for k in ARRAYS}
    except (OSError, ValueError):  # missing, damaged, or written by something else: parse the file again
        return None
    return make(**arrays, **{k: meta[k] for k in FIELDS}, from_cache=True)


def save(run_dir: Path, cfg, loaded) -> None:
    """Write ``loaded`` (parsed from the CSV file ``cfg.data``) as the cache of ``run_dir``; nothing for other data
    or for splits that came from the cache. Written to a temporary folder renamed into place, so a reader never sees
    half a cache. A cache that cannot be written (a read-only run, a full disk) is left out: it only saves time."""
    if loaded.from_cache or loaded.source != "file" or Path(cfg.data).suffix.lower() != ".csv":
        return
    root, tmp, old = run_dir / CACHE, run_dir / f".{CACHE}.tmp-{os.getpid()}", run_dir / f".{CACHE}.old-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for k in ARRAYS:
            np.save(tmp / f"{k}.npy", getattr(loaded, k), allow_pickle=False)
        meta = {
            "format": FORMAT,
            "file": _stat(Path(cfg.data).expanduser()),
            "settings": {k: getattr(cfg, k) for k in KEYS},
            **{k: getattr(loaded, k) for k in FIELDS},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
