"""Named architectures of ``neuronkit train --model``: ``mlp``, ``lenet``, or explicit layer sizes.

- ``mlp``: [Flatten for images] Dense(in, h1, act) [Dropout] ... Dense(h_last, out).
- ``784-256-128-10``: the same MLP with every size given; the first must equal the number of input features and the
  last the number of outputs (classes, or 1 for regression), so a mismatch is reported before training.
- ``lenet``: Conv2d(C, 16, 3, padding 1) ReLU MaxPool2d(2), Conv2d(16, 32, 3, padding 1) ReLU MaxPool2d(2), Flatten,
  (each convolution with its ReLU and pooling fused: ``Conv2d(..., activation="relu", max_pool=2)``),
  Dense(32 * H/4 * W/4, 128, relu), Dense(128, out), for images (C, H, W): two convolutions then two dense layers,
  as in LeNet-5. 28x28 gives 32 * 7 * 7 = 1568 features, 8x8 digits 32 * 2 * 2. Padding 1 keeps each conv's output
  the size of its input, so small images (8x8 digits) work too.
- text models (``bow``, ``textcnn``, ``lstm``, ``bilstm``, ``gru``, ``transformer``): see ``cli/textmodels.py``.
"""

from __future__ import annotations

import math

from .. import nn
from ..train.memory import LayerCost, check_memory, conv2d_cost, dense_cost, estimate_memory, eval_batch_size
from .errors import CLIError
from .head import layer_inits, mlp_head
from .textmodels import TEXT_MODELS, build_text_model, text_model_costs

MODELS = ("mlp", "lenet", *TEXT_MODELS)


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


def _mlp_sizes(cfg, sample_shape: tuple, n_out: int) -> list:
    """Every layer size of the MLP, input first; ``CLIError`` when ``--model`` sizes do not fit the data."""
    n_in = math.prod(sample_shape)
    if cfg.model == "mlp":
        return [n_in, *cfg.hidden, n_out]
    sizes = [int(s) for s in cfg.model.split("-")]
    if sizes[0] != n_in:
        raise CLIError(
            f"model {cfg.model} takes {sizes[0]} input features, but the data has {n_in} per sample "
            f"(shape {tuple(sample_shape)})"
        )
    if sizes[-1] != n_out:
        what = f"{n_out} classes" if n_out > 1 else "1 output (regression)"
        raise CLIError(f"model {cfg.model} has {sizes[-1]} outputs, but the data has {what}")
    return sizes


def _dense_costs(cfg, sizes: list) -> list:
    costs = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        hidden = dense_cost(a, b, activation=True)
        costs.append(LayerCost(hidden.params, hidden.activations + (b if cfg.dropout > 0 else 0)))  # dropout's mask
    return [*costs, dense_cost(sizes[-2], sizes[-1])]


def model_costs(cfg, sample_shape: tuple, n_out: int, vocab_size: int | None = None) -> list:
    """The ``LayerCost`` s of the network ``build_model`` would build, from the sizes alone (nothing allocated)."""
    if cfg.model in TEXT_MODELS:
        return text_model_costs(cfg, vocab_size or 0, n_out)
    costs = [LayerCost(0, math.prod(sample_shape))]
    if cfg.model == "lenet":
        c, h, w = sample_shape
        one, hw = conv2d_cost(c, 16, 3, (h, w), padding=1, max_pool=2)
        two, (oh, ow) = conv2d_cost(16, 32, 3, hw, padding=1, max_pool=2)
        return [*costs, one, two, dense_cost(32 * oh * ow, 128, activation=True), dense_cost(128, n_out)]
    return costs + _dense_costs(cfg, _mlp_sizes(cfg, sample_shape, n_out))


def check_model_memory(cfg, sample_shape: tuple, n_out: int, training: bool, vocab_size: int | None = None) -> None:
    """Refuse, with one line naming the estimate and the limit, a model that cannot fit in the memory available:
    its parameters, and with ``training`` its gradients, optimizer state and the activations of one batch."""
    costs = model_costs(cfg, sample_shape, n_out, vocab_size)
    if training:
        eval_batch = eval_batch_size((costs, 4), cfg.batch_size)  # fit's validation batch (float32)
        est = estimate_memory(costs, cfg.batch_size, cfg.optimizer, eval_batch=eval_batch)
    else:
        est = estimate_memory(costs)
    shape = "x".join(str(d) for d in sample_shape)
    check_memory(est, f"{'training ' if training else ''}{cfg.model} on samples of shape {shape}")


def build_model(
    cfg, sample_shape: tuple, n_out: int, vocab_size: int | None = None, training: bool = False
) -> nn.Module:
    """The network ``cfg.model`` for samples of ``sample_shape`` (as the model takes them) and ``n_out`` outputs;
    a text model (``TEXT_MODELS``) for a vocabulary of ``vocab_size`` token ids.

    Checked first against the memory available (``check_model_memory``; with ``training``, for training it with
    ``cfg.batch_size`` and ``cfg.optimizer``): a model too large is refused before anything is allocated."""
    if cfg.model in TEXT_MODELS:
        if vocab_size is None:
            raise CLIError(f"model {cfg.model!r} reads text: it needs text data (a text dataset, or --text COLUMN)")
        check_model_memory(cfg, sample_shape, n_out, training, vocab_size)
        return build_text_model(cfg, vocab_size, n_out)
    check_model_memory(cfg, sample_shape, n_out, training)
    inits = layer_inits(cfg)
    if cfg.model == "lenet":
        c, h, w = sample_shape
        # each convolution with its ReLU and 2x2 max pooling fused in: the same maths as Conv2d, ReLU, MaxPool2d
        # in a row, in fewer passes over memory (benchmarks/RESULTS.md)
        return nn.Sequential(
            nn.Conv2d(c, 16, 3, padding=1, activation="relu", max_pool=2, **inits),
            nn.Conv2d(16, 32, 3, padding=1, activation="relu", max_pool=2, **inits),
            nn.Flatten(),
            nn.Dense(32 * (h // 2 // 2) * (w // 2 // 2), 128, activation="relu", **inits),
            nn.Dense(128, n_out, **inits),
        )
    sizes = _mlp_sizes(cfg, sample_shape, n_out)
    layers = [nn.Flatten()] if len(sample_shape) > 1 else []
    return nn.Sequential(*layers, *mlp_head(cfg, sizes, inits))
