"""The accuracy claims of the README, measured from the command line on held-out test data (slow; CI runs them).

Each run uses the documented command; the asserted accuracy is on the official MNIST test split (10,000 images the
network never trains on). Times are printed (pytest -s) and recorded in the README's results table.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from neuronkit.cli.main import main

DATA = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _train(tmp_path, *args):
    out = tmp_path / "run"
    t0 = time.perf_counter()
    assert main(["train", *args, "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    print(f"\n{' '.join(args)}: test accuracy {metrics['accuracy']:.4f} in {time.perf_counter() - t0:.0f} s")
    return metrics


@pytest.mark.slow
def test_mnist_mlp_reaches_98_percent_in_10_epochs(tmp_path):
    assert (DATA / "mnist").is_dir(), f"MNIST not found under {DATA} (set NEURONKIT_DATA)"
    m = _train(
        tmp_path,
        "--data",
        "mnist",
        "--data-dir",
        str(DATA),
        "--model",
        "784-256-128-10",
        "--batch-size",
        "128",
        "--epochs",
        "10",
        "--schedule",
        "cosine",
    )
    assert m["accuracy"] >= 0.980


@pytest.mark.slow
def test_mnist_lenet_reaches_99_percent(tmp_path):
    assert (DATA / "mnist").is_dir(), f"MNIST not found under {DATA} (set NEURONKIT_DATA)"
    m = _train(
        tmp_path,
        "--data",
        "mnist",
        "--data-dir",
        str(DATA),
        "--model",
        "lenet",
        "--batch-size",
        "128",
        "--epochs",
        "8",
        "--schedule",
        "cosine",
    )
    assert m["accuracy"] >= 0.990
