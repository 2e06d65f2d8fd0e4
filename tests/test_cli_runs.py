"""Several run directories on one command line (``neuronkit report runs/digits-*``): the commands that can take several
report each; the ones that take one say so in one line. And the README puts ``neuronkit`` on PATH before using it."""

from __future__ import annotations

import contextlib
import io as _io
import json
import re
from pathlib import Path

import pytest

from neuronkit.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> list:
    """Two finished runs, as a glob such as runs/iris-* would match them."""
    base = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (0, 1):
        run = base / f"iris-{seed}"
        rc, _, stderr = run_cli("train", "--data", "iris", "--epochs", "2", "--seed", seed, "--out", run)
        assert rc == 0, stderr
        out.append(run)
    return out


def test_report_writes_a_page_for_each_run(runs):
    rc, stdout, stderr = run_cli("report", *runs)
    assert rc == 0, stderr  # before: 'unrecognized arguments', status 2
    assert [line for line in stdout.splitlines() if line] == [
        f"wrote {r / 'report.html'}: open it in a browser (it needs no network)" for r in runs
    ]
    assert all((r / "report.html").stat().st_size > 10_000 for r in runs)


def test_evaluate_diagnose_gradcheck_and_summary_take_several_runs(runs):
    rc, stdout, _ = run_cli("evaluate", *runs, "--json")
    assert rc == 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [d["run"] for d in lines] == [str(r) for r in runs] and all(d["samples"] == 30 for d in lines)
    rc, stdout, _ = run_cli("evaluate", *runs)
    assert rc == 0 and [line.split(": ")[0] for line in stdout.splitlines()] == [str(r) for r in runs]
    for command in ("diagnose", "gradcheck"):
        rc, stdout, stderr = run_cli(command, *runs)
        assert rc == max(run_cli(command, r)[0] for r in runs) and "error" not in stderr, (command, stderr)
        assert [r for r in runs if re.search(rf"^{re.escape(str(r))}: ", stdout, re.M)] == runs, command
    rc, stdout, _ = run_cli("summary", *runs)
    assert rc == 0 and stdout.count("total params") == 2 and stdout.startswith(f"{runs[0]}:")


def test_one_bad_run_among_several_is_one_line_and_the_others_still_run(runs, tmp_path):
    rc, stdout, stderr = run_cli("report", runs[0], tmp_path / "nope", runs[1])
    assert rc == 1
    assert stderr == f"neuronkit: error: run directory not found: {tmp_path / 'nope'}\n"
    assert stdout.count("wrote ") == 2


@pytest.mark.parametrize(
    "argv, message",
    [
        (["inspect", "{a}", "{b}", "--layer", "0"], "inspect takes one run directory, got 2 (also {b})"),
        (["train", "--resume", "{a}", "{b}"], "--resume takes one run directory, got 2 (also {b})"),
        (["predict", "{a}", "{b}", "x.csv"], "predict takes one run directory, then its inputs; {b} is a run"),
        (["report", "{a}", "{b}", "--out", "page.html"], "--out names one file: with 2 runs leave it out"),
    ],
)
def test_commands_that_take_one_run_say_so_in_one_line(runs, argv, message):
    a, b = runs
    rc, _, stderr = run_cli(*[s.format(a=a, b=b) for s in argv])
    assert rc == 1 and len(stderr.splitlines()) == 1
    assert stderr.startswith("neuronkit: error: " + message.format(a=a, b=b)), stderr


def test_the_readme_puts_neuronkit_on_path_before_using_it():
    text = README.read_text(encoding="utf-8")
    first_bare = re.search(r"^neuronkit (datasets|train|report)\b", text, re.M).start()  # a bare command line
    assert ". .venv/bin/activate" in text[:first_bare]  # before: only `.venv/bin/neuronkit` in a sentence
    assert "neuronkit report runs/digits-*" in text and "take several run directories" in text
