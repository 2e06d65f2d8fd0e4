"""Behaviour of the autograd engine: graph walk, accumulation, freeing, grad mode, hooks, dtypes, errors, IEEE
special values, numerical stability, the backend seam, creation functions and gradcheck.

PyTorch is used only as a reference oracle.
"""

from __future__ import annotations

import math
import pathlib
import re
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import neuronkit as nk
from neuronkit import Tensor

SRC = pathlib.Path(nk.__file__).resolve().parent


def leaf(values, dtype=np.float64):
    return nk.tensor(np.asarray(values, dtype=dtype), requires_grad=True)


# ---------------------------------------------------------------------------------------------------------------
# Deep graphs
# ---------------------------------------------------------------------------------------------------------------


def test_chain_of_100k_muls_backpropagates_without_recursion_error():
    n = 100_000
    x = leaf([1.0, 2.0])
    y = x
    for _ in range(n):
        y = y * 1.0001
    y.sum().backward()
    expected = 1.0001**n
    np.testing.assert_allclose(x.grad.data, [expected, expected], rtol=1e-9)
    np.testing.assert_allclose(y.data, [expected, 2 * expected], rtol=1e-9)


def test_chain_of_100k_adds_backpropagates_without_recursion_error():
    x = leaf(3.0)
    y = x
    for _ in range(100_000):
        y = y + 0.0
    y.backward()
    assert x.grad.item() == 1.0


def test_deep_graph_can_be_dropped_without_backward():
    # Freeing a 100,000-node chain must not overflow the C stack through recursive deallocation.
    x = leaf([1.0])
    y = x
    for _ in range(100_000):
        y = y + 1.0
    del y  # no crash
    assert x.grad is None


# ---------------------------------------------------------------------------------------------------------------
# Accumulation and freeing
# ---------------------------------------------------------------------------------------------------------------


def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0, 3.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0, 6.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [4.0, 8.0, 12.0])

    tx = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64, requires_grad=True)
    (tx * tx).sum().backward()
    (tx * tx).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_is_a_tensor_with_the_leafs_shape_and_dtype(dtype):
    x = nk.tensor(np.ones((2, 3), dtype=dtype), requires_grad=True)
    (x * 2.0).sum().backward()
    assert isinstance(x.grad, Tensor)
    assert x.grad.shape == (2, 3)
    assert x.grad.dtype == dtype
    assert not x.grad.requires_grad


def test_zero_grad_resets_accumulation():
    x = leaf([1.0, 2.0])
    (x * 3.0).sum().backward()
    x.zero_grad_()
    assert x.grad is None
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])


def test_second_backward_through_freed_graph_raises_graph_freed_error():
    x = leaf([1.0, 2.0])
    y = (x * x).sum()
    y.backward()
    with pytest.raises(nk.GraphFreedError, match="retain_graph") as info:
        y.backward()
    assert isinstance(info.value, RuntimeError)
    assert "second time" in str(info.value)
    np.testing.assert_allclose(x.grad.data, [2.0, 4.0])  # the failed call changed nothing


def test_graph_freed_error_is_a_runtime_error():
    assert issubclass(nk.GraphFreedError, RuntimeError)


def test_backward_through_freed_intermediate_raises():
    x = leaf([1.0, 2.0])
    h = x * x
    h.sum().backward()
    with pytest.raises(nk.GraphFreedError):
        (h * 2.0).sum().backward()


def test_retain_graph_allows_second_backward_which_accumulates():
    x = leaf([1.0, 2.0])
    y = (x * x * x).sum()
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x.grad.data, [3.0, 12.0])
    y.backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 24.0])
    with pytest.raises(nk.GraphFreedError):  # the second call did not retain
        y.backward()


# ---------------------------------------------------------------------------------------------------------------
# Diamonds and gradient ownership
# ---------------------------------------------------------------------------------------------------------------


def test_diamond_tensor_used_twice():
    x = leaf([1.0, -2.0, 3.0])
    y = x * x + x
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 1)


def test_diamond_through_shared_intermediate():
    x = leaf([0.5, 1.5])
    a = x * 2.0
    b = a * 3.0
    c = nk.exp(a)
    y = (b + c + a * a).sum()
    y.backward()

    tx = torch.tensor([0.5, 1.5], dtype=torch.float64, requires_grad=True)
    ta = tx * 2.0
    (ta * 3.0 + torch.exp(ta) + ta * ta).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)


def test_leaf_used_in_many_places_sums_all_contributions():
    x = leaf(2.0)
    y = x * x * x + nk.exp(x) - x / x + nk.log(x)
    y.backward()
    expected = 3 * 4.0 + math.exp(2.0) + 0.5
    np.testing.assert_allclose(x.grad.item(), expected, rtol=1e-12)


def test_leaves_receiving_the_same_array_get_independent_grads():
    a = leaf([1.0, 2.0, 3.0])
    b = leaf([4.0, 5.0, 6.0])
    (a + b).sum().backward()
    assert a.grad is not b.grad
    assert not np.shares_memory(a.grad.data, b.grad.data)
    a.grad.data += 10.0  # what an optimizer does in place
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0, 1.0])


def test_leaves_receiving_the_root_grad_directly_get_independent_grads():
    a = leaf([1.0, 2.0])
    b = leaf([3.0, 4.0])
    g = np.array([1.0, 1.0])
    (a + b).backward(g)
    a.grad.data[0] = 100.0
    np.testing.assert_array_equal(b.grad.data, [1.0, 1.0])
    np.testing.assert_array_equal(g, [1.0, 1.0])  # the caller's gradient is not aliased either


def test_leaf_grad_is_not_a_view_of_a_broadcast_or_reshape():
    a = leaf(np.ones((2, 3)))
    b = leaf(np.ones(6))
    (a.sum() + b.reshape(2, 3).sum()).backward()
    assert a.grad.data.flags.writeable and b.grad.data.flags.writeable
    a.grad.data[0, 0] = 7.0
    b.grad.data[0] = 7.0
    np.testing.assert_array_equal(a.grad.data.sum(), 12.0)
    np.testing.assert_array_equal(b.grad.data.sum(), 12.0)


def test_leaf_grad_does_not_alias_a_non_leaf_hooks_replacement():
    # A hook on a non-leaf returns a tensor the user keeps; add passes it through unchanged to the leaf. The leaf must
    # own its .grad (as in PyTorch), so an optimizer's in-place update cannot change the user's tensor.
    a = leaf([1.0, 1.0, 1.0])
    b = nk.zeros(3, dtype="float64")
    h = a + b
    replacement = nk.tensor(np.full(3, 5.0))
    h.register_hook(lambda g: replacement)
    h.backward(np.ones(3))
    np.testing.assert_array_equal(a.grad.data, [5.0, 5.0, 5.0])
    a.grad.data[0] = 100.0
    np.testing.assert_array_equal(replacement.data, [5.0, 5.0, 5.0])


def test_leaf_grad_does_not_alias_the_tensor_a_non_leaf_hook_kept():
    a = leaf([1.0, 2.0])
    h = a + 0.0
    kept = []
    h.register_hook(lambda g: kept.append(g))
    (h * 2.0).sum().backward()
    np.testing.assert_array_equal(kept[0].data, [2.0, 2.0])
    a.grad.data[:] = 0.0
    np.testing.assert_array_equal(kept[0].data, [2.0, 2.0])


# ---------------------------------------------------------------------------------------------------------------
# Grad mode
# ---------------------------------------------------------------------------------------------------------------


def test_no_grad_context_manager():
    x = leaf([1.0, 2.0])
    assert nk.is_grad_enabled()
    with nk.no_grad():
        assert not nk.is_grad_enabled()
        y = x * 2.0 + 1.0
    assert nk.is_grad_enabled()
    assert not y.requires_grad
    assert y.grad_fn is None and y.is_leaf
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_no_grad_decorator():
    @nk.no_grad()
    def step(t):
        assert not nk.is_grad_enabled()
        return t * t

    x = leaf([3.0])
    y = step(x)
    assert not y.requires_grad and y.grad_fn is None
    assert nk.is_grad_enabled()
    assert step.__name__ == "step"


def test_no_grad_decorator_can_be_reused_and_restores_on_exception():
    @nk.no_grad()
    def boom():
        raise KeyError("x")

    for _ in range(2):
        with pytest.raises(KeyError):
            boom()
        assert nk.is_grad_enabled()


def test_enable_grad_nested_in_no_grad():
    x = leaf([1.0, 2.0])
    with nk.no_grad():
        a = x * 2.0
        with nk.enable_grad():
            assert nk.is_grad_enabled()
            b = x * 2.0
            with nk.no_grad():
                c = x * 2.0
                assert not nk.is_grad_enabled()
            assert nk.is_grad_enabled()
        assert not nk.is_grad_enabled()
    assert nk.is_grad_enabled()
    assert not a.requires_grad and not c.requires_grad
    assert b.requires_grad and b.grad_fn is not None
    b.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


def test_enable_grad_decorator_inside_no_grad():
    @nk.enable_grad()
    def f(t):
        return t * 3.0

    x = leaf([1.0])
    with nk.no_grad():
        y = f(x)
        assert not nk.is_grad_enabled()
    assert y.requires_grad
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3.0])


def test_no_grad_restores_state_after_exception():
    with pytest.raises(ValueError):
        with nk.no_grad():
            raise ValueError("inside")
    assert nk.is_grad_enabled()


def test_set_grad_enabled():
    try:
        nk.set_grad_enabled(False)
        assert not nk.is_grad_enabled()
        y = leaf([1.0]) * 2.0
        assert not y.requires_grad
    finally:
        nk.set_grad_enabled(True)
    assert nk.is_grad_enabled()


def test_ops_on_tensors_without_requires_grad_record_nothing():
    x = nk.tensor([1.0, 2.0])
    y = nk.exp(x * 2.0).sum()
    assert not y.requires_grad and y.grad_fn is None


def test_detach_cuts_the_graph():
    x = leaf([1.0, 2.0])
    d = (x * 2.0).detach()
    assert not d.requires_grad and d.is_leaf
    y = (d * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])


# ---------------------------------------------------------------------------------------------------------------
# Hooks and retain_grad
# ---------------------------------------------------------------------------------------------------------------


def test_hook_on_leaf_is_called_with_the_gradient():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.data.copy()))
    (x * 3.0).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [3.0, 3.0])
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


def test_hook_on_leaf_is_called_once_with_the_summed_gradient():
    x = leaf([1.0, 2.0])
    seen = []
    x.register_hook(lambda g: seen.append(g.data.copy()))
    (x * x + x).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [3.0, 5.0])


def test_hook_on_leaf_can_replace_the_gradient():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: g * 10.0)
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [30.0, 30.0])


def test_hook_on_non_leaf_receives_and_replaces_the_gradient():
    x = leaf([1.0, 2.0])
    h = x * 2.0
    seen = []

    def hook(g):
        seen.append(g.data.copy())
        return g * 0.5

    h.register_hook(hook)
    (h * h).sum().backward()
    np.testing.assert_allclose(seen[0], 2 * h.data)  # d(h^2)/dh
    # x.grad = 0.5 * 2h * 2 = 2h
    np.testing.assert_allclose(x.grad.data, 2 * h.data)


def test_hook_handle_remove():
    x = leaf([1.0])
    calls = []
    handle = x.register_hook(lambda g: calls.append(1) or g * 100.0)
    (x * 1.0).sum().backward()
    assert calls == [1]
    handle.remove()
    handle.remove()  # idempotent
    x.zero_grad_()
    (x * 1.0).sum().backward()
    assert calls == [1]
    np.testing.assert_array_equal(x.grad.data, [1.0])


def test_hook_handle_remove_on_non_leaf():
    x = leaf([1.0])
    h = x * 2.0
    calls = []
    handle = h.register_hook(lambda g: calls.append(1) or g * 100.0)
    handle.remove()
    h.sum().backward()
    assert calls == []
    np.testing.assert_array_equal(x.grad.data, [2.0])


def test_several_hooks_run_in_order_each_seeing_the_previous_result():
    x = leaf([1.0])
    x.register_hook(lambda g: g + 1.0)
    x.register_hook(lambda g: g * 10.0)
    (x * 1.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [20.0])


def test_hook_returning_wrong_shape_raises():
    x = leaf([1.0, 2.0])
    x.register_hook(lambda g: nk.ones(3, dtype="float64"))
    with pytest.raises(ValueError, match="shape"):
        (x * 1.0).sum().backward()


def test_register_hook_on_tensor_without_grad_raises():
    with pytest.raises(RuntimeError):
        nk.tensor([1.0]).register_hook(lambda g: g)


def test_retain_grad_on_non_leaf():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    k = x * 4.0  # not retained
    (h * h + k).sum().backward()
    assert isinstance(h.grad, Tensor)
    np.testing.assert_allclose(h.grad.data, 2 * h.data)
    assert k.grad is None


def test_retain_grad_accumulates_with_retain_graph():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    h.retain_grad()
    y = (h * 2.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(h.grad.data, [4.0, 4.0])


def test_retain_grad_on_leaf_is_harmless():
    x = leaf([1.0])
    x.retain_grad()
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0])


# ---------------------------------------------------------------------------------------------------------------
# backward() argument errors
# ---------------------------------------------------------------------------------------------------------------


def test_non_scalar_backward_without_grad_raises_naming_the_shape():
    x = leaf(np.ones((2, 3)))
    y = x * 2.0
    with pytest.raises(RuntimeError, match=re.escape("(2, 3)")):
        y.backward()


def test_one_element_non_scalar_backward_is_allowed():
    x = leaf([[2.0]])
    (x * 3.0).backward()
    np.testing.assert_array_equal(x.grad.data, [[3.0]])


def test_backward_on_tensor_not_requiring_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        nk.tensor(1.0).backward()


def test_backward_with_wrong_grad_shape_raises():
    x = leaf(np.ones((2, 3)))
    with pytest.raises(ValueError, match=re.escape("(3, 2)")):
        (x * 2.0).backward(np.ones((3, 2)))


def test_backward_on_a_leaf_sets_its_grad():
    x = leaf([1.0, 2.0])
    x.backward(np.array([3.0, 4.0]))
    np.testing.assert_array_equal(x.grad.data, [3.0, 4.0])


# ---------------------------------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: nk.Tensor([1, 2], requires_grad=True),
        lambda: nk.tensor(np.arange(3), requires_grad=True),
        lambda: nk.zeros(3, dtype="int64", requires_grad=True),
        lambda: nk.Tensor([True, False], requires_grad=True),
        lambda: nk.arange(3).requires_grad_(),
    ],
)
def test_integer_and_bool_tensors_cannot_require_grad(make):
    with pytest.raises(TypeError, match="floating"):
        make()


@pytest.mark.parametrize(
    "data",
    [
        np.array([1 + 2j]),
        [1 + 2j, 3.0],
        np.array([object()], dtype=object),
        np.array(["a", "b"]),
        ["a", "b"],
        np.array([b"a"]),
    ],
    ids=["complex_array", "complex_list", "object", "str_array", "str_list", "bytes"],
)
@pytest.mark.parametrize("ctor", [nk.Tensor, nk.tensor], ids=["Tensor", "tensor"])
def test_complex_object_and_string_data_raise_type_error(ctor, data):
    with pytest.raises(TypeError):
        ctor(data)


def test_python_floats_become_float32():
    assert nk.Tensor(1.5).dtype == np.float32
    assert nk.Tensor([1.0, 2.5]).dtype == np.float32
    assert nk.tensor([[1.0], [2.0]]).dtype == np.float32


def test_python_ints_become_int64_and_bools_bool():
    assert nk.Tensor(3).dtype == np.int64
    assert nk.tensor([1, 2]).dtype == np.int64
    assert nk.tensor([True]).dtype == np.bool_


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.int64])
def test_numpy_arrays_keep_their_dtype(dtype):
    assert nk.Tensor(np.zeros(2, dtype=dtype)).dtype == dtype
    assert nk.tensor(np.zeros(2, dtype=dtype)).dtype == dtype


def test_explicit_dtype_is_honoured():
    assert nk.tensor([1.0], dtype="float64").dtype == np.float64
    assert nk.Tensor(np.zeros(2), dtype=np.float32).dtype == np.float32


@pytest.mark.parametrize(
    "op",
    [
        lambda t: t * 2.5,
        lambda t: 2.5 * t,
        lambda t: t + 1.0,
        lambda t: 1.0 - t,
        lambda t: t / 3.0,
        lambda t: 3.0 / t,
        lambda t: t**2.0,
        lambda t: t * 2,
    ],
)
def test_float32_tensor_with_python_scalar_stays_float32(op):
    x = nk.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = op(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_tensor_times_python_float_is_float32_like_pytorch():
    # PyTorch: torch.arange(3) * 0.5 is float32 (the default dtype), not float64.
    expected = torch.arange(3) * 0.5
    assert expected.dtype == torch.float32
    y = nk.arange(3) * 0.5
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, expected.numpy())


def test_float32_op_float64_promotes_and_float32_leaf_gets_float32_grad():
    a = nk.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    b = nk.tensor(np.array([3.0, 4.0], dtype=np.float64), requires_grad=True)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32
    assert b.grad.dtype == np.float64
    np.testing.assert_array_equal(a.grad.data, [3.0, 4.0])
    np.testing.assert_array_equal(b.grad.data, [1.0, 2.0])


def test_astype_gradient_comes_back_in_the_source_dtype():
    a = nk.tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    y = a.astype("float64") * 2.0
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32


# ---------------------------------------------------------------------------------------------------------------
# Shape errors
# ---------------------------------------------------------------------------------------------------------------


def _assert_names(err, *parts):
    msg = str(err.value)
    for p in parts:
        assert p in msg, f"{p!r} not in error message {msg!r}"


@pytest.mark.parametrize("name", ["add", "sub", "mul", "div", "maximum", "minimum", "pow"])
def test_binary_op_shape_mismatch_names_op_and_both_shapes(name):
    fn = getattr(nk, name)
    with pytest.raises(ValueError) as err:
        fn(nk.ones(3, 4), nk.ones(5))
    _assert_names(err, name, "(3, 4)", "(5,)")


def test_operator_add_shape_mismatch():
    with pytest.raises(ValueError) as err:
        nk.ones(3, 4, requires_grad=True) + nk.ones(5)
    _assert_names(err, "add", "(3, 4)", "(5,)")


def test_matmul_shape_mismatch_names_op_and_both_shapes():
    with pytest.raises(ValueError) as err:
        nk.ones(3, 4) @ nk.ones(5, 6)
    _assert_names(err, "matmul", "(3, 4)", "(5, 6)")


def test_linear_wrong_input_width_names_op_and_shapes():
    w = nk.ones(2, 4)
    with pytest.raises(ValueError) as err:
        nk.linear(nk.ones(3, 5), w)
    _assert_names(err, "linear", "(3, 5)", "4")


def test_linear_wrong_bias_shape():
    with pytest.raises(ValueError) as err:
        nk.linear(nk.ones(3, 4), nk.ones(2, 4), nk.ones(3))
    _assert_names(err, "linear", "(3,)")


def test_concatenate_mismatch_names_op_and_shapes():
    with pytest.raises(ValueError) as err:
        nk.concatenate([nk.ones(2, 3), nk.ones(2, 4)], axis=0)
    _assert_names(err, "concatenate", "(2, 3)", "(2, 4)")


def test_reshape_to_wrong_size_names_op_and_shapes():
    with pytest.raises(ValueError) as err:
        nk.ones(3, 4).reshape(5, 2)
    _assert_names(err, "reshape", "(3, 4)")
    assert re.search(r"\(5, ?2\)", str(err.value)), str(err.value)  # the target shape, as NumPy prints it


def test_stack_mismatch_names_shapes():
    with pytest.raises(ValueError) as err:
        nk.stack([nk.ones(2), nk.ones(3)])
    _assert_names(err, "stack", "(2,)", "(3,)")


# ---------------------------------------------------------------------------------------------------------------
# NaN and inf propagate per IEEE
# ---------------------------------------------------------------------------------------------------------------

NAN, INF = float("nan"), float("inf")


@pytest.fixture
def quiet_fp():
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.usefixtures("quiet_fp")
class TestSpecialValues:
    def test_exp_inf_is_inf(self):
        y = nk.exp(nk.tensor([INF, -INF]))
        assert y.data[0] == INF and y.data[1] == 0.0

    def test_log_zero_is_minus_inf_and_negative_is_nan(self):
        y = nk.log(nk.tensor([0.0, -1.0]))
        assert y.data[0] == -INF
        assert np.isnan(y.data[1])

    def test_relu_nan_is_nan(self):
        y = nk.relu(nk.tensor([NAN, -1.0, 2.0]))
        assert np.isnan(y.data[0])
        np.testing.assert_array_equal(y.data[1:], [0.0, 2.0])

    def test_sum_with_nan_is_nan(self):
        assert np.isnan(nk.sum(nk.tensor([1.0, NAN, 2.0])).item())
        assert np.isnan(nk.mean(nk.tensor([1.0, NAN])).item())

    @pytest.mark.parametrize("fn", [nk.max, nk.min])
    def test_max_min_with_nan_is_nan(self, fn):
        assert np.isnan(fn(nk.tensor([1.0, NAN, 2.0])).item())
        assert np.isnan(fn(nk.tensor([[1.0, NAN], [2.0, 3.0]]), axis=1).data[0])

    def test_maximum_minimum_propagate_nan(self):
        assert np.isnan(nk.maximum(nk.tensor([NAN]), nk.tensor([1.0])).item())
        assert np.isnan(nk.minimum(nk.tensor([1.0]), nk.tensor([NAN])).item())

    def test_sum_with_inf(self):
        assert nk.sum(nk.tensor([1.0, INF])).item() == INF
        assert np.isnan(nk.sum(nk.tensor([-INF, INF])).item())

    @pytest.mark.parametrize(
        "fn",
        [
            nk.sigmoid,
            nk.tanh,
            nk.softplus,
            nk.silu,
            nk.mish,
            nk.elu,
            nk.gelu,
            nk.selu,
            nk.leaky_relu,
            nk.abs,
            nk.sqrt,
            nk.exp,
            nk.log,
            nk.softsign,
            nk.relu6,
            nk.hard_tanh,
            nk.hard_sigmoid,
            lambda t: nk.gelu(t, approximate="tanh"),
            lambda t: nk.clip(t, -1.0, 1.0),
        ],
    )
    def test_unary_functions_propagate_nan(self, fn):
        y = fn(nk.tensor([NAN, 0.5]))
        assert np.isnan(y.data[0])
        assert not np.isnan(y.data[1])

    @pytest.mark.parametrize("fn", [nk.softmax, nk.log_softmax, nk.logsumexp])
    def test_normalisers_propagate_nan(self, fn):
        y = fn(nk.tensor([[NAN, 0.5], [0.5, 1.0]]), axis=-1)
        assert np.isnan(y.data[0]).all()
        assert not np.isnan(y.data[1]).any()

    def test_cross_entropy_with_nan_logit_is_nan(self):
        loss = nk.cross_entropy(nk.tensor([[NAN, 0.0], [1.0, 2.0]]), nk.tensor([0, 1]))
        assert np.isnan(loss.item())

    def test_logsumexp_with_infinities(self):
        assert nk.logsumexp(nk.tensor([INF, 1.0])).item() == INF
        assert nk.logsumexp(nk.tensor([-INF, -INF])).item() == -INF
        np.testing.assert_allclose(nk.logsumexp(nk.tensor([-INF, 0.0])).item(), 0.0)

    def test_nan_in_upstream_grad_reaches_the_leaf(self):
        x = leaf([1.0, 2.0, 3.0])
        y = nk.exp(x * 2.0).reshape(3, 1)
        y.backward(np.array([[1.0], [NAN], [1.0]]))
        assert np.isnan(x.grad.data[1])
        assert np.isfinite(x.grad.data[[0, 2]]).all()

    def test_nan_in_upstream_grad_reaches_the_leaf_through_a_reduction(self):
        x = leaf(np.ones((2, 2)))
        y = (x * 3.0).sum(axis=1)
        y.backward(np.array([NAN, 1.0]))
        assert np.isnan(x.grad.data[0]).all()
        np.testing.assert_array_equal(x.grad.data[1], [3.0, 3.0])

    def test_nan_input_gives_nan_gradient(self):
        x = leaf([NAN, 2.0])
        (x * x).sum().backward()
        assert np.isnan(x.grad.data[0])
        assert x.grad.data[1] == 4.0

    def test_nan_from_a_hook_is_kept(self):
        x = leaf([1.0, 2.0])
        x.register_hook(lambda g: g * NAN)
        (x * 2.0).sum().backward()
        assert np.isnan(x.grad.data).all()


# ---------------------------------------------------------------------------------------------------------------
# Numerical stability at +-1e4
# ---------------------------------------------------------------------------------------------------------------

EXTREME = [1e4, -1e4, 0.0, 1.5, -2.5, 30.0, -30.0]
UPSTREAM = [0.3, -1.2, 0.7, 1.0, -0.4, 2.0, 0.9]

ELEMENTWISE = {
    "sigmoid": (nk.sigmoid, torch.sigmoid),
    "tanh": (nk.tanh, torch.tanh),
    "softplus": (nk.softplus, F.softplus),
    "silu": (nk.silu, F.silu),
    "mish": (nk.mish, F.mish),
    "elu": (nk.elu, F.elu),
    "gelu": (nk.gelu, F.gelu),
    "gelu_tanh": (lambda t: nk.gelu(t, approximate="tanh"), lambda t: F.gelu(t, approximate="tanh")),
    "selu": (nk.selu, F.selu),
    "softsign": (nk.softsign, F.softsign),
}

ROWWISE = {
    "softmax": (lambda t: nk.softmax(t, axis=-1), lambda t: torch.softmax(t, dim=-1)),
    "log_softmax": (lambda t: nk.log_softmax(t, axis=-1), lambda t: torch.log_softmax(t, dim=-1)),
    "logsumexp": (lambda t: nk.logsumexp(t, axis=-1), lambda t: torch.logsumexp(t, dim=-1)),
    "logsumexp_all": (lambda t: nk.logsumexp(t), lambda t: torch.logsumexp(t, dim=(0, 1))),
}

LOGITS = [[1e4, -1e4, 0.0], [0.0, 1e4, -1e4], [-1e4, 0.0, 1e4], [1.0, 2.0, 3.0], [-1e4, -1e4, -1e4]]


def _tol(dtype):
    # float32 against float64: an output near 1e4 carries up to half an ulp (~5e-4) of absolute error, which a
    # gradient such as exp(x - logsumexp(x)) turns into a relative error of that size (PyTorch's float32 does the same),
    # so float32 is also compared tightly against PyTorch run in float32.
    return {"rtol": 1e-3, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}


def _check_stable(nk_fn, torch_fn, x_np, g_np):
    dtype = x_np.dtype
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = nk.tensor(x_np, requires_grad=True)
        y = nk_fn(x)
        assert y.dtype == dtype
        assert np.isfinite(y.data).all(), y.data
        y.backward(np.asarray(g_np, dtype=dtype).reshape(y.shape))
    assert x.grad.dtype == dtype
    assert np.isfinite(x.grad.data).all(), x.grad.data

    for ref_dtype, tol in [(np.float64, _tol(dtype)), (dtype, {"rtol": 1e-5, "atol": 1e-6})]:
        tx = torch.tensor(x_np.astype(ref_dtype), requires_grad=True)
        ty = torch_fn(tx)
        ty.backward(torch.tensor(np.asarray(g_np, dtype=ref_dtype)).reshape(ty.shape))
        np.testing.assert_allclose(y.data, ty.detach().numpy(), **tol)
        np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_activations_are_stable_at_1e4(name, dtype):
    nk_fn, torch_fn = ELEMENTWISE[name]
    _check_stable(nk_fn, torch_fn, np.array(EXTREME, dtype=dtype), UPSTREAM)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(ROWWISE))
def test_softmax_family_is_stable_at_1e4(name, dtype):
    nk_fn, torch_fn = ROWWISE[name]
    x = np.array(LOGITS, dtype=dtype)
    out_shape = torch_fn(torch.tensor(x.astype(np.float64))).shape
    g = np.linspace(-1.0, 2.0, int(np.prod(out_shape))).reshape(out_shape)
    _check_stable(nk_fn, torch_fn, x, g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_is_stable_at_1e4(dtype, reduction, smoothing):
    x = np.array(LOGITS, dtype=dtype)
    target = np.array([1, 0, 2, 2, 1])
    out_shape = (5,) if reduction == "none" else ()
    g = np.linspace(0.5, 1.5, 5).reshape(out_shape) if reduction == "none" else np.array(1.3)
    _check_stable(
        lambda t: nk.cross_entropy(t, nk.tensor(target), label_smoothing=smoothing, reduction=reduction),
        lambda t: F.cross_entropy(t, torch.tensor(target), label_smoothing=smoothing, reduction=reduction),
        x,
        g,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_with_probability_targets_is_stable_at_1e4(dtype):
    x = np.array(LOGITS, dtype=dtype)
    q = np.full((5, 3), 1 / 3)
    q[0] = [0.2, 0.5, 0.3]
    _check_stable(
        lambda t: nk.cross_entropy(t, nk.tensor(q)),
        lambda t: F.cross_entropy(t, torch.tensor(q)),
        x,
        np.array(0.7),
    )


# ---------------------------------------------------------------------------------------------------------------
# The backend seam
# ---------------------------------------------------------------------------------------------------------------


def test_only_backend_imports_numpy():
    # The engine and everything that computes on tensors (layers, optimizers) reach the array library only through
    # backend.py, so a GPU backend can be swapped in. Host-side code (data loading, metrics) may use NumPy directly.
    pattern = re.compile(r"^\s*(import\s+numpy\b|from\s+numpy\b)", re.MULTILINE)
    device_side = ["tensor.py", "creation.py", "backend.py", "autograd", "ops", "nn", "optim"]
    files = sorted(f for f in SRC.rglob("*.py") if f.relative_to(SRC).parts[0] in device_side)
    assert any(f.name == "tensor.py" for f in files) and len(files) > 10
    offenders = [str(f.relative_to(SRC)) for f in files if f.name != "backend.py" and pattern.search(f.read_text())]
    assert offenders == [], f"files importing numpy outside backend.py: {offenders}"
    assert pattern.search((SRC / "backend.py").read_text())


# ---------------------------------------------------------------------------------------------------------------
# Creation functions
# ---------------------------------------------------------------------------------------------------------------


def test_tensor_copies_its_input():
    a = np.array([1.0, 2.0])
    t = nk.tensor(a)
    a[0] = 99.0
    assert t.data[0] == 1.0
    t2 = nk.tensor(t)
    t.data[1] = 42.0
    assert t2.data[1] == 2.0
    assert not np.shares_memory(t.data, t2.data)


def test_tensor_of_a_tensor_is_a_fresh_leaf():
    x = leaf([1.0])
    h = x * 2.0
    t = nk.tensor(h)
    assert t.is_leaf and not t.requires_grad


def test_Tensor_constructor_wraps_without_copy():
    a = np.array([1.0, 2.0])
    t = nk.Tensor(a)
    a[0] = 5.0
    assert t.data[0] == 5.0


@pytest.mark.parametrize(
    "make, shape, dtype",
    [
        (lambda: nk.zeros(2, 3), (2, 3), np.float32),
        (lambda: nk.zeros((2, 3)), (2, 3), np.float32),
        (lambda: nk.zeros(), (), np.float32),
        (lambda: nk.ones(4, dtype="float64"), (4,), np.float64),
        (lambda: nk.ones([1, 2, 3]), (1, 2, 3), np.float32),
        (lambda: nk.full((2, 2), 7.0), (2, 2), np.float32),
        (lambda: nk.full(3, 1.5, dtype=np.float64), (3,), np.float64),
        (lambda: nk.arange(5), (5,), np.int64),
        (lambda: nk.arange(2, 10, 3), (3,), np.int64),
        (lambda: nk.arange(0.0, 1.0, 0.25), (4,), np.float32),
        (lambda: nk.arange(5, dtype="float64"), (5,), np.float64),
        (lambda: nk.eye(3), (3, 3), np.float32),
        (lambda: nk.eye(2, 4, dtype="float64"), (2, 4), np.float64),
        (lambda: nk.zeros_like(nk.ones(2, 5, dtype="float64")), (2, 5), np.float64),
        (lambda: nk.ones_like(nk.arange(4)), (4,), np.int64),
        (lambda: nk.full_like(nk.ones(3), 2.0), (3,), np.float32),
        (lambda: nk.zeros_like(np.ones((3, 1), dtype=np.float64)), (3, 1), np.float64),
        (lambda: nk.ones_like(nk.ones(2), dtype="float64"), (2,), np.float64),
        (lambda: nk.full_like(nk.ones(2, 2), 3, dtype="int64"), (2, 2), np.int64),
    ],
)
def test_creation_shapes_and_dtypes(make, shape, dtype):
    t = make()
    assert isinstance(t, Tensor)
    assert t.shape == shape
    assert t.dtype == dtype
    assert not t.requires_grad


def test_creation_values():
    np.testing.assert_array_equal(nk.zeros(2).data, [0.0, 0.0])
    np.testing.assert_array_equal(nk.ones(2).data, [1.0, 1.0])
    np.testing.assert_array_equal(nk.full((2,), 7.0).data, [7.0, 7.0])
    np.testing.assert_array_equal(nk.arange(2, 10, 3).data, [2, 5, 8])
    np.testing.assert_array_equal(nk.arange(4).data, torch.arange(4).numpy())
    np.testing.assert_array_equal(nk.eye(3).data, np.eye(3))
    np.testing.assert_array_equal(nk.full_like(nk.ones(3), 2.0).data, [2.0, 2.0, 2.0])


def test_creation_requires_grad():
    for t in (
        nk.zeros(2, requires_grad=True),
        nk.ones_like(nk.ones(2), requires_grad=True),
        nk.rand(2, requires_grad=True),
        nk.randn(2, requires_grad=True),
    ):
        assert t.requires_grad and t.is_leaf


@pytest.mark.parametrize(
    "draw",
    [
        lambda g: nk.rand(3, 4, generator=g),
        lambda g: nk.randn(3, 4, generator=g),
        lambda g: nk.randn(5, generator=g, dtype="float64"),
        lambda g: nk.randint(0, 10, (3, 4), generator=g),
    ],
    ids=["rand", "randn", "randn64", "randint"],
)
def test_random_same_int_seed_gives_identical_results(draw):
    a, b = draw(123), draw(123)
    np.testing.assert_array_equal(a.data, b.data)
    assert not np.array_equal(a.data, draw(124).data)


@pytest.mark.parametrize(
    "draw",
    [
        lambda g: nk.rand(6, generator=g),
        lambda g: nk.randn(6, generator=g),
        lambda g: nk.randint(0, 1000, 6, generator=g),
    ],
    ids=["rand", "randn", "randint"],
)
def test_random_with_numpy_generator(draw):
    g1, g2 = np.random.default_rng(7), np.random.default_rng(7)
    a1, a2 = draw(g1), draw(g1)  # the generator advances
    b1, b2 = draw(g2), draw(g2)
    np.testing.assert_array_equal(a1.data, b1.data)
    np.testing.assert_array_equal(a2.data, b2.data)
    assert not np.array_equal(a1.data, a2.data)


def test_random_dtypes_and_ranges():
    r = nk.rand(1000, generator=0)
    assert r.dtype == np.float32 and r.shape == (1000,)
    assert (r.data >= 0).all() and (r.data < 1).all()
    assert nk.randn(3, generator=0).dtype == np.float32
    assert nk.rand(3, generator=0, dtype="float64").dtype == np.float64
    i = nk.randint(-3, 3, 1000, generator=0)
    assert i.dtype == np.int64
    assert i.data.min() >= -3 and i.data.max() < 3
    assert nk.randint(0, 5, (2, 3), generator=0, dtype="int32").dtype == np.int32


def test_manual_seed_makes_default_generator_repeatable():
    nk.manual_seed(2024)
    a = nk.rand(5)
    b = nk.randn(2, 2)
    c = nk.randint(0, 100, 4)
    nk.manual_seed(2024)
    np.testing.assert_array_equal(nk.rand(5).data, a.data)
    np.testing.assert_array_equal(nk.randn(2, 2).data, b.data)
    np.testing.assert_array_equal(nk.randint(0, 100, 4).data, c.data)
    assert not np.array_equal(nk.rand(5).data, a.data)  # the stream moves on


@pytest.mark.parametrize("bad", ["seed", 1.5, True, [1, 2], np.random.RandomState(0)])
@pytest.mark.parametrize(
    "fn",
    [lambda g: nk.rand(2, generator=g), lambda g: nk.randn(2, generator=g), lambda g: nk.randint(0, 3, 2, generator=g)],
    ids=["rand", "randn", "randint"],
)
def test_invalid_generator_type_raises_type_error(fn, bad):
    with pytest.raises(TypeError, match="generator"):
        fn(bad)


def test_randint_rejects_empty_range():
    with pytest.raises(ValueError):
        nk.randint(3, 3, 2)


def test_negative_shape_rejected():
    with pytest.raises(ValueError):
        nk.zeros(-1)


# ---------------------------------------------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------------------------------------------


class _BadSquare(nk.Function):
    """x**2 with a backward that is off by a factor of 2 (returns 4x instead of 2x)."""

    name = "bad_square"

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, g):
        return (g * 4.0 * self.x,)


class _GoodSquare(_BadSquare):
    name = "good_square"

    def backward(self, g):
        return (g * 2.0 * self.x,)


def _inputs():
    return nk.tensor(np.array([[0.5, -1.0, 2.0], [1.5, 3.0, -0.25]]), requires_grad=True)


def test_gradcheck_passes_on_correct_function():
    res = nk.gradcheck(lambda t: (nk.tanh(t) * t).sum(axis=1), _inputs())
    assert isinstance(res, nk.GradcheckResult)
    assert res.ok and bool(res)
    assert res.max_abs_error[0] < 1e-6


def test_gradcheck_perturbs_inputs_of_any_memory_layout():
    """A transposed or NHWC-backed input (a convolution's output is one): its elements are nudged in place, not in
    a reshaped copy (which left every numerical derivative 0 and failed correct gradients)."""
    base = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 10
    for x in (base.transpose(2, 0, 1), base.transpose(0, 2, 1)[:, ::2]):
        assert not x.flags.c_contiguous
        res = nk.gradcheck(lambda t: (nk.tanh(t) * t).sum(), nk.Tensor(x, requires_grad=True))
        assert res.ok and res.max_abs_error[0] < 1e-6


def test_gradcheck_passes_on_correct_custom_function():
    res = nk.gradcheck(lambda t: _GoodSquare.apply(t), _inputs())
    assert res.ok


def test_gradcheck_custom_function_forward_matches():
    x = _inputs()
    y = _BadSquare.apply(x)
    assert y.requires_grad and y.grad_fn is not None
    np.testing.assert_array_equal(y.data, x.data**2)


def test_gradcheck_detects_wrong_backward():
    x = _inputs()
    res = nk.gradcheck(lambda t: _BadSquare.apply(t), x)
    assert not res.ok and not bool(res)
    # |4x - 2x| = 2|x|, largest at x = 3.0
    assert res.max_abs_error[0] == pytest.approx(6.0, rel=1e-4)
    assert res.max_rel_error[0] == pytest.approx(1.0, rel=1e-4)


def test_gradcheck_raise_exception():
    with pytest.raises(AssertionError, match="gradcheck"):
        nk.gradcheck(lambda t: _BadSquare.apply(t), _inputs(), raise_exception=True)
    assert nk.gradcheck(lambda t: _GoodSquare.apply(t), _inputs(), raise_exception=True).ok


def test_gradcheck_reports_none_for_inputs_without_grad():
    a = _inputs()
    b = nk.tensor(np.ones((2, 3)))
    res = nk.gradcheck(lambda x, y: x * y, a, b)
    assert res.ok
    assert res.max_abs_error[1] is None


def test_gradcheck_requires_an_input_with_grad():
    with pytest.raises(ValueError):
        nk.gradcheck(lambda t: t * 2.0, nk.tensor([1.0]))


def test_backward_frees_the_arrays_saved_for_backward():
    x = nk.randn(64, 64, generator=0, requires_grad=True)
    y = nk.tanh(x @ x)
    nodes = [y.grad_fn, y.grad_fn.next[0]]
    assert all(vars(n) for n in nodes), "forward should have saved arrays on its nodes"
    y.sum().backward()
    assert all(not vars(n) for n in nodes), "saved arrays must be released once a node has run"
    assert all(n.freed and n.next == () for n in nodes)


def test_retain_graph_keeps_the_saved_arrays():
    x = nk.randn(8, generator=0, requires_grad=True)
    y = nk.tanh(x)
    y.sum().backward(retain_graph=True)
    assert vars(y.grad_fn) and not y.grad_fn.freed
