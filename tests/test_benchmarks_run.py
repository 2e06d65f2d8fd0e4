"""The text benchmarks run (a few steps each): a benchmark that no longer starts records nothing.

Each is started as a user would (``python benchmarks/bench_X.py``, from the benchmarks folder) on the real SST-2
files, with the smallest work it takes; the test asserts it finished and printed its ratio to PyTorch. No timing is
asserted: the figures are the benchmark's business (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent / "benchmarks"
DATA = Path(os.environ.get("NEURONKIT_DATA") or HERE.parents[1] / "shared" / "data")


@pytest.mark.slow  # each loads and tokenizes SST-2's 67,349 phrases
@pytest.mark.parametrize(
    "script, args, expect",
    [
        ("bench_rnn.py", ["--batches", "2", "--repeats", "1", "--threads", "1"], "neuronkit / pytorch"),
        ("bench_transformer.py", ["--steps", "2", "--repeats", "1", "--no-memory", "--threads", "1"], "ratio"),
        ("bench_text.py", ["--repeats", "1"], "fit_encode"),
    ],
)
def test_a_text_benchmark_runs(script, args, expect):
    env = {**os.environ, "NEURONKIT_DATA": str(DATA), "OPENBLAS_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, script, *args], cwd=BENCH, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert expect in r.stdout, r.stdout[-3000:]
