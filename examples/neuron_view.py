"""One neuron, seen from the inside: its weights, bias and activation, every term of its computation, its gradients.

Builds a small network with ``neuronkit.nn``, picks one neuron of the hidden layer, and shows that the neuron computes
``activation(w . x + b)`` term by term, that this equals the layer's own output for that unit, that backpropagation
gives it gradients, and that writing its bias changes the network.

Run: ``python examples/neuron_view.py``.
"""

from __future__ import annotations

import numpy as np

import neuronkit as nk
from neuronkit import nn


def main() -> None:
    model = nn.Sequential(nn.Dense(4, 3, activation="relu", generator=0), nn.Dense(3, 2, generator=1))
    print(model, "\n")
    print(model.summary((1, 4)), "\n")

    x = nk.tensor([0.5, -1.0, 2.0, 0.25])
    unit = int(model[0](x).data.argmax())  # the unit this input excites most
    neuron = model[0].neuron(unit)
    print(neuron)
    print(neuron.explain(x), "\n")

    layer_out = model[0](x).data[unit]
    print(f"the layer's own output for unit {unit}: {layer_out:.6g} (the neuron said {neuron(x).item():.6g})")

    loss = nk.cross_entropy(model(x.reshape(1, 4)), np.array([1]))
    loss.backward()
    print(f"after backward: dLoss/dweights = {np.round(neuron.weight_grad, 4)}, dLoss/dbias = {neuron.bias_grad:.4g}")

    neuron.bias = -10.0  # far below any weighted sum: the unit can no longer fire
    print(
        f"with its bias set to -10 the neuron outputs {neuron(x).item():.3g}; "
        f"the layer's unit {unit} now outputs {model[0](x).data[unit]:.3g}"
    )


if __name__ == "__main__":
    main()
