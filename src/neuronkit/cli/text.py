"""Text runs on the command line: a text dataset or the user's own CSV/TSV text, the tokenizer fitted on the
training split and saved with the run (``RUN/tokenizer.json``), length-bucketed batches, and ``evaluate``,
``predict --text`` and ``summary`` on the run.

::

    neuronkit train --data sst2 --data-dir DIR --model textcnn
    neuronkit train --data reviews.csv --text title --text review --target stars --tokenizer bpe
    neuronkit predict RUN --text "a gripping, funny film"
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import DATASETS, DataLoader, split_indices
from ..data.text import TEXT_SOURCES, TOKENIZERS, TextEncoder, load_text_dataset, locate, read_text_table
from ..data.text.datasets import data_root
from .errors import CLIError
from .textmodels import DEFAULT_MAX_LEN, DEFAULT_TEXT_MODEL, TEXT_MODELS, auto_epochs

TOKENIZER_FILE = "tokenizer.json"
EVAL_BATCH = 256


def add_train_flags(p) -> None:
    """The text flags of ``neuronkit train``."""
    p.add_argument(
        "--text",
        action="append",
        metavar="COLUMN",
        help="the text column of a CSV/TSV (repeat to join several columns); makes it a text run",
    )
    p.add_argument("--tokenizer", choices=TOKENIZERS, help="text runs: how text becomes tokens (default word)")
    p.add_argument(
        "--lowercase",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="text runs: lower-case the text first (default on, off for char)",
    )
    p.add_argument("--min-freq", type=int, help="text runs: a token needs this many occurrences (default 1; 2 subword)")
    p.add_argument("--vocab-size", type=int, help="text runs: at most this many token ids (default all; 8000 subword)")
    p.add_argument("--max-len", type=int, help="text runs: tokens kept per text (default 256; 1024 for char)")
    p.add_argument("--embed-dim", type=int, help="text runs: size of the token embeddings (default 64 bow, else 128)")
    p.add_argument(
        "--hidden-size",
        type=int,
        help="text runs: textcnn filters per width (100), lstm/bilstm/gru state size (128), transformer feed-forward "
        "size (256)",
    )
    p.add_argument("--layers", type=int, help="text runs: stacked recurrent (default 1) or transformer (2) layers")
    p.add_argument("--heads", type=int, help="text runs: attention heads of the transformer (default 4)")
    p.add_argument(
        "--pool",
        choices=("mean", "max", "last"),
        help="text runs: a text's vector: mean/max over its steps, or the recurrent final states (last)",
    )


def is_text_config(cfg) -> bool:
    """A text run: a text dataset, or a file with ``--text`` columns."""
    info = DATASETS.get(cfg.data)
    return (info is not None and info.kind == "text") or bool(cfg.text)


def is_text_run(info: dict) -> bool:
    return isinstance(info.get("text"), dict)


@dataclass
class TextData:
    """The texts and labels of each split (``val`` None: carve it from the training split)."""

    name: str
    source: str  # "dataset" or "file"
    classes: list
    train: tuple  # (texts, labels)
    test: tuple
    val: tuple | None = None
    target_name: str | None = None


def _take(texts, y, idx) -> tuple:
    return [texts[i] for i in idx], y[idx]


def load_text(cfg) -> TextData:
    """The run's text data as train/test (and maybe validation) texts with int64 labels."""
    if cfg.task == "regression":
        raise CLIError(f"{cfg.data}: text runs are classification only; leave out --task regression")
    spec = cfg.data
    if spec in DATASETS:
        if cfg.text:
            raise CLIError(f"--text names columns of your own CSV/TSV file; {spec} is a built-in dataset")
        s = load_text_dataset(spec, data_dir=cfg.data_dir, seed=cfg.seed)
        val = None if s.val_texts is None else (s.val_texts, s.val_labels)
        return TextData(
            spec, "dataset", list(s.classes), (s.train_texts, s.train_labels), (s.test_texts, s.test_labels), val
        )
    texts, y, classes, target_name = read_text_table(spec, cfg.text, cfg.target)
    if len(texts) < 2:
        raise CLIError(f"{spec}: {len(texts)} row(s) cannot be split into training and test data")
    try:
        rest, test = split_indices(len(texts), [cfg.test_fraction], y=y, stratify=True, seed=cfg.seed)
    except ValueError as e:
        raise CLIError(f"{spec}: cannot split {len(texts)} rows into training and test data: {e}") from None
    name = Path(spec).stem
    return TextData(name, "file", classes, _take(texts, y, rest), _take(texts, y, test), None, target_name)


def _validation(cfg, data: TextData) -> tuple:
    """``(train, val)``: the dataset's own validation split, or ``val_fraction`` of the training split (stratified,
    seeded as the other runs' validation splits are)."""
    if cfg.val_fraction == 0:
        return data.train, None
    if data.val is not None:
        return data.train, data.val
    texts, y = data.train
    try:
        rest, val = split_indices(
            len(texts), [cfg.val_fraction], y=y, stratify=True, seed=np.random.default_rng([cfg.seed, 2])
        )
    except ValueError as e:
        raise CLIError(f"val_fraction {cfg.val_fraction}: cannot split {len(texts)} training texts: {e}") from None
    return _take(texts, y, rest), _take(texts, y, val)


def make_encoder(cfg) -> TextEncoder:
    max_len = cfg.max_len if cfg.max_len is not None else DEFAULT_MAX_LEN[cfg.tokenizer]
    try:
        return TextEncoder(cfg.tokenizer, cfg.lowercase, cfg.min_freq, cfg.vocab_size, max_len)
    except ValueError as e:
        raise CLIError(str(e)) from None


def load_encoder(run) -> TextEncoder:
    """The run's saved tokenizer and vocabulary (checked: a damaged file is a one-line error)."""
    path = Path(run.path) / TOKENIZER_FILE
    if not path.is_file():
        raise CLIError(f"{run.path}: a text run needs its tokenizer, but {TOKENIZER_FILE} is missing")
    return TextEncoder.load(path)


def prepare(cfg, run=None) -> tuple:
    """``(data, info, train, val, test, encoder)`` for a text run: the encoder fitted on the training texts (or, when
    ``run`` continues a run, the one saved with it), a length-bucketed shuffled loader for training, and sorted
    bucketed loaders for validation and test."""
    if cfg.model == "mlp":  # the default model: a text run gets the default text model
        cfg.model = DEFAULT_TEXT_MODEL
    if cfg.model not in TEXT_MODELS:
        raise CLIError(f"model {cfg.model!r} does not read text; text models: {', '.join(TEXT_MODELS)}")
    data = load_text(cfg)
    (tr_texts, tr_y), val = _validation(cfg, data)
    if run is not None and (Path(run.path) / TOKENIZER_FILE).is_file():
        encoder = load_encoder(run)
    else:
        encoder = make_encoder(cfg)
        encoder.fit(tr_texts)
    train_ds = encoder.dataset(tr_texts, tr_y)
    val_ds = None if val is None else encoder.dataset(*val)
    test_ds = encoder.dataset(*data.test)
    info = {
        "name": data.name,
        "source": data.source,
        "task": "classification",
        "classes": data.classes,
        "num_outputs": len(data.classes),
        "sample_shape": [],
        "model_input_shape": [],
        "standardize": None,
        "target_name": data.target_name,
        "pixel_max": 1.0,
        "sizes": {"train": len(train_ds), "validation": 0 if val_ds is None else len(val_ds), "test": len(test_ds)},
        "text": {
            "columns": list(cfg.text) if cfg.text else None,
            "tokenizer": TOKENIZER_FILE,
            "kind": encoder.kind,
            "vocab_size": len(encoder),
            "max_len": encoder.max_len,
        },
    }
    train = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed, bucket=True)
    if cfg.epochs is None:  # the text model's default: about TRAIN_STEPS steps, whatever the data's size
        cfg.epochs = auto_epochs(len(train))
    return data, info, train, _sorted_loader(val_ds), _sorted_loader(test_ds), encoder


def _sorted_loader(ds):
    return None if ds is None else DataLoader(ds, batch_size=EVAL_BATCH, bucket=True)


def save_encoder(run, encoder: TextEncoder) -> None:
    encoder.save(Path(run.path) / TOKENIZER_FILE)


# -- evaluate / predict / summary on a text run -----------------------------------------------------------------
def evaluate_data(run, cfg, info, data: str | None, target: str | None, data_dir: str | None) -> tuple:
    """``(loader, where)``: the run's test split (or a text dataset's, or every row of a text file) as its model
    takes it, through the run's own tokenizer."""
    encoder = load_encoder(run)
    classes = list(info["classes"])
    if data is None or data in DATASETS:
        if data is not None:
            cfg.data, cfg.text = data, None
        if data_dir is not None:
            cfg.data_dir = data_dir
        d = load_text(cfg)
        if len(d.classes) != len(classes):
            raise CLIError(f"{cfg.data} has {len(d.classes)} classes, the model predicts {len(classes)}")
        texts, y = d.test
        where = f"{cfg.data} (test split)"
    else:
        columns = info["text"].get("columns")
        if not columns:
            raise CLIError(
                f"{run.path} was trained on {cfg.data}; evaluating it on a file needs text columns, which it has none"
            )
        texts, y_file, file_classes, _ = read_text_table(data, columns, target or info.get("target_name"))
        index = {c: i for i, c in enumerate(classes)}
        unknown = [c for c in file_classes if c not in index]
        if unknown:
            raise CLIError(f"{data}: labels out of range: {unknown[0]!r} is not one of the model's classes {classes}")
        y = np.array([index[file_classes[k]] for k in y_file], dtype=np.int64)
        where = data
    return _sorted_loader(encoder.dataset(texts, y)), where


def read_predict_texts(run, info, inputs, texts) -> list:
    """The texts to predict: ``--text`` strings, then each input file's texts (a .csv/.tsv with the run's text
    columns, or any other file's non-empty lines)."""
    out = list(texts or [])
    columns = info["text"].get("columns")
    for f in inputs or []:
        p = Path(f)
        if not p.is_file():
            raise FileNotFoundError(f"input file not found: {p}")
        if columns and p.suffix.lower() in (".csv", ".tsv", ".tab"):
            out += _table_texts(p, columns)
            continue
        try:
            lines = p.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as e:
            raise CLIError(f"{p}: not UTF-8 text ({e})") from None
        out += [ln.strip() for ln in lines if ln.strip()]
    if not out:
        raise CLIError('nothing to predict: give --text "..." or a file with one text per line')
    return out


def _table_texts(p: Path, columns) -> list:
    import csv

    from ..data.text.files import MAX_FIELD_CHARS

    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_CHARS))
    delim = "\t" if p.suffix.lower() in (".tsv", ".tab") else ","
    with open(p, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh, delimiter=delim))
    missing = [c for c in columns if rows and c not in rows[0]]
    if missing:
        raise CLIError(f"{p}: no text column {missing[0]!r}; the run reads {columns}")
    return [" ".join((r.get(c) or "").strip() for c in columns) for r in rows]


def predict_texts(run, info, model, texts: list) -> tuple:
    """``(header, rows)``: index, class, label, one probability per class and the text, for each text."""
    from ..train import predict

    encoder = load_encoder(run)
    ds = encoder.dataset(texts)
    out = np.asarray(predict(model, ds), dtype=np.float64)
    z = out - out.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    classes = info["classes"]
    k = p.argmax(axis=1)
    header = ["index", "class", "label", *[f"p_{c}" for c in classes], "text"]
    rows = [[i, int(k[i]), classes[k[i]], *(round(v, 6) for v in p[i].tolist()), texts[i]] for i in range(len(p))]
    return header, rows


def vocab_size(info: dict) -> int | None:
    """The vocabulary size a text run's model is built for (None for other runs)."""
    return info["text"]["vocab_size"] if is_text_run(info) else None


def evaluate_run(run, cfg, info, model, data, target, data_dir) -> dict:
    """``neuronkit evaluate`` on a text run: metrics on its test split, a text dataset's, or a labelled text file."""
    from . import training as T

    loader, where = evaluate_data(run, cfg, info, data, target, data_dir)
    loss = info.get("loss") or "cross_entropy"
    return {
        "split": "test" if data is None else where,
        "samples": len(loader.dataset),
        **T.test_metrics(model, loader, "classification", loss),
    }


def summary_model(cfg) -> tuple:
    """``(model, inputs)`` for ``neuronkit summary --model bow --data sst2``: the encoder is fitted on the training
    split to know the vocabulary size."""
    from .. import creation
    from .models import build_model

    _, info, *_ = prepare(cfg)
    creation.manual_seed(0)
    return build_model(cfg, (), info["num_outputs"], vocab_size(info)), summary_inputs(info)


def summary_inputs(info) -> tuple:
    """Example ``(tokens, lengths)`` for ``Module.summary``: one text of 8 tokens (or max_len, if fewer)."""
    t = min(8, info["text"].get("max_len") or 8)
    return np.ones((1, t), dtype=np.int64), np.array([t], dtype=np.int64)


# -- where the datasets are looked for ----------------------------------------------------------------------------
def dataset_locations(data_dir=None) -> list:
    """One line per text dataset: where its files were found, or where they were looked for."""
    root = data_root(data_dir)
    head = (
        f"text datasets are read from {root} (--data-dir, else $NEURONKIT_DATA)"
        if root is not None
        else "text datasets are read from --data-dir DIR or $NEURONKIT_DATA (neither is set)"
    )
    lines = [head]
    for name, src in TEXT_SOURCES.items():
        base, searched = locate(name, data_dir)
        sizes = ", ".join(f"{v:,} {k}" for k, v in src.sizes.items())
        where = f"found in {base}" if base is not None else "missing"
        if base is None and searched:
            where += f" (searched {', '.join(str(b) for b in searched)})"
        lines.append(f"  {name:<10} {sizes}: {where}")
    return lines
