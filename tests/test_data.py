"""neuronkit.data: loader, splits, transforms, datasets by name, IDX files and downloads, the user's own files."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from neuronkit.data import (
    DATASETS,
    IDX_SOURCES,
    ArrayDataset,
    ChecksumError,
    Compose,
    DataFileError,
    DataLoader,
    DownloadError,
    GeneratorDataset,
    IdxFormatError,
    MinMaxScale,
    OneHot,
    SequenceDataset,
    Standardize,
    load_csv,
    load_dataset,
    load_npy,
    load_npz,
    read_idx,
    train_test_split,
    train_val_test_split,
    write_idx,
)

REPO_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


# -- datasets and the loader ---------------------------------------------------------------------------------------
def _ds(n=10):
    return ArrayDataset(np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n))


@pytest.mark.parametrize(
    "n,bs,drop,expected",
    [
        (10, 3, False, [3, 3, 3, 1]),
        (10, 3, True, [3, 3, 3]),
        (9, 3, False, [3, 3, 3]),
        (2, 5, False, [2]),
        (2, 5, True, []),
    ],
)
def test_loader_batching_and_len(n, bs, drop, expected):
    dl = DataLoader(_ds(n), batch_size=bs, drop_last=drop)
    batches = list(dl)
    assert len(dl) == len(expected)
    assert [len(yb) for _, yb in batches] == expected
    for xb, yb in batches:
        assert isinstance(xb, np.ndarray) and xb.shape[1:] == (2,)
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)  # x and y stay paired
    if not drop:
        np.testing.assert_array_equal(np.concatenate([yb for _, yb in batches]), np.arange(n))


def test_loader_shuffle_seeded():
    order = lambda dl: np.concatenate([yb for _, yb in dl])
    a, b, c = (DataLoader(_ds(50), batch_size=8, shuffle=True, seed=s) for s in (1, 1, 2))
    ea1, ea2 = order(a), order(a)
    np.testing.assert_array_equal(ea1, order(b))  # same seed, same order
    np.testing.assert_array_equal(ea2, order(b))  # ... epoch after epoch
    assert not np.array_equal(ea1, ea2)  # each epoch a new permutation
    assert not np.array_equal(ea1, order(c))  # different seeds differ
    assert sorted(ea1) == list(range(50))
    g = np.random.default_rng(1)
    np.testing.assert_array_equal(order(DataLoader(_ds(50), batch_size=8, shuffle=True, generator=g)), ea1)
    with pytest.raises(ValueError, match="seed or generator"):
        DataLoader(_ds(), seed=1, generator=g)
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        DataLoader(_ds(), batch_size=0)


@pytest.mark.parametrize("stop_after", [0, 1, 3, 6, 7, 8])
def test_loader_resume_mid_epoch(stop_after):
    ref = DataLoader(_ds(50), batch_size=7, shuffle=True, seed=3)  # 8 batches per epoch
    full = [yb for _ in range(3) for _, yb in ref]
    run = DataLoader(_ds(50), batch_size=7, shuffle=True, seed=3)
    it = iter(run)
    seen = [next(it)[1] for _ in range(stop_after)]
    state = json.loads(json.dumps(run.state_dict()))  # JSON-able: saved with the run
    assert state["epoch"] == (1 if stop_after == 8 else 0)
    resumed = DataLoader(_ds(50), batch_size=7, shuffle=True, seed=999)
    resumed.load_state_dict(state)
    # the rest of this epoch, then the next (with all 8 batches seen, "the rest" is the next epoch already)
    rest = [yb for _, yb in resumed] + [yb for _, yb in resumed]
    assert len(rest) == (16 - stop_after if stop_after < 8 else 16)
    got = seen + rest
    for a, b in zip(got, full[: len(got)], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="batch_size=7, this loader 5"):
        DataLoader(_ds(50), batch_size=5, shuffle=True).load_state_dict(state)


def test_loader_resume_at_epoch_boundary():
    run = DataLoader(_ds(20), batch_size=5, shuffle=True, seed=0)
    first = [yb for _, yb in run]
    state = run.state_dict()
    assert state["in_epoch"] is False and state["epoch"] == 1
    second = [yb for _, yb in run]
    other = DataLoader(_ds(20), batch_size=5, shuffle=True, seed=7)
    other.load_state_dict(state)
    for a, b in zip([yb for _, yb in other], second):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, second))


def test_loader_map_style_and_stream():
    class Plain:  # only __len__ and __getitem__: batched with default_collate
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(3, i, dtype=np.float32), i

    batches = list(DataLoader(Plain(), batch_size=2))
    assert [b[0].shape for b in batches] == [(2, 3), (2, 3), (1, 3)]
    np.testing.assert_array_equal(batches[1][1], [2, 3])

    stream = GeneratorDataset(lambda: ((np.ones(2) * i, i) for i in range(7)))
    for _ in range(2):  # a callable source restarts every epoch
        assert [len(y) for _, y in DataLoader(stream, batch_size=3)] == [3, 3, 1]
    with pytest.raises(ValueError, match="cannot shuffle a stream"):
        DataLoader(stream, shuffle=True)
    with pytest.raises(TypeError, match="no length"):
        len(stream)
    once = GeneratorDataset(iter([(1, 2)]))
    list(once)
    with pytest.raises(RuntimeError, match="already been consumed"):
        list(once)


def test_array_dataset():
    ds = ArrayDataset(np.arange(12).reshape(6, 2), np.arange(6), transform=lambda x: x * 10)
    x, y = ds[2]
    np.testing.assert_array_equal(x, [40, 50]) and y == 2
    xb, yb = ds.get_batch(np.array([5, 0]))
    np.testing.assert_array_equal(yb, [5, 0])
    assert ArrayDataset(np.zeros((3, 2))).get_batch([0, 1]).shape == (2, 2)
    with pytest.raises(ValueError, match=r"same number of samples, got x \(3, 2\) and y \(4,\)"):
        ArrayDataset(np.zeros((3, 2)), np.zeros(4))
    with pytest.raises(IndexError, match="index 6 is out of range for a dataset of 6"):
        ds.get_batch([6])


def test_sequence_dataset_padding():
    seqs = [np.array([5, 6, 7]), np.array([8]), np.array([], dtype=np.int64), np.array([1, 2, 3, 4, 5])]
    ds = SequenceDataset(seqs, labels=[1, 0, 1, 0], pad_value=-1)
    tokens, lengths, labels = ds.get_batch([0, 1, 2])
    assert tokens.dtype == np.int64 and tokens.shape == (3, 3)
    np.testing.assert_array_equal(tokens, [[5, 6, 7], [8, -1, -1], [-1, -1, -1]])
    np.testing.assert_array_equal(lengths, [3, 1, 0])
    np.testing.assert_array_equal(labels, [1, 0, 1])
    np.testing.assert_array_equal(ds[3][0], [1, 2, 3, 4, 5])
    batches = list(DataLoader(ds, batch_size=2, shuffle=True, seed=0))
    assert sum(len(b[1]) for b in batches) == 4
    for tok, ln, _ in batches:
        assert tok.shape[1] == ln.max()
    trunc = SequenceDataset(seqs, max_len=2)
    tok, ln = trunc.get_batch([3])
    np.testing.assert_array_equal(tok, [[1, 2]])
    with pytest.raises(TypeError, match="integer tokens, sequence 0 has dtype float64"):
        SequenceDataset([np.array([0.5])])


# -- splits ----------------------------------------------------------------------------------------------------------
def test_stratified_split_keeps_proportions():
    y = np.repeat([0, 1, 2], [500, 300, 200])
    x = np.arange(1000)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, seed=0)
    assert len(x_te) == 200 and len(x_tr) == 800
    np.testing.assert_array_equal(np.bincount(y_te), [100, 60, 40])
    np.testing.assert_array_equal(y[x_tr], y_tr)  # pairs kept
    assert len(np.intersect1d(x_tr, x_te)) == 0
    parts = train_val_test_split(x, y, val_size=0.1, test_size=0.2, seed=0)
    x_tr, x_va, x_te, y_tr, y_va, y_te = parts
    assert (len(x_tr), len(x_va), len(x_te)) == (700, 100, 200)
    np.testing.assert_array_equal(np.bincount(y_va), [50, 30, 20])
    np.testing.assert_array_equal(np.bincount(y_te), [100, 60, 40])
    assert len(np.unique(np.concatenate([x_tr, x_va, x_te]))) == 1000
    # same seed, same split; different seed, different split; unstratified proportions drift
    a = train_test_split(1000, y, seed=5)
    np.testing.assert_array_equal(a[1], train_test_split(1000, y, seed=5)[1])
    assert not np.array_equal(a[1], train_test_split(1000, y, seed=6)[1])
    tr, te = train_test_split(x, test_size=0.25, seed=0)
    assert len(te) == 250


def test_split_errors():
    with pytest.raises(ValueError, match="test_size=0.01 of 50 samples gives an empty split"):
        train_test_split(np.zeros(50), test_size=0.01)
    with pytest.raises(ValueError, match="leave 0 samples for training"):
        train_test_split(np.zeros(5), test_size=5)
    with pytest.raises(ValueError, match="empty dataset"):
        train_test_split(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="class 2 has only 1 sample"):
        train_test_split(np.zeros(7), np.array([0, 0, 0, 1, 1, 1, 2]))
    assert len(train_test_split(np.zeros(7), np.array([0, 0, 0, 1, 1, 1, 2]), stratify=False)[1]) == 1
    with pytest.raises(ValueError, match="test_size as a fraction must be in"):
        train_test_split(np.zeros(7), test_size=1.5)


# -- transforms ------------------------------------------------------------------------------------------------------
def test_standardize_fitted_on_train_only():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(1000, 4)).astype(np.float32)
    x_tr, x_te = x[:800], x[800:] + 100.0  # test data from elsewhere: must not move the statistics
    st = Standardize().fit(x_tr)
    z = st(x_tr)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-4)
    np.testing.assert_allclose(st.mean, x_tr.astype(np.float64).mean(0))
    assert st(x_te).mean() > 20  # the test split is transformed with train's statistics
    np.testing.assert_allclose(st.inverse_transform(z), x_tr, rtol=1e-5, atol=1e-4)
    state = json.loads(json.dumps(st.state_dict()))
    st2 = Standardize()
    st2.load_state_dict(state)
    np.testing.assert_array_equal(st2(x_te), st(x_te))
    with pytest.raises(RuntimeError, match="not fitted"):
        Standardize()(x)
    with pytest.raises(ValueError, match=r"fitted on samples of shape \(4,\), got a batch of shape \(2, 3\)"):
        st(np.zeros((2, 3)))
    const = Standardize().fit(np.ones((5, 2)))
    assert np.all(np.isfinite(const(np.ones((2, 2)))))
    own = x_te.copy()  # (written in place: the same values as a new array)
    assert st.transform(own, out=own) is own and own.tobytes() == st(x_te).tobytes()
    pixels = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)  # (ints: float32)
    assert Standardize(per_feature=False).fit(pixels)(pixels).dtype == np.float32


@pytest.mark.parametrize("per_feature", [True, False])
def test_standardize_reads_a_large_split_a_few_samples_at_a_time(monkeypatch, per_feature):
    """The statistics of numpy's mean and std of a float64 copy (within float64 rounding), without the copy: 16 MB of
    uint8 images (a float64 copy alone: 128 MB) fitted with at most a few 1 MiB pieces alive."""
    import tracemalloc

    from neuronkit.data import transforms

    monkeypatch.setattr(transforms, "FIT_CHUNK_BYTES", 1 << 20)
    x = np.random.default_rng(1).integers(0, 256, size=(20_000, 28, 28), dtype=np.uint8)
    x[:, :3] = 0  # (constant features: std 0, divided by 1)
    tracemalloc.start()
    try:
        st = Standardize(per_feature=per_feature).fit(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak
    x64 = x.astype(np.float64)
    axis = 0 if per_feature else None
    np.testing.assert_allclose(st.mean, x64.mean(axis=axis), rtol=1e-12, atol=0)
    std = x64.std(axis=axis)
    np.testing.assert_allclose(st.std, np.where(std < st.eps, 1.0, std), rtol=1e-12, atol=0)
    assert st.mean.shape == ((28, 28) if per_feature else ())


def test_minmax_onehot_compose():
    x = np.array([[0.0, 10.0], [5.0, 20.0], [10.0, 30.0]])
    mm = MinMaxScale().fit(x)
    np.testing.assert_allclose(mm(x), [[0, 0], [0.5, 0.5], [1, 1]])
    mm2 = MinMaxScale()
    mm2.load_state_dict(json.loads(json.dumps(mm.state_dict())))
    np.testing.assert_allclose(mm2(x), mm(x))
    oh = OneHot(3)
    np.testing.assert_array_equal(oh(np.array([2, 0])), [[0, 0, 1], [1, 0, 0]])
    assert oh(np.array([1])).dtype == np.float32
    with pytest.raises(ValueError, match=r"OneHot\(3\) got label 3 at index 1: expected labels in 0..2"):
        oh(np.array([0, 3]))
    comp = Compose([MinMaxScale(), Standardize()]).fit(x)
    z = comp(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-12)
    comp2 = Compose([MinMaxScale(), Standardize()])
    comp2.load_state_dict(json.loads(json.dumps(comp.state_dict())))
    np.testing.assert_allclose(comp2(x), z)


# -- datasets by name ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,k", [("xor", 2), ("circles", 2), ("moons", 2), ("spirals", 3), ("blobs", 3)])
def test_toy_sets(name, k):
    s = load_dataset(name, n_samples=200, noise=0.1, seed=4)
    (x_tr, y_tr), (x_te, y_te) = s
    assert x_tr.shape == (160, 2) and x_te.shape == (40, 2) and x_tr.dtype == np.float32
    assert y_tr.dtype == np.int64 and set(np.unique(np.concatenate([y_tr, y_te]))) == set(range(k))
    assert s.info.num_classes == k
    again = load_dataset(name, n_samples=200, noise=0.1, seed=4)
    np.testing.assert_array_equal(again.x_train, x_tr)
    np.testing.assert_array_equal(again.y_test, y_te)
    assert not np.array_equal(load_dataset(name, n_samples=200, noise=0.1, seed=5).x_train, x_tr)
    assert abs(np.bincount(y_te, minlength=k).min() - 40 / k) <= 1  # stratified split of balanced classes


def test_toy_sets_options_and_noise():
    s = load_dataset("spirals", n_samples=500, n_classes=5, seed=0)
    assert set(np.unique(s.y_train)) == set(range(5))
    c0 = load_dataset("circles", n_samples=400, noise=0.0, seed=0)
    r = np.hypot(*c0.x_train.T)
    np.testing.assert_allclose(np.sort(np.unique(np.round(r, 4))), [0.5, 1.0])
    np.testing.assert_array_equal(r > 0.75, c0.y_train == 0)  # outer circle is class 0
    with pytest.raises(ValueError, match="noise must be >= 0"):
        load_dataset("moons", noise=-1)


@pytest.mark.parametrize(
    "name,n,f,k", [("digits", 1797, 64, 10), ("iris", 150, 4, 3), ("wine", 178, 13, 3), ("breast_cancer", 569, 30, 2)]
)
def test_sklearn_sets(name, n, f, k):
    s = load_dataset(name)
    assert len(s.x_train) + len(s.x_test) == n == DATASETS[name].size
    assert s.x_train.shape[1:] == (f,) and s.x_train.dtype == np.float32 and s.y_train.dtype == np.int64
    assert set(np.unique(s.y_train)) == set(range(k)) and DATASETS[name].num_classes == k


def test_registry_metadata_and_unknown_name():
    for name, info in DATASETS.items():
        assert info.name == name and info.source and info.license and info.classes
    with pytest.raises(KeyError, match="unknown dataset 'mnistt'; available: .*mnist"):
        load_dataset("mnistt")


def _has_mnist(root: Path) -> bool:
    return any((d / "train-images-idx3-ubyte.gz").is_file() for d in (root / "mnist", root))


def _data_root() -> Path:
    """``$NEURONKIT_DATA`` if set and holding MNIST, else ``shared/data`` beside the checkout."""
    roots = [Path(os.environ["NEURONKIT_DATA"])] if os.environ.get("NEURONKIT_DATA") else []
    roots.append(REPO_DATA)
    found = [r for r in roots if _has_mnist(r)]
    # no skip: missing data is a failure
    assert found, f"MNIST IDX files not found under {[str(r) for r in roots]} (set NEURONKIT_DATA)"
    return found[0]


def test_mnist_from_local_files():
    root = _data_root()
    s = load_dataset("mnist", data_dir=root, dtype="uint8")
    assert s.x_train.shape == (60000, 28, 28) and s.x_test.shape == (10000, 28, 28)
    assert s.y_train.shape == (60000,) and s.y_test.shape == (10000,)
    assert s.x_train.dtype == np.uint8 and s.x_train.max() == 255
    assert s.y_train.min() == 0 and s.y_train.max() == 9 and set(np.unique(s.y_test)) == set(range(10))
    np.testing.assert_array_equal(s.y_train[:5], [5, 0, 4, 1, 9])  # MNIST's famous first labels
    # the dataset's own folder is accepted directly, and images default to float32 in [0, 1]
    test_x = load_dataset("mnist", data_dir=root / "mnist").x_test if (root / "mnist").is_dir() else None
    if test_x is not None:
        assert test_x.dtype == np.float32 and 0.0 <= test_x.min() and test_x.max() == 1.0


def test_idx_missing_without_download(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURONKIT_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="pass data_dir= or set NEURONKIT_DATA.*download=True"):
        load_dataset("fashion_mnist", data_dir=tmp_path)


# -- IDX files -------------------------------------------------------------------------------------------------------
def test_read_idx_roundtrip_and_corrupt(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)
    f = np.linspace(0, 1, 6, dtype=np.float32)
    write_idx(tmp_path / "f.idx", f)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), f)
    good = (tmp_path / "a.idx").read_bytes()
    assert int.from_bytes(good[:4], "big") == 2051
    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x12\x34" + good[2:])
    with pytest.raises(IdxFormatError, match="bad IDX magic number"):
        read_idx(bad)
    bad.write_bytes(good[:-5])
    with pytest.raises(
        IdxFormatError,
        match=r"truncated: header says shape \(2, 3, 4\) of uint8 = 24 data bytes, "
        r"the file holds 19",
    ):
        read_idx(bad)
    bad.write_bytes(good + b"xx")
    with pytest.raises(IdxFormatError, match="trailing bytes"):
        read_idx(bad)
    bad.write_bytes(good[:10])
    with pytest.raises(IdxFormatError, match="truncated IDX header"):
        read_idx(bad)
    bad.write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(IdxFormatError, match="corrupt gzip"):
        read_idx(bad)
    with pytest.raises(FileNotFoundError, match="IDX file not found"):
        read_idx(tmp_path / "nope.idx")


# -- downloads against a local server --------------------------------------------------------------------------------
class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _write_small_mnist(folder: Path, n_train=12, n_test=5) -> dict:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": (np.arange(n_test) % 10).astype(np.uint8),
    }
    sums = {}
    for name, arr in arrays.items():
        write_idx(folder / name, arr)
        sums[name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    return sums, arrays


def test_download_into_cache(server, tmp_path):
    root, url = server
    sums, arrays = _write_small_mnist(root)
    cache, empty = tmp_path / "cache", tmp_path / "empty"
    empty.mkdir()
    s = load_dataset(
        "mnist", data_dir=empty, download=True, base_url=url, checksums=sums, cache_dir=cache, dtype="uint8"
    )
    np.testing.assert_array_equal(s.x_train, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(s.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert s.y_test.dtype == np.int64
    files = sorted(p.name for p in (cache / "mnist").iterdir())
    assert files == sorted(sums)  # no temporary files left behind
    # now served from the cache: the server may go away
    for p in root.iterdir():
        p.unlink()
    s2 = load_dataset("mnist", data_dir=empty, checksums=sums, cache_dir=cache, dtype="uint8")
    np.testing.assert_array_equal(s2.x_test, s.x_test)


def test_download_env_mirror(server, tmp_path, monkeypatch):
    root, url = server
    (root / "kmnist").mkdir()
    sums, _ = _write_small_mnist(root / "kmnist")
    monkeypatch.setenv("NEURONKIT_MIRROR_URL", url)
    monkeypatch.setenv("NEURONKIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("NEURONKIT_DATA", str(tmp_path / "nowhere"))
    s = load_dataset("kmnist", download=True, checksums=sums)
    assert s.x_train.shape == (12, 28, 28) and s.x_train.dtype == np.float32 and s.x_train.max() <= 1.0
    assert (tmp_path / "cache" / "kmnist" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_download_checksum_mismatch_and_404(server, tmp_path):
    root, url = server
    sums, _ = _write_small_mnist(root)
    cache = tmp_path / "cache"
    wrong = dict(sums)
    wrong["train-images-idx3-ubyte.gz"] = "0" * 64
    with pytest.raises(ChecksumError, match="checksum mismatch for .*train-images.*expected sha256 0000.*removed"):
        load_dataset("mnist", data_dir=tmp_path / "none", download=True, base_url=url, checksums=wrong, cache_dir=cache)
    assert not (cache / "mnist" / "train-images-idx3-ubyte.gz").exists()
    assert not [p for p in (cache / "mnist").iterdir() if p.suffix == ".part"]
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DownloadError, match=r"could not download .*t10k-labels-idx1-ubyte.gz: HTTP 404"):
        load_dataset("mnist", data_dir=tmp_path / "none", download=True, base_url=url, checksums=sums, cache_dir=cache)
    with pytest.raises(DownloadError, match="could not download"):
        load_dataset(
            "mnist",
            data_dir=tmp_path / "none",
            download=True,
            base_url="http://127.0.0.1:9/x/",
            checksums=sums,
            cache_dir=tmp_path / "cache2",
        )


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "kmnist"])
def test_local_files_are_checked_against_the_official_checksums(name, tmp_path):
    # Small fake files in the dataset's folder, gzipped and decompressed: every set refuses them with one line
    # naming the file and the checksums (before, Fashion-MNIST and KMNIST accepted them on structure alone).
    folder = tmp_path / name
    folder.mkdir()
    sums, _ = _write_small_mnist(folder)
    with pytest.raises(ChecksumError, match=f"official {name} file") as e:
        load_dataset(name, data_dir=tmp_path, cache_dir=tmp_path / "c")
    assert "\n" not in str(e.value) and "train-images-idx3-ubyte" in str(e.value)
    # the same files given their own checksums load (as with a mirror), gzipped and decompressed
    assert load_dataset(name, data_dir=tmp_path, cache_dir=tmp_path / "c", checksums=sums).x_train.shape == (12, 28, 28)
    plain = {}
    for f in sums:
        data = gzip.decompress((folder / f).read_bytes())
        (folder / f).unlink()
        (folder / f).with_suffix("").write_bytes(data)
        plain[f] = hashlib.sha256(data).hexdigest()
    with pytest.raises(ChecksumError, match="official"):
        load_dataset(name, data_dir=tmp_path, cache_dir=tmp_path / "c")
    assert load_dataset(name, data_dir=tmp_path, cache_dir=tmp_path / "c", checksums=plain).x_test.shape == (5, 28, 28)


def test_decompressed_checksums_are_recorded_for_mnist_and_fashion_mnist():
    # a decompressed local copy can be verified for these two; KMNIST publishes no such checksums
    for name in ("mnist", "fashion_mnist"):
        for f in IDX_SOURCES[name].files().values():
            assert f.sha256 and len(f.sha256_decompressed or "") == 64, (name, f.name)
    assert all(f.sha256_decompressed is None for f in IDX_SOURCES["kmnist"].files().values())


# -- the user's own files --------------------------------------------------------------------------------------------
def test_load_csv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("a,b,label\n1,2,0\n3.5,4,1\n\n5,6,1\n")
    x, y = load_csv(p, target="label")
    np.testing.assert_array_equal(x, [[1, 2], [3.5, 4], [5, 6]])
    assert x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, 1])
    x0, y0 = load_csv(p, target=0)
    np.testing.assert_array_equal(y0, [1, 3.5, 5]) and x0.shape == (3, 2)
    assert load_csv(p).shape == (3, 3)
    p.write_text("f,species\n1,cat\n2,dog\n3,cat\n")
    x, y, classes = load_csv(p, target="species", return_classes=True)
    assert classes == ["cat", "dog"] and list(y) == [0, 1, 0]


@pytest.mark.parametrize(
    "text,kwargs,message",
    [
        ("a,b\n1,2\n", {"target": "label"}, r"no target column 'label'; the columns are 'a', 'b'$"),
        ("a,b,y\n1,2,0\n1,x,1\n", {"target": "y"}, r"non-numeric value 'x' at row 3, column 'b'"),
        ("a,b,y\n1,2,0\n1,,1\n", {"target": "y"}, r"missing value at row 3, column 'b'"),
        ("a,b,y\n1,2,0\n1,NA,1\n", {"target": "y"}, r"missing value at row 3, column 'b'"),
        ("a,b,y\n1,2,\n", {"target": "y"}, r"missing target value at row 2, column 'y'"),
        ("a,b,y\n1,2\n", {"target": "y"}, r"row 2 has 2 fields, expected 3"),
        ("", {}, "the file is empty"),
        ("a,b,y\n", {"target": "y"}, "no data rows"),
        ("a,b\n1,2\n", {"target": 5}, "target column index 5 is out of range for 2 columns"),
    ],
)
def test_load_csv_errors(tmp_path, text, kwargs, message):
    p = tmp_path / "d.csv"
    p.write_text(text)
    with pytest.raises(DataFileError, match=message):
        load_csv(p, **kwargs)


def test_load_npy_npz(tmp_path):
    x, y = np.arange(6.0).reshape(3, 2), np.array([0, 1, 0])
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(load_npy(tmp_path / "x.npy"), x)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    xl, yl = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(xl, x) and np.testing.assert_array_equal(yl, y)
    np.testing.assert_array_equal(load_npz(tmp_path / "d.npz", y_key=None), x)
    np.savez(tmp_path / "k.npz", features=x, y=y)
    with pytest.raises(DataFileError, match=r"no array named 'x' in the archive; it holds \['features', 'y'\]"):
        load_npz(tmp_path / "k.npz")
    np.savez(tmp_path / "n.npz", x=x, y=y[:2])
    with pytest.raises(DataFileError, match="'x' has 3 samples but 'y' has 2"):
        load_npz(tmp_path / "n.npz")
    bad = x.copy()
    bad[1, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(DataFileError, match=r"missing or non-finite value \(nan\) at row 1, column 1"):
        load_npy(tmp_path / "nan.npy")
    np.save(tmp_path / "e.npy", np.zeros((0, 3)))
    with pytest.raises(DataFileError, match="is empty"):
        load_npy(tmp_path / "e.npy")
    np.save(tmp_path / "s.npy", np.array(["a", "b"]))
    with pytest.raises(DataFileError, match="must be numeric, got dtype <U1"):
        load_npy(tmp_path / "s.npy")
    np.save(tmp_path / "o.npy", np.array([{}, 1], dtype=object), allow_pickle=True)
    with pytest.raises(DataFileError, match="not a plain numeric .npy array"):
        load_npy(tmp_path / "o.npy")
    for fn in (load_npy, load_npz, load_csv):
        with pytest.raises(FileNotFoundError, match="data file not found: .*missing"):
            fn(tmp_path / "missing")


def test_loader_uses_an_overridden_get_batch_and_gathers_shuffled_batches_exactly():
    # Shuffled batches of a plain ArrayDataset skip the index checks (the permutation is valid by construction); a
    # subclass that overrides get_batch is still asked through it.
    x, y = np.arange(20.0).reshape(10, 2), np.arange(10)
    calls = []

    class Logged(ArrayDataset):
        def get_batch(self, indices):
            calls.append(len(indices))
            return super().get_batch(indices)

    plain = list(DataLoader(ArrayDataset(x, y), batch_size=4, shuffle=True, seed=3))
    logged = list(DataLoader(Logged(x, y), batch_size=4, shuffle=True, seed=3))
    assert calls == [4, 4, 2]
    order = np.random.default_rng(3).permutation(10)
    for (xb, yb), (xl, yl), lo in zip(plain, logged, (0, 4, 8)):
        np.testing.assert_array_equal(yb, order[lo : lo + 4])
        np.testing.assert_array_equal(xb, x[order[lo : lo + 4]])
        np.testing.assert_array_equal(xl, xb)
        np.testing.assert_array_equal(yl, yb)
