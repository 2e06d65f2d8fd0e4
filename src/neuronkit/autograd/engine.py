"""The backward walk: reverse-mode automatic differentiation over the recorded graph.

The walk is iterative (no recursion, so a chain of 100,000 ops is fine) and runs each node once, after every node that
feeds it a gradient has run (Kahn's algorithm over consumer counts, as PyTorch's engine does). Gradients from several
consumers are summed before a node runs; a gradient must arrive with exactly the shape of the tensor it belongs to.
Leaf gradients accumulate into ``Tensor.grad`` across calls. Unless ``retain_graph=True`` each node drops its saved
arrays and edges once it has run, so a second backward through it raises a clear error.
"""

from __future__ import annotations

from .. import backend as B
from .function import Function


class GraphFreedError(RuntimeError):
    """Raised by a second ``backward()`` through a graph that was already freed."""


def backward(root, grad=None, retain_graph: bool = False) -> None:
    """Backpropagate from tensor ``root``; see ``Tensor.backward``."""
    Tensor = _Tensor
    if not root.requires_grad:
        raise RuntimeError(
            "backward(): this tensor does not require grad and has no graph; create inputs with "
            "requires_grad=True and run the ops outside no_grad()"
        )
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward(): grad can be implicitly created only for a single-element output, got shape "
                f"{tuple(root.shape)}; pass grad= of that shape (for example ones_like(output))"
            )
        g = B.xp.ones(root.data.shape, dtype=root.data.dtype)
    else:
        g = grad.data if isinstance(grad, Tensor) else B.asarray(grad)
        if g.shape != root.data.shape:
            raise ValueError(f"backward(): grad has shape {tuple(g.shape)}, expected the output's {tuple(root.shape)}")
        g = g.astype(root.data.dtype, copy=True)

    leaf_grads: dict = {}  # id(leaf) -> [leaf, summed gradient of this pass]
    node = root.grad_fn
    if node is None:  # backward on a leaf: its gradient is just g
        _accumulate_leaf(leaf_grads, root, g)
        _flush_leaves(leaf_grads, Tensor)
        return

    # Count, for each reachable node, how many reachable nodes consume its output.
    consumers = {node: 0}
    stack = [node]
    while stack:
        n = stack.pop()
        if n.freed:
            raise GraphFreedError(
                f"backward(): trying to backward through the graph a second time (node {n.name} was freed); "
                "pass retain_graph=True to the first backward() if you need to call it twice"
            )
        for e in n.next:
            if e is not None and not isinstance(e, Tensor):
                c = consumers.get(e)
                if c is None:
                    consumers[e] = 1
                    stack.append(e)
                else:
                    consumers[e] = c + 1

    ndarray = B.ndarray
    grads = {node: g}
    ready = [node]
    while ready:
        n = ready.pop()
        g = grads.pop(n)
        if n.hooks is not None:
            g = _run_hooks(n.hooks, g, n.shape, Tensor)
        if n.retained is not None:
            t = n.retained()
            if t is not None:
                kept = Tensor.from_array(g.copy(), False)
                t.grad = kept if t.grad is None else t.grad + kept
        in_grads = n.backward(g)
        edges = n.next
        if not retain_graph:
            n.next = ()
            n.freed = True
            try:
                n.__dict__.clear()  # the arrays forward saved for backward: free them now
            except AttributeError:  # a Function subclass with __slots__ only
                pass
        for e, ig in zip(edges, in_grads):
            if e is None or ig is None:
                continue
            if isinstance(e, Tensor):  # a leaf (Tensor or a subclass such as nn.Parameter)
                d = e.data
                if type(ig) is not ndarray or ig.shape != d.shape or ig.dtype != d.dtype:
                    ig = _fix(ig, d.shape, d.dtype, n)
                entry = leaf_grads.get(id(e))
                if entry is None:
                    leaf_grads[id(e)] = [e, ig]
                else:
                    entry[1] = entry[1] + ig  # a fresh array
                continue
            if type(ig) is not ndarray or ig.shape != e.shape or ig.dtype != e.dtype:
                ig = _fix(ig, e.shape, e.dtype, n)
            prev = grads.get(e)
            grads[e] = ig if prev is None else prev + ig
            c = consumers[e] - 1
            consumers[e] = c
            if c == 0:
                ready.append(e)
    _flush_leaves(leaf_grads, Tensor)


def _fix(ig, shape, dtype, node):
    """Slow path of the edge check: convert to an array, insist on the exact shape, cast to the target dtype."""
    if type(ig) is not B.ndarray:
        ig = B.asarray(ig)
    if ig.shape != shape:
        raise RuntimeError(
            f"internal error: {node.name} backward produced a gradient of shape {ig.shape}, expected {shape}"
        )
    if ig.dtype != dtype:
        ig = ig.astype(dtype)
    return ig


def _accumulate_leaf(leaf_grads, leaf, g):
    entry = leaf_grads.get(id(leaf))
    if entry is None:
        leaf_grads[id(leaf)] = [leaf, g]
    else:
        entry[1] = entry[1] + g  # a fresh array


def _flush_leaves(leaf_grads, Tensor):
    """Add this pass's gradient into each leaf's ``.grad`` (after its hooks), copying arrays that may be shared."""
    handed = set() if len(leaf_grads) > 1 else ()
    for leaf, g in leaf_grads.values():
        if leaf.hooks is not None:
            g = _run_hooks(leaf.hooks, g, leaf.data.shape, Tensor)
        if leaf.grad is None:
            # A backward may hand one array to several inputs (add) or return a view (reshape), and a hook may return
            # an array the user keeps: copy those, so each leaf owns its gradient and optimizers may update it in
            # place. Backward functions never return an array they keep, so a fresh base array is safe to adopt.
            if g.base is not None or id(g) in handed:
                g = g.copy()
            if handed != ():
                handed.add(id(g))
            leaf.grad = Tensor.from_array(g, False)
        else:
            gd = leaf.grad.data
            B.xp.add(gd, g, out=gd)


def _run_hooks(hooks, g, shape, Tensor):
    """Call each hook with the gradient; a hook may return a replacement. The result is a fresh copy, so no array a
    hook saw or returned (and the user may keep) ever becomes a leaf's ``.grad``."""
    for hook in hooks:
        r = hook(Tensor.from_array(g, False))
        if r is not None:
            r = r.data if isinstance(r, Tensor) else B.asarray(r)
            if r.shape != shape:
                raise ValueError(f"a gradient hook returned shape {tuple(r.shape)}, expected {tuple(shape)}")
            g = r
    return g.copy()


_Tensor = None  # the Tensor class, set through autograd.set_tensor_class by tensor.py (which imports this module)

__all__ = ["backward", "GraphFreedError", "Function"]


def set_tensor_class(cls) -> None:
    """The class of the tensors this module makes (see ``autograd.set_tensor_class``)."""
    global _Tensor
    _Tensor = cls
