"""Hostile model files at bounded size (issue 10): each is refused with ``FormatError`` at about the cost of its
header, never by reading or parsing what the header does not need; weights load without running initialisers; and
the bounded fuzz of ``benchmarks/fuzz_load.py`` (run longer with ``python benchmarks/fuzz_load.py --cases 5000``).

Memory is measured with tracemalloc (NumPy's allocations included): deterministic, unlike time, which no test
asserts."""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy as st_numpy

import neuronkit as nk
from neuronkit import nn
from neuronkit.io import FormatError, NonFiniteWarning, load, load_weights, read_safetensors, save, save_weights
from neuronkit.io.tensorfile import DTYPES, MAX_TENSORS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fuzz_load

MiB = 2**20


def _peak(fn):
    """``(exception or None, peak bytes allocated)`` of calling ``fn``."""
    tracemalloc.start()
    try:
        fn()
        err = None
    except Exception as e:
        err = e
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return err, peak


def _linear_dir(tmp_path) -> Path:
    d = tmp_path / "m"
    save(nn.Linear(2, 2, generator=0), d)
    return d


def _weights(d: Path, header: bytes, body: bytes = b"") -> int:
    (d / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header + body)
    return 8 + len(header) + len(body)


def test_a_header_of_a_million_empty_objects_is_refused_before_it_is_parsed(tmp_path):
    d = _linear_dir(tmp_path)
    size = _weights(d, b"[" + b"{}," * 1_000_000 + b"{}]")  # 3 MB: parsed, a million dicts (~140 MB)
    err, peak = _peak(lambda: load(d))
    assert isinstance(err, FormatError) and "objects and lists, more than the limit" in str(err), err
    assert peak < 2 * size + MiB, f"peak {peak / MiB:.1f} MB for a {size / MiB:.1f} MB file"


def test_two_hundred_thousand_zero_size_tensors_are_refused_before_they_are_parsed(tmp_path):
    d = _linear_dir(tmp_path)
    size = _weights(d, fuzz_load.zero_size_tensors(200_000)[8:])  # 12 MB
    err, peak = _peak(lambda: load(d))
    assert isinstance(err, FormatError) and "more than the limit" in str(err), err
    assert peak < 2 * size + MiB, f"peak {peak / MiB:.1f} MB for a {size / MiB:.1f} MB file"


def test_one_tensor_more_than_the_cap_is_refused(tmp_path):
    d = _linear_dir(tmp_path)
    _weights(d, fuzz_load.zero_size_tensors(MAX_TENSORS + 1)[8:])
    with pytest.raises(FormatError, match=f"{MAX_TENSORS + 1} tensors, more than the limit of {MAX_TENSORS}"):
        load(d)


def test_an_architecture_of_empty_objects_is_refused_before_it_is_parsed(tmp_path):
    d = _linear_dir(tmp_path)
    arch = b"[" + b"{}," * 350_000 + b"{}]"  # 1 MB; parsed: ~50 MB of dicts
    (d / "architecture.json").write_bytes(arch)
    err, peak = _peak(lambda: load(d))
    assert isinstance(err, FormatError) and "objects and lists, more than the limit" in str(err), err
    assert peak < 2 * len(arch) + MiB, f"peak {peak / MiB:.1f} MB for a {len(arch) / MiB:.1f} MB file"


def test_a_huge_sparse_weights_file_is_refused_from_its_header_alone(tmp_path):
    d = _linear_dir(tmp_path)
    header = json.dumps({"weight": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}).encode()
    _weights(d, header)
    with open(d / "model.safetensors", "r+b") as f:
        f.truncate(256 * MiB)  # sparse: 256 MB that the header does not account for
    err, peak = _peak(lambda: load(d))
    assert isinstance(err, FormatError) and "bytes of data after the last tensor" in str(err), err
    assert peak < MiB, f"peak {peak / MiB:.1f} MB: the data section was read"


def test_declared_offsets_past_the_end_are_refused_without_reading(tmp_path):
    d = _linear_dir(tmp_path)
    header = json.dumps({"weight": {"dtype": "F32", "shape": [2**20, 64], "data_offsets": [0, 2**28]}}).encode()
    _weights(d, header, b"\0" * 16)
    with pytest.raises(FormatError, match="fall outside the 16-byte data section"):
        load(d)


def _init_heavy_model():
    return nn.Sequential(
        nn.Dense(40, 30, init="orthogonal", activation="relu", dtype="float64", generator=1),
        nn.Linear(30, 20, init="xavier_normal", generator=2),
        nn.Embedding(20, 8, generator=3),
    )


def test_load_runs_no_initialiser(tmp_path, monkeypatch):
    """The architecture names an orthogonal init (a QR as large as the weight): load must not run it, nor draw from
    the default generator, since the weights overwrite every parameter."""
    model = _init_heavy_model()
    save(model, tmp_path / "m")

    def no_qr(*args, **kwargs):
        raise AssertionError("an initialiser ran during load")

    monkeypatch.setattr(nk.backend.xp.linalg, "qr", no_qr)
    nk.manual_seed(5)
    before = nk.creation.get_generator(None).bit_generator.state
    loaded = load(tmp_path / "m")
    assert nk.creation.get_generator(None).bit_generator.state == before
    a, b = model.state_dict(), loaded.state_dict()
    assert all(np.array_equal(a[k], b[k]) and a[k].dtype == b[k].dtype for k in a)


def test_skip_init_checks_arguments_and_draws_nothing():
    nk.manual_seed(0)
    state = nk.creation.get_generator(None).bit_generator.state
    with nn.init.skip_init():
        layer = nn.Dense(3, 2)
        with pytest.raises(ValueError, match="orthogonal_: needs at least 2 dimensions"):
            nn.init.orthogonal_(nk.Tensor(np.zeros(3)))
        with pytest.raises(ValueError, match="unknown initializer"):
            nn.Dense(3, 2, init="os.system")
    assert nk.creation.get_generator(None).bit_generator.state == state
    assert layer.weight.shape == (2, 3) and not nn.init.skipping_init()
    fresh = nn.Dense(3, 2, generator=0)  # outside the block, initialisers run again
    assert np.all(np.abs(fresh.weight.data) <= 1 / np.sqrt(3)) and np.any(fresh.weight.data != 0)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="symbolic links")
@pytest.mark.parametrize("name", ["model.safetensors", "architecture.json"])
def test_a_symlink_loop_is_a_format_error(tmp_path, name):
    d = _linear_dir(tmp_path)
    os.remove(d / name)
    os.symlink(name, d / name)  # a link to itself
    with pytest.raises(FormatError, match="symbolic link loop"):
        load(d)


def test_nan_and_inf_weights_load_with_one_warning_naming_them(tmp_path):
    model = nn.Sequential(nn.Linear(3, 2, generator=0), nn.Linear(2, 2, generator=1))
    model[0].weight.data[0, :2] = np.nan
    model[0].weight.data[1, 0] = np.inf
    model[1].bias.data[1] = -np.inf
    save(model, tmp_path / "m")
    with pytest.warns(NonFiniteWarning) as caught:
        loaded = load(tmp_path / "m")
    assert len(caught) == 1
    msg = str(caught[0].message)
    assert "\n" not in msg and "2 tensor(s)" in msg
    assert "'0.weight' (3 of 6)" in msg and "'1.bias' (1 of 2)" in msg and "model.safetensors" in msg
    assert np.isnan(loaded[0].weight.data[0, 0]) and np.isneginf(loaded[1].bias.data[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load(_linear_dir(tmp_path))  # finite weights: no warning


def test_our_reader_reads_what_the_safetensors_library_writes(tmp_path):
    rng = np.random.default_rng(0)
    shapes = [(), (0,), (3,), (2, 0, 4), (5, 7), (2, 3, 4, 5), (1,) * 8]
    arrays = {}
    for i, dt in enumerate(DTYPES.values()):
        for j, shape in enumerate(shapes):
            a = rng.standard_normal(shape) * 100 if dt.kind == "f" else rng.integers(0, 100, shape)
            arrays[f"t{i}.{j}/{dt.name}"] = np.asarray(a).astype(dt)
    path = tmp_path / "x.safetensors"
    path.write_bytes(st_numpy.save(arrays, metadata={"who": "library"}))
    ours, meta = read_safetensors(path)
    theirs = st_numpy.load(path.read_bytes())
    assert meta == {"who": "library"} and set(ours) == set(theirs) == set(arrays)
    for k, a in theirs.items():
        assert ours[k].dtype == a.dtype and ours[k].shape == a.shape and ours[k].tobytes() == a.tobytes(), k


def test_weights_only_files_are_checked_against_the_model_before_their_data_is_read(tmp_path, monkeypatch):
    save_weights(nn.Linear(4, 3, generator=0), tmp_path / "w.safetensors")
    from neuronkit.io import tensorfile

    monkeypatch.setattr(tensorfile, "_read_into", lambda *a: (_ for _ in ()).throw(AssertionError("data read")))
    with pytest.raises(FormatError, match=r"'weight' has shape \(3, 4\), the model expects \(3, 5\)"):
        load_weights(nn.Linear(5, 3), tmp_path / "w.safetensors")


def test_fuzz_damaged_and_hostile_files_bounded():
    """A bounded run of ``benchmarks/fuzz_load.py``: every case loads a working model or raises FormatError, and
    peaks under 4 x its files' size + 64 MB (the long run: ``python benchmarks/fuzz_load.py --cases 5000``)."""
    stats = fuzz_load.run(cases=150, seed=20260111, max_bytes=MiB // 2)
    families = {k.split(":")[0] for k in stats["outcomes"]}
    assert stats["cases"] == 150 and {"big-header", "big-arch", "sparse", "nonfinite", "special"} <= families
    assert stats["outcomes"].get("nonfinite: loaded (NaN/Inf warned)", 0) > 0


def test_the_command_line_warns_of_nan_weights_in_one_line(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_cli import run_cli

    run = tmp_path / "run"
    rc, _, stderr = run_cli("train", "--data", "iris", "--hidden", "4", "--epochs", "1", "--out", run)
    assert rc == 0, stderr
    model = load(run / "model")
    model[0].weight.data[0, 0] = np.nan
    save(model, run / "model")
    rc, _, stderr = run_cli("evaluate", run)
    assert rc == 0
    assert stderr.splitlines() == [
        f"neuronkit: warning: {run / 'model' / 'model.safetensors'}: NaN or infinite values in 1 tensor(s): "
        "'0.weight' (1 of 16)"
    ]
