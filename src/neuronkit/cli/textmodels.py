"""The built-in text models of ``neuronkit train --model``: their defaults, construction and memory estimate.

Every model is ``TextClassifier(Embedding(vocab, E, padding_idx=0), encoder, head)`` built from registered layers (so
save/load, summary, evaluate, predict and resume work on each):

- ``bow``: ``SequencePool(pool)``, the mean (or max) of the token vectors; head ``Dense(E, h) relu [Dropout]
  ... Dense(h, classes)`` over ``--hidden``.
- ``textcnn``: ``ConvEncoder(E, hidden_size, [3, 4, 5])``, widths 3, 4 and 5 with ReLU and max over time (Kim 2014).
- ``lstm``, ``bilstm``, ``gru``: ``RecurrentEncoder(LSTM/GRU(E, hidden_size, layers, dropout between layers,
  bidirectional for bilstm), pool)``, max over the outputs by default.
- ``transformer``: ``TransformerTextEncoder(TransformerEncoder(TransformerEncoderLayer(E, heads, 2 E, dropout),
  layers), LearnedPositionalEmbedding(E, max_len), pool)``.

For every model but ``bow`` the head is ``Dropout(dropout)`` on the text vector, then the MLP of ``--hidden`` (none
by default: one ``Dense`` to the classes). Settings a run does not give come from ``TEXT_DEFAULTS`` for its model.
"""

from __future__ import annotations

from .. import nn
from ..train.memory import LayerCost, dense_cost
from .errors import CLIError
from .head import layer_inits, mlp_head

TEXT_MODELS = ("bow", "textcnn", "lstm", "bilstm", "gru", "transformer")
"""Models that read token ids: built with the vocabulary size, called as ``model(tokens, lengths)``."""
DEFAULT_TEXT_MODEL = "bilstm"  # the best on SST-2 with these defaults (README, "Text")
EMBED_INIT_STD = 0.01
DEFAULT_MAX_LEN = {"word": 256, "bpe": 256, "wordpiece": 256, "char": 1024}  # tokens kept per text
POOLS = {
    "bow": ("mean", "max"),
    "textcnn": ("max",),
    "lstm": ("max", "mean", "last"),
    "bilstm": ("max", "mean", "last"),
    "gru": ("max", "mean", "last"),
    "transformer": ("mean", "max"),
}
_COMMON = {"hidden": [], "layers": 1, "heads": None, "dropout": 0.5, "batch_size": 64, "lr": 1e-3, "epochs": None}
TRAIN_STEPS = 2100  # steps a text run gets by default: SST-2's 2 epochs of 1,053 batches
MAX_AUTO_EPOCHS = 50
TEXT_DEFAULTS = {
    "bow": {
        **_COMMON,
        "embed_dim": 64,
        "hidden": [128],
        "hidden_size": None,
        "layers": None,
        "pool": "mean",
    },
    "textcnn": {**_COMMON, "embed_dim": 128, "hidden_size": 100, "layers": None, "pool": "max"},
    "lstm": {**_COMMON, "embed_dim": 128, "hidden_size": 128, "pool": "max"},
    "bilstm": {**_COMMON, "embed_dim": 128, "hidden_size": 128, "pool": "max"},
    "gru": {**_COMMON, "embed_dim": 128, "hidden_size": 128, "pool": "max"},
    "transformer": {
        **_COMMON,
        "embed_dim": 128,
        "hidden_size": 256,
        "layers": 2,
        "heads": 4,
        "dropout": 0.1,
        "pool": "mean",
    },
}
"""Per text model, the settings a run gets when it gives none. ``epochs`` None: as many as make ``TRAIN_STEPS`` steps
(``auto_epochs``). That length was chosen on SST-2's validation split (GLUE dev, 872 sentences; never the test
split): its accuracy peaked at epoch 2 (2,106 steps) for bow (82.1, 82.7, 81.4 % at epochs 1-3), textcnn (80.7,
82.0, 81.3, 80.6 %) and bilstm (82.3, 84.5, 82.8 %), the models overfitting after that; a smaller data set gets more
epochs of the same number of steps (2 epochs of SMS spam's 63 batches left the bilstm at the 86.5 % of "all ham").
``hidden_size``: filters per width for textcnn, state size for the recurrent models, feed-forward size for the
transformer; None: the setting does not apply."""
TEXT_KEYS = ("hidden_size", "layers", "heads", "pool")
"""Settings that only text models read."""


def apply_defaults(cfg, given: set) -> None:
    """Fill the settings ``given`` does not name from ``TEXT_DEFAULTS[cfg.model]`` (the default text model when no
    model is given), and refuse one line per setting the model does not take."""
    if "model" not in given or cfg.model == "mlp":
        cfg.model = DEFAULT_TEXT_MODEL
    if cfg.model not in TEXT_MODELS:
        raise CLIError(f"model {cfg.model!r} does not read text; text models: {', '.join(TEXT_MODELS)}")
    for key, value in TEXT_DEFAULTS[cfg.model].items():
        if key not in given:
            setattr(cfg, key, list(value) if isinstance(value, list) else value)
        elif key in TEXT_KEYS and value is None and getattr(cfg, key) is not None:
            raise CLIError(f"{key} does not apply to model {cfg.model!r}; leave it out")
    if cfg.pool not in POOLS[cfg.model]:
        raise CLIError(f"pool must be one of {', '.join(POOLS[cfg.model])} for model {cfg.model!r}, got {cfg.pool!r}")
    e = cfg.embed_dim
    if cfg.model == "transformer" and e % cfg.heads:
        raise CLIError(f"transformer: embed_dim {e} must be a multiple of heads {cfg.heads}")


def auto_epochs(steps_per_epoch: int) -> int:
    """Epochs that make about ``TRAIN_STEPS`` steps: ``ceil(TRAIN_STEPS / steps_per_epoch)``, in 2..50."""
    return min(MAX_AUTO_EPOCHS, max(2, -(-TRAIN_STEPS // max(steps_per_epoch, 1))))


def refuse_text_keys(cfg) -> None:
    """A run that does not read text: the text-model settings must be left out."""
    for key in TEXT_KEYS:
        if getattr(cfg, key) is not None:
            raise CLIError(f"{key} applies to text models only ({', '.join(TEXT_MODELS)}); leave it out")


def _embedding(vocab_size: int, e: int):
    embedding = nn.Embedding(vocab_size, e, padding_idx=0)
    # Started near zero (as fastText starts them), the vectors the training moves dominate, not the random start.
    # Measured for bow with N(0, 1) (Embedding's default, as in PyTorch) against N(0, 0.01^2) on SMS spam (split
    # seed 2, 10 epochs): 95.9 % against 98.0 % test accuracy.
    nn.init.normal_(embedding.weight, 0.0, EMBED_INIT_STD)
    embedding.weight.data[0] = 0  # the padding row
    return embedding


def _encoder(cfg, e: int, max_len: int):
    """``(encoder, features)``: the model's sequence encoder and the size of the vector it gives per text."""
    m, h = cfg.model, cfg.hidden_size
    if m == "bow":
        return nn.SequencePool(cfg.pool), e
    if m == "textcnn":
        enc = nn.ConvEncoder(e, h, [3, 4, 5])
        return enc, enc.out_features
    if m in ("lstm", "bilstm", "gru"):
        cls = nn.GRU if m == "gru" else nn.LSTM
        between = cfg.dropout if cfg.layers > 1 else 0.0
        rnn = cls(e, h, num_layers=cfg.layers, dropout=between, bidirectional=m == "bilstm")
        enc = nn.RecurrentEncoder(rnn, cfg.pool)
        return enc, enc.out_features
    layer = nn.TransformerEncoderLayer(e, cfg.heads, h, dropout=cfg.dropout)
    enc = nn.TransformerTextEncoder(
        nn.TransformerEncoder(layer, cfg.layers), nn.LearnedPositionalEmbedding(e, max_len), cfg.pool
    )
    return enc, e


def build_text_model(cfg, vocab_size: int, n_out: int) -> nn.Module:
    """The text model ``cfg.model`` over a vocabulary of ``vocab_size`` ids with ``n_out`` classes."""
    inits = layer_inits(cfg)
    if cfg.model not in TEXT_MODELS:
        raise CLIError(f"model {cfg.model!r} does not read text; text models: {', '.join(TEXT_MODELS)}")
    e = cfg.embed_dim or TEXT_DEFAULTS["bow"]["embed_dim"]
    max_len = cfg.max_len or DEFAULT_MAX_LEN.get(cfg.tokenizer or "word", 256)
    encoder, features = _encoder(cfg, e, max_len)
    head = mlp_head(cfg, [features, *cfg.hidden, n_out], inits)
    if cfg.model != "bow" and cfg.dropout > 0:
        head.insert(0, nn.Dropout(cfg.dropout))
    return nn.TextClassifier(_embedding(vocab_size, e), encoder, nn.Sequential(*head))


def _encoder_cost(cfg, e: int, length: int) -> LayerCost:
    """Parameters and per-text activations kept for backward (estimates that err high) of the encoder."""
    m, h, layers = cfg.model, cfg.hidden_size or 0, cfg.layers or 1
    if m == "bow":
        return LayerCost(0, e)
    if m == "textcnn":
        ks = (3, 4, 5)
        return LayerCost(sum(h * (e * k + 1) for k in ks), length * (e + sum(e * k + 2 * h for k in ks)))
    if m in ("lstm", "bilstm", "gru"):
        g, d = (3 if m == "gru" else 4) * h, 2 if m == "bilstm" else 1
        params = d * (g * (e + h + 2) + (layers - 1) * g * (d * h + h + 2))
        return LayerCost(params, length * layers * d * (g + 3 * h))
    params = layers * (4 * e * e + 2 * e * h + 9 * e + h) + length * e
    return LayerCost(params, length * layers * (10 * e + 2 * h + (cfg.heads or 1) * length))


def text_model_costs(cfg, vocab_size: int, n_out: int) -> list:
    """The ``LayerCost`` s of ``build_text_model``'s network for texts of up to ``cfg.max_len`` tokens."""
    e = cfg.embed_dim or TEXT_DEFAULTS["bow"]["embed_dim"]
    length = cfg.max_len or DEFAULT_MAX_LEN.get(cfg.tokenizer or "word", 256)
    features = {"bow": e, "transformer": e}.get(cfg.model)
    if features is None:
        h = cfg.hidden_size or 0
        features = 3 * h if cfg.model == "textcnn" else h * (2 if cfg.model == "bilstm" else 1)
    costs = [LayerCost(0, length), LayerCost(vocab_size * e, length * e), _encoder_cost(cfg, e, length)]
    sizes = [features, *cfg.hidden, n_out]
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        costs.append(dense_cost(a, b, activation=True))
    return [*costs, dense_cost(sizes[-2], sizes[-1])]
