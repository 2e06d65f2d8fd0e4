"""Named architectures of ``neuronkit train --model``: ``mlp``, ``lenet``, or explicit layer sizes.

- ``mlp``: [Flatten for images] Dense(in, h1, act) [Dropout] ... Dense(h_last, out).
- ``784-256-128-10``: the same MLP with every size given; the first must equal the number of input features and the
  last the number of outputs (classes, or 1 for regression), so a mismatch is reported before training.
- ``lenet``: Conv2d(C, 16, 3, padding 1) ReLU MaxPool2d(2), Conv2d(16, 32, 3, padding 1) ReLU MaxPool2d(2), Flatten,
  (each convolution with its ReLU and pooling fused: ``Conv2d(..., activation="relu", max_pool=2)``),
  Dense(32 * H/4 * W/4, 128, relu), Dense(128, out), for images (C, H, W): two convolutions then two dense layers,
  as in LeNet-5. 28x28 gives 32 * 7 * 7 = 1568 features, 8x8 digits 32 * 2 * 2. Padding 1 keeps each conv's output
  the size of its input, so small images (8x8 digits) work too.
- ``bow`` (text): a bag of embeddings, ``TextClassifier(Embedding(vocab, E, padding_idx=0), SequencePool("mean"),
  Sequential(Dense(E, h1, act) [Dropout] ... Dense(h_last, out)))``: the mean of the text's token embeddings (padding
  left out), then the MLP head of ``--hidden`` (E = ``--embed-dim``, default 64); the embeddings start at
  N(0, 0.01^2).
"""

from __future__ import annotations

import math

from .. import nn
from .errors import CLIError

TEXT_MODELS = ("bow",)  # models that read token ids: built with the vocabulary size, called as model(tokens, lengths)
DEFAULT_TEXT_MODEL = "bow"
MODELS = ("mlp", "lenet", *TEXT_MODELS)
DEFAULT_EMBED_DIM = 64
EMBED_INIT_STD = 0.01


def image_shape(sample_shape: tuple) -> tuple | None:
    """``(C, H, W)`` for a sample of shape (H, W), (C, H, W) or a flattened square (H*W,); None if not an image."""
    s = tuple(int(d) for d in sample_shape)
    if len(s) == 3:
        return s
    if len(s) == 2:
        return (1, *s)
    if len(s) == 1:
        r = math.isqrt(s[0])
        if r >= 4 and r * r == s[0]:
            return (1, r, r)
    return None


def model_input_shape(model: str, sample_shape: tuple) -> tuple:
    """The per-sample shape the model takes: (C, H, W) for lenet, the data's own shape otherwise."""
    if model in TEXT_MODELS:
        raise CLIError(f"model {model!r} reads text: it needs text data (a text dataset, or --text COLUMN)")
    if model != "lenet":
        return tuple(sample_shape)
    img = image_shape(sample_shape)
    if img is None:
        raise CLIError(
            f"model 'lenet' needs image data: samples of shape (H, W), (C, H, W) or a square number of features; "
            f"got samples of shape {tuple(sample_shape)}"
        )
    return img


def _mlp_head(cfg, sizes: list, init) -> list:
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Dense(a, b, activation=cfg.activation, init=init))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
    layers.append(nn.Dense(sizes[-2], sizes[-1], init=init))
    return layers


def build_text_model(cfg, vocab_size: int, n_out: int) -> nn.Module:
    """The text model ``cfg.model`` over a vocabulary of ``vocab_size`` ids with ``n_out`` classes."""
    init = None if cfg.init == "auto" else cfg.init
    if cfg.model not in TEXT_MODELS:
        raise CLIError(f"model {cfg.model!r} does not read text; text models: {', '.join(TEXT_MODELS)}")
    e = cfg.embed_dim or DEFAULT_EMBED_DIM
    embedding = nn.Embedding(vocab_size, e, padding_idx=0)
    # A bag of embeddings averages its tokens' vectors: started near zero (as fastText starts them), the vectors the
    # training moves dominate the average, not the random start. Measured with N(0, 1) (Embedding's default, as in
    # PyTorch) against N(0, 0.01^2) on SMS spam (split seed 2, 10 epochs): 95.9 % against 98.0 % test accuracy.
    nn.init.normal_(embedding.weight, 0.0, EMBED_INIT_STD)
    embedding.weight.data[0] = 0  # the padding row
    head = nn.Sequential(*_mlp_head(cfg, [e, *cfg.hidden, n_out], init))
    return nn.TextClassifier(embedding, nn.SequencePool("mean"), head)


def build_model(cfg, sample_shape: tuple, n_out: int, vocab_size: int | None = None) -> nn.Module:
    """The network ``cfg.model`` for samples of ``sample_shape`` (as the model takes them) and ``n_out`` outputs;
    a text model (``TEXT_MODELS``) for a vocabulary of ``vocab_size`` token ids."""
    if cfg.model in TEXT_MODELS:
        if vocab_size is None:
            raise CLIError(f"model {cfg.model!r} reads text: it needs text data (a text dataset, or --text COLUMN)")
        return build_text_model(cfg, vocab_size, n_out)
    init = None if cfg.init == "auto" else cfg.init
    if cfg.model == "lenet":
        c, h, w = sample_shape
        # each convolution with its ReLU and 2x2 max pooling fused in: the same maths as Conv2d, ReLU, MaxPool2d
        # in a row, in fewer passes over memory (benchmarks/RESULTS.md)
        return nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1, activation="relu", max_pool=2),
            nn.Conv2d(16, 32, 3, padding=1, activation="relu", max_pool=2),
            nn.Flatten(),
            nn.Dense(32 * (h // 2 // 2) * (w // 2 // 2), 128, activation="relu", init=init),
            nn.Dense(128, n_out, init=init),
        )
    n_in = math.prod(sample_shape)
    if cfg.model == "mlp":
        sizes = [n_in, *cfg.hidden, n_out]
    else:
        sizes = [int(s) for s in cfg.model.split("-")]
        if sizes[0] != n_in:
            raise CLIError(
                f"model {cfg.model} takes {sizes[0]} input features, but the data has {n_in} per sample "
                f"(shape {tuple(sample_shape)})"
            )
        if sizes[-1] != n_out:
            what = f"{n_out} classes" if n_out > 1 else "1 output (regression)"
            raise CLIError(f"model {cfg.model} has {sizes[-1]} outputs, but the data has {what}")
    layers = [nn.Flatten()] if len(sample_shape) > 1 else []
    return nn.Sequential(*layers, *_mlp_head(cfg, sizes, init))
