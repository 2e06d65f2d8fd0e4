"""The transformer encoder (Vaswani et al. 2017): ``TransformerEncoderLayer`` and a ``TransformerEncoder`` stack, with
PyTorch's parameter names, so a PyTorch ``state_dict`` loads as it is."""

from __future__ import annotations

from ... import backend as B
from ...creation import get_generator
from ...tensor import Tensor
from ..activations import ACTIVATIONS
from ..module import Module
from ..registry import layer_spec, register_layer
from .attention import MultiHeadAttention, check_dropout
from .basic import Dropout, Sequential
from .dense import Dense, Linear
from .norm import LayerNorm


@register_layer
class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward block, each with a residual connection and layer normalisation.

    Post-norm (``norm_first=False``, the original transformer and PyTorch's default)::

        x = norm1(x + dropout1(self_attn(x)))
        x = norm2(x + dropout2(linear2(dropout(activation(linear1(x))))))

    Pre-norm (``norm_first=True``, more stable for deep stacks): ``x = x + dropout1(self_attn(norm1(x)))``, then
    ``x = x + dropout2(linear2(dropout(activation(linear1(norm2(x))))))``.

    Args:
        d_model: E, the size of each token vector.
        nhead: number of attention heads (a divisor of ``d_model``).
        dim_feedforward: hidden size of the feed-forward block (default 2048, as PyTorch).
        dropout: dropout probability everywhere (attention weights and the three dropouts above; default 0.1).
        activation: the feed-forward activation's registered name, ``"relu"`` (default) or ``"gelu"`` (exact, as
            PyTorch's) or another name in ``nn.ACTIVATIONS``.
        layer_norm_eps: eps of both layer norms (default 1e-5).
        batch_first: (B, L, E) inputs (default True); False: (L, B, E), PyTorch's default.
        norm_first: pre-norm instead of post-norm (default False).
        bias: biases in the projections and the layer norms (default True).
        generator: seed or ``numpy.random.Generator`` for the initial weights and every dropout draw.
        dtype: parameter dtype (default float32).

    Call: ``layer(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``; the masks as
    ``MultiHeadAttention``'s ``attn_mask`` and ``key_padding_mask`` (True = ignore that key; ``nn.padding_mask``
    builds it from lengths). Shape: (B, L, E) -> (B, L, E).
    """

    def __init__(
        self,
        d_model: int,
        nhead: int,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str = "relu",
        layer_norm_eps: float = 1e-5,
        batch_first: bool = True,
        norm_first: bool = False,
        bias: bool = True,
        generator=None,
        dtype: str | None = None,
    ):
        super().__init__()
        who = type(self).__name__
        if isinstance(dim_feedforward, bool) or not isinstance(dim_feedforward, int) or dim_feedforward <= 0:
            raise ValueError(f"{who}: dim_feedforward must be a positive int, got {dim_feedforward!r}")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(
                f"{who}: activation must be a name in nn.ACTIVATIONS (such as 'relu' or 'gelu'), got {activation!r}"
            )
        if not (isinstance(layer_norm_eps, (int, float)) and layer_norm_eps > 0):
            raise ValueError(f"{who}: layer_norm_eps must be positive, got {layer_norm_eps!r}")
        p = check_dropout(who, dropout)
        rng = get_generator(generator) if generator is not None else None
        dt = B.DEFAULT_FLOAT.name if dtype is None else B.dtype(dtype).name
        self.self_attn = MultiHeadAttention(d_model, nhead, p, bias=bias, generator=rng, dtype=dt)
        init = get_generator(rng)
        self.linear1 = Dense(d_model, dim_feedforward, bias=bias, activation=activation, generator=init, dtype=dt)
        self.dropout = Dropout(p, generator=rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, generator=init, dtype=dt)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dt)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dt)
        self.dropout1 = Dropout(p, generator=rng)
        self.dropout2 = Dropout(p, generator=rng)
        self.batch_first, self.activation_name, self.layer_norm_eps = bool(batch_first), activation, layer_norm_eps
        self.generator = rng

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src if isinstance(src, Tensor) else Tensor(src)
        if not self.batch_first and x.ndim == 3:
            x = x.swapaxes(0, 1)
        masks = {"attn_mask": src_mask, "key_padding_mask": src_key_padding_mask, "is_causal": is_causal}
        if self.norm_first:
            x = x + self.dropout1(self.self_attn(self.norm1(x), **masks))
            x = x + self._feed_forward(self.norm2(x))
        else:
            x = self.norm1(x + self.dropout1(self.self_attn(x, **masks)))
            x = self.norm2(x + self._feed_forward(x))
        return x if self.batch_first or x.ndim != 3 else x.swapaxes(0, 1)

    def _feed_forward(self, x):
        return self.dropout2(self.linear2(self.dropout(self.linear1(x))))

    def get_config(self) -> dict:
        return {
            "d_model": self.self_attn.embed_dim,
            "nhead": self.self_attn.num_heads,
            "dim_feedforward": self.linear1.out_features,
            "dropout": self.dropout.p,
            "activation": self.activation_name,
            "layer_norm_eps": self.layer_norm_eps,
            "batch_first": self.batch_first,
            "norm_first": self.norm_first,
            "bias": self.linear1.bias is not None,
            "dtype": self.linear1.weight.data.dtype.name,
        }

    @classmethod
    def config_cost(cls, config) -> int:
        """Array elements the constructor allocates: attention, the two feed-forward layers and the norms."""
        e, f = int(config.get("d_model", 1)), int(config.get("dim_feedforward", 2048))
        return MultiHeadAttention.config_cost({"embed_dim": e}) + 2 * e * f + f + 5 * e

    def extra_repr(self) -> str:
        a = self.self_attn
        return (
            f"{a.embed_dim}, nhead={a.num_heads}, dim_feedforward={self.linear1.out_features}, dropout={self.dropout.p}"
            f", activation={self.activation_name!r}{', norm_first=True' if self.norm_first else ''}"
        )


@register_layer
class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then an optional final ``norm``.

    As PyTorch's ``nn.TransformerEncoder``: the copies start with ``encoder_layer``'s weights (and share its
    dropout generator); they are then trained independently. Parameter names ``layers.0.self_attn.in_proj_weight``,
    ..., ``norm.weight``. With ``norm_first=True`` layers, pass a final ``LayerNorm`` (as the pre-norm transformer
    does), since the last layer's output is not normalised.

    Call: ``encoder(src, mask=None, src_key_padding_mask=None, is_causal=False)``, each passed to every layer.
    Shape: (B, L, E) -> (B, L, E).
    """

    def __init__(self, encoder_layer: TransformerEncoderLayer, num_layers: int, norm: LayerNorm | None = None):
        super().__init__()
        who = type(self).__name__
        if not isinstance(encoder_layer, TransformerEncoderLayer):
            raise TypeError(
                f"{who}: encoder_layer must be a TransformerEncoderLayer, got {type(encoder_layer).__name__}"
            )
        if isinstance(num_layers, bool) or not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{who}: num_layers must be a positive int, got {num_layers!r}")
        if norm is not None and not isinstance(norm, LayerNorm):
            raise TypeError(f"{who}: norm must be a LayerNorm or None, got {type(norm).__name__}")
        layers = [encoder_layer]
        state = encoder_layer.state_dict()
        for _ in range(num_layers - 1):
            copy = TransformerEncoderLayer(**encoder_layer.get_config(), generator=encoder_layer.generator)
            copy.load_state_dict(state)
            layers.append(copy)
        self.layers = Sequential(*layers)
        self.norm = norm
        self.num_layers = num_layers

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = src
        for layer in self.layers:
            x = layer(x, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return x if self.norm is None else self.norm(x)

    def get_config(self) -> dict:
        return {
            "encoder_layer": layer_spec(self.layers[0]),
            "num_layers": self.num_layers,
            "norm": None if self.norm is None else layer_spec(self.norm),
        }

    @classmethod
    def config_cost(cls, config) -> int:
        """The copies beyond the first (the nested specs of the first layer and the norm are counted on their own)."""
        layer = config["encoder_layer"]["config"]
        return (int(config["num_layers"]) - 1) * TransformerEncoderLayer.config_cost(layer)

    def extra_repr(self) -> str:
        return f"num_layers={self.num_layers}"
