"""The text rows of the README's results table, measured from the command line on held-out test data.

Each run is the documented command; accuracy is on the test split the model never trains on (SMS spam: the stratified
20 % split of the run's seed; SST-2: the 1,821 labelled test sentences). SMS spam's test split is 1,115 messages, so
one message is 0.09 %: the claim is checked as the mean over three seeds (three different splits and starts), and
each run must also stay within 0.5 % of it. Times are printed (pytest -s) and recorded in the README.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import pytest

from neuronkit.cli.main import main

DATA = Path(os.environ.get("NEURONKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SMS = (
    "--data",
    "sms_spam",
    "--model",
    "bow",
    "--tokenizer",
    "bpe",
    "--dropout",
    "0.5",
    "--epochs",
    "3",
    "--batch-size",
    "32",
)
SST2 = ("--data", "sst2", "--model", "bow", "--dropout", "0.5", "--batch-size", "64", "--epochs", "1")
BEST = ("--data", "sst2")  # no --model: the default text model (bilstm) with its default settings


def _train(tmp_path, name, *args):
    out = tmp_path / name
    t0 = time.perf_counter()
    assert main(["train", *args, "--data-dir", str(DATA / "text"), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    print(
        f"\n{' '.join(args)}: test accuracy {metrics['accuracy']:.4f}, training {metrics['train_time_s']:.1f} s, "
        f"run {time.perf_counter() - t0:.1f} s"
    )
    return metrics


@pytest.mark.slow
def test_sms_spam_bow_reaches_98_5_percent(tmp_path):
    accs = [_train(tmp_path, f"s{seed}", *SMS, "--seed", str(seed))["accuracy"] for seed in (0, 1, 2)]
    mean = statistics.mean(accs)
    print(f"SMS spam bow: {[round(a, 4) for a in accs]}, mean {mean:.4f}")
    assert mean >= 0.985, accs
    assert min(accs) >= mean - 0.005, accs


@pytest.mark.slow
def test_sst2_bow_reaches_80_percent_on_the_1821_test_sentences(tmp_path):
    m = _train(tmp_path, "sst2", *SST2)
    assert m["samples"] == 1821
    assert m["accuracy"] >= 0.80, m


@pytest.mark.slow
def test_sst2_default_model_on_the_1821_test_sentences(tmp_path):
    """The README's default row, as a user gets it: ``neuronkit train --data sst2`` (bilstm, 2 epochs; about 90 s of
    CPU). Measured 84.13 % (seed 0, this test's run) and 81.99 % (seed 1): asserted at 81 %, below both, since another
    BLAS kernel takes another trajectory and the two seeds show how far one can land (the 84 % of seed 0 is a
    measurement, not a guarantee). A broken recurrent path, or a default that stops learning, falls far below."""
    m = _train(tmp_path, "sst2-default", *BEST)
    config = json.loads((tmp_path / "sst2-default" / "config.json").read_text())["config"]
    assert (config["model"], config["epochs"], m["samples"]) == ("bilstm", 2, 1821)
    assert m["accuracy"] >= 0.81, m
