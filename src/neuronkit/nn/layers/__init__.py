"""Layers: dense, convolution and pooling, normalisation, embedding, recurrent, containers, shape and regularisation."""

from .basic import Dropout, Flatten, Sequential
from .conv import AvgPool2d, Conv1d, Conv2d, ConvNd, Filter, GlobalAvgPool2d, MaxPool2d
from .dense import Dense, Linear
from .embedding import Embedding
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .recurrent import GRU, LSTM, RNN
from .sequence import SequencePool, TextClassifier

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ConvNd",
    "Dense",
    "Dropout",
    "Embedding",
    "Filter",
    "Flatten",
    "GRU",
    "GlobalAvgPool2d",
    "LSTM",
    "LayerNorm",
    "Linear",
    "MaxPool2d",
    "RNN",
    "Sequential",
    "SequencePool",
    "TextClassifier",
]
