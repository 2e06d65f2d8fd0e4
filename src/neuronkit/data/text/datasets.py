"""Built-in text datasets, read from the files their publishers distribute (checksums checked).

Where the files are looked for: ``data_dir`` (argument) or ``$NEURONKIT_DATA``, as ``<dir>/<folder>/<file>``,
``<dir>/text/<folder>/<file>`` or ``<dir>/<file>`` (the dataset's folder given directly). Nothing is downloaded: a
missing file is a ``FileNotFoundError`` of one line naming the file, the directories searched and where to get it.

- ``sms_spam``: SMS Spam Collection v.1 (``label<TAB>text``; ham/spam), split 80/20 stratified with the seed.
- ``sentiment``: UCI Sentiment Labelled Sentences, the Amazon, IMDB and Yelp files together (``sentence<TAB>0|1``),
  split 80/20 stratified with the seed.
- ``sst2``: Stanford Sentiment Treebank, binary. Train on GLUE's ``train_full.tsv`` (67,349 phrases; GLUE's zip calls
  it ``train.tsv``), validate on GLUE's ``dev.tsv`` (872 sentences), test on the labelled test split (1,821 sentences,
  ``nlpaueb/test.tsv``), whose Penn Treebank escapes (``-lrb-``, ``\\/`` ...) are mapped back to characters.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..datasets.download import ChecksumError
from ..split import split_indices

__all__ = ["TEXT_SOURCES", "TextFile", "TextSource", "TextSplits", "load_text_dataset", "locate", "ptb_untokenize"]


@dataclass(frozen=True)
class TextFile:
    path: str  # relative to the dataset's folder
    size: int  # bytes
    sha256: str
    aliases: tuple = ()  # other names the same file is distributed under


@dataclass(frozen=True)
class TextSource:
    name: str
    folder: str  # the folder under a data dir
    files: dict  # role -> TextFile
    classes: tuple
    sizes: dict  # split -> samples
    how_to_get: str
    reader: Callable = field(repr=False, default=None)


@dataclass
class TextSplits:
    """Texts (lists of str) and int64 labels of each split; ``val_*`` are None where the dataset has no own
    validation split (carve one from the training split)."""

    train_texts: list
    train_labels: np.ndarray
    test_texts: list
    test_labels: np.ndarray
    classes: tuple
    val_texts: list | None = None
    val_labels: np.ndarray | None = None
    name: str = ""

    def __repr__(self) -> str:
        val = "" if self.val_texts is None else f", validation {len(self.val_texts)}"
        return f"TextSplits({self.name}: train {len(self.train_texts)}{val}, test {len(self.test_texts)})"


# -- reading ----------------------------------------------------------------------------------------------------
def _lines(path: Path, raw: bytes) -> list:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:  # checksums passed, so this is a file of ours with the wrong checksum table
        raise ValueError(f"{path}: not UTF-8 text ({e})") from None
    return [ln for ln in text.split("\n") if ln.strip()]


def _two_columns(path: Path, raw: bytes, label_first: bool, header: bool) -> tuple:
    """``(texts, raw labels)`` of a ``label<TAB>text`` or ``text<TAB>label`` file."""
    lines = _lines(path, raw)[1 if header else 0 :]
    texts, labels = [], []
    for k, ln in enumerate(lines):
        parts = ln.split("\t", 1) if label_first else ln.rsplit("\t", 1)
        if len(parts) != 2:
            raise ValueError(f"{path}: line {k + 1 + header} has no tab between text and label")
        label, text = (parts[0], parts[1]) if label_first else (parts[1], parts[0])
        texts.append(text.strip())
        labels.append(label.strip())
    return texts, labels


def _label_ids(labels: list, classes: tuple, path) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    bad = next((v for v in labels if v not in index), None)
    if bad is not None:
        raise ValueError(f"{path}: label {bad!r} is not one of {list(classes)}")
    return np.fromiter((index[v] for v in labels), dtype=np.int64, count=len(labels))


# Penn Treebank escapes in the labelled SST-2 test file, and the characters GLUE's files have in their place
_PTB = {"-lrb-": "(", "-rrb-": ")", "-lsb-": "[", "-rsb-": "]", "-lcb-": "{", "-rcb-": "}"}
_PTB_RE = re.compile(r"-(?:lrb|rrb|lsb|rsb|lcb|rcb)-|\\([/*])", re.IGNORECASE)


def ptb_untokenize(text: str) -> str:
    """Penn Treebank escapes back to characters: ``-lrb-`` ``(``, ``-rrb-`` ``)``, ``-lsb-`` ``[``, ``-rsb-`` ``]``,
    ``-lcb-`` ``{``, ``-rcb-`` ``}`` (any case), and the escaped ``\\/`` ``/`` and ``\\*`` ``*``."""
    return _PTB_RE.sub(lambda m: m.group(1) or _PTB[m.group(0).lower()], text)


def _split(texts, y, seed, test_size=0.2) -> tuple:
    rest, test = split_indices(len(texts), [test_size], y=y, stratify=True, seed=seed)
    return [texts[i] for i in rest], y[rest], [texts[i] for i in test], y[test]


def _read_sms(src: TextSource, raws: dict, seed) -> TextSplits:
    texts, labels = _two_columns(raws["data"][0], raws["data"][1], label_first=True, header=False)
    y = _label_ids(labels, src.classes, raws["data"][0])
    return TextSplits(*_split(texts, y, seed), src.classes, name=src.name)


def _read_sentiment(src: TextSource, raws: dict, seed) -> TextSplits:
    texts, labels = [], []
    for role in ("amazon", "imdb", "yelp"):
        t, lab = _two_columns(*raws[role], label_first=False, header=False)
        texts += t
        labels += lab
    y = _label_ids(labels, ("0", "1"), raws["amazon"][0])
    return TextSplits(*_split(texts, y, seed), src.classes, name=src.name)


def _read_sst2(src: TextSource, raws: dict, seed) -> TextSplits:
    tr, tr_lab = _two_columns(*raws["train"], label_first=False, header=True)
    va, va_lab = _two_columns(*raws["dev"], label_first=False, header=True)
    te, te_lab = _two_columns(*raws["test"], label_first=True, header=True)
    num = ("0", "1")
    return TextSplits(
        tr,
        _label_ids(tr_lab, num, raws["train"][0]),
        [ptb_untokenize(t) for t in te],
        _label_ids(te_lab, num, raws["test"][0]),
        src.classes,
        va,
        _label_ids(va_lab, num, raws["dev"][0]),
        name=src.name,
    )


_UCI = "https://archive.ics.uci.edu/dataset"
TEXT_SOURCES: dict[str, TextSource] = {
    "sms_spam": TextSource(
        "sms_spam",
        "sms_spam",
        {
            "data": TextFile(
                "SMSSpamCollection", 477907, "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d"
            )
        },
        ("ham", "spam"),
        {"train": 4459, "test": 1115},
        f"download the SMS Spam Collection from {_UCI}/228/sms+spam+collection and unzip it there",
        _read_sms,
    ),
    "sentiment": TextSource(
        "sentiment",
        "sentiment_labelled_sentences",
        {
            "amazon": TextFile(
                "amazon_cells_labelled.txt", 58226, "47003fc0a0d4840b00e96e715b6189bad09e7443a3da41c4cbe12ffc79f86ae3"
            ),
            "imdb": TextFile(
                "imdb_labelled.txt", 85285, "aef2e49e3da25714d61175e3a6e68eeef74a20a2f914318dc3be9947ea86512d"
            ),
            "yelp": TextFile(
                "yelp_labelled.txt", 61320, "c76468b7b5c6e56a0804d728345c5f84aa2142ddb214420f61cc9cfd4c00d2ea"
            ),
        },
        ("negative", "positive"),
        {"train": 2400, "test": 600},
        f"download Sentiment Labelled Sentences from {_UCI}/331/sentiment+labelled+sentences and unzip it there",
        _read_sentiment,
    ),
    "sst2": TextSource(
        "sst2",
        "sst2",
        {
            "train": TextFile(
                "glue/train_full.tsv",
                3806081,
                "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1",
                ("glue/train.tsv",),
            ),
            "dev": TextFile("glue/dev.tsv", 94931, "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
            "test": TextFile(
                "nlpaueb/test.tsv", 193576, "fcd46f967b7b8efd8b5398481dadf873886298d092195167af907fd532e81e1c"
            ),
        },
        ("negative", "positive"),
        {"train": 67349, "validation": 872, "test": 1821},
        "put GLUE's SST-2 train and dev files (https://dl.fbaipublicfiles.com/glue/data/SST-2.zip) in glue/ "
        "and the labelled 1,821-sentence test split (label<TAB>content) in nlpaueb/ there",
        _read_sst2,
    ),
}


# -- finding and checking the files ---------------------------------------------------------------------------------
def data_root(data_dir=None) -> Path | None:
    """``data_dir``, else ``$NEURONKIT_DATA``, else None."""
    d = data_dir if data_dir is not None else os.environ.get("NEURONKIT_DATA")
    return Path(d).expanduser() if d else None


def _bases(root: Path, src: TextSource) -> list:
    return [root / src.folder, root / "text" / src.folder, root]


def locate(name: str, data_dir=None) -> tuple:
    """``(folder or None, searched)``: the first folder holding all of the dataset's files, and every folder tried."""
    src = TEXT_SOURCES[name]
    root = data_root(data_dir)
    if root is None:
        return None, []
    bases = _bases(root, src)
    for base in bases:
        if all(_find(base, f) is not None for f in src.files.values()):
            return base, bases
    return None, bases


def _find(base: Path, f: TextFile) -> Path | None:
    for rel in (f.path, *f.aliases):
        if (base / rel).is_file():
            return base / rel
    return None


def _missing(name: str, data_dir) -> FileNotFoundError:
    src = TEXT_SOURCES[name]
    root = data_root(data_dir)
    if root is None:
        return FileNotFoundError(
            f"{name}: no data directory: pass --data-dir DIR (data_dir=) or set NEURONKIT_DATA to the folder holding "
            f"{src.folder}/; to get the files, {src.how_to_get}"
        )
    bases = _bases(root, src)
    # name the first file missing from the most complete candidate folder
    best = max(bases, key=lambda b: sum(_find(b, f) is not None for f in src.files.values()))
    file = next(f for f in src.files.values() if _find(best, f) is None)
    return FileNotFoundError(
        f"{name}: {file.path} not found in {root} (searched {', '.join(str(b) for b in bases)}); to get it, "
        f"{src.how_to_get.replace(' there', f' in {root / src.folder}')}"
    )


def _verified(path: Path, f: TextFile, verify: bool) -> bytes:
    raw = path.read_bytes()
    if verify:
        got = hashlib.sha256(raw).hexdigest()
        if got != f.sha256:
            raise ChecksumError(
                f"{path} is not the published file: expected {f.size:,} bytes with sha256 {f.sha256[:16]}..., got "
                f"{len(raw):,} bytes with sha256 {got[:16]}... (a different version, or damaged; verify=False reads "
                f"it anyway)"
            )
    return raw


def load_text_dataset(name: str, data_dir=None, seed=0, verify: bool = True) -> TextSplits:
    """The train/test (and, for sst2, validation) texts and labels of a built-in text dataset.

    Args:
        name: ``sms_spam``, ``sentiment`` or ``sst2``.
        data_dir: the folder holding the files (see the module docstring). Defaults to ``$NEURONKIT_DATA``.
        seed: seed (or generator) of the stratified 80/20 split of sms_spam and sentiment. Defaults to 0.
        verify: check each file's sha256 against the published one. Defaults to True.
    """
    if name not in TEXT_SOURCES:
        raise KeyError(f"unknown text dataset {name!r}; available: {', '.join(TEXT_SOURCES)}")
    src = TEXT_SOURCES[name]
    base, _ = locate(name, data_dir)
    if base is None:
        raise _missing(name, data_dir)
    raws = {}
    for role, f in src.files.items():
        path = _find(base, f)
        raws[role] = (path, _verified(path, f, verify))
    return src.reader(src, raws, seed)
