"""Optimizers by name: ``OPTIMIZERS`` and ``make_optimizer``, used by ``train.fit`` and the command line."""

from __future__ import annotations

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .lion import Lion
from .nadam import NAdam
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "adam": Adam,
    "adamw": AdamW,
    "rmsprop": RMSprop,
    "adagrad": Adagrad,
    "nadam": NAdam,
    "lion": Lion,
}
"""Name -> optimizer class."""


def make_optimizer(spec, params, **hyperparameters) -> Optimizer:
    """An optimizer for ``params``: ``spec`` is a name in ``OPTIMIZERS`` (``"adam"``, ``"sgd"``, ...), built with
    ``hyperparameters`` (``lr=1e-2, weight_decay=1e-4``; those not given keep the optimizer's defaults), or an
    ``Optimizer`` already built, returned as it is (then ``hyperparameters`` must be empty).

    Raises ``ValueError`` naming the known optimizers for an unknown name, and the optimizer's own ``ValueError`` for
    an invalid hyperparameter (``"Adam: lr must be a finite real number >= 0.0, got inf"``).
    """
    if isinstance(spec, Optimizer):
        if hyperparameters:
            raise ValueError(
                f"make_optimizer: got an optimizer already built ({type(spec).__name__}) and hyperparameters "
                f"{sorted(hyperparameters)}; set them when building it"
            )
        return spec
    if not isinstance(spec, str) or spec not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {spec!r}; known: {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[spec](params, **hyperparameters)
