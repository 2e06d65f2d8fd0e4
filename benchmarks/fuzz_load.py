"""Fuzz ``neuronkit.io.load`` with damaged and hostile model directories; every case must load (a working model)
or raise ``FormatError``, and its peak memory must stay within ``4 x (files' size) + 64 MB``.

    python benchmarks/fuzz_load.py --cases 5000            # a long run (minutes); make test runs a few hundred
    python benchmarks/fuzz_load.py --cases 200 --seed 7 --max-mb 8

Each case starts from a small saved model and applies one mutation: byte flips, truncations, insertions, JSON
mutations of the architecture or of the safetensors header, structural header changes (shapes, dtypes, offsets),
huge sizes in the architecture, deep nesting, and the hostile families of issue 10 at bounded size: headers and
architectures of many empty objects, lists, numbers or strings (up to ``--max-mb``), many zero-size tensors, a
sparse weights file far larger than its header says, NaN/Inf weights (must load, with a ``NonFiniteWarning``),
symbolic-link loops and special files. It prints the outcomes, the slowest case (CPU time of ``load``, with
tracemalloc running, which slows allocation-heavy parsing about twofold) and the largest peak memory
(tracemalloc), and exits 1 on the first case that breaks the rule, naming it. The process limits its own address
space (``--memory-gb``, default 4) so that a regression cannot eat the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np

import neuronkit as nk
from neuronkit import nn
from neuronkit.io import FormatError, NonFiniteWarning, load, save

MEMORY_FACTOR, MEMORY_SLACK = 4, 64 * 2**20
"""A case may peak at ``MEMORY_FACTOR * size of its files + MEMORY_SLACK`` bytes (tracemalloc)."""

HOSTILE_VALUES = [
    None,
    True,
    -1,
    0,
    2**31,
    10**18,
    1e308,
    -1e-308,
    3.5,
    "",
    "os.system",
    "__import__",
    "float128",
    "O",
    [],
    {},
    [1, 2],
    {"class": "Dense"},
    {"class": "os.system", "config": {}},
    "x" * 5000,
    [[[[[[]]]]]],
    {"a": {"b": {"c": 1}}},
]
ITEMS = [b"{}", b"[]", b"0", b"1.5", b'""', b'"a"', b"123456789012", b'{"a":1}', b"[[]]"]


def base_model():
    return nn.Sequential(
        nn.Dense(4, 8, activation="tanh", generator=0),
        nn.Dense(8, 3, activation=nn.LeakyReLU(negative_slope=0.1), generator=1),
        nn.Dropout(0.25),
        nn.Linear(3, 2, generator=2),
    )


def json_mutation(rng: random.Random, doc):
    """A copy of ``doc`` with one node replaced, deleted or extended by a hostile value."""
    doc = json.loads(json.dumps(doc))
    nodes, stack = [(None, None, doc)], [doc]
    while stack:
        n = stack.pop()
        items = n.items() if isinstance(n, dict) else enumerate(n) if isinstance(n, list) else ()
        for k, v in items:
            nodes.append((n, k, v))
            stack.append(v)
    parent, key, _ = rng.choice(nodes)
    if parent is None:
        return rng.choice(HOSTILE_VALUES)
    op = rng.random()
    if op < 0.6:
        parent[key] = rng.choice(HOSTILE_VALUES)
    elif op < 0.8:
        del parent[key]
    elif isinstance(parent, dict):
        parent[rng.choice(["extra", "class", "config", "__class__", "generator", "dtype"])] = rng.choice(HOSTILE_VALUES)
    else:
        parent.append(rng.choice(HOSTILE_VALUES))
    return doc


def split(weights: bytes):
    n = int.from_bytes(weights[:8], "little")
    return json.loads(weights[8 : 8 + n]), weights[8 + n :]


def with_header(header, body: bytes, length=None) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return (len(h) if length is None else length).to_bytes(8, "little") + h + body


def big_json(rng: random.Random, max_bytes: int) -> bytes:
    """A JSON text of up to ``max_bytes``: a list or object of many small items, or deep nesting."""
    size = rng.randint(1, max_bytes)
    kind = rng.randrange(4)
    if kind == 0:
        item = rng.choice(ITEMS)
        return b"[" + b",".join([item] * max(1, size // (len(item) + 1))) + b"]"
    if kind == 1:
        n = max(1, size // 12)
        return b"{" + b",".join(b'"k%d":%s' % (i, rng.choice(ITEMS)) for i in range(min(n, 400_000))) + b"}"
    if kind == 2:
        depth = rng.choice([200, 5_000, 50_000, max(1, size // 2)])
        return b"[" * depth + b"]" * depth
    return b'"' + b"x" * size + b'"'


def zero_size_tensors(n: int) -> bytes:
    entry = '"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    return with_header(("{" + ",".join(entry % i for i in range(n)) + "}").encode(), b"")


def make_case(rng: random.Random, base: dict, d: str, max_bytes: int) -> str:
    """Write one case into directory ``d`` (architecture.json + model.safetensors); returns its family's name."""
    arch, weights, doc, header, body = base["arch"], base["weights"], base["doc"], base["header"], base["body"]
    a, w = arch, weights
    kind = rng.randrange(18)
    special = None
    if kind == 0:  # byte flips
        which = bytearray(a if rng.random() < 0.5 else w)
        for _ in range(rng.randint(1, 4)):
            which[rng.randrange(len(which))] ^= 1 << rng.randrange(8)
        a, w = (bytes(which), w) if len(which) == len(a) and which[:1] == a[:1] else (a, bytes(which))
    elif kind == 1:
        a = a[: rng.randrange(len(a))]
    elif kind == 2:
        w = w[: rng.randrange(len(w))]
    elif kind == 3:  # insertions
        blob = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        if rng.random() < 0.5:
            i = rng.randrange(len(a) + 1)
            a = a[:i] + blob + a[i:]
        else:
            i = rng.randrange(len(w) + 1)
            w = w[:i] + blob + w[i:]
    elif kind == 4:
        a = json.dumps(json_mutation(rng, doc)).encode()
    elif kind == 5:  # safetensors header mutations, length prefix kept right or made wrong
        h = json_mutation(rng, header)
        w = with_header(h, body, None if rng.random() < 0.8 else rng.choice([0, 7, 2**32, 2**63, 2**64 - 1]))
    elif kind == 6:
        a, w = w, a
    elif kind == 7:
        a = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
        w = bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    elif kind == 8:
        a, w = (b"", w) if rng.random() < 0.5 else (a, b"")
    elif kind == 9:  # structural safetensors changes: shapes, dtypes, offsets
        h = json.loads(json.dumps(header))
        name = rng.choice([k for k in h if k != "__metadata__"])
        field = rng.choice(["shape", "dtype", "data_offsets"])
        h[name][field] = rng.choice(
            [[2, 4], [8], [], [-1], [2**40, 2**40], "F64", "BOOL", "BF16", "I64", "F16", [0, 2**62], [16, 8], [0, 0]]
        )
        w = with_header(h, body)
    elif kind == 10:  # valid-looking architecture text with huge or odd sizes
        a = arch.replace(
            b'"in_features": 4',
            rng.choice([b"400000000", b"4.0", b"NaN", b"1e999", b"-4", b'"4"', b"9" * 5000]).join(
                [b'"in_features": ', b""]
            ),
        )
    elif kind == 11:  # a huge header
        w = with_header(big_json(rng, max_bytes), b"")
    elif kind == 12:  # a huge architecture
        a = big_json(rng, max_bytes)
    elif kind == 13:  # many zero-size tensors
        at_cap = [65_536, 65_537] if max_bytes >= 4 * 2**20 else []  # 4 MB headers
        w = zero_size_tensors(rng.choice([1, 1000, max(1, max_bytes // 60), *at_cap]))
    elif kind == 14:  # a sparse file far larger than its header says
        special = ("sparse", rng.choice([2**20, 2**28, 2**32]))
    elif kind == 15:  # NaN / Inf in the weights: must load, with a warning
        data = bytearray(body)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(data) // 4) * 4
            data[i : i + 4] = np.array([rng.choice([np.nan, np.inf, -np.inf])], "<f4").tobytes()
        w = with_header(header, bytes(data))
    elif kind == 16:  # links and special files
        special = (rng.choice(["loop", "devzero", "fifo", "dir"]), rng.choice(["weights", "arch"]))
    else:  # deep nesting inside a real architecture
        depth = rng.choice([100, 10_000, 200_000])
        a = b'{"format": "neuronkit", "version": 1, "class": "Dense", "config": ' + b"[" * depth + b"]" * depth + b"}"
    for name, data in (("architecture.json", a), ("model.safetensors", w)):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    if special is not None:
        _special(d, special, weights)
    return ["flip", "cut-arch", "cut-weights", "insert", "json-arch", "json-header", "swap", "random", "empty",
            "structure", "sizes", "big-header", "big-arch", "zero-tensors", "sparse", "nonfinite", "special",
            "deep"][kind]  # fmt: skip


def _special(d: str, special: tuple, weights: bytes) -> None:
    what, arg = special
    if what == "sparse":
        with open(os.path.join(d, "model.safetensors"), "r+b") as f:
            f.truncate(arg)
        return
    target = os.path.join(d, "model.safetensors" if arg == "weights" else "architecture.json")
    os.remove(target)
    if what == "loop":
        os.symlink(os.path.basename(target), target)
    elif what == "devzero" and os.path.exists("/dev/zero"):
        os.symlink("/dev/zero", target)
    elif what == "fifo" and hasattr(os, "mkfifo"):
        os.mkfifo(target)
    else:
        os.mkdir(target)


def files_size(d: str) -> int:
    total = 0
    for name in os.listdir(d):
        p = os.path.join(d, name)
        if os.path.isfile(p) and not os.path.islink(p):
            total += os.stat(p).st_blocks * 512 if name == "model.safetensors" else os.path.getsize(p)
    return total


def run(cases: int, seed: int, max_bytes: int = 2**21, log=None) -> dict:
    """Run ``cases`` cases; returns the statistics, or raises ``AssertionError`` naming the first case that loads
    something that does not work, raises anything but ``FormatError``, or peaks over the memory bound."""
    d0 = tempfile.mkdtemp(prefix="nk-fuzz-")
    try:
        save(base_model(), os.path.join(d0, "good"))
        arch = open(os.path.join(d0, "good", "architecture.json"), "rb").read()
        weights = open(os.path.join(d0, "good", "model.safetensors"), "rb").read()
        header, body = split(weights)
        base = {"arch": arch, "weights": weights, "doc": json.loads(arch), "header": header, "body": body}
        x = nk.Tensor(np.random.default_rng(0).standard_normal((5, 4)).astype("float32"))
        rng = random.Random(seed)
        stats = {"cases": 0, "outcomes": {}, "slowest": (0.0, ""), "peak": (0.0, "")}
        for i in range(cases):
            d = os.path.join(d0, f"case{i}")
            os.mkdir(d)
            family = make_case(rng, base, d, max_bytes)
            size = files_size(d)
            outcome, seconds, peak = _load_one(d, x, f"case {i} ({family}, seed {seed})")
            bound = MEMORY_FACTOR * size + MEMORY_SLACK
            if peak > bound:
                raise AssertionError(f"case {i} ({family}, seed {seed}): peak {peak} bytes > bound {bound}")
            stats["cases"] += 1
            key = f"{family}: {outcome}"
            stats["outcomes"][key] = stats["outcomes"].get(key, 0) + 1
            stats["slowest"] = max(stats["slowest"], (seconds, f"case {i} ({family}, {size} bytes)"))
            stats["peak"] = max(stats["peak"], (peak / 2**20, f"case {i} ({family}, {size} bytes)"))
            shutil.rmtree(d, ignore_errors=True)
            if log and (i + 1) % 500 == 0:
                print(f"{i + 1} cases", file=log, flush=True)
        return stats
    finally:
        shutil.rmtree(d0, ignore_errors=True)


def _load_one(d: str, x, name: str) -> tuple:
    tracemalloc.start()
    t0 = time.process_time()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NonFiniteWarning)
            m = load(d)
        seconds = time.process_time() - t0
        if not isinstance(m, nn.Module):
            raise AssertionError(f"{name}: load returned {type(m).__name__}")
        with nk.no_grad(), np.errstate(all="ignore"):  # NaN weights compute NaN outputs: expected here
            y = m.eval()(x).data
        if y.shape[0] != x.shape[0]:
            raise AssertionError(f"{name}: the loaded model gives output shape {y.shape}")
        outcome = "loaded (NaN/Inf warned)" if any(w.category is NonFiniteWarning for w in caught) else "loaded"
    except FormatError:
        seconds = time.process_time() - t0
        outcome = "FormatError"
    except AssertionError:
        raise
    except BaseException as e:
        raise AssertionError(f"{name}: {type(e).__name__}: {e}"[:500]) from e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return outcome, seconds, peak


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-mb", type=float, default=2.0, help="largest hostile JSON generated (MB)")
    p.add_argument("--memory-gb", type=float, default=4.0, help="address-space limit of this process (GB)")
    args = p.parse_args(argv)
    limit = int(args.memory_gb * 2**30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t0 = time.perf_counter()
    try:
        stats = run(args.cases, args.seed, int(args.max_mb * 2**20), log=sys.stderr)
    except AssertionError as e:
        print(f"FAILED: {e}")
        return 1
    for key, n in sorted(stats["outcomes"].items()):
        print(f"{n:6d}  {key}")
    print(f"{stats['cases']} cases in {time.perf_counter() - t0:.1f} s; every one loaded a working model or raised")
    print(f"FormatError. Slowest: {stats['slowest'][0]:.3f} s of CPU under tracemalloc, {stats['slowest'][1]}.")
    print(f"Largest peak memory: {stats['peak'][0]:.1f} MB, {stats['peak'][1]}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
