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
from .layers import Dense, Dropout, Flatten, Linear, Sequential
from .module import Module
from .neuron import Explanation, Neuron
from .parameter import Parameter
from .summary import Summary
