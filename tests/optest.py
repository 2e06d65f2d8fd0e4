"""The one helper for op tests: forward and every input gradient against PyTorch, then a float64 gradcheck.

``check_op(spec)`` builds random inputs of each shape set in the spec, runs the neuronkit function and the PyTorch
function on the same values in float32, backpropagates the same random upstream gradient through both, and compares
(forward atol 1e-6 / rtol 1e-3, gradients atol 1e-4 / rtol 1e-3). It then runs ``neuronkit.gradcheck`` on the
neuronkit function in float64 against central differences.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import neuronkit as nk

FWD_TOL = {"atol": 1e-6, "rtol": 1e-3}
GRAD_TOL = {"atol": 1e-4, "rtol": 1e-3}


@dataclass
class OpSpec:
    """One line of the op table.

    name: the op's key in ``neuronkit.ops.DIFFERENTIABLE``; shapes: a list of input-shape tuples, one tuple of
    shapes per case; ours/ref: functions of the inputs (neuronkit tensors / torch tensors); domain: how inputs are
    drawn ("normal", "positive" for log/sqrt/pow bases, "unit" for (0.05, 0.95)); grad: which inputs require grad.
    """

    name: str
    shapes: list
    ours: object
    ref: object
    domain: str = "normal"
    grad: tuple | None = None
    gradcheck: bool = True
    out_dtype: str = "float32"
    id: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.id = self.id or self.name


def draw(shape, domain, rng):
    if domain == "positive":
        return rng.uniform(0.5, 2.0, size=shape)
    if domain == "unit":
        return rng.uniform(0.05, 0.95, size=shape)
    if domain == "away":  # away from the kinks at 0 (abs, relu...): finite differences stay on one side
        x = rng.standard_normal(size=shape)
        return np.where(np.abs(x) < 0.05, 0.05 * np.sign(x) + x, x) + 0.0
    return rng.standard_normal(size=shape) * 1.5


def _close(ours, ref, tol, what):
    ref = np.asarray(ref)
    assert ours.shape == ref.shape, f"{what}: shape {ours.shape} != reference {ref.shape}"
    np.testing.assert_allclose(ours, ref, err_msg=what, **tol)


def check_op(spec: OpSpec, seed: int = 0) -> None:
    for case, shapes in enumerate(spec.shapes):
        rng = np.random.default_rng(seed + case)
        arrays = [np.asarray(draw(s, spec.domain, rng)) for s in shapes]
        wants = spec.grad if spec.grad is not None else tuple(range(len(arrays)))
        where = f"{spec.id} case {case} shapes {shapes}"

        # float32 against PyTorch
        ours_in = [nk.Tensor(a.astype(np.float32), requires_grad=i in wants) for i, a in enumerate(arrays)]
        ref_in = [torch.tensor(a.astype(np.float32), requires_grad=i in wants) for i, a in enumerate(arrays)]
        out = spec.ours(*ours_in)
        ref = spec.ref(*ref_in)
        assert out.dtype == spec.out_dtype, f"{where}: float32 inputs gave {out.dtype}"
        _close(out.data, ref.detach().numpy(), FWD_TOL, f"{where}: forward")
        upstream = rng.standard_normal(size=out.shape).astype(np.float32)
        out.backward(nk.Tensor(upstream))
        ref.backward(torch.tensor(upstream))
        for i in wants:
            assert ours_in[i].grad is not None, f"{where}: input {i} got no gradient"
            assert ours_in[i].grad.dtype == np.float32
            _close(ours_in[i].grad.data, ref_in[i].grad.numpy(), GRAD_TOL, f"{where}: gradient of input {i}")

        # float64 against central differences
        if spec.gradcheck:
            ins64 = [nk.Tensor(a.astype(np.float64), requires_grad=i in wants) for i, a in enumerate(arrays)]
            res = nk.gradcheck(spec.ours, *ins64)
            assert res.ok, f"{where}: gradcheck failed, max abs error {res.max_abs_error}, rel {res.max_rel_error}"
