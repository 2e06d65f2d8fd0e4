"""Layers: dense, containers, shape and regularisation."""

from .basic import Dropout, Flatten, Sequential
from .dense import Dense, Linear

__all__ = ["Dense", "Dropout", "Flatten", "Linear", "Sequential"]
