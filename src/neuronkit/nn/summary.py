"""``Module.summary``: a table of layers with output shapes and parameter counts for a given input shape."""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import backend as B
from ..autograd.grad_mode import no_grad
from ..tensor import Tensor


@dataclass
class Summary:
    """Rows of (name, layer type, output shape, parameter count); ``total_params`` counts every parameter value."""

    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    input_shape: tuple = ()

    def __str__(self) -> str:
        w = max([len(r[0]) + len(r[1]) + 3 for r in self.rows] + [20])
        lines = [f"{'layer (type)':<{w}} {'output shape':<20} {'params':>10}", "-" * (w + 32)]
        for name, kind, shape, n in self.rows:
            lines.append(f"{f'{name} ({kind})':<{w}} {str(shape):<20} {n:>10,}")
        lines += [
            "-" * (w + 32),
            f"input shape {self.input_shape}; total params {self.total_params:,} (trainable {self.trainable_params:,})",
        ]
        return "\n".join(lines)


def summarize(model, input_shape, dtype=None, inputs=None) -> Summary:
    if inputs is not None:
        inputs = tuple(B.asarray(a) for a in inputs)
        input_shape = tuple(tuple(a.shape) for a in inputs) if len(inputs) > 1 else tuple(inputs[0].shape)
    elif input_shape is None:
        raise ValueError("summary needs an input_shape, or example inputs=(...)")
    input_shape = tuple(input_shape)
    rows, handles = [], []

    def hook_for(name):
        def hook(module, inputs, output):
            shape = tuple(output.shape) if isinstance(output, Tensor) else type(output).__name__
            # The row stands for the whole subtree (its submodules get no rows of their own), so count all of it.
            own = sum(p.size for p in module.parameters())
            rows.append((name, type(module).__name__, shape, own))

        return hook

    # One row per layer: a module with its own parameters, or a leaf module, unless a module above it has a row
    # (a Dense layer's activation belongs to the Dense row; a Sequential's rows are its layers).
    shown = []
    for name, m in model.named_modules():
        if not name or any(name.startswith(p + ".") for p in shown):
            continue
        if any(True for _ in m.parameters(recurse=False)) or not any(True for _ in m.children()):
            shown.append(name)
            handles.append(m.register_forward_hook(hook_for(name)))
    modes = [(m, m.training) for m in model.modules()]  # restore each module's own mode, not the model's
    try:
        model.eval()
        dt = B.DEFAULT_FLOAT if dtype is None else B.dtype(dtype)
        with no_grad():
            if inputs is not None:
                model(*[Tensor(a) for a in inputs])
            else:
                model(Tensor(B.xp.zeros(input_shape, dtype=dt)))
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.__dict__["training"] = mode
    total = sum(p.size for p in model.parameters())
    trainable = sum(p.size for p in model.parameters() if p.requires_grad)
    return Summary(rows, total, trainable, input_shape)
