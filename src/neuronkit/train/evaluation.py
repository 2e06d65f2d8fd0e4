"""Batches and evaluation for the training loop: ``as_loader``, how a batch splits into inputs and target, and the
loss and metrics of a model on data (``evaluate``'s body), and ``predict``. With a ``DataParallel`` the evaluation
data is sharded over the ranks and the sums reduced, so every rank gets the metrics of the whole data."""

from __future__ import annotations

from .. import backend as B
from ..autograd.grad_mode import no_grad
from ..data import ArrayDataset, DataLoader, SequenceDataset
from ..tensor import Tensor


def as_loader(data, batch_size: int, shuffle: bool, seed=None, what: str = "data") -> DataLoader:
    """A DataLoader for ``data``: a DataLoader, a dataset, or a tuple ``(x, y)`` of arrays."""
    if isinstance(data, DataLoader):
        return data
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(f"{what}: expected a tuple (x, y), got a tuple of {len(data)} items")
        data = ArrayDataset(*data)
    if not hasattr(data, "__len__"):
        raise TypeError(f"{what}: expected a DataLoader, a dataset or a tuple (x, y), got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{what}: the dataset is empty")
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, seed=seed)


def split_batch(batch):
    """``(inputs, target)`` of a batch: ``(x, y)`` and longer tuples or lists end with the target; anything else is
    one input without a target."""
    if type(batch) is tuple and len(batch) == 2:  # the usual (x, y): no slicing
        return (batch[0],), batch[1]
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return tuple(batch[:-1]), batch[-1]
    return (batch if not isinstance(batch, (tuple, list)) else batch[0],), None


def forward_inputs(model, inputs):
    """``model`` applied to the batch's input arrays, each wrapped as a Tensor."""
    if len(inputs) == 1:
        return model(Tensor(B.asarray(inputs[0])))
    return model(*[Tensor(B.asarray(a)) for a in inputs])


def as_target(y):
    if y is None:
        return None
    y = B.asarray(y)
    return y if y.dtype.kind in "iub" else Tensor(y)


def plain(v):
    """Metric values as JSON-able Python numbers or lists."""
    if hasattr(v, "tolist"):
        return v.tolist()
    return float(v) if isinstance(v, (int, float)) else v


def run_evaluation(model, loss_fn, metrics: list, data, batch_size: int, parallel=None) -> dict:
    """Loss and ``metrics`` (updated in place) on ``data``, in eval mode without a graph; the mode is restored.
    With ``parallel`` (a ``DataParallel``), each rank evaluates its shard of every batch and the sums are reduced."""
    loader = as_loader(data, batch_size, False, what="evaluation data")
    if parallel is not None and loader.shard[1] == 1:
        loader.shard = (parallel.rank, parallel.comm.size)
    was = model.training
    model.eval()
    total, n = 0.0, 0
    try:
        with no_grad():
            for batch in loader:
                inputs, y = split_batch(batch)
                k = len(y)
                if k == 0:  # an empty shard
                    continue
                out = forward_inputs(model, inputs)
                total += float(loss_fn(out, as_target(y)).item()) * k
                n += k
                for m in metrics:
                    m.update(y, out.data)
    finally:
        model.train(was)
    if parallel is not None:
        total, n = parallel.reduce_sums(total, n)
        parallel.reduce_metrics(metrics)
    result = {"loss": total / max(n, 1)}
    for m in metrics:
        result[m.name] = plain(m.compute())
    return result


def predict(model, x, batch_size: int = 256):
    """``model``'s outputs for ``x`` (an array, or a dataset whose batches' first item is the input), in eval mode.

    A ``SequenceDataset``'s batches are ``(tokens, lengths[, labels])``: the model is called as
    ``model(tokens, lengths)``. Outputs are in the dataset's order."""
    if hasattr(x, "shape"):
        x = ArrayDataset(B.asarray(x))
    loader = as_loader(x, batch_size, False, what="prediction input")
    n_inputs = 2 if isinstance(loader.dataset, SequenceDataset) else 1
    was = model.training
    model.eval()
    outs = []
    try:
        with no_grad():
            for batch in loader:
                inputs = batch[:n_inputs] if isinstance(batch, (tuple, list)) else (batch,)
                outs.append(model(*[Tensor(B.asarray(a)) for a in inputs]).data)
    finally:
        model.train(was)
    return B.xp.concatenate(outs) if outs else B.xp.empty((0,))
