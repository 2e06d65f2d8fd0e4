"""The optimizer base class: parameter groups, per-parameter state, the step loop, and exact save/resume.

A subclass writes two small methods and nothing else (Keras ``update_step``, PyTorch ``self.state[p]``):

* ``init_state(p, group) -> dict``: the fresh state of one parameter (arrays shaped and typed like ``p.data``,
  counters);
* ``update(p, grad, state, group)``: one step for one parameter, changing ``p.data`` and ``state`` in place. It is
  the optimizer's only update path. It leaves ``grad`` as it is, unless ``grad is self.released_grad``: the training
  loop's ``step_and_zero_grad`` drops that gradient and nothing else refers to it, so the update may use its memory
  (plain SGD scales it in place: one memory pass less than writing ``lr * grad`` to scratch). For temporaries shaped
  like ``p`` it asks ``self.scratch(p, slot)``.

The base class owns everything around them: the loop over groups and parameters (parameters whose ``grad`` is None
are skipped), running it under ``no_grad()``, creating state lazily, float16 parameters (their state and update run in
float32, the result is rounded back), hyperparameter validation through ``validate(group)``, and ``state_dict()`` /
``load_state_dict()`` (JSON-ready metadata plus NumPy arrays).
"""

from __future__ import annotations

import math
import sys
from numbers import Real

from .. import backend as B
from ..autograd import enable_grad, no_grad
from ..tensor import Tensor


def check(cond: bool, owner: str, name: str, requirement: str, value) -> None:
    """Raise ``ValueError("Owner: name must be requirement, got value")`` unless ``cond``."""
    if not cond:
        raise ValueError(f"{owner}: {name} must be {requirement}, got {value!r}")


def check_number(owner: str, name: str, value, low=None, high=None, low_open=False, high_open=False) -> None:
    """Check that ``value`` is a finite real number inside ``[low, high]`` (open ends where asked).

    NaN, infinities and booleans are refused: ``ValueError("Owner: name must be a finite real number >= 0, got inf")``.
    """
    if low is not None and high is not None:
        req = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    elif low is not None:
        req = f" {'>' if low_open else '>='} {low}"
    elif high is not None:
        req = f" {'<' if high_open else '<='} {high}"
    else:
        req = ""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))
    check(ok, owner, name, f"a finite real number{req}", value)
    v = float(value)
    if low is not None:
        check(v > low if low_open else v >= low, owner, name, req.strip(), value)
    if high is not None:
        check(v < high if high_open else v <= high, owner, name, req.strip(), value)


def check_betas(owner: str, betas, name: str = "betas") -> None:
    check(isinstance(betas, (tuple, list)) and len(betas) == 2, owner, name, "a pair (beta1, beta2)", betas)
    for i, b in enumerate(betas):
        check_number(owner, f"{name}[{i}]", b, 0.0, 1.0, high_open=True)


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of ``Tensor`` parameters, or of dicts (parameter groups), each with a ``"params"`` entry
            and any hyperparameters that override ``defaults`` for that group, as in PyTorch::

                SGD([{"params": body}, {"params": head, "lr": 1e-3}], lr=1e-2, momentum=0.9)

        defaults: the hyperparameters (name -> value) a group takes when it does not set them.

    Attributes:
        param_groups: list of dicts, each with ``"params"`` (list of tensors) and every hyperparameter.
        state: dict keyed by parameter tensor; ``state[p]`` is that parameter's dict of buffers and counters, created
            on its first step (float32 buffers for a float16 parameter).
        released_grad: while ``update`` runs, the gradient array it may overwrite (see the module docstring), else
            None.
    """

    def __init__(self, params, defaults: dict):
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(
                f"{name}: params must be an iterable of Tensors or of dicts, got a single Tensor; wrap it in a list"
            )
        self.defaults = dict(defaults)
        self.state: dict = {}
        self.param_groups: list = []
        self._scratch_buf = None
        self._scratch_views: dict = {}  # (shape, dtype, slot) -> view of _scratch_buf
        self.released_grad = None  # during update: the gradient array it may overwrite, if any (see the module doc)
        self._sole_counts = None  # reference counts of a gradient tensor and array nothing else holds (see _run)
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    # -- what subclasses write -----------------------------------------------------------------------------------
    def validate(self, group: dict) -> None:
        """Raise ``ValueError`` naming the bad value if a hyperparameter of ``group`` is invalid."""
        check_number(type(self).__name__, "lr", group["lr"], 0.0)

    def init_state(self, p: Tensor, group: dict) -> dict:
        """The state of parameter ``p`` before its first step."""
        return {"step": 0}

    def update(self, p: Tensor, grad, state: dict, group: dict) -> None:
        """Update ``p.data`` in place from its gradient array ``grad``; advance ``state``. ``grad`` stays unchanged
        unless it is ``self.released_grad``."""
        raise NotImplementedError

    # -- the loop ------------------------------------------------------------------------------------------------
    def step(self, closure=None):
        """Take one optimisation step over every parameter that has a gradient.

        ``closure``, if given, is called (with gradient recording on) first and its result returned: it should
        zero the gradients, recompute the loss, call ``backward()`` and return the loss.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._run(release=False)
        return loss

    def step_and_zero_grad(self) -> None:
        """``step()`` then ``zero_grad()``: the training loop's step, bit-identical to the two calls.

        A subclass that overrides ``step`` or ``zero_grad`` gets exactly those two calls. Otherwise it is one pass
        that drops each gradient before its update, and offers the update the gradient's own array as
        ``released_grad`` when nothing else refers to it: a hook, a callback or a caller holding the gradient tensor,
        its array or a view of it keeps an unchanged gradient.
        """
        cls = type(self)
        if cls.step is not Optimizer.step or cls.zero_grad is not Optimizer.zero_grad:
            self.step()
            self.zero_grad()
            return
        self._run(release=True)

    def _run(self, release: bool) -> None:
        """The loop of ``step`` (``release=False``) and ``step_and_zero_grad`` (``release=True``).

        Released gradients are tested for sole ownership by reference count, against the counts of a probe pair built
        here (on this optimizer's first release) and held the same way as the loop holds each gradient (one local for
        the tensor; the tensor and one local for its array), so the expected counts never depend on the interpreter's
        version. Without reference counts (not CPython) no gradient is ever handed out.
        """
        refcount = _REFCOUNT
        check = release and refcount is not None
        if check:
            if self._sole_counts is None:
                probe = Tensor.from_array(_PROBE_ARRAY.copy(), False)
                probe_arr = probe.data
                self._sole_counts = (refcount(probe), refcount(probe_arr))
                del probe, probe_arr
            sole_g, sole_arr = self._sole_counts
        with no_grad():
            states, init_state, update = self.state, self.init_state, self.update
            for group in self.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is None:
                        continue
                    if release:
                        p.grad = None
                    arr = g.data
                    if arr.dtype is _HALF:  # (the engine keeps each gradient in its parameter's dtype)
                        self._update_in_float32(p, arr, group)
                        continue
                    state = states.get(p)
                    if state is None:
                        state = states[p] = init_state(p, group)
                    if (
                        check
                        and refcount(g) == sole_g
                        and refcount(arr) == sole_arr
                        and arr.base is None
                        and arr.flags.writeable
                    ):
                        self.released_grad = arr
                        update(p, arr, state, group)
                        self.released_grad = None
                    else:
                        update(p, arr, state, group)

    def _update_in_float32(self, p: Tensor, grad, group: dict) -> None:
        """One update of a float16 parameter, computed in float32 and rounded back (as mixed-precision training does).

        float16 has too little range and precision for optimizer state: Adam's default eps (1e-8) is 0 in float16 and
        its squared gradients underflow, so one step made most weights non-finite. The state is kept in float32; the
        update runs on a float32 copy of the parameter, written back rounded to nearest.
        """
        q = Tensor.from_array(p.data.astype(B.xp.float32), False)
        state = self.state.get(p)
        if state is None:
            state = self.state[p] = self.init_state(q, group)
        g32 = grad.astype(B.xp.float32)
        self.released_grad = g32  # a fresh copy that nothing else sees
        try:
            self.update(q, g32, state, group)
        finally:
            self.released_grad = None
        p.data[...] = q.data

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: drop it (``set_to_none=True``, the default) or fill it with zeros."""
        for group in self.param_groups:
            if set_to_none:
                for p in group["params"]:
                    p.grad = None
                continue
            for p in group["params"]:
                if p.grad is not None:
                    p.grad.data[...] = 0

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters (a dict with ``"params"`` and optional hyperparameters) to optimize."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got {type(param_group).__name__}")
        group = dict(param_group)
        params = group.get("params")
        if params is None:
            raise ValueError(f"{name}: a parameter group needs a 'params' entry, got keys {sorted(group)}")
        params = [params] if isinstance(params, Tensor) else list(params)
        for i, p in enumerate(params):
            if not isinstance(p, Tensor):
                raise TypeError(
                    f"{name}: parameter {i} of group {len(self.param_groups)} is a "
                    f"{type(p).__name__}, expected a Tensor"
                )
            if p.data.dtype.kind != "f":
                raise TypeError(
                    f"{name}: can only optimize floating-point tensors, got dtype {p.data.dtype} "
                    f"(parameter {i} of group {len(self.param_groups)})"
                )
            if not p.is_leaf:
                raise ValueError(
                    f"{name}: can only optimize leaf tensors (parameter {i} of group "
                    f"{len(self.param_groups)} is the result of an op)"
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params) or any(id(p) in seen for p in params):
            raise ValueError(f"{name}: a parameter appears more than once (within or across parameter groups)")
        group["params"] = params
        for k, v in self.defaults.items():
            group.setdefault(k, v)
        self.validate(group)
        self.param_groups.append(group)

    # -- scratch space -------------------------------------------------------------------------------------------
    def scratch(self, p: Tensor, slot: int = 0):
        """A reusable temporary shaped like ``p`` (slot 0 or 1), so an update makes no fresh large arrays.

        One flat buffer per optimizer holds two slots the size of the largest parameter; it is not state and is
        never saved. Contents are garbage on entry. The views are cached by shape, dtype and slot (parameters of one
        shape share them), so a step does not slice and reshape the buffer again for every parameter.
        """
        d = p.data
        key = (d.shape, d.dtype, slot)
        view = self._scratch_views.get(key)
        if view is not None:
            return view
        n = d.size
        buf = self._scratch_buf
        if buf is None or buf.dtype != d.dtype or buf.size < 2 * n:
            buf = self._scratch_buf = B.xp.empty(2 * n, dtype=d.dtype)
            self._scratch_views = {}  # views of the old buffer would keep it alive
        half = buf.size // 2
        view = self._scratch_views[key] = buf[slot * half : slot * half + n].reshape(d.shape)
        return view

    # -- save and resume -----------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A snapshot for exact resume: ``{"param_groups": [...], "state": {index: {name: array or number}}}``.

        Each group lists its hyperparameters and, under ``"params"``, the indices of its parameters in the order of
        all groups' parameters; tuples become lists. Everything but the state arrays is JSON-serialisable; arrays are
        copies, so later steps do not change a saved dict.
        """
        index = {}
        groups = []
        for g in self.param_groups:
            entry = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
            ids = []
            for p in g["params"]:
                index[id(p)] = len(index)
                ids.append(index[id(p)])
            entry["params"] = ids
            groups.append(entry)
        state = {}
        for g in self.param_groups:
            for p in g["params"]:
                s = self.state.get(p)
                if s is not None:
                    state[index[id(p)]] = {k: (v.copy() if isinstance(v, B.ndarray) else v) for k, v in s.items()}
        return {"param_groups": groups, "state": state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyperparameters and state saved by ``state_dict()`` into this optimizer's parameters.

        The groups must match in number and size; every state entry must have the names and array shapes this
        optimizer would create. Otherwise ``ValueError`` says what was expected and what arrived.
        """
        name = type(self).__name__
        if not isinstance(state_dict, dict) or "param_groups" not in state_dict or "state" not in state_dict:
            got = sorted(state_dict) if isinstance(state_dict, dict) else type(state_dict).__name__
            raise ValueError(f"{name}.load_state_dict: expected a dict with 'param_groups' and 'state', got {got}")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: expected {len(self.param_groups)} parameter group(s), "
                f"the state dict has {len(saved_groups)}"
            )
        params = []
        for i, (g, sg) in enumerate(zip(self.param_groups, saved_groups)):
            if len(sg["params"]) != len(g["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} expected {len(g['params'])} parameter(s), "
                    f"the state dict has {len(sg['params'])}"
                )
            params.extend(zip(sg["params"], g["params"]))
        by_index = {int(k): p for k, p in params}
        if len(by_index) != len(params):
            raise ValueError(f"{name}.load_state_dict: parameter indices repeat in the saved groups")
        new_groups = []
        for g, sg in zip(self.param_groups, saved_groups):
            ng = {k: (tuple(v) if isinstance(g.get(k), tuple) else v) for k, v in sg.items() if k != "params"}
            ng["params"] = g["params"]
            self.validate(ng)
            new_groups.append(ng)
        group_of = {id(p): ng for ng in new_groups for p in ng["params"]}
        new_state = {}
        for k, saved in state_dict["state"].items():
            idx = int(k)
            if idx not in by_index:
                raise ValueError(
                    f"{name}.load_state_dict: state for parameter index {idx}, expected indices 0..{len(params) - 1}"
                )
            p = by_index[idx]
            template = self.init_state(_state_view(p), group_of[id(p)])
            if set(saved) != set(template):
                raise ValueError(
                    f"{name}.load_state_dict: state of parameter {idx} expected entries "
                    f"{sorted(template)}, got {sorted(saved)}"
                )
            s = {}
            for key, ref in template.items():
                v = saved[key]
                if isinstance(ref, B.ndarray):
                    arr = B.xp.asarray(v)
                    if arr.shape != ref.shape:
                        raise ValueError(
                            f"{name}.load_state_dict: state '{key}' of parameter {idx} expected shape "
                            f"{ref.shape}, got {arr.shape}"
                        )
                    s[key] = arr.astype(ref.dtype, copy=True)
                else:
                    if isinstance(v, B.ndarray):
                        v = v.item()
                    s[key] = type(ref)(v)
            new_state[p] = s
        self.param_groups[:] = new_groups
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            hp = ", ".join(f"{k}={v}" for k, v in g.items() if k != "params")
            lines.append(f"  group {i}: {len(g['params'])} params, {hp}")
        return "\n".join(lines) + "\n)"


_HALF = B.xp.dtype(B.xp.float16)
_REFCOUNT = getattr(sys, "getrefcount", None)  # None where there are no reference counts (not CPython)
_PROBE_ARRAY = B.xp.zeros(1, dtype=B.xp.float32)


def _state_view(p: Tensor) -> Tensor:
    """``p`` as ``init_state`` sees it: a float32 copy for a float16 parameter (whose state is float32), else ``p``."""
    if p.data.dtype == _HALF:
        return Tensor.from_array(p.data.astype(B.xp.float32), False)
    return p
