"""Checkpoints and run directories (issue 10): a kill at any instant of a save leaves a resumable run, what killed
saves leave behind is cleaned up, one process trains in a run at a time, a full disk or a file-size limit is one line
and keeps the previous checkpoint, damaged run files are one line naming the file, and every JSON written is
strict."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import neuronkit as nk
from neuronkit import io, nn, optim
from neuronkit.train import load_checkpoint, save_checkpoint
from neuronkit.train.checkpoint import clean_leftovers, latest_checkpoint

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_cli import epochs_of, run_cli  # noqa: E402


def _model_and_optimizer(seed: int):
    nk.manual_seed(seed)
    model = nn.Sequential(nn.Dense(6, 5), nn.Linear(5, 3))
    opt = optim.Adam(model.parameters())
    for p in model.parameters():
        p.grad = nk.ones_like(p)
    opt.step()
    return model, opt


def _save(root, step: int, seed: int) -> str:
    model, opt = _model_and_optimizer(seed)
    return save_checkpoint(root, model, opt, {"step": step, "value": float(model[0].bias.data[0])}, keep=2)


# -- a kill at every step of the write sequence -----------------------------------------------------------------------
KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, shutil, sys
    import neuronkit as nk
    from neuronkit import nn, optim
    from neuronkit.train import load_checkpoint, save_checkpoint
    try:
        from neuronkit.train.checkpoint import clean_leftovers
    except ImportError:  # an older neuronkit: no clean-up
        clean_leftovers = None

    FS = ["open", "write", "fsync", "close", "replace", "rename", "mkdir", "unlink", "rmdir", "chmod", "ftruncate"]
    REAL = {name: getattr(os, name) for name in FS}
    # fsync is still a kill point, but a no-op: a killed process (not a power cut) loses nothing in the page cache,
    # and 130 kills x 40 real fsyncs would make the test take minutes on a busy disk
    REAL["fsync"] = os.fsync = lambda fd: None

    def save(root, step, seed):
        nk.manual_seed(seed)
        model = nn.Sequential(nn.Dense(6, 5), nn.Linear(5, 3))
        opt = optim.Adam(model.parameters())
        for p in model.parameters():
            p.grad = nk.ones_like(p)
        opt.step()
        save_checkpoint(root, model, opt, {"step": step, "value": float(model[0].bias.data[0])}, keep=2)

    def patched(fn, at):
        # run fn with every filesystem call counted; the call number `at` kills the process before it happens
        n = [0]
        def wrap(name):
            def f(*args, **kwargs):
                n[0] += 1
                if n[0] == at:
                    os._exit(17)
                return REAL[name](*args, **kwargs)
            return f
        for name in FS:
            setattr(os, name, wrap(name))
        try:
            fn()
        finally:
            for name in FS:
                setattr(os, name, REAL[name])
        return n[0]

    base = sys.argv[1]
    results = []
    for scenario, step, seed in (("next step", 2, 2), ("same step", 1, 3)):
        prepared = os.path.join(base, "prepared")
        shutil.rmtree(prepared, ignore_errors=True)
        save(prepared, 1, 1)  # the previous checkpoint: step 1
        dry = os.path.join(base, "dry")
        shutil.copytree(prepared, dry)
        calls = patched(lambda: save(dry, step, seed), at=0)
        shutil.rmtree(dry)
        for k in range(1, calls + 1):
            root = os.path.join(base, f"{scenario}-{k}")
            shutil.copytree(prepared, root)
            pid = os.fork()
            if pid == 0:
                try:
                    patched(lambda: save(root, step, seed), at=k)
                finally:
                    os._exit(3)
            r = {"scenario": scenario, "k": k, "of": calls, "exit": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}
            try:
                model, state = load_checkpoint(root)
                r["step"] = state["step"]
                r["consistent"] = float(model[0].bias.data[0]) == state["value"]
                if clean_leftovers is not None:
                    clean_leftovers(root)
                save(root, 5, 5)  # the resumed run saves again
                r["after"] = load_checkpoint(root)[1]["step"]
                r["hidden"] = sorted(n for n in os.listdir(root) if n.startswith("."))
            except Exception as e:
                r["error"] = f"{type(e).__name__}: {e}"
            results.append(r)
            shutil.rmtree(root)
    print(json.dumps(results))
    """
)


@pytest.mark.slow  # about 130 kills, each followed by a resume and a save (~10 s)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked child")
def test_a_kill_before_any_filesystem_call_of_a_save_leaves_a_resumable_run(tmp_path):
    """Kill the saving process (os._exit in a forked child) just before its 1st, 2nd, ... filesystem call, for a new
    step and for the same step saved again (as at every run's end); then resume and save again."""
    (tmp_path / "kill.py").write_text(KILL_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(tmp_path / "kill.py"), str(tmp_path)], capture_output=True, text=True, env=ENV
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout)
    assert {r["scenario"] for r in results} == {"next step", "same step"} and len(results) > 40
    bad = [r for r in results if "error" in r or r["exit"] != 17 or not r["consistent"] or r["after"] != 5]
    assert not bad, bad[:3]
    assert {r["step"] for r in results if r["scenario"] == "next step"} == {1, 2}  # before and after the switch
    assert {r["step"] for r in results if r["scenario"] == "same step"} == {1}
    assert all(r["hidden"] == [] for r in results), [r for r in results if r["hidden"]][:3]


def test_a_disk_full_at_any_write_of_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """ENOSPC from each filesystem call of a save in turn: the save fails in one line or completes, the checkpoint
    latest names always loads, and nothing is left behind."""
    fs = ["open", "write", "fsync", "close", "replace", "rename", "mkdir", "chmod"]
    real = {name: getattr(os, name) for name in fs}
    real["fsync"] = lambda fd: None  # still a failure point; no disk flush needed for this test
    counter = {"n": 0, "at": 0}

    def wrap(name):
        def f(*args, **kwargs):
            counter["n"] += 1
            if counter["n"] == counter["at"]:
                if name == "close":  # a failing close still releases the descriptor (POSIX, Linux)
                    real[name](*args, **kwargs)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real[name](*args, **kwargs)

        return f

    for name in fs:
        monkeypatch.setattr(os, name, wrap(name))
    _save(tmp_path / "dry", 1, 1)
    counter["n"] = 0
    _save(tmp_path / "dry", 2, 2)
    calls, failures = counter["n"], 0
    for k in range(1, calls + 1):
        root = tmp_path / f"r{k}"
        _save(root, 1, 1)
        counter.update(n=0, at=k)
        try:
            _save(root, 2, 2)
        except io.WriteError as e:
            failures += 1
            msg = str(e)
            assert e.errno == errno.ENOSPC and "\n" not in msg, msg
            assert msg.startswith(f"cannot save checkpoint step-000000002 in {root}: No space left on device"), msg
            assert msg.endswith("the previous checkpoint step-000000001 is kept"), msg
            assert load_checkpoint(root)[1]["step"] == 1
        finally:
            counter["at"] = 0
        assert load_checkpoint(root)[1]["step"] in (1, 2)
        assert [n for n in os.listdir(root) if n.startswith(".")] == [], os.listdir(root)
    assert failures > calls // 2, (failures, calls)


def test_leftovers_of_dead_processes_are_removed_at_the_next_start(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    root = tmp_path / "checkpoints"
    _save(root, 3, 0)
    for name in (f".step-000000004.partial-{dead_pid}", f".step-000000001.trash-{dead_pid}"):
        (root / name).mkdir()
        (root / name / "model.safetensors").write_bytes(b"half")
    (root / f".latest.abcd.{dead_pid}.tmp").write_text("{")
    mine = root / f".step-000000005.partial-{os.getpid()}"
    mine.mkdir()
    # a training run with ModelCheckpoint on this directory starts: what dead processes left goes
    x, y = np.zeros((8, 6), np.float32), np.zeros(8, np.int64)
    model, _ = _model_and_optimizer(0)
    nk.train.fit(model, (x, y), epochs=1, progress=False, callbacks=[nk.train.ModelCheckpoint(root)])
    assert sorted(n for n in os.listdir(root) if n.startswith(".")) == [mine.name]  # a live process's is kept
    assert clean_leftovers(root, everything=True) == [mine.name]  # with the run's lock held: all of them


def test_the_same_step_saved_twice_gets_a_new_directory_and_keep_prunes(tmp_path):
    first = _save(tmp_path, 7, 0)
    second = _save(tmp_path, 7, 1)
    assert Path(second).name == "step-000000007.1" and latest_checkpoint(tmp_path) == second
    assert not os.path.exists(first)  # superseded, removed after latest moved on
    model, state = load_checkpoint(tmp_path)
    assert float(model[0].bias.data[0]) == state["value"] == _model_and_optimizer(1)[0][0].bias.data[0]
    for step in (8, 9, 10):
        _save(tmp_path, step, step)
    assert sorted(n for n in os.listdir(tmp_path) if n.startswith("step-")) == ["step-000000009", "step-000000010"]


# -- the run lock ----------------------------------------------------------------------------------------------------
HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from neuronkit.cli.rundir import RunDir
    with RunDir(sys.argv[1]).lock():
        print("locked", flush=True)
        if sys.argv[2] == "crash":
            import os
            os._exit(9)
        time.sleep(60)
    """
)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "small"
    rc, _, stderr = run_cli("train", "--data", "digits", "--hidden", "8", "--epochs", "2", "--out", out)
    assert rc == 0, stderr
    return out


def _copy_run(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def test_a_second_train_in_a_locked_run_refuses_in_one_line(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    history = (run / "history.jsonl").read_text()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run), "hold"], stdout=subprocess.PIPE, text=True, env=ENV
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        rc, stdout, stderr = run_cli("train", "--resume", run, "--epochs", "3")
    finally:
        holder.kill()
        holder.wait()
    assert rc == 1 and stdout == "", (stdout, stderr)
    assert stderr.strip() == (
        f"neuronkit: error: {run} is in use by another neuronkit process (PID {holder.pid}): wait for it to end, or "
        f"stop it, before training in this run directory"
    )
    assert (run / "history.jsonl").read_text() == history  # nothing written
    rc, _, stderr = run_cli("train", "--resume", run, "--epochs", "3")  # the holder is gone: the lock went with it
    assert rc == 0, stderr
    assert [e["epoch"] for e in epochs_of(run)] == [1, 2, 3]


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def test_the_lock_is_released_when_its_holder_crashes(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    crashed = subprocess.run(
        [sys.executable, "-c", HOLD_LOCK, str(run), "crash"], capture_output=True, text=True, env=ENV
    )
    assert crashed.returncode == 9 and crashed.stdout.strip() == "locked", crashed.stderr
    from neuronkit.cli.rundir import RunDir

    with RunDir(run).lock():
        assert (run / ".lock").read_text().strip() == str(os.getpid())


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="fcntl")
def _holds_flock(pid: int) -> bool:
    """Does process ``pid`` hold a ``flock`` (Linux's /proc/locks)?"""
    return any(" FLOCK " in ln and ln.split()[4] == str(pid) for ln in Path("/proc/locks").read_text().splitlines())


def test_two_resumes_of_one_run_at_once(small_run, tmp_path):
    """Two `neuronkit train --resume` of one run at once: the one that comes second, while the first trains, refuses
    in one line; the history is the one run's, epoch by epoch, never interleaved. The first is paused (SIGSTOP) while
    it holds the run, so the second always meets it there (a small run trains in 0.1 s: started together, the first
    could finish before the second looks)."""
    import signal

    cmd = [sys.executable, "-m", "neuronkit", "train", "--resume", None, "--epochs", "6"]
    for attempt in range(10):
        run = _copy_run(small_run, tmp_path / f"run{attempt}")
        cmd[5] = str(run)
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        while first.poll() is None and not _holds_flock(first.pid):
            time.sleep(0.001)
        first.send_signal(signal.SIGSTOP)
        held = first.poll() is None and _holds_flock(first.pid)  # (it may have let go just before it stopped)
        second = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300) if held else None
        first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
        if held:
            break
    assert held, "the first process never held the run long enough to be paused there"
    assert second.returncode == 1, (second.stdout, second.stderr)
    assert len(second.stderr.strip().splitlines()) == 1
    assert "is in use by another neuronkit process (PID" in second.stderr
    assert [e["epoch"] for e in epochs_of(run)] == [1, 2, 3, 4, 5, 6]


# -- disk full, file-size limit ---------------------------------------------------------------------------------------
def test_a_full_disk_during_training_is_one_line_and_the_run_resumes(small_run, tmp_path, monkeypatch):
    """ENOSPC on every write into the checkpoints once a first checkpoint exists: `train` exits 1 with one line
    naming the checkpoint kept, and `--resume` continues from it once there is room again."""
    out = tmp_path / "run"
    real_open, real_write, paths = os.open, os.write, {}

    def opening(path, *args, **kwargs):
        fd = real_open(path, *args, **kwargs)
        paths[fd] = os.fspath(path)
        return fd

    def writing(fd, data):
        if "checkpoints" in paths.get(fd, "") and (out / "checkpoints" / "latest").exists():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", opening)
    monkeypatch.setattr(os, "write", writing)
    rc, _, stderr = run_cli("train", "--data", "digits", "--hidden", "8", "--epochs", "3", "--out", out)
    assert rc == 1, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert stderr.startswith("neuronkit: error: cannot save checkpoint step-") and "No space left on device" in stderr
    kept = Path(latest_checkpoint(out / "checkpoints")).name
    assert stderr.strip().endswith(f"the previous checkpoint {kept} is kept"), stderr
    assert [n for n in os.listdir(out / "checkpoints") if n.startswith(".")] == []
    monkeypatch.undo()
    rc, _, stderr = run_cli("train", "--resume", out, "--epochs", "3")
    assert rc == 0, stderr
    assert [e["epoch"] for e in epochs_of(out)] == [1, 2, 3]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="/dev/full: every write fails with ENOSPC")
def test_a_full_disk_under_the_history_log_is_one_error_not_two():
    model, opt = _model_and_optimizer(0)
    x, y = np.zeros((8, 6), np.float32), np.zeros(8, np.int64)
    log = nk.train.JSONLLogger("/dev/full")
    with pytest.raises(io.WriteError) as caught:
        nk.train.fit(model, (x, y), epochs=2, optimizer=opt, progress=False, callbacks=[log])
    assert str(caught.value) == "cannot write /dev/full: No space left on device"
    shown = "".join(__import__("traceback").format_exception(caught.value))
    assert "During handling" not in shown and "direct cause" not in shown  # one error, not a chain of two


FSIZE_SCRIPT = textwrap.dedent(
    """
    import resource, signal, sys
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    from neuronkit.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGXFSZ"), reason="POSIX file-size limit")
def test_a_file_size_limit_is_one_line_and_keeps_the_previous_checkpoint(small_run, tmp_path):
    """RLIMIT_FSIZE between the largest file of the first epoch's checkpoint and of the second's (trainer.json
    grows with the history), so the first save succeeds and the second fails with EFBIG."""
    first = Path(small_run / "checkpoints" / "latest").parent
    sizes = {}
    for d in first.iterdir():
        if d.is_dir() and d.name.startswith("step-"):
            sizes[d.name] = max(f.stat().st_size for f in d.iterdir())
    small, large = sorted(sizes.values())  # the run keeps its two checkpoints: epochs 1 and 2
    assert large > small + 100, sizes
    out = tmp_path / "run"
    argv = ["train", "--data", "digits", "--hidden", "8", "--epochs", "2", "--out", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", FSIZE_SCRIPT, str((small + large) // 2), *argv], capture_output=True, text=True, env=ENV
    )
    assert proc.returncode == 1, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "File too large" in proc.stderr and "the previous checkpoint step-" in proc.stderr, proc.stderr
    model, state = load_checkpoint(out / "checkpoints")
    assert state["epoch"] == 1


# -- damaged files -----------------------------------------------------------------------------------------------------
def _damage_trainer_json(run: Path, make) -> Path:
    ckpt = Path(latest_checkpoint(run / "checkpoints"))
    path = ckpt / "trainer.json"
    good = path.read_bytes()
    path.write_bytes(make(good, json.loads(good)))
    return path


def _with(state, **changes):
    return json.dumps({**state, **changes}).encode()


DEEP = b"[" * 5000 + b"]" * 5000
DAMAGED_TRAINER = {
    "deep nesting": (lambda b, s: _with(s, history={"epochs": [[[[]]]]}).replace(b"[[[[]]]]", DEEP), "nested"),
    "history a list": (lambda b, s: _with(s, history=[]), "history must be an object, got list"),
    "epochs not records": (lambda b, s: _with(s, history={"epochs": [1]}), r"history.epochs\[0\] must be an object"),
    "step a string": (lambda b, s: _with(s, step="3"), "step must be an int >= 0, got string '3'"),
    "negative epoch": (lambda b, s: _with(s, epoch=-1), "epoch must be an int >= 0"),
    "generator wrong": (lambda b, s: _with(s, default_generator={"state": {}}), "bit_generator is missing"),
    "generator state wrong": (
        lambda b, s: _with(s, default_generator={**s["default_generator"], "state": {"state": "x", "inc": 1}}),
        "cannot restore the training state",
    ),
    "truncated": (lambda b, s: b[: len(b) // 2], "not valid JSON"),
    "not an object": (lambda b, s: b"[]", "the document must be an object"),
    "NaN step": (lambda b, s: b.replace(b'"step": ', b'"step": NaN, "x": ', 1), "step must be an int >= 0, got number"),
    "not UTF-8": (lambda b, s: b"\xff" + b, "not UTF-8"),
    "many objects": (lambda b, s: b"[" + b"{}," * 400_000 + b"{}]", "objects and lists, more than the limit"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DAMAGED_TRAINER))
def test_a_damaged_trainer_json_is_one_line_naming_it(small_run, tmp_path, case):
    run = _copy_run(small_run, tmp_path / "run")
    make, message = DAMAGED_TRAINER[case]
    path = _damage_trainer_json(run, make)
    rc, _, stderr = run_cli("train", "--resume", run, "--epochs", "3")
    assert rc == 1 and len(stderr.strip().splitlines()) == 1, stderr
    assert str(path) in stderr, stderr
    assert __import__("re").search(message, stderr), stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"config": {}, "data": []}', "data must be an object, got list"),
        ("[" * 3000 + "]" * 3000, "nested"),
        ('{"config": {}}', "data is missing"),
        ("{", "not valid JSON"),
    ],
)
def test_a_damaged_config_json_is_one_line_naming_it(small_run, tmp_path, text, message):
    run = _copy_run(small_run, tmp_path / "run")
    (run / "config.json").write_text(text)
    for argv in (["train", "--resume", run], ["evaluate", run]):
        rc, _, stderr = run_cli(*argv)
        assert rc == 1 and len(stderr.strip().splitlines()) == 1, stderr
        assert str(run / "config.json") in stderr and message in stderr, stderr


def test_a_damaged_data_section_is_one_line(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    doc = json.loads((run / "config.json").read_text())
    doc["data"]["num_outputs"] = "ten"
    (run / "config.json").write_text(json.dumps(doc))
    rc, _, stderr = run_cli("evaluate", run)
    assert rc == 1 and stderr.strip() == (
        f"neuronkit: error: {run / 'config.json'}: data.num_outputs must be an int >= 1, got string 'ten'"
    )


def test_a_damaged_latest_pointer_is_one_line(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    for text, message in (('{"checkpoint": "../../etc"}', "not a checkpoint directory"), ("[" * 50, "")):
        (run / "checkpoints" / "latest").write_text(text)
        rc, _, stderr = run_cli("train", "--resume", run, "--epochs", "3")
        assert rc == 1 and len(stderr.strip().splitlines()) == 1 and message in stderr, stderr
        assert str(run / "checkpoints" / "latest") in stderr, stderr


def test_damaged_probe_metadata_is_one_line(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    meta = json.loads((run / "probes" / "probes.json").read_text())
    meta["layers"][0]["units"] = "many"
    (run / "probes" / "probes.json").write_text(json.dumps(meta))
    rc, _, stderr = run_cli("diagnose", run)
    assert rc == 1 and len(stderr.strip().splitlines()) == 1, stderr
    assert "probes.json: layers[0].units must be an int >= 0, got string 'many'" in stderr, stderr


# -- strict JSON -----------------------------------------------------------------------------------------------------
def _strict(text: str):
    def refuse(name):
        raise ValueError(f"{name} in JSON written by neuronkit")

    return json.loads(text, parse_constant=refuse)


def test_the_json_writer_is_strict():
    obj = {"a": float("nan"), "b": [1.5, float("inf"), np.float32("-inf"), np.float64(2.5)], "c": np.int64(3)}
    text = io.dumps_json(obj)
    assert _strict(text) == {"a": None, "b": [1.5, None, None, 2.5], "c": 3}
    assert _strict(io.dumps_json({"x": np.array([1.0, np.nan])})) == {"x": [1.0, None]}
    with pytest.raises(TypeError, match="cannot be written as JSON"):
        io.dumps_json({"x": object()})


def test_checkpoints_and_logs_of_a_nan_run_are_strict_json(tmp_path):
    model, opt = _model_and_optimizer(0)
    x = np.full((16, 6), np.nan, np.float32)  # every loss is NaN
    y = np.zeros(16, np.int64)
    log = tmp_path / "history.jsonl"
    logger = nk.train.JSONLLogger(log, steps=True)
    trainer = nk.train.Trainer(model, optimizer=opt, callbacks=[logger], progress=False)
    with np.errstate(all="ignore"):
        trainer.fit((x, y), epochs=1, batch_size=8)
    trainer._partial = (float("nan"), 1)  # a checkpoint taken mid-epoch after a NaN step
    path = trainer.save_checkpoint(tmp_path / "ckpt")
    state = _strict((Path(path) / "trainer.json").read_text())
    assert state["history"]["epochs"][0]["loss"] is None and state["partial_loss"] == [None, 1]
    assert all(_strict(line)["loss"] is None for line in log.read_text().splitlines())
    with pytest.warns(io.NonFiniteWarning) as caught:
        _, restored = load_checkpoint(tmp_path / "ckpt", model=model, optimizer=opt)
    warned = sorted(str(w.message).split(": NaN or infinite values in ")[0].rsplit("/", 1)[1] for w in caught)
    assert warned == ["model.safetensors", "optimizer.safetensors"]
    assert np.isnan(restored["partial_loss"][0])  # null reads back as NaN
    trainer.history.to_jsonl(tmp_path / "h2.jsonl")
    assert all(_strict(line) for line in (tmp_path / "h2.jsonl").read_text().splitlines())


def test_a_nan_loss_written_as_null_is_read_back_as_nan(small_run, tmp_path):
    """history.jsonl holds null where the loss was NaN; diagnose still sees a diverged run (as with the NaN
    literals older runs wrote)."""
    run = _copy_run(small_run, tmp_path / "run")
    lines = [{"kind": "epoch", "epoch": i + 1, "loss": lo, "lr": 1.0} for i, lo in enumerate([2.0, 5.0, float("nan")])]
    text = "".join(io.dumps_json(r) + "\n" for r in lines)
    assert '"loss": null' in text
    (run / "history.jsonl").write_text(text)
    rc, stdout, _ = run_cli("diagnose", run)
    assert rc == 1 and stdout.splitlines()[1].startswith("ERROR") and "nan" in stdout, stdout
