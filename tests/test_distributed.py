"""Data-parallel training over MPI (train.distributed): N ranks train the same model as one process.

The runs are tests/mpi_fit.py under ``mpiexec -n N`` (MPICH from the ``mpich`` wheel; more ranks than the machine's
2 cores is allowed by its launcher as it is), one BLAS thread per rank. Tolerance: the ranks' sums of gradients and of
batch-norm statistics are added in another order than one process's sums, so weights agree to float32 rounding
amplified by 10 SGD-momentum steps: measured at most 1.9e-6 (absolute, weights of order 1); asserted at 1e-5.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from neuronkit.data import ArrayDataset, DataLoader, shard_bounds
from neuronkit.inspect import load_history
from neuronkit.ops.dropout import batch_rows, dropout_mask
from neuronkit.train import distributed

HERE = Path(__file__).parent
SCRIPT = str(HERE / "mpi_fit.py")
MPIEXEC = str(Path(sys.executable).parent / "mpiexec")
ATOL = 1e-5


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "PMIX_"))}
    env.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "NEURONKIT_MPI_TIMEOUT": "60", **extra})
    return env


def run(n, *args, timeout=120, env=None):
    """``mpi_fit.py args`` under ``mpiexec -n n`` (n = 0: a plain process); the CompletedProcess."""
    cmd = ([MPIEXEC, "-n", str(n)] if n else []) + [sys.executable, SCRIPT, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env())


def trained(out: Path, n: int, model: str, *extra) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    r = run(n, model, out, *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = max(n, 1)
    digests = [json.loads((out / f"digest-{k}.json").read_text()) for k in range(ranks)]
    w = np.load(out / "weights.npz")
    return {
        "weights": {k: w[k] for k in w.files},
        "digests": digests,
        "history": json.loads((out / "history.json").read_text()),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One plain process per model: the run every data-parallel run must reproduce."""
    cache = {}

    def get(model):
        if model not in cache:
            cache[model] = trained(tmp_path_factory.mktemp(f"ref-{model}"), 0, model)
        return cache[model]

    return get


def assert_same_model(ref, got):
    for k, w in ref["weights"].items():
        np.testing.assert_allclose(got["weights"][k], w, rtol=0, atol=ATOL, err_msg=k)
    for a, b in zip(ref["history"]["epochs"], got["history"]["epochs"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-5)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-5)
        assert abs(b["accuracy"] - a["accuracy"]) <= 1 / 203  # an argmax at a tie could flip one sample at most
        assert abs(b["val_accuracy"] - a["val_accuracy"]) <= 1 / 40


@pytest.mark.slow  # mpiexec runs: a few seconds each, more under load
@pytest.mark.parametrize("model", ["mlp", "lenet"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_n_ranks_train_the_same_model_as_one_process(reference, tmp_path, model, n):
    """203 digits, global batch 50 (the last batch of 3 leaves rank 3 of 4 an empty shard), dropout and batch
    norm, 2 epochs: the same weights and history as one process; every rank's weights identical after every epoch."""
    got = trained(tmp_path, n, model)
    assert got["history"]["ranks"] == n
    assert_same_model(reference(model), got)
    for k in range(1, n):
        assert got["digests"][k] == got["digests"][0], f"rank {k}'s weights differ from rank 0's"
    assert len(got["digests"][0]) == 2


@pytest.mark.slow  # mpiexec runs: a few seconds each, more under load
def test_resume_with_another_number_of_ranks(reference, tmp_path):
    """Epoch 1 on 2 ranks (rank 0 writes the checkpoint), epoch 2 resumed on 3 ranks: the model of one process."""
    out = tmp_path / "run"
    out.mkdir()
    r = run(2, "mlp", out, "--epochs", 1, "--checkpoint")
    assert r.returncode == 0, r.stderr[-3000:]
    got = trained(out, 3, "mlp", "--epochs", 2, "--checkpoint", "--resume")
    assert_same_model(reference("mlp"), got)


@pytest.mark.slow  # mpiexec runs: a few seconds each, more under load
def test_a_killed_rank_stops_the_others(tmp_path):
    t0 = time.monotonic()
    r = run(3, "mlp", tmp_path, "--epochs", 50, "--die-at", 3, timeout=60)
    assert r.returncode != 0
    assert time.monotonic() - t0 < 60
    assert "Killed (signal 9)" in r.stdout + r.stderr  # the launcher names what happened and ends the job


@pytest.mark.slow  # mpiexec runs: a few seconds each, more under load
def test_a_hanging_rank_stops_the_others_with_one_line(tmp_path):
    t0 = time.monotonic()
    r = run(3, "mlp", tmp_path, "--epochs", 50, "--hang-at", 3, timeout=90, env=_env(NEURONKIT_MPI_TIMEOUT="5"))
    assert r.returncode != 0
    assert time.monotonic() - t0 < 90
    lines = [ln for ln in r.stderr.splitlines() if "no answer from the other ranks after 5 s" in ln]
    assert lines, f"exit {r.returncode}; stdout: {r.stdout[-1500:]}; stderr: {r.stderr[-1500:]}"
    assert "a rank died or hangs" in lines[0]


@pytest.mark.slow  # mpiexec runs: a few seconds each, more under load
@pytest.mark.parametrize("bad", [1, -1])
def test_bad_input_on_one_or_every_rank_is_reported_once(tmp_path, bad):
    r = run(3, "mlp", tmp_path, "--bad-val", bad, timeout=60)
    assert r.returncode != 0
    assert r.stderr.count("validation data: expected a tuple (x, y), got a tuple of 3 items") == 1, r.stderr


# -- without launching: the seam, the loader's shards, the dropout masks -------------------------------------------
def test_single_process_is_the_default_and_needs_no_mpi(monkeypatch):
    for key in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # as if not installed
    comm = distributed.get_communicator("auto")
    assert (comm.rank, comm.size) == (0, 1)
    buf = np.arange(3.0)
    assert comm.allreduce(buf) is buf and comm.lowest(False) is None


def test_without_mpi4py_asking_for_mpi_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(distributed, "_WORLD", None)
    with pytest.raises(distributed.MPIUnavailable, match=r"pip install 'neuronkit\[mpi\]'"):
        distributed.get_communicator("mpi")
    monkeypatch.setenv("PMI_SIZE", "4")
    with pytest.raises(distributed.MPIUnavailable, match="one of 4 started by an MPI launcher") as e:
        distributed.get_communicator("auto")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("shuffle", [False, True])
def test_sharded_loaders_together_yield_the_unsharded_batches(size, shuffle):
    x = np.arange(23 * 2, dtype=np.float32).reshape(23, 2)
    ds = ArrayDataset(x, np.arange(23))
    whole = [b for b in DataLoader(ds, batch_size=5, shuffle=shuffle, seed=3)]
    parts = [list(DataLoader(ds, batch_size=5, shuffle=shuffle, seed=3, shard=(r, size))) for r in range(size)]
    for b, batch in enumerate(whole):
        sizes = [len(p[b][1]) for p in parts]
        assert max(sizes) - min(sizes) <= 1
        np.testing.assert_array_equal(np.concatenate([p[b][0] for p in parts]), batch[0])
        np.testing.assert_array_equal(np.concatenate([p[b][1] for p in parts]), batch[1])


def test_shard_bounds_cover_every_item_once():
    for n in range(12):
        for size in range(1, 6):
            bounds = [shard_bounds(n, r, size) for r in range(size)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


def test_shard_dropout_masks_are_rows_of_the_global_batch_mask():
    full = dropout_mask((10, 4), np.dtype(np.float32), 0.5, np.random.default_rng(5))
    for lo, hi in ((0, 4), (4, 7), (7, 10), (10, 10)):
        with batch_rows(lo, hi, 10):
            part = dropout_mask((hi - lo, 4), np.dtype(np.float32), 0.5, np.random.default_rng(5))
        np.testing.assert_array_equal(part, full[lo:hi])


# -- the command line ------------------------------------------------------------------------------------------------
NEURONKIT = str(Path(sys.executable).parent / "neuronkit")


def train_cli(n: int, *args, timeout=180):
    cmd = ([MPIEXEC, "-n", str(n)] if n else []) + [NEURONKIT, "train", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())


@pytest.mark.slow  # two runs of neuronkit train, one under mpiexec
def test_mpiexec_neuronkit_train_is_the_run_of_one_process(tmp_path):
    """Adam, dropout, 82 steps on digits: the same weights (to 1e-5), history and test accuracy; rank 0 alone
    prints and writes one run directory."""
    from safetensors.numpy import load_file

    flags = ["--data", "digits", "--epochs", "2", "--dropout", "0.2", "--hidden", "32"]
    one = train_cli(0, *flags, "--out", tmp_path / "one")
    two = train_cli(2, *flags, "--out", tmp_path / "two")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    assert "data-parallel training on 2 processes" in two.stdout
    assert two.stdout.count("test accuracy") == 1 and two.stdout.count("epoch 2/2") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    a = load_file(tmp_path / "one" / "model" / "model.safetensors")
    b = load_file(tmp_path / "two" / "model" / "model.safetensors")
    for k in a:
        np.testing.assert_allclose(b[k], a[k], rtol=0, atol=ATOL, err_msg=k)
    ha = [json.loads(x) for x in (tmp_path / "one" / "history.jsonl").read_text().splitlines()]
    hb = [json.loads(x) for x in (tmp_path / "two" / "history.jsonl").read_text().splitlines()]
    for ea, eb in zip(ha, hb, strict=True):
        assert eb["loss"] == pytest.approx(ea["loss"], abs=1e-5)
        assert abs(eb["val_accuracy"] - ea["val_accuracy"]) <= 1 / 144
    ma = json.loads((tmp_path / "one" / "metrics.json").read_text())
    mb = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert abs(mb["accuracy"] - ma["accuracy"]) <= 1 / 359
    # the probes describe the global batch (each rank's shard sums added at every record), not rank 0's half
    pa, pb = load_history(tmp_path / "one" / "probes"), load_history(tmp_path / "two" / "probes")
    assert list(pb.layers) == list(pa.layers) and pb.layers
    for name in pa.layers:
        a, b = pa.history(name), pb.history(name)
        assert b["step"].tolist() == a["step"].tolist() and len(a["step"]) >= 2
        for s in ("pre_mean", "pre_std", "out_mean", "active_frac", "out_grad_norm"):
            np.testing.assert_allclose(b[s], a[s], rtol=1e-4, atol=1e-5, err_msg=f"{name} {s}")
        assert np.abs(b["hist"] - a["hist"]).sum() <= 2 * len(a["step"])  # a value on a bin edge may move by rounding


@pytest.mark.slow  # an mpiexec run
def test_mpiexec_neuronkit_train_reports_a_bad_flag_once(tmp_path):
    r = train_cli(3, "--data", "no-such-data", "--out", tmp_path / "x", timeout=60)
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if "no-such-data" in ln]
    assert len(errors) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_neuronkit_train_under_a_launcher_without_mpi4py_says_how_to_install(monkeypatch, capsys, tmp_path):
    from neuronkit.cli.main import main

    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(distributed, "_WORLD", None)
    monkeypatch.setenv("PMI_SIZE", "2")
    rc = main(["train", "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc != 0 and len(err.splitlines()) == 1, err
    assert err.rstrip().endswith("install them: pip install 'neuronkit[mpi]'")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["soon", "0", "-1", "inf", "nan"])
def test_a_bad_timeout_is_one_clear_error(value):
    with pytest.raises(ValueError, match=f"NEURONKIT_MPI_TIMEOUT: expected a number of seconds > 0, got '{value}'"):
        distributed._timeout(value)


@pytest.mark.slow  # two mpiexec runs of neuronkit train
def test_ctrl_c_stops_every_rank_at_the_same_step_and_the_run_resumes_on_another_n(tmp_path):
    """Ctrl-C reaches every rank (mpiexec forwards it) at different moments; the ranks agree on it through the
    gradient sum, so they stop after the same step: one message, one checkpoint, exit 130. Resumed on 3 ranks."""
    import signal

    out = tmp_path / "run"
    cmd = [MPIEXEC, "-n", "2", NEURONKIT, "train", "--data", "digits", "--epochs", "500", "--out", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 90
        for line in p.stdout:  # wait until training runs
            if line.startswith("epoch") or time.monotonic() > deadline:
                break
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert err.count("neuronkit: interrupted at epoch") == 1, err
    epoch = int(err.split("neuronkit: interrupted at epoch ")[1].split(",")[0])
    r = train_cli(3, "--resume", out, "--epochs", epoch)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"epoch {epoch}/{epoch}" in r.stdout and r.stdout.count("test accuracy") == 1


@pytest.mark.slow  # mpiexec runs
def test_without_a_seed_the_ranks_still_draw_alike_and_unseeded_generators_are_refused(tmp_path):
    got = trained(tmp_path / "noseed", 3, "mlp", "--no-seed")
    assert got["digests"][1] == got["digests"][0] == got["digests"][2]
    (tmp_path / "bad").mkdir()
    r = run(3, "mlp", tmp_path / "bad", "--unseeded-dropout", timeout=60)
    assert r.returncode != 0
    assert r.stderr.count("the random generators ['3'] differ between ranks") == 1, r.stderr
