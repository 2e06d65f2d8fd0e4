"""Networks: modules, parameters, the Neuron view, layers, activation modules and initialisers."""

from . import init
from .activations import (
    ACTIVATIONS,
    ELU,
    GELU,
    SELU,
    Activation,
    HardSigmoid,
    HardTanh,
    Identity,
    LeakyReLU,
    LogSoftmax,
    Mish,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Softsign,
    Tanh,
    get_activation,
)
from .layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv1d,
    Conv2d,
    Dense,
    Dropout,
    Embedding,
    Filter,
    Flatten,
    GlobalAvgPool2d,
    LayerNorm,
    LearnedPositionalEmbedding,
    Linear,
    MaxPool2d,
    MultiHeadAttention,
    SequencePool,
    Sequential,
    SinusoidalPositionalEncoding,
    TextClassifier,
    TransformerEncoder,
    TransformerEncoderLayer,
    padding_mask,
)
from .losses import (
    LOSSES,
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HingeLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
    get_loss,
)
from .module import Module
from .neuron import Explanation, Neuron
from .parameter import Parameter
from .summary import Summary
