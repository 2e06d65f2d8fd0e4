"""``TrainConfig``: every setting of ``neuronkit train``, with defaults, checks, and TOML loading.

Precedence: the defaults below < a ``--config FILE.toml`` < flags given on the command line. A TOML file uses the
same keys as the flags, with ``_`` or ``-`` (``batch_size = 64`` or ``batch-size = 64``), all at the top level::

    data = "digits"
    model = "mlp"
    hidden = [256, 128]
    epochs = 10
    lr = 0.001
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CLIError
from .models import MODELS
from .textmodels import TEXT_MODELS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SCHEDULES = ("none", "cosine", "step", "onecycle", "warmup-cosine")
TASKS = ("auto", "classification", "regression")


@dataclass
class TrainConfig:
    """The resolved settings of one training run (written to the run's ``config.json``)."""

    data: str = "digits"  # a name from neuronkit.data.DATASETS, or a .csv/.npy/.npz file
    data_dir: str | None = None  # folder with the MNIST-family IDX files; default $NEURONKIT_DATA
    download: bool = False  # fetch missing MNIST-family files into the cache (checksums checked)
    target: str | None = None  # the label column of a CSV (name or index) or NPY (index); default the last one
    task: str = "auto"  # auto: classification for integer/text labels or a labelled dataset, else regression
    model: str = "mlp"  # "mlp", "lenet", or all layer sizes "784-256-128-10" (input-hidden...-output)
    hidden: list = field(default_factory=lambda: [128])  # hidden layer sizes of the mlp
    activation: str = "relu"  # hidden-layer activation (a name from neuronkit.nn.ACTIVATIONS)
    dropout: float = 0.0  # dropout after each hidden layer of the mlp (0: none)
    init: str = (
        "auto"  # weight initialiser of every layer: a name or spec ("he_uniform", "uniform:0.05"); auto: default
    )
    bias_init: str = "auto"  # bias initialiser of every layer ("zeros", "constant:0.1", ...); auto: U(+-1/sqrt(fan_in))
    loss: str = "auto"  # auto: cross_entropy for classification, mse for regression
    optimizer: str = "adam"  # a name from neuronkit.optim.OPTIMIZERS
    lr: float = 1e-3  # learning rate (the peak rate for onecycle)
    weight_decay: float | None = None  # the optimizer's weight decay (L2; decoupled for adamw); None: its default
    clip_grad_norm: float | None = None  # rescale the gradients to at most this global norm each step (None: off)
    schedule: str = "none"  # none | cosine | step | onecycle | warmup-cosine
    epochs: int | None = 20  # None (text models' default): about 2,100 steps, in 2..50 epochs (textmodels.auto_epochs)
    batch_size: int = 32
    seed: int = 0  # one seed: initial weights, shuffling, dropout, and the splits of a file
    val_fraction: float = 0.1  # validation split carved from the training split (stratified); 0: none
    test_fraction: float = 0.2  # held-out test split of a data file (named datasets come with theirs)
    standardize: bool = True  # (x - mean) / std, fitted on the training split only
    patience: int | None = None  # early stopping: epochs without val_loss improvement (None: off)
    probe_every: int | None = None  # record per-neuron statistics every N steps (0: off; None: about 200 records)
    gradcheck_every: int = 0  # float64 gradient check of the whole model every N steps (0: off)
    out: str | None = None  # run directory; default runs/<data>-<timestamp>
    # text runs (a text dataset, or a CSV/TSV with --text columns)
    text: list | None = None  # the text column(s) of a CSV/TSV, joined with a space; None: not a text file
    tokenizer: str = "word"  # word | char | bpe | wordpiece (neuronkit.data.text.TOKENIZERS)
    lowercase: bool | None = None  # lower-case the text first; None: the tokenizer's default (on; off for char)
    min_freq: int | None = None  # occurrences a token needs in the training split; None: 1 (2 for subwords)
    vocab_size: int | None = None  # at most this many token ids; None: every token (8000 for subwords)
    max_len: int | None = None  # tokens kept per text; None: 256 (1024 for char)
    embed_dim: int | None = None  # size of the token embeddings; None: the text model's default (64 bow, else 128)
    hidden_size: int | None = None  # textcnn: filters per width; lstm/bilstm/gru: state size; transformer: feed-forward
    layers: int | None = None  # stacked recurrent or transformer layers; None: the model's default
    heads: int | None = None  # attention heads of the transformer (a divisor of embed_dim)
    pool: str | None = None  # how a text becomes one vector: mean | max (bow, transformer), max | mean | last (rnns)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def _int(key, v, low=None, allow_none=False):
    if v is None and allow_none:
        return None
    if isinstance(v, bool) or not isinstance(v, int):
        raise CLIError(f"{key} must be an integer, got {v!r}")
    if low is not None and v < low:
        raise CLIError(f"{key} must be >= {low}, got {v}")
    return v


def _float(key, v, low=None, high=None, low_open=False, high_open=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CLIError(f"{key} must be a number, got {v!r}")
    v = float(v)
    if (
        not math.isfinite(v)  # NaN and the infinities: no setting here means anything at infinity
        or (low is not None and (v < low or (low_open and v == low)))
        or (high is not None and (v > high or (high_open and v == high)))
    ):
        lo = "" if low is None else f"{'>' if low_open else '>='} {low}"
        hi = "" if high is None else f"{'<' if high_open else '<='} {high}"
        bounds = " and ".join(s for s in (lo, hi) if s)
        raise CLIError(f"{key} must be a finite number{' ' + bounds if bounds else ''}, got {v}")
    return v


def _str(key, v, allow_none=False, choices=None):
    if v is None and allow_none:
        return None
    if not isinstance(v, str) or not v:
        raise CLIError(f"{key} must be a non-empty string, got {v!r}")
    if choices is not None and v not in choices:
        raise CLIError(f"{key} must be one of {', '.join(choices)}; got {v!r}")
    return v


def _init(key: str, v, bias: bool = False) -> str:
    """An initialiser spec (``"auto"``, ``"he_uniform"``, ``"uniform:0.05"``), checked and written canonically."""
    from ..nn import init as I

    v = _str(key, v)
    if v == "auto":
        return v
    try:
        return str(I.resolve_init(v, bias=bias))
    except ValueError as e:
        raise CLIError(f"{key}: {e}") from None


def parse_sizes(key: str, v) -> list:
    """Layer sizes from a list of ints or a string "256,128" / "256-128"; each >= 1."""
    if isinstance(v, str):
        parts = [p.strip() for p in v.replace("-", ",").split(",")]
        try:
            v = [int(p) for p in parts]
        except ValueError:
            raise CLIError(f"{key} must be layer sizes such as 256,128; got {v!r}") from None
    if not isinstance(v, (list, tuple)):
        raise CLIError(f"{key} must be a list of layer sizes such as [256, 128], got {v!r}")
    for s in v:
        if isinstance(s, bool) or not isinstance(s, int) or s < 1:
            raise CLIError(f"{key} must hold positive integers, got {list(v)!r}")
    return list(v)


def _model_sizes(v: str) -> str:
    """``--model`` as layer sizes ``"784-128-10"``; one message for the form the user was writing (a name, or sizes)."""
    parts = [p.strip() for p in v.replace(",", "-").split("-")]
    if not any(c.isdigit() for c in v):  # a name
        close = difflib.get_close_matches(v.lower(), MODELS, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise CLIError(
            f"model {v!r} is not known: expected {', '.join(MODELS)}, or layer sizes such as 784-128-10{hint}"
        )
    bad = next((p for p in parts if not (p.isdigit() and int(p) > 0)), None)
    if bad is not None:
        raise CLIError(
            f"model {v}: {bad!r} is not a layer size; expected positive whole numbers joined by '-', such as 784-128-10"
        )
    if len(parts) < 2:
        raise CLIError(f"model as layer sizes needs at least the input and output sizes (e.g. 64-128-10), got {v!r}")
    return "-".join(str(int(p)) for p in parts)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Check every value (types and ranges, names against the registries); raise ``CLIError`` for the first bad one."""
    from ..nn import ACTIVATIONS, LOSSES
    from ..optim import OPTIMIZERS

    cfg.data = _str("data", cfg.data)
    cfg.data_dir = _str("data_dir", cfg.data_dir, allow_none=True)
    if cfg.target is not None and not isinstance(cfg.target, str):
        cfg.target = str(_int("target", cfg.target))
    cfg.task = _str("task", cfg.task, choices=TASKS)
    cfg.model = _str("model", cfg.model)
    if cfg.model not in MODELS:
        cfg.model = _model_sizes(cfg.model)
    cfg.hidden = parse_sizes("hidden", cfg.hidden)
    cfg.activation = _str("activation", cfg.activation, choices=sorted(ACTIVATIONS))
    cfg.dropout = _float("dropout", cfg.dropout, 0.0, 1.0, high_open=True)
    cfg.init = _init("init", cfg.init)
    cfg.bias_init = _init("bias_init", cfg.bias_init, bias=True)
    cfg.loss = _str("loss", cfg.loss, choices=["auto", *sorted(LOSSES)])
    cfg.optimizer = _str("optimizer", cfg.optimizer, choices=sorted(OPTIMIZERS))
    cfg.lr = _float("lr", cfg.lr, 0.0, low_open=True)
    if cfg.weight_decay is not None:
        cfg.weight_decay = _float("weight_decay", cfg.weight_decay, 0.0)
    if cfg.clip_grad_norm is not None:
        cfg.clip_grad_norm = _float("clip_grad_norm", cfg.clip_grad_norm, 0.0, low_open=True)
    cfg.schedule = _str("schedule", cfg.schedule, choices=SCHEDULES)
    cfg.epochs = _int("epochs", cfg.epochs, 1, allow_none=True)  # None: a text run's auto_epochs
    cfg.batch_size = _int("batch_size", cfg.batch_size, 1)
    cfg.seed = _int("seed", cfg.seed, 0)
    cfg.val_fraction = _float("val_fraction", cfg.val_fraction, 0.0, 1.0, high_open=True)
    cfg.test_fraction = _float("test_fraction", cfg.test_fraction, 0.0, 1.0, low_open=True, high_open=True)
    for key in ("standardize", "download"):
        if not isinstance(getattr(cfg, key), bool):
            raise CLIError(f"{key} must be true or false, got {getattr(cfg, key)!r}")
    cfg.patience = _int("patience", cfg.patience, 1, allow_none=True)
    if cfg.patience is not None and cfg.val_fraction == 0:
        raise CLIError("patience (early stopping) watches val_loss: it needs val_fraction > 0")
    cfg.probe_every = _int("probe_every", cfg.probe_every, 0, allow_none=True)
    cfg.gradcheck_every = _int("gradcheck_every", cfg.gradcheck_every, 0)
    cfg.out = _str("out", cfg.out, allow_none=True)
    _validate_text(cfg)
    return cfg


def _validate_text(cfg: TrainConfig) -> None:
    from ..data.text import TOKENIZERS

    if cfg.text is not None:
        cols = [cfg.text] if isinstance(cfg.text, str) else cfg.text
        if not isinstance(cols, list) or not cols or not all(isinstance(c, str) and c for c in cols):
            raise CLIError(f"text must be a column name or a list of column names, got {cfg.text!r}")
        cfg.text = list(cols)
    cfg.tokenizer = _str("tokenizer", cfg.tokenizer, choices=TOKENIZERS)
    if cfg.lowercase is not None and not isinstance(cfg.lowercase, bool):
        raise CLIError(f"lowercase must be true or false, got {cfg.lowercase!r}")
    cfg.min_freq = _int("min_freq", cfg.min_freq, 1, allow_none=True)
    cfg.vocab_size = _int("vocab_size", cfg.vocab_size, 3, allow_none=True)
    cfg.max_len = _int("max_len", cfg.max_len, 1, allow_none=True)
    cfg.embed_dim = _int("embed_dim", cfg.embed_dim, 1, allow_none=True)
    cfg.hidden_size = _int("hidden_size", cfg.hidden_size, 1, allow_none=True)
    cfg.layers = _int("layers", cfg.layers, 1, allow_none=True)
    cfg.heads = _int("heads", cfg.heads, 1, allow_none=True)
    cfg.pool = _str("pool", cfg.pool, allow_none=True, choices=("mean", "max", "last"))


def from_mapping(values: dict, where: str) -> dict:
    """Check a mapping's keys (``-`` or ``_``) against ``TrainConfig``; returns it with ``_`` keys."""
    out = {}
    for k, v in values.items():
        key = k.replace("-", "_")
        if key not in KEYS:
            raise CLIError(f"{where}: unknown key {k!r}; known keys: {', '.join(KEYS)}")
        if isinstance(v, dict):
            raise CLIError(f"{where}: {k!r} is a table; expected a value (all keys sit at the top level)")
        out[key] = v
    return out


def load_toml(path) -> dict:
    """The settings in a TOML file, keys checked (values are checked by ``validate`` after merging)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise CLIError(f"config file not found: {p}")
    try:
        with open(p, "rb") as f:
            doc = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise CLIError(f"config file {p} is not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise CLIError(f"config file {p} is not UTF-8 text ({e})") from None
    return from_mapping(doc, f"config file {p}")


def resolve(file_values: dict | None = None, flags: dict | None = None, where: str | None = None) -> TrainConfig:
    """Defaults, then the file's values, then the flags given on the command line; validated.

    ``where`` names the file, so that a bad value in it is reported as ``config file X: lr must be > 0 ...``."""
    if file_values and where:
        try:
            validate(TrainConfig(**file_values))
        except CLIError as e:
            raise CLIError(f"{where}: {e}") from None
    merged = {**(file_values or {}), **{k: v for k, v in (flags or {}).items() if v is not None}}
    cfg = validate(TrainConfig(**merged))
    return _model_defaults(cfg, set(merged))


def _model_defaults(cfg: TrainConfig, given: set) -> TrainConfig:
    """A text run: the settings not ``given`` come from its text model's defaults (``textmodels.TEXT_DEFAULTS``);
    another run must leave the text-model settings out."""
    from .text import is_text_config
    from .textmodels import apply_defaults, refuse_text_keys

    if cfg.model in TEXT_MODELS or is_text_config(cfg):
        apply_defaults(cfg, given)
        return validate(cfg)
    refuse_text_keys(cfg)
    return cfg
