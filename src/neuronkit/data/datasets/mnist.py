"""MNIST, Fashion-MNIST and Kuzushiji-MNIST from their four IDX files: a local folder, the cache, or a download.

Where the files are looked for, in order:

1. ``data_dir`` (argument) or ``$NEURONKIT_DATA``: ``<dir>/<folder>/<file>`` (e.g. ``/data/mnist/...``) or
   ``<dir>/<file>`` (the dataset's folder given directly); ``<file>`` gzipped or already decompressed.
2. The cache, ``$NEURONKIT_CACHE`` or ``~/.cache/neuronkit``: ``<cache>/<folder>/<file>``.
3. With ``download=True``: fetched into the cache from ``base_url`` (argument: the folder holding the files),
   ``$NEURONKIT_MIRROR_URL`` (a mirror root holding ``<folder>/<file>``), or the dataset's official homes in turn.

Checksums: a download must match the official archive's sha256. A local file is accepted when its own sha256
matches the archive's or, for MNIST and Fashion-MNIST, when its decompressed sha256 matches the official decompressed
file's (so a decompressed or re-compressed copy is fine). KMNIST publishes no checksum of its decompressed files, so
a local KMNIST file is accepted only as the original archive. Anything else is refused with one line naming the file
and both checksums (``ChecksumError``); ``checksums=`` replaces the recorded values (for mirrors and tests).

Sources of the checksums: the archives' sha256 as torchvision and tensorflow_datasets record them; the decompressed
files' sha256 as loaders that keep the files decompressed pin them (for Fashion-MNIST, four independent public
repositories agree, one noting that it derived them from archives matching Zalando's published MD5s).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .download import ChecksumError, DownloadError, cache_dir, download, sha256_of
from .idx import IdxFormatError, decompress, parse_idx

__all__ = ["IDX_SOURCES", "IdxFile", "IdxSource", "load_idx_dataset"]


@dataclass(frozen=True)
class IdxFile:
    name: str  # file name of the official gzipped archive
    sha256: str | None  # the official archive's sha256
    sha256_decompressed: str | None = None  # the decompressed file's sha256, where recorded


@dataclass(frozen=True)
class IdxSource:
    folder: str  # folder name under a data dir / the cache
    aliases: tuple[str, ...]  # other folder names accepted under a data dir
    urls: tuple[str, ...]  # official homes (each the folder holding the four files)
    train_images: IdxFile
    train_labels: IdxFile
    test_images: IdxFile
    test_labels: IdxFile

    def files(self):
        return {
            "train_images": self.train_images,
            "train_labels": self.train_labels,
            "test_images": self.test_images,
            "test_labels": self.test_labels,
        }


IDX_SOURCES: dict[str, IdxSource] = {
    "mnist": IdxSource(
        folder="mnist",
        aliases=("MNIST",),
        urls=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        train_images=IdxFile(
            "train-images-idx3-ubyte.gz",
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        ),
        train_labels=IdxFile(
            "train-labels-idx1-ubyte.gz",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        ),
        test_images=IdxFile(
            "t10k-images-idx3-ubyte.gz",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        ),
        test_labels=IdxFile(
            "t10k-labels-idx1-ubyte.gz",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        ),
    ),
    "fashion_mnist": IdxSource(
        folder="fashion_mnist",
        aliases=("fashion-mnist", "FashionMNIST", "fashion"),
        urls=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        train_images=IdxFile(
            "train-images-idx3-ubyte.gz",
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        ),
        train_labels=IdxFile(
            "train-labels-idx1-ubyte.gz",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        ),
        test_images=IdxFile(
            "t10k-images-idx3-ubyte.gz",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        ),
        test_labels=IdxFile(
            "t10k-labels-idx1-ubyte.gz",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        ),
    ),
    "kmnist": IdxSource(
        folder="kmnist",
        aliases=("KMNIST",),
        urls=("http://codh.rois.ac.jp/kmnist/dataset/kmnist/",),
        train_images=IdxFile(
            "train-images-idx3-ubyte.gz", "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"
        ),
        train_labels=IdxFile(
            "train-labels-idx1-ubyte.gz", "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"
        ),
        test_images=IdxFile(
            "t10k-images-idx3-ubyte.gz", "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"
        ),
        test_labels=IdxFile(
            "t10k-labels-idx1-ubyte.gz", "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"
        ),
    ),
}


def _candidates(root: Path, src: IdxSource, f: IdxFile):
    plain = f.name[:-3] if f.name.endswith(".gz") else f.name
    for folder in (src.folder, *src.aliases, None):
        base = root / folder if folder else root
        for fname in (f.name, plain):
            yield base / fname


def _verified_bytes(path: Path, f: IdxFile, sha: str | None, dataset: str) -> bytes:
    """The decompressed IDX bytes of a local file, after its checksum check (see the module docstring)."""
    raw = path.read_bytes()
    if sha is None or sha256_of(raw) == sha:
        return decompress(raw, str(path))
    data = decompress(raw, str(path))
    if f.sha256_decompressed is None:
        raise ChecksumError(
            f"{path} is not the official {dataset} file: expected archive sha256 {sha}, got {sha256_of(raw)}; no "
            f"checksum of the decompressed {dataset} files is published, so only the original {f.name} can be "
            "checked: put the original there, or download it (--download)"
        )
    got = sha256_of(data)
    if got != f.sha256_decompressed:
        raise ChecksumError(
            f"{path} does not match the official {dataset} file: expected archive sha256 {sha} or decompressed "
            f"sha256 {f.sha256_decompressed}, got decompressed sha256 {got}"
        )
    return data


def _mirror_urls(src: IdxSource, base_url: str | None) -> list[str]:
    if base_url:
        return [base_url]
    env = os.environ.get("NEURONKIT_MIRROR_URL")
    if env:
        return [env.rstrip("/") + "/" + src.folder + "/"]
    return list(src.urls)


def _fetch(name, src, key, f, data_dir, download_ok, base_url, checksums, cache):
    sha = (checksums or {}).get(f.name, f.sha256)
    fobj = f if sha == f.sha256 else IdxFile(f.name, sha, None)  # overridden checksum: no decompressed one known
    root = data_dir if data_dir is not None else os.environ.get("NEURONKIT_DATA")
    looked = []
    if root:
        for p in _candidates(Path(root).expanduser(), src, fobj):
            looked.append(str(p))
            if p.is_file():
                return _verified_bytes(p, fobj, sha, name)
    cached = Path(cache).expanduser() / src.folder / f.name if cache else cache_dir() / src.folder / f.name
    if cached.is_file():
        raw = cached.read_bytes()
        if sha is None or sha256_of(raw) == sha:
            return decompress(raw, str(cached))
        cached.unlink()  # stale or corrupt cache entry: fetch again below
    looked.append(str(cached))
    if not download_ok:
        raise FileNotFoundError(
            f"{name}: {f.name} not found (looked in {', '.join(looked)}); pass data_dir= or set NEURONKIT_DATA to a "
            "folder holding the files, or pass download=True"
        )
    errors = []
    for url in _mirror_urls(src, base_url):
        full = url.rstrip("/") + "/" + f.name
        try:
            download(full, cached, sha256=sha)
            return decompress(cached.read_bytes(), str(cached))
        except (DownloadError, ChecksumError) as e:
            errors.append(e)
    if len(errors) == 1:
        raise errors[0]
    raise DownloadError(f"{name}: every mirror failed for {f.name}: " + "; ".join(str(e) for e in errors))


def load_idx_dataset(
    name: str,
    data_dir=None,
    download: bool = False,
    base_url: str | None = None,
    checksums: dict | None = None,
    cache_dir=None,
    dtype="float32",
):
    """``(x_train, y_train, x_test, y_test)`` of an MNIST-family set (see the module docstring for the search).

    Images are ``(N, 28, 28)``: float32 in ``[0, 1]`` (``dtype="float32"``, the default) or the raw uint8 pixels
    (``dtype="uint8"``). Labels are int64 ``(N,)`` in ``0..9``. ``checksums`` maps file names to sha256 values that
    replace the recorded ones (for mirrors and tests).
    """
    if name not in IDX_SOURCES:
        raise KeyError(f"unknown IDX dataset {name!r}; expected one of {sorted(IDX_SOURCES)}")
    src = IDX_SOURCES[name]
    arrays = {}
    for key, f in src.files().items():
        data = _fetch(name, src, key, f, data_dir, download, base_url, checksums, cache_dir)
        magic = 2051 if key.endswith("images") else 2049
        arrays[key] = parse_idx(data, f"{name} {f.name}", expected_magic=magic)
    out = []
    for part in ("train", "test"):
        x, y = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if x.shape[1:] != (28, 28):
            raise IdxFormatError(f"{name} {part} images: expected shape (N, 28, 28), got {x.shape}")
        if len(x) != len(y):
            raise IdxFormatError(f"{name} {part}: {len(x)} images but {len(y)} labels")
        if y.size and y.max() > 9:
            raise IdxFormatError(f"{name} {part} labels: expected 0..9, found {int(y.max())}")
        if dtype == "uint8":
            xs = x
        elif np.dtype(dtype).kind == "f":
            xs = x.astype(dtype)
            xs *= np.asarray(1 / 255, dtype=dtype)
        else:
            raise ValueError(f"dtype must be 'uint8' or a float dtype, got {dtype!r}")
        out += [xs, y.astype(np.int64)]
    return tuple(out)
