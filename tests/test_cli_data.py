"""The command line's data and resources: models too large for the memory, class labels, hostile numbers and files,
the data cache of a CSV run, run names, predict's columns and inspect's source rows."""

from __future__ import annotations

import contextlib
import importlib
import io as _io
import json
import os
import resource
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import backend as B
from neuronkit import nn
from neuronkit.cli import main
from neuronkit.cli import models as M
from neuronkit.cli.config import resolve
from neuronkit.data.datasets import csvfile
from neuronkit.train import Trainer
from neuronkit.train.memory import EVAL_BYTES, MemoryLimitError, estimate_memory, model_costs

REPO = Path(__file__).resolve().parents[1]


def run_cli(*argv) -> tuple:
    out, err = _io.StringIO(), _io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def one_error_line(rc: int, stderr: str) -> str:
    lines = stderr.splitlines()
    assert rc != 0 and len(lines) == 1 and lines[0].startswith("neuronkit: error: "), stderr
    return lines[0]


def cli_under_limit(argv, cwd: Path, limit_bytes: int, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m neuronkit argv`` in a subprocess whose address space is capped (as ``ulimit -v``)."""

    def cap():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    # one BLAS thread: OpenBLAS reserves address space per thread, which on a many-core machine can reach the limit
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "neuronkit", *map(str, argv)],
        cwd=cwd,
        env=env,
        preexec_fn=cap,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_csv(path: Path, x, y, names=None, target="label") -> Path:
    names = names or [f"f{i}" for i in range(np.shape(x)[1])]
    lines = [",".join([*names, target])] + [",".join([*(f"{v:g}" for v in row), str(t)]) for row, t in zip(x, y)]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- memory: a model too large is refused before it is allocated ------------------------------------------------------
def test_a_model_too_large_for_the_memory_is_one_line_under_ulimit(tmp_path):
    # Before: under `ulimit -v` a 28-line MemoryError traceback; without a limit the machine was eaten (24 GB, killed
    # after 53 s, no message). Now the estimate is checked before any parameter is allocated.
    r = cli_under_limit(
        ["train", "--data", "digits", "--hidden", "10000000", "--out", tmp_path / "o"], tmp_path, 4 * 2**30
    )
    line = one_error_line(r.returncode, r.stderr)
    assert "training mlp on samples of shape 64 needs about" in line and "parameters 2.8 GB" in line
    assert "the address-space limit, ulimit -v" in line and not (tmp_path / "o").exists()


def test_a_model_that_fits_trains_under_the_same_limit(tmp_path):
    r = cli_under_limit(
        ["train", "--data", "digits", "--epochs", "1", "--probe-every", "0", "--out", tmp_path / "o"],
        tmp_path,
        4 * 2**30,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "metrics.json").is_file()


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_the_estimate_before_building_equals_the_one_read_from_the_built_model(model):
    cfg = resolve(None, {"model": model, "hidden": "300,100", "dropout": 0.2})
    shape = (1, 28, 28) if model == "lenet" else (784,)
    before = M.model_costs(cfg, shape, 10)
    built = model_costs(M.build_model(cfg, shape, 10), shape)
    assert sum(c.params for c in before) == sum(c.params for c in built)
    assert estimate_memory(before, 64, "adam") == estimate_memory(built, 64, "adam")


def _measured(model, shape, batch, optimizer) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * batch, *shape)).astype(np.float32)
    y = rng.integers(0, 10, 4 * batch)
    est = estimate_memory(model_costs(model, shape), batch, optimizer)
    # One step first: what loads once per process (the compiled kernels of the optimizer and of the layers, about
    # 30 MB when this test ran first) is not training's memory, and was counted only when the test ran first
    Trainer(model, optimizer=optimizer, progress=False).fit((x[:batch], y[:batch]), epochs=1, batch_size=batch)
    trainer = Trainer(model, optimizer=optimizer, progress=False)
    tracemalloc.start()
    try:
        trainer.fit((x, y), epochs=1, batch_size=batch)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return est.total - est.parameters, peak


@pytest.mark.parametrize(
    "name,batch,optimizer",
    [
        ("mlp", 256, "adam"),
        ("mlp", 64, "sgd"),
        ("lenet", 64, "adam"),
        ("lenet", 128, "rmsprop"),
        ("lenet numpy", 64, "adam"),
    ],
)
def test_the_estimate_is_within_a_factor_of_two_of_the_measured_peak(monkeypatch, name, batch, optimizer):
    # what training allocates beyond the parameters (measured with tracemalloc, which sees NumPy's allocations);
    # "lenet numpy": without the compiled kernels, whose fused convolutions' backward allocates less
    if name == "lenet numpy":
        monkeypatch.setattr(nk.backend, "JIT", False)
    nk.manual_seed(0)
    if name == "mlp":
        model = nn.Sequential(nn.Dense(784, 1024, activation="relu"), nn.Dense(1024, 256, activation="relu"))
        model.add_module("2", nn.Dense(256, 10))
        shape = (784,)
    else:
        model = M.build_model(resolve(None, {"model": "lenet"}), (1, 28, 28), 10)
        shape = (1, 28, 28)
    estimated, measured = _measured(model, shape, batch, optimizer)
    assert 0.5 < estimated / measured < 2.0, (estimated, measured)


@pytest.mark.parametrize("name", ["lenet", "mlp"])
def test_validation_batches_fit_the_budget_and_are_large_where_they_can_be(monkeypatch, name):
    # fit validates in batches of up to 1,024 samples, fewer where one batch's forward pass would take more than
    # EVAL_BYTES by the estimate (LeNet's second convolution: about 0.25 MB of im2col per image). Measured here: the
    # traced peak of each validation pass, which at 1,024 LeNet images was 171 MB.
    nk.manual_seed(0)
    if name == "lenet":
        model, shape = M.build_model(resolve(None, {"model": "lenet"}), (1, 28, 28), 10), (1, 28, 28)
    else:
        model, shape = nn.Sequential(nn.Dense(784, 256, activation="relu"), nn.Dense(256, 10)), (784,)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(1200, *shape)).astype(np.float32), rng.integers(0, 10, 1200)
    seen = []
    fit_module = importlib.import_module("neuronkit.train.fit")
    evaluate = fit_module.run_evaluation

    def watched(model, loss_fn, metrics, data, batch_size, parallel=None):
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        out = evaluate(model, loss_fn, metrics, data, batch_size, parallel)
        seen.append((data.batch_size, tracemalloc.get_traced_memory()[1] - before))
        return out

    monkeypatch.setattr(fit_module, "run_evaluation", watched)
    tracemalloc.start()
    try:
        Trainer(model, progress=False).fit((x[:100], y[:100]), epochs=1, batch_size=32, validation=(x, y))
    finally:
        tracemalloc.stop()
    [(batch, peak)] = seen
    if name == "lenet":
        assert 32 < batch < 256 and peak < EVAL_BYTES, (batch, peak)
    else:
        assert batch == 1024 and peak < EVAL_BYTES, (batch, peak)


def test_fit_refuses_before_its_first_step(monkeypatch):
    model = nn.Sequential(nn.Dense(64, 512, activation="relu"), nn.Dense(512, 10))
    before = [p.data.copy() for p in model.parameters()]
    monkeypatch.setattr(B, "available_memory", lambda: B.Available(100_000, "test limit"))
    x, y = np.zeros((100, 64), np.float32), np.zeros(100, np.int64)
    with pytest.raises(
        MemoryLimitError, match=r"training Sequential needs about .* more than the 97.7 KB .*test limit"
    ):
        Trainer(model, progress=False).fit((x, y), epochs=1, batch_size=32)
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))


# -- class labels ---------------------------------------------------------------------------------------------------
def test_a_label_of_a_billion_is_mapped_not_expanded_to_a_billion_classes(tmp_path):
    # Before: a list of 10**9 class names (44 s and 3.8 GB, then a MemoryError under a 4 GB limit)
    rng = np.random.default_rng(0)
    y = np.repeat([0, 7, 10**9], 40)
    write_csv(tmp_path / "d.csv", rng.normal(size=(120, 3)) + y[:, None] % 3, y)
    r = cli_under_limit(
        ["train", "--data", "d.csv", "--epochs", "1", "--probe-every", "0", "--out", "o"], tmp_path, 3 * 2**30, 60
    )
    assert r.returncode == 0, r.stderr
    assert "note: d.csv: the labels (0, 7, 1000000000) are not 0..K-1: classes 0..2 stand for them" in r.stderr
    info = json.loads((tmp_path / "o" / "config.json").read_text())["data"]
    assert info["classes"] == ["0", "7", "1000000000"] and info["num_outputs"] == 3
    # evaluating on a file with the original labels maps them the same way
    rc, stdout, stderr = run_cli("evaluate", tmp_path / "o", "--data", tmp_path / "d.csv", "--json")
    assert rc == 0, stderr and json.loads(stdout)["samples"] == 120
    write_csv(tmp_path / "e.csv", np.zeros((2, 3)), [0, 5])
    line = one_error_line(*run_cli("evaluate", tmp_path / "o", "--data", tmp_path / "e.csv")[::2])
    assert "e.csv: row 3, column 'label': labels out of range: '5' is not one of the model's classes" in line


def test_labels_close_to_0_to_k_keep_their_numbers(tmp_path):
    y = np.repeat([0, 1, 3], 10)  # class 2 is missing from the file: it keeps its place
    write_csv(tmp_path / "d.csv", np.arange(30)[:, None] * [1.0, 2.0], y)
    rc, _, stderr = run_cli("train", "--data", tmp_path / "d.csv", "--epochs", "1", "--out", tmp_path / "o")
    assert rc == 0 and "note" not in stderr
    assert json.loads((tmp_path / "o" / "config.json").read_text())["data"]["classes"] == ["0", "1", "2", "3"]


LABEL_MISTAKES = {
    "a label of 1e30": (
        "a,label\n1,0\n2,1\n3,1e30\n",
        [],
        r"d.csv: row 4, column 'label': label 1e\+30 is not a usable class label: expected whole numbers below 2\*\*53",
    ),
    "a regression target of 1e39": (
        "a,y\n1,0.5\n2,1.5\n3,1e39\n",
        ["--target", "y", "--task", "regression"],
        r"d.csv: row 4, column 'y': target value 1e\+39 is outside the range of float32",
    ),
    "a feature of 1e39": ("a,y\n1,0\n1e39,1\n", [], r"value 1e39 at row 3, column 'a' is outside the range of float32"),
    "too many distinct labels": (
        "a,label\n" + "".join(f"{i},{i}\n" for i in range(10_001)),
        [],
        r"10,001 distinct labels: more than the 10,000 classes a run can have; .* pass --task regression",
    ),
    "a class with one sample": ("a,label\n1,0\n2,0\n3,5\n", [], r"d.csv: class '5' has only 1 sample"),
    "a misspelt target": (
        ",".join(f"pixel{i}" for i in range(784)) + ",label\n" + (",".join(["1"] * 785) + "\n") * 4,
        ["--target", "lable"],
        r"no target column 'lable'; did you mean 'label'\?",
    ),
    "an empty file": ("", ["--target", "label"], r"d.csv: the file is empty$"),
    "a UTF-16 file": (
        "a,label\n1,0\n".encode("utf-16"),
        [],
        r"d.csv: row 1, column 1: the file is UTF-16 text",
    ),
    "a Latin-1 file": (
        "a,caf\u00e9\n1,0\n".encode("latin-1"),
        [],
        r"d.csv: row 1, column 2: byte 0xe9 is not UTF-8 text",
    ),
}


@pytest.mark.parametrize("case", list(LABEL_MISTAKES))
def test_hostile_numbers_and_files_are_one_line_naming_the_place(case, tmp_path):
    content, flags, message = LABEL_MISTAKES[case]
    p = tmp_path / "d.csv"
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    line = one_error_line(*run_cli("train", "--data", p, *flags, "--epochs", "1", "--out", tmp_path / "o")[::2])
    assert __import__("re").search(message, line), line
    assert len(line) < 400 and not (tmp_path / "o").exists()


def test_an_npz_whose_members_are_not_npy_arrays_is_one_line(tmp_path):
    # Before: a 23-line AttributeError traceback
    for name, members in {"raw.npz": ("x", "y"), "named.npz": ("x.npy", "y.npy")}.items():
        with zipfile.ZipFile(tmp_path / name, "w") as z:
            for m in members:
                z.writestr(m, b"not an array")
        line = one_error_line(*run_cli("train", "--data", tmp_path / name, "--out", tmp_path / "o")[::2])
        assert f"{name}: member 'x' is not a .npy array" in line


@pytest.mark.parametrize(
    "model,message",
    [
        ("784-abc-10", r"model 784-abc-10: 'abc' is not a layer size; expected positive whole numbers joined by '-'"),
        ("784--10", r"model 784--10: '' is not a layer size"),
        (
            "mpl",
            r"model 'mpl' is not known: expected mlp, lenet, bow, textcnn, lstm, bilstm, gru, transformer, or layer "
            r"sizes such as 784-128-10; "
            r"did you mean 'mlp'",
        ),
    ],
)
def test_a_bad_model_names_the_form_the_user_was_writing(model, message):
    line = one_error_line(*run_cli("train", "--model", model)[::2])
    assert __import__("re").search(message, line) and line.count(" or ") <= 1, line


# -- runs from files: names, the data cache, predict's columns, inspect's rows ----------------------------------------
@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A run trained on the digits as a CSV file named like a dataset: kmnist.csv (rows shuffled)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    root = tmp_path_factory.mktemp("csvrun")
    path = write_csv(root / "kmnist.csv", d.data[order], d.target[order], [f"px{i}" for i in range(64)])
    cwd = os.getcwd()
    os.chdir(root)
    try:
        rc, stdout, stderr = run_cli("train", "--data", "kmnist.csv", "--epochs", "3", "--probe-every", "0")
    finally:
        os.chdir(cwd)
    assert rc == 0, stderr
    runs = list((root / "runs").iterdir())
    return root, path, runs[0], stdout


def test_a_run_from_a_file_is_named_after_the_whole_file_name(csv_run):
    root, _, run, stdout = csv_run
    assert run.name.startswith("kmnist.csv-"), run.name  # before: kmnist-..., like the built-in dataset
    assert "training mlp on kmnist.csv (" in stdout
    info = json.loads((run / "config.json").read_text())["data"]
    assert info["name"] == "kmnist.csv" and info["source"] == "file"


def test_later_commands_read_the_parsed_data_from_the_run_not_the_file(csv_run, monkeypatch):
    root, path, run, _ = csv_run
    meta = json.loads((run / "data-cache" / "meta.json").read_text())
    assert meta["file"]["path"] == str(path.resolve()) and meta["file"]["size"] == path.stat().st_size

    def no_parse(*a, **k):
        raise AssertionError("the CSV file was parsed again")

    monkeypatch.setattr(csvfile, "_parse", no_parse)
    metrics = json.loads((run / "metrics.json").read_text())
    rc, stdout, stderr = run_cli("evaluate", run, "--json")  # from another folder: the relative path is resolved
    assert rc == 0, stderr
    assert json.loads(stdout)["accuracy"] == metrics["accuracy"]
    assert run_cli("gradcheck", run, "--batch-size", "4")[0] == 0


def test_a_stale_cache_is_rebuilt(csv_run, tmp_path, monkeypatch):
    import shutil

    root, path, run, _ = csv_run
    shutil.copytree(run, tmp_path / "run")
    shutil.copy2(path, tmp_path / "kmnist.csv")
    monkeypatch.chdir(tmp_path)  # the run's data, kmnist.csv, is now this copy: another file than the cache's
    calls = []
    real = csvfile._parse
    monkeypatch.setattr(csvfile, "_parse", lambda *a: calls.append(1) or real(*a))
    cached = tmp_path / "run" / "data-cache" / "x_test.npy"
    # first: another file (rebuilt), then current (read), then a new time or size (rebuilt), then current again
    for change, parses in [(None, 1), (None, 1), ("time", 2), (None, 2), ("size", 3), (None, 3)]:
        before, parsed = cached.stat().st_mtime_ns, len(calls)
        if change == "time":
            os.utime("kmnist.csv", ns=(0, Path("kmnist.csv").stat().st_mtime_ns + 10**9))
        elif change == "size":
            with open("kmnist.csv", "a") as f:
                f.write(",".join(["0"] * 65) + "\n")
        rc, _, stderr = run_cli("evaluate", "run")
        assert rc == 0, stderr
        assert len(calls) == parses, change
        assert (cached.stat().st_mtime_ns != before) == (len(calls) > parsed)  # each parse rewrites the cache


def test_inspect_names_the_source_row_of_each_top_input(csv_run):
    root, path, run, _ = csv_run
    rc, stdout, stderr = run_cli("inspect", run, "--layer", "0", "--unit", "3", "--top", "4", "--no-image")
    assert rc == 0, stderr
    tops = [s.strip() for s in stdout.splitlines() if s.strip().startswith("kmnist.csv row ")]
    assert len(tops) == 4, stdout
    file_lines = path.read_text().splitlines()
    for s in tops:  # "kmnist.csv row 1234: output 5.2, label 7": that line of the file holds label 7
        row = int(s.split()[2].rstrip(":"))
        assert file_lines[row - 1].rsplit(",", 1)[1] == s.rsplit("label ", 1)[1]


def test_predict_prints_a_label_column_only_for_named_classes(tmp_path):
    from sklearn.datasets import load_iris

    d = load_iris()
    rc, _, stderr = run_cli("train", "--data", "iris", "--epochs", "1", "--probe-every", "0", "--out", tmp_path / "r")
    assert rc == 0, stderr
    np.save(tmp_path / "x.npy", d.data[:3].astype(np.float32))
    rc, stdout, _ = run_cli("predict", tmp_path / "r", tmp_path / "x.npy")
    header, *rows = stdout.strip().splitlines()
    assert header.split(",")[:4] == ["index", "class", "label", "p_setosa"]
    assert all(r.split(",")[2] in ("setosa", "versicolor", "virginica") for r in rows)


def test_a_dataset_name_always_means_the_dataset(tmp_path, monkeypatch):
    # a file called like a dataset is given as a path; the bare name is the dataset
    monkeypatch.chdir(tmp_path)
    write_csv(tmp_path / "iris", np.zeros((4, 2)), [0, 1, 0, 1])
    rc, stdout, _ = run_cli("train", "--data", "iris", "--epochs", "1", "--probe-every", "0", "--out", "a")
    assert rc == 0 and "on iris (" in stdout
    line = one_error_line(*run_cli("train", "--data", "./iris", "--out", "b")[::2])
    assert "unsupported data file type" in line
