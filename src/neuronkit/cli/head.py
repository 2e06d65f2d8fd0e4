"""What the command line's vision and text models share: the dense head on top, and the initialisers of every layer."""

from __future__ import annotations

from .. import nn


def layer_inits(cfg) -> dict:
    """The ``init``/``bias_init`` keyword arguments of every layer (``auto``: the layer's default)."""
    bias_init = getattr(cfg, "bias_init", "auto")
    return {"init": None if cfg.init == "auto" else cfg.init, "bias_init": None if bias_init == "auto" else bias_init}


def mlp_head(cfg, sizes: list, inits: dict) -> list:
    """Dense layers through ``sizes`` (input first), each hidden one with ``cfg.activation`` and ``cfg.dropout``
    after it; the last one linear (the logits)."""
    layers = []
    for a, b in zip(sizes[:-2], sizes[1:-1]):
        layers.append(nn.Dense(a, b, activation=cfg.activation, **inits))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
    layers.append(nn.Dense(sizes[-2], sizes[-1], **inits))
    return layers


__all__ = ["layer_inits", "mlp_head"]
