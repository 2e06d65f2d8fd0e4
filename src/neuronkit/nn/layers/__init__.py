"""Layers: dense, convolution and pooling, normalisation, embedding, recurrent, containers, shape and regularisation."""

from .attention import MultiHeadAttention, padding_mask
from .basic import Dropout, Flatten, Sequential
from .conv import AvgPool2d, Conv1d, Conv2d, ConvNd, Filter, GlobalAvgPool2d, MaxPool2d
from .dense import Dense, Linear
from .embedding import Embedding
from .encoders import ConvEncoder, RecurrentEncoder, TransformerTextEncoder
from .norm import BatchNorm1d, BatchNorm2d, LayerNorm
from .positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from .recurrent import GRU, LSTM, RNN
from .sequence import SequencePool, TextClassifier
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv1d",
    "Conv2d",
    "ConvEncoder",
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
    "LearnedPositionalEmbedding",
    "Linear",
    "MaxPool2d",
    "RNN",
    "RecurrentEncoder",
    "MultiHeadAttention",
    "Sequential",
    "SequencePool",
    "SinusoidalPositionalEncoding",
    "TextClassifier",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "TransformerTextEncoder",
    "padding_mask",
]
