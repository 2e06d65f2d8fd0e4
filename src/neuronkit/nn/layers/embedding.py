"""``Embedding``: a learned lookup table from integer ids (words, tokens, categories) to vectors."""

from __future__ import annotations

from ... import backend as B
from ... import ops
from ...ops.norm import check_indices
from ...tensor import Tensor
from .. import init as I
from ..module import Module
from ..parameter import Parameter
from ..registry import register_layer


@register_layer
class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``; ``layer(ids)`` looks up one row per id.

    ``out[..., :] = weight[ids[...], :]``; backward adds each upstream row into the gradient of the row it came
    from, so ids that repeat accumulate.

    Args:
        num_embeddings: number of rows (the vocabulary size).
        embedding_dim: size of each vector.
        padding_idx: optional row (negative counts from the end) that starts at zero and never gets a gradient,
            e.g. for padding tokens (default None).
        generator: seed or ``numpy.random.Generator`` for the initial weights, drawn from N(0, 1) as in PyTorch.
        dtype: weight dtype (default float32).

    Shape: integer ids of any shape (...) -> (..., embedding_dim). ``weight`` is (num_embeddings, embedding_dim).
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        generator=None,
        dtype: str | None = None,
    ):
        super().__init__()
        for what, v in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"Embedding: {what} must be a positive int, got {v!r}")
        if padding_idx is not None:
            if (
                isinstance(padding_idx, bool)
                or not isinstance(padding_idx, int)
                or not (-num_embeddings <= padding_idx < num_embeddings)
            ):
                raise ValueError(
                    f"Embedding: padding_idx must be an int in [-{num_embeddings}, {num_embeddings}), got "
                    f"{padding_idx!r}"
                )
            padding_idx %= num_embeddings
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        self.weight = Parameter(B.xp.empty((num_embeddings, embedding_dim), dtype=dt))
        self.reset_parameters(generator)

    def reset_parameters(self, generator=None) -> None:
        """Draw every row from N(0, 1); the padding row, if any, is zeroed."""
        I.normal_(self.weight, 0.0, 1.0, generator=generator)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, ids):
        idx = ids.data if isinstance(ids, Tensor) else B.asarray(ids)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"{self!r} expects integer ids, got dtype {idx.dtype}")
        check_indices(idx, self.num_embeddings, f"{self!r} got ids of shape {tuple(idx.shape)}")
        return ops.embedding(idx, self.weight, padding_idx=self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"

    def get_config(self) -> dict:
        return {
            "num_embeddings": self.num_embeddings,
            "embedding_dim": self.embedding_dim,
            "padding_idx": self.padding_idx,
            "dtype": self.weight.data.dtype.name,
        }

    @classmethod
    def config_cost(cls, config) -> int:
        """Array elements the constructor allocates (for the loader's memory guard): the table, not padding_idx."""
        return int(config.get("num_embeddings", 1)) * int(config.get("embedding_dim", 1))
