"""``DataParallel``: what ``Trainer`` does differently when it trains with several ranks (see ``train.distributed``
for the scheme): broadcast the weights, run each shard with global-batch dropout and batch norm, sum the gradients,
reduce the metrics and the validation sums."""

from __future__ import annotations

import sys

import numpy as np

from .. import backend as B
from ..ops.dropout import batch_rows
from ..ops.norm import batch_stats_sum


class DataParallel:
    """Data parallelism over ``comm`` (a ``distributed.Communicator`` of more than one rank) for ``model``.

    Parameters are grouped by dtype (normally one float32 group); each group's gradients travel as one flat buffer,
    the first group's with one extra slot for the loss: one allreduce per group and step."""

    def __init__(self, comm, model):
        self.comm, self.model = comm, model
        self.groups: dict = {}
        for p in model.parameters():
            self.groups.setdefault(np.dtype(p.dtype), []).append(p)
        self._warned = False
        self.interrupted = False  # some rank got Ctrl-C: agreed through the gradient buffer, so all stop together

    @property
    def rank(self) -> int:
        return self.comm.rank

    # -- weights ------------------------------------------------------------------------------------------------
    def broadcast_weights(self) -> None:
        """Every rank takes rank 0's parameters and floating buffers (one broadcast per dtype)."""
        arrays = [p.data for p in self.model.parameters()]
        arrays += [b.data for b in self.model.buffers() if b is not None and b.data.dtype.kind == "f"]
        by_dtype: dict = {}
        for a in arrays:
            by_dtype.setdefault(a.dtype, []).append(a)
        for dtype, group in by_dtype.items():
            flat = np.concatenate([a.reshape(-1) for a in group]) if self.rank == 0 else None
            if flat is None:
                flat = np.empty(sum(a.size for a in group), dtype=dtype)
            self.comm.broadcast(flat, root=0)
            at = 0
            for a in group:
                a[...] = flat[at : at + a.size].reshape(a.shape)
                at += a.size

    def weights_digest(self) -> str:
        """A SHA-256 of this rank's parameters and buffers (to check that all ranks hold the same weights)."""
        import hashlib

        h = hashlib.sha256()
        for name, v in self.model.state_dict().items():
            h.update(name.encode())
            h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()

    # -- randomness --------------------------------------------------------------------------------------------------
    def common_seed(self) -> int:
        """A fresh random seed drawn on rank 0 and given to every rank (for ``fit(seed=None)``: the ranks must still
        shuffle alike and draw the same dropout masks)."""
        box = np.array([np.random.SeedSequence().entropy % 2**62 if self.rank == 0 else 0], dtype=np.int64)
        self.comm.broadcast(box, root=0)
        return int(box[0])

    def randomness_error(self, generators: dict) -> ValueError | None:
        """A ``ValueError`` (the same on every rank) when ``generators`` (name -> numpy Generator: the loader's, the
        default one, the modules') are not in the same state on every rank, else None."""
        import hashlib

        mine = []
        for _, g in sorted(generators.items()):
            digest = hashlib.sha256(repr(g.bit_generator.state).encode()).digest()
            mine.append(int.from_bytes(digest[:7], "little"))
        box = np.array(mine, dtype=np.int64)
        ref = box.copy()
        self.comm.broadcast(ref, root=0)
        differs = (box != ref).astype(np.float64)
        self.comm.allreduce(differs)
        names = [name for name, d in zip(sorted(generators), differs) if d]
        if not names:
            return None
        return ValueError(
            f"data-parallel training: the random generators {names} differ between ranks (shuffles or dropout masks "
            "would differ): give fit a seed, and modules and loaders int seeds, not unseeded generators"
        )

    # -- one step -----------------------------------------------------------------------------------------------
    def _sum64(self, a):
        return self.comm.allreduce(np.ascontiguousarray(a, dtype=np.float64))

    def agree_on_setup(self, error: BaseException | None) -> None:
        """After a setup that may fail on some ranks only (bad input): if any rank failed, the lowest failing rank
        raises its error (reported once) and the others exit quietly; otherwise nothing happens."""
        first = self.comm.lowest(error is not None)
        if first is None:
            return
        if self.rank == first:
            raise error
        raise SystemExit(1)

    def fail(self, error: BaseException):
        """An error on this rank alone during training: print it, and stop every rank (the others wait for this one
        in a collective)."""
        import traceback

        traceback.print_exception(error, file=sys.stderr)
        self.comm.abort(
            f"neuronkit: rank {self.rank} of {self.comm.size} failed ({type(error).__name__}); stopping all ranks"
        )

    def forward_backward(self, forward, loss_of, rows, n: int, interrupted: bool = False):
        """Run this rank's shard: ``forward()`` gives the output, ``loss_of(out)`` the shard's mean loss. ``rows``:
        ``(lo, hi, total)`` of the shard in its global batch (None: ``n`` rows of a batch of ``n``).

        Backpropagates ``(n / total) * loss`` (this shard's part of the global-batch mean), then sums every rank's
        gradients and losses. Returns ``(output, global-batch loss)``; the gradients are the global batch's."""
        lo, hi, total = rows if rows is not None else (0, n, n)
        share = (hi - lo) / total
        with batch_rows(lo, hi, total), batch_stats_sum(self._sum64):
            out = forward()
            if hi > lo:
                loss = loss_of(out)
                part = float(loss.item()) * share
                loss.backward(B.xp.full(loss.shape, share, dtype=loss.dtype))
            else:  # an empty shard (a global batch smaller than the ranks): zero gradients, same collectives
                part = 0.0
                out.sum().backward(B.xp.zeros((), dtype=out.dtype))
        return out, self.sum_gradients(part, interrupted)

    def sum_gradients(self, loss_part: float, interrupted: bool = False) -> float:
        """Replace every gradient by its sum over the ranks (one flat buffer per dtype); returns the summed loss. The
        first buffer carries two more slots, the loss and the count of ranks interrupted (sets ``interrupted``)."""
        loss = loss_part
        for i, (dtype, params) in enumerate(self.groups.items()):
            size = sum(p.size for p in params)
            flat = np.zeros(size + 2 * (i == 0), dtype=dtype)  # fresh each step: the gradients become views of it
            at = 0
            for p in params:
                if p.grad is not None:
                    flat[at : at + p.size] = p.grad.data.reshape(-1)
                at += p.size
            if i == 0:
                flat[-2:] = loss_part, float(interrupted)
            self.comm.allreduce(flat)
            at = 0
            for p in params:
                if p.grad is not None:
                    p.grad.data = flat[at : at + p.size].reshape(p.shape)
                at += p.size
            if i == 0:
                loss, self.interrupted = float(flat[-2]), bool(flat[-1] > 0)
        return loss

    # -- metrics and validation -----------------------------------------------------------------------------------
    def reduce_metrics(self, metrics) -> None:
        """Sum the metrics' ``additive`` statistics over the ranks, so ``compute()`` gives the global value."""
        values = [float(getattr(m, a)) for m in metrics for a in m.additive]
        if values:
            total = self.comm.allreduce(np.asarray(values, dtype=np.float64))
            k = 0
            for m in metrics:
                for a in m.additive:
                    was = getattr(m, a)
                    setattr(m, a, int(round(total[k])) if isinstance(was, (int, np.integer)) else float(total[k]))
                    k += 1
        if not self._warned and self.rank == 0 and any(not m.additive for m in metrics):
            self._warned = True
            names = ", ".join(m.name for m in metrics if not m.additive)
            print(f"neuronkit: note: {names} computed on rank 0's part of the data only", file=sys.stderr)

    def agree(self, logs: dict) -> dict:
        """``logs`` with rank 0's value of every number (a metric without additive statistics differs between
        ranks; early stopping and schedules must decide the same on every rank)."""
        keys = [k for k, v in logs.items() if isinstance(v, float)]
        box = np.asarray([logs[k] for k in keys], dtype=np.float64)
        self.comm.broadcast(box, root=0)
        return {**logs, **{k: float(v) for k, v in zip(keys, box)}}

    def reduce_sums(self, *values: float) -> list:
        """``values`` summed over the ranks."""
        return [float(v) for v in self.comm.allreduce(np.asarray(values, dtype=np.float64))]
