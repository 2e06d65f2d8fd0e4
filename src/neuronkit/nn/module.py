"""``Module``: the base of every layer and model. Parameters and submodules register themselves on assignment.

A subclass sets attributes in ``__init__`` (``self.weight = Parameter(...)``, ``self.hidden = Dense(4, 8)``) and
writes ``forward``. ``Module.__setattr__`` files a ``Parameter`` under ``_parameters`` and a ``Module`` under
``_modules`` (as PyTorch does), so ``named_parameters()`` finds them without hand-written lists.
"""

from __future__ import annotations

from collections import OrderedDict

from .. import backend as B
from ..autograd.grad_mode import no_grad
from ..tensor import Tensor
from .parameter import Parameter


class _Handle:
    """Returned by ``register_*_hook``; ``remove()`` unregisters the hook."""

    def __init__(self, hooks: dict, key: int):
        self._hooks, self._key = hooks, key

    def remove(self) -> None:
        self._hooks.pop(self._key, None)


class Module:
    """Base class for layers and models.

    Hooks (all return a handle with ``remove()``):
    - ``register_forward_pre_hook(hook(module, inputs))``: before ``forward``; may return replacement inputs (a tuple).
    - ``register_forward_hook(hook(module, inputs, output))``: after ``forward``; may return a replacement output.
    - ``register_backward_hook(hook(module, grad_output))``: when the gradient of the module's (tensor) output is
      known during backward; may return a replacement gradient.
    Inspection tools attach through these hooks; layers have no special cases for them.
    """

    _hook_id = 0

    def __init__(self):
        d = self.__dict__
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_backward_hooks"] = OrderedDict()
        d["training"] = True

    # -- registration ---------------------------------------------------------------------------------------------
    def __setattr__(self, name, value):
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        for table in ("_parameters", "_buffers", "_modules"):
            if name in d[table] and not (table == "_buffers" and isinstance(value, Tensor)):
                del d[table][name]
        if isinstance(value, Parameter):
            d["_parameters"][name] = value
        elif isinstance(value, Module):
            d["_modules"][name] = value
        elif name in d["_buffers"]:
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)
            return
        d.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_parameters", "_buffers", "_modules"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            if name in self.__dict__[table]:
                del self.__dict__[table][name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor) -> None:
        """Keep ``tensor`` (not trained; e.g. running statistics) in the state dict under ``name``."""
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        self.__dict__.pop(name, None)
        self.__dict__["_buffers"][name] = tensor

    def add_module(self, name: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"add_module: expected a Module for {name!r}, got {type(module).__name__}")
        setattr(self, name, module)

    # -- calling ----------------------------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        d = self.__dict__
        if not (d["_forward_pre_hooks"] or d["_forward_hooks"] or d["_backward_hooks"]):
            return self.forward(*args, **kwargs)  # no hooks: the per-layer cost of every training step
        for hook in tuple(self._forward_pre_hooks.values()):
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        out = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            r = hook(self, args, out)
            if r is not None:
                out = r
        if self._backward_hooks and isinstance(out, Tensor) and out.requires_grad:
            for hook in tuple(self._backward_hooks.values()):
                out.register_hook(lambda g, _h=hook: _h(self, g))
        return out

    def _add_hook(self, table: str, hook) -> _Handle:
        Module._hook_id += 1
        self.__dict__[table][Module._hook_id] = hook
        return _Handle(self.__dict__[table], Module._hook_id)

    def register_forward_pre_hook(self, hook) -> _Handle:
        return self._add_hook("_forward_pre_hooks", hook)

    def register_forward_hook(self, hook) -> _Handle:
        return self._add_hook("_forward_hooks", hook)

    def register_backward_hook(self, hook) -> _Handle:
        return self._add_hook("_backward_hooks", hook)

    # -- traversal ----------------------------------------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        """(name, module) for this module and every descendant, depth first; each module once."""
        seen = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            kids = [(f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None]
            stack.extend(reversed(kids))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return ((k, m) for k, m in self._modules.items() if m is not None)

    def children(self):
        return (m for _, m in self.named_children())

    def _named(self, table: str, recurse: bool):
        seen = set()
        mods = self.named_modules() if recurse else [("", self)]
        for mname, m in mods:
            for k, v in m.__dict__[table].items():
                if v is None or id(v) in seen:
                    continue
                seen.add(id(v))
                yield (f"{mname}.{k}" if mname else k), v

    def named_parameters(self, recurse: bool = True):
        """(dotted name, Parameter) pairs, e.g. ``("0.weight", ...)``; a shared parameter appears once."""
        return self._named("_parameters", recurse)

    def parameters(self, recurse: bool = True):
        return (p for _, p in self.named_parameters(recurse))

    def named_buffers(self, recurse: bool = True):
        return self._named("_buffers", recurse)

    def buffers(self, recurse: bool = True):
        return (b for _, b in self.named_buffers(recurse))

    # -- modes and gradients ----------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active, batch norm uses batch statistics); returns self."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode; same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of every parameter (set to None, or zero them in place)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.data[...] = 0

    def requires_grad_(self, flag: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(flag)
        return self

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- state ------------------------------------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """Dotted name -> a copy of every parameter's and buffer's array (a snapshot, not a view)."""
        sd = OrderedDict()
        for name, m in self.named_modules():
            for table in ("_parameters", "_buffers"):
                for k, v in m.__dict__[table].items():
                    if v is not None:
                        sd[f"{name}.{k}" if name else k] = v.data.copy()
        return sd

    def load_state_dict(self, state: dict, strict: bool = True) -> tuple[list, list]:
        """Copy arrays from ``state`` into this module's parameters and buffers, in place.

        With ``strict`` (the default) a missing or unexpected key raises ``KeyError`` naming it; a shape mismatch
        always raises ``ValueError`` naming the key and both shapes. Returns (missing, unexpected) key lists.
        """
        own = {}
        for name, m in self.named_modules():
            for table in ("_parameters", "_buffers"):
                for k, v in m.__dict__[table].items():
                    if v is not None:
                        own[f"{name}.{k}" if name else k] = v
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(
                f"load_state_dict for {type(self).__name__}: missing keys {missing}, unexpected keys {unexpected}"
            )
        for k, t in own.items():
            if k not in state:
                continue
            v = state[k]
            v = v.data if isinstance(v, Tensor) else B.asarray(v)
            if v.shape != t.data.shape:
                raise ValueError(
                    f"load_state_dict: {k!r} has shape {tuple(v.shape)} in the state dict, the model expects "
                    f"{tuple(t.data.shape)}"
                )
        with no_grad():
            for k, t in own.items():
                if k in state:
                    v = state[k]
                    t.data[...] = v.data if isinstance(v, Tensor) else B.asarray(v)
        return missing, unexpected

    # -- architecture -----------------------------------------------------------------------------------------------
    def get_config(self) -> dict:
        """The constructor's keyword arguments as JSON values, so that ``type(self)(**get_config())`` rebuilds this
        layer's architecture (not its weights). Registered layers override it (see ``neuronkit.nn.registry``)."""
        name = type(self).__name__
        raise NotImplementedError(
            f"{name} cannot be saved by architecture: give it get_config() and register it, or save only its weights "
            f"with save_weights"
        )

    # -- training (the loop lives in neuronkit.train; imported on use) -------------------------------------------------
    def fit(self, train, **kwargs):
        """Train this model: ``neuronkit.train.fit(self, train, **kwargs)``; returns the ``History``."""
        from ..train import fit

        return fit(self, train, **kwargs)

    def evaluate(self, data, **kwargs) -> dict:
        """Loss and metrics on ``data``: ``neuronkit.train.evaluate(self, data, **kwargs)``."""
        from ..train import evaluate

        return evaluate(self, data, **kwargs)

    def predict(self, x, batch_size: int = 256):
        """Outputs for inputs ``x`` in eval mode, as a NumPy array: ``neuronkit.train.predict``."""
        from ..train import predict

        return predict(self, x, batch_size)

    # -- display ----------------------------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """One-line description of this module's own settings, shown by ``repr``."""
        return ""

    def __repr__(self):
        lines = [f"({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"

    def summary(self, input_shape=None, dtype=None, inputs=None):
        """A table of layers with output shapes and parameter counts for an input of ``input_shape`` (batch first).

        Runs one forward pass on zeros under ``no_grad`` with temporary forward hooks; returns a ``Summary`` whose
        ``str`` is the table and whose ``total_params`` equals the number of parameter values. A model that takes
        several inputs (a text model's ``(tokens, lengths)``) is given example ``inputs`` instead: a tuple of arrays.
        """
        from .summary import summarize

        return summarize(self, input_shape, dtype, inputs)
