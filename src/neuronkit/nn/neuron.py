"""``Neuron``: a live view of one unit of a dense layer, as a first-class object.

A neuron holds a weight per input, a bias and an activation function, and computes ``activation(w . x + b)``.
``layer.neuron(i)`` shows exactly that for unit ``i`` of a ``Dense`` layer: reading its weights reads row ``i`` of the
layer's weight matrix, writing them (or the bias) changes the layer, and after ``backward()`` it shows its gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import backend as B
from ..tensor import Tensor


@dataclass
class Explanation:
    """Every term of one neuron's computation for one input vector.

    ``products[j] = inputs[j] * weights[j]``; ``weighted_sum = sum(products)``; ``pre_activation = weighted_sum +
    bias``; ``output = activation(pre_activation)``.
    """

    inputs: object
    weights: object
    products: object
    weighted_sum: float
    bias: float
    pre_activation: float
    activation: str
    output: float

    def __str__(self) -> str:
        rows = [f"{'input':>12} {'weight':>12} {'input*weight':>14}"]
        for x, w, p in zip(self.inputs.tolist(), self.weights.tolist(), self.products.tolist()):
            rows.append(f"{x:>12.5g} {w:>12.5g} {p:>14.5g}")
        rows += [
            f"weighted sum  w . x          = {self.weighted_sum:.6g}",
            f"+ bias        b              = {self.bias:.6g}",
            f"pre-activation z = w . x + b = {self.pre_activation:.6g}",
            f"output        {self.activation}(z) = {self.output:.6g}",
        ]
        return "\n".join(rows)


class Neuron:
    """Unit ``index`` of a dense ``layer`` (see the module docstring)."""

    def __init__(self, layer, index: int):
        n = layer.out_features
        if isinstance(index, bool) or not isinstance(index, int) or not -n <= index < n:
            raise IndexError(f"neuron index {index!r} is out of range for a layer of {n} neurons")
        self.layer, self.index = layer, index % n

    # -- what it is made of -----------------------------------------------------------------------------------------
    @property
    def weights(self):
        """This neuron's weight per input: a view of row ``index`` of the layer's weight (writes go through)."""
        return self.layer.weight.data[self.index]

    @weights.setter
    def weights(self, value):
        value = value.data if isinstance(value, Tensor) else B.asarray(value)
        if value.shape != (self.layer.in_features,):
            raise ValueError(f"neuron weights must have shape ({self.layer.in_features},), got {tuple(value.shape)}")
        self.layer.weight.data[self.index] = value

    @property
    def bias(self) -> float:
        """This neuron's bias (0.0 for a layer without bias)."""
        return 0.0 if self.layer.bias is None else float(self.layer.bias.data[self.index])

    @bias.setter
    def bias(self, value: float) -> None:
        if self.layer.bias is None:
            raise AttributeError("this layer was built with bias=False: its neurons have no bias to set")
        self.layer.bias.data[self.index] = value

    @property
    def activation(self) -> str:
        """The name of the activation function (``"linear"`` for none)."""
        return self.layer.activation.name

    @property
    def weight_grad(self):
        """dLoss/dweights for this neuron after ``backward()`` (None before)."""
        g = self.layer.weight.grad
        return None if g is None else g.data[self.index]

    @property
    def bias_grad(self):
        """dLoss/dbias for this neuron after ``backward()`` (None before, or without bias)."""
        b = self.layer.bias
        return None if b is None or b.grad is None else float(b.grad.data[self.index])

    # -- what it computes -------------------------------------------------------------------------------------------
    def pre_activation(self, x) -> Tensor:
        """``w . x + b`` for input (in_features,) or a batch (..., in_features); differentiable."""
        layer = self.layer
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim == 0 or x.shape[-1] != layer.in_features:
            raise ValueError(f"neuron of a layer with {layer.in_features} inputs got input of shape {tuple(x.shape)}")
        i = self.index
        w = layer.weight[i : i + 1]  # (1, in): a differentiable slice, so gradients reach the layer
        b = None if layer.bias is None else layer.bias[i : i + 1]
        from .. import ops

        return ops.linear(x, w, b)[..., 0]

    def __call__(self, x) -> Tensor:
        """``activation(w . x + b)``: the same value as the layer's output ``i`` (up to summation order)."""
        return self.layer.activation(self.pre_activation(x))

    def explain(self, x) -> Explanation:
        """Every term of ``activation(w . x + b)`` for one input vector ``x`` of shape (in_features,)."""
        xd = x.data if isinstance(x, Tensor) else B.asarray(x, dtype=self.layer.weight.dtype)
        if xd.shape != (self.layer.in_features,):
            raise ValueError(f"explain() takes one input vector of shape ({self.layer.in_features},), got {xd.shape}")
        w = self.weights.copy()
        products = xd * w
        z = self.pre_activation(Tensor(xd))
        out = self(Tensor(xd))
        return Explanation(
            inputs=xd.copy(),
            weights=w,
            products=products,
            weighted_sum=float(products.sum()),
            bias=self.bias,
            pre_activation=float(z.item()),
            activation=self.activation,
            output=float(out.item()),
        )

    def __repr__(self):
        return (
            f"Neuron({self.index} of {type(self.layer).__name__}({self.layer.in_features} -> "
            f"{self.layer.out_features}): {self.layer.in_features} weights, "
            f"bias={self.bias:.4g}, activation={self.activation!r})"
        )
