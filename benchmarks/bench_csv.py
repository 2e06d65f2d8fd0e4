"""Reading a CSV file: ``neuronkit.data.load_csv`` against ``np.loadtxt``, time and peak memory.

The file is the MNIST test set as CSV (10,000 rows of 784 pixel columns and a label column, integers, about 18 MB:
the size of the KMNIST test set as CSV), written from the IDX files under ``$NEURONKIT_DATA`` (or ``../shared/data``;
``--synthetic`` makes random pixels instead). Times: rounds alternating neuronkit, ``np.loadtxt`` (float64, its
default) and ``np.loadtxt(dtype=float32)``, the order reversed every round; medians of the rounds and the median of
the per-round ratios. Memory: each parse runs in a fresh process, which reports its peak resident memory above
what it held before parsing (Linux's VmHWM, reset just before), against the size of the parsed array.
``--big-mb N`` also measures a synthetic file of about N MB (the 200 MB case of issue 10), one parse per reader.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_csv.py [--rounds 5] [--big-mb 200]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import neuronkit as nk
from neuronkit.data import load_csv

HERE = Path(__file__).resolve().parent
READERS = {
    "neuronkit": lambda p: load_csv(p, target="label"),
    "np.loadtxt": lambda p: np.loadtxt(p, delimiter=",", skiprows=1),
    "np.loadtxt float32": lambda p: np.loadtxt(p, delimiter=",", skiprows=1, dtype=np.float32),
}


def _mnist_test(synthetic: bool) -> tuple:
    if not synthetic:
        root = Path(os.environ.get("NEURONKIT_DATA") or HERE.parents[1] / "shared" / "data") / "mnist"
        img, lab = root / "t10k-images-idx3-ubyte.gz", root / "t10k-labels-idx1-ubyte.gz"
        if img.is_file() and lab.is_file():
            x = np.frombuffer(gzip.decompress(img.read_bytes()), np.uint8, offset=16).reshape(-1, 784)
            return x, np.frombuffer(gzip.decompress(lab.read_bytes()), np.uint8, offset=8), "MNIST test set"
    rng = np.random.default_rng(0)
    x = (rng.random((10_000, 784)) ** 4 * 256).astype(np.uint8)  # mostly small values, like pixels
    return x, rng.integers(0, 10, 10_000), "synthetic pixels"


def write_csv(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    header = ",".join([f"pixel{i}" for i in range(x.shape[1])] + ["label"])
    np.savetxt(path, np.c_[x, y], fmt="%d", delimiter=",", header=header, comments="")


def write_big(path: Path, mb: int) -> None:
    """About ``mb`` MB of random pixel rows (written in blocks, so making it takes little memory)."""
    rng = np.random.default_rng(1)
    with open(path, "w") as f:
        f.write(",".join([f"pixel{i}" for i in range(784)] + ["label"]) + "\n")
        while f.tell() < mb * 1e6:
            x = (rng.random((2000, 784)) ** 4 * 256).astype(np.uint8)
            np.savetxt(f, np.c_[x, rng.integers(0, 10, 2000)], fmt="%d", delimiter=",")


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":"))


def _child(reader: str, path: str) -> None:
    """In a fresh process: parse once, print JSON with the peak resident memory above the resident memory before
    the parse (Linux: the high-water mark reset through /proc/self/clear_refs) and the parsed array's size."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM, the peak resident set size, to the current size
    before = _status_kb("VmRSS")
    t0 = time.perf_counter()
    out = READERS[reader](path)
    seconds = time.perf_counter() - t0
    x = out[0] if isinstance(out, tuple) else out
    peak = _status_kb("VmHWM")
    print(json.dumps({"peak_mb": (peak - before) / 1024, "array_mb": x.nbytes / 2**20, "s": seconds}))


def measure_memory(path: Path) -> dict:
    out = {}
    for reader in READERS:
        r = subprocess.run(
            [sys.executable, __file__, "--child", reader, str(path)], capture_output=True, text=True, check=True
        )
        out[reader] = json.loads(r.stdout.strip().splitlines()[-1])
    return out


def time_rounds(path: Path, rounds: int) -> dict:
    times = {k: [] for k in READERS}
    for r in range(rounds):
        order = list(READERS) if r % 2 == 0 else list(reversed(READERS))
        for name in order:
            t0 = time.perf_counter()
            READERS[name](path)
            times[name].append(time.perf_counter() - t0)
    return times


def print_env() -> None:
    from threadpoolctl import threadpool_info

    print(f"python {platform.python_version()}, numpy {np.__version__}, neuronkit {nk.__version__} ({nk.__file__})")
    for info in threadpool_info():
        arch = info.get("architecture") or "-"
        api, version, threads = info["internal_api"], info.get("version"), info["num_threads"]
        print(f"  {info['user_api']} {api} {version} arch={arch} threads={threads}")
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        print(f"{k}: {os.environ.get(k, 'unset')}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--synthetic", action="store_true", help="random pixels instead of the MNIST test set")
    ap.add_argument("--big-mb", type=int, default=0, help="also measure memory on a synthetic file of this size")
    ap.add_argument("--readers", default=",".join(READERS), help="which readers to run (comma-separated)")
    ap.add_argument("--child", nargs=2, metavar=("READER", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return _child(*args.child)
    for name in set(READERS) - set(args.readers.split(",")):
        del READERS[name]
    print_env()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test.csv"
        x, y, what = _mnist_test(args.synthetic)
        write_csv(path, x, y)
        print(f"\n{what} as CSV: {x.shape[0]:,} rows x {x.shape[1] + 1} columns, {path.stat().st_size / 1e6:.1f} MB")
        times = time_rounds(path, args.rounds)
        nk_t = times.get("neuronkit") or next(iter(times.values()))
        for name, ts in times.items():
            ratio = statistics.median(a / b for a, b in zip(nk_t, ts))
            print(
                f"  {name:20} median {statistics.median(ts):.3f} s  (rounds: {', '.join(f'{t:.2f}' for t in ts)})"
                + ("" if name == "neuronkit" else f"  neuronkit / this: {ratio:.2f}x (median of per-round ratios)")
            )
        sizes = [(path, "the same file")]
        if args.big_mb:
            big = Path(tmp) / "big.csv"
            write_big(big, args.big_mb)
            sizes.append((big, f"synthetic {big.stat().st_size / 1e6:.0f} MB file"))
        for p, label in sizes:
            print(f"\npeak memory above the baseline, one parse in a fresh process ({label}):")
            for name, m in measure_memory(p).items():
                print(
                    f"  {name:20} {m['peak_mb']:8.0f} MB peak for a {m['array_mb']:.0f} MB array: "
                    f"{m['peak_mb'] / m['array_mb']:.2f}x ({m['s']:.2f} s)"
                )


if __name__ == "__main__":
    main()
