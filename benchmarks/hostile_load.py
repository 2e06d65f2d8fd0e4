"""Time and peak memory of ``neuronkit.io.load`` refusing (or loading) hostile model directories at full size.

Each case is written to a temporary directory and loaded in a fresh child process under ``ulimit -v`` (so a bad
case cannot eat the machine); the child reports wall time, peak RSS (``ru_maxrss``) and the first line of the
error (wall time and CPU time of ``load``: on a busy machine the CPU time is the steadier figure). Run from the
repository root::

    python benchmarks/hostile_load.py                  # every case
    python benchmarks/hostile_load.py header sparse    # some of them
    PYTHONPATH=/path/to/other/src python benchmarks/hostile_load.py   # another checkout, for before/after figures

Cases (the sizes of the attacks reported in issue 10):
    header      a 100 MB safetensors header ``[{},{},...]``
    zero        a million zero-size tensors (a 59 MB file)
    arch        a 16 MiB architecture.json ``[{},{},...]``
    sparse      a 4 GB sparse weights file whose 8-byte header is a lie
    ortho       a float64 orthogonal-init Dense(1000 -> 1000) named by the architecture (an 8 MB file, loads)
and the worst files just inside neuronkit's caps (the most a file can cost before it is refused):
    tensors     65,536 zero-size tensors (MAX_TENSORS), none of them the model's
    lists       a header of 196,000 empty lists (just under its cap on objects and lists)
    floats      a header of 786,000 floats (just under its cap on values)
    archcap     an architecture.json of 80,000 empty objects (its cap on objects and lists)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile

LIMIT_KB = 6_000_000  # ulimit -v for the child: 6 GB of address space

CHILD = r"""
import resource, sys, time, warnings
warnings.simplefilter("ignore")
t0 = time.perf_counter()
from neuronkit import io
t1, c1 = time.perf_counter(), time.process_time()
try:
    io.load(sys.argv[1])
    outcome = "loaded"
except BaseException as e:
    outcome = f"{type(e).__name__}: {str(e).splitlines()[0][:110] if str(e) else ''}"
t2, c2 = time.perf_counter(), time.process_time()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{t2 - t1:7.2f} s ({c2 - c1:5.2f} s CPU)  {rss:6.0f} MB peak RSS  {outcome}")
"""

LINEAR_ARCH = {
    "format": "neuronkit",
    "version": 1,
    "class": "Linear",
    "config": {"in_features": 2, "out_features": 2, "bias": True, "init": None, "dtype": "float32"},
}


def _st(header: bytes, body: bytes = b"") -> bytes:
    return len(header).to_bytes(8, "little") + header + body


def _write(d, arch: bytes, weights: bytes | None = None, sparse: int = 0) -> None:
    with open(os.path.join(d, "architecture.json"), "wb") as f:
        f.write(arch)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        if weights is not None:
            f.write(weights)
        if sparse:
            f.truncate(sparse)


def case_header(d):
    n = (100_000_000 - 2) // 3
    header = b"[" + b"{}," * n + b"{}]"
    _write(d, json.dumps(LINEAR_ARCH).encode(), _st(header))


def case_zero(d):
    entry = '"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    header = ("{" + ",".join(entry % i for i in range(1_000_000)) + "}").encode()
    _write(d, json.dumps(LINEAR_ARCH).encode(), _st(header))


def case_arch(d):
    n = (16 * 2**20 - 2) // 3
    good = json.dumps({"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    _write(d, b"[" + b"{}," * n + b"{}]", _st(good, b"\0" * 16))


def case_sparse(d):
    header = json.dumps({"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    _write(d, json.dumps(LINEAR_ARCH).encode(), _st(header), sparse=4 * 10**9)


def case_ortho(d):
    arch = dict(LINEAR_ARCH, config=dict(LINEAR_ARCH["config"], in_features=1000, out_features=1000))
    arch["config"].update(init="orthogonal", dtype="float64")
    w = json.dumps(
        {
            "bias": {"dtype": "F64", "shape": [1000], "data_offsets": [0, 8000]},
            "weight": {"dtype": "F64", "shape": [1000, 1000], "data_offsets": [8000, 8008000]},
        }
    ).encode()
    _write(d, json.dumps(arch).encode(), _st(w, b"\0" * 8_008_000))


def _st_list(item: bytes, n: int) -> bytes:
    return _st(b'{"x": [' + b",".join([item] * n) + b"]}")


def case_tensors(d):
    entry = '"t%d":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}'
    header = ("{" + ",".join(entry % i for i in range(65_536)) + "}").encode()
    _write(d, json.dumps(LINEAR_ARCH).encode(), _st(header))


def case_lists(d):
    _write(d, json.dumps(LINEAR_ARCH).encode(), _st_list(b"[]", 196_000))


def case_floats(d):
    _write(d, json.dumps(LINEAR_ARCH).encode(), _st_list(b"1.5", 786_000))


def case_archcap(d):
    good = json.dumps({"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    _write(d, b"[" + b"{}," * 79_998 + b"{}]", _st(good, b"\0" * 16))


CASES = {"header": case_header, "zero": case_zero, "arch": case_arch, "sparse": case_sparse, "ortho": case_ortho}
CASES.update(tensors=case_tensors, lists=case_lists, floats=case_floats, archcap=case_archcap)


def _limit_memory() -> None:  # ulimit -v in the child
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_KB * 1024, LIMIT_KB * 1024))


def main(argv) -> int:
    names = argv or list(CASES)
    for name in names:
        with tempfile.TemporaryDirectory() as d:
            CASES[name](d)
            size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
            out = subprocess.run(
                [sys.executable, "-c", CHILD, d], capture_output=True, text=True, preexec_fn=_limit_memory
            )
            lines = (
                out.stdout.strip() or out.stderr.strip() or f"(no output, exit status {out.returncode})"
            ).splitlines()
            text = lines[-1]
            print(f"{name:7s} {size / 1e6:8.1f} MB on disk: {text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
