"""Synchronous data-parallel training: the communicator seam, and what ``fit`` does with it.

Started as ``mpiexec -n N python script.py`` (or ``mpiexec -n N neuronkit train ...``, or ``srun``), every process
(rank) holds the whole model and ``fit`` trains one model with them:

- at the start the parameters and buffers of rank 0 are broadcast, so every rank starts from the same weights;
- ``batch_size`` stays the global batch: the loader draws the same global batches on every rank (same seed), and
  rank r takes its contiguous shard of each (``data.shard_bounds``: sizes differ by at most 1);
- each rank backpropagates its share of the global-batch loss, ``(1/B) sum_{i in shard} l_i`` (its mean loss scaled
  by ``n_r / B``), so that the sum of the ranks' gradients is the global batch's gradient; the gradients (one
  flattened float buffer, plus the loss) are summed by one allreduce before every update, and every rank applies the
  same update to the same weights;
- dropout masks are drawn for the whole global batch from the (identical) generators and cut to the shard's rows
  (``ops.dropout.batch_rows``), and batch norm uses the global batch's statistics (``ops.norm.batch_stats_sum``):
  N ranks train the same model as one process, up to float32 rounding of the reductions. (A mask whose first axis is
  not the batch, as recurrent dropout on packed sequences, is drawn per rank: the ranks still hold identical weights,
  but the run is then not the one-process run draw for draw);
- epoch metrics and validation are reduced over all ranks' samples (metrics with ``additive`` statistics:
  accuracy, top-k, MSE, MAE, log-loss), so rank 0's history describes the global model; the probes add their
  ranks' sums the same way (``inspect.probe_sums``), so the neurons' history is the global batch's too;
- callbacks that write (``Callback.writes``: checkpoints, logs, progress) run on rank 0 only.

MPI itself comes from ``mpi4py`` and an MPI library that pip installs (``pip install 'neuronkit[mpi]'``); nothing of
MPI is written here. Every collective waits at most ``NEURONKIT_MPI_TIMEOUT`` seconds (default 300): a rank that
died or hangs makes the others stop with one line on stderr (``MPI_Abort``) instead of waiting forever.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

INSTALL = "pip install 'neuronkit[mpi]'"
TIMEOUT_ENV = "NEURONKIT_MPI_TIMEOUT"
_SIZE_ENV = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE")


class MPIUnavailable(RuntimeError):
    """MPI was asked for (or the process runs under ``mpiexec``) but ``mpi4py`` cannot be imported."""


class Communicator:
    """The single-process communicator (the default): rank 0 of 1; every collective is the identity.

    The seam ``fit`` talks to: ``allreduce(buf)`` sums a contiguous NumPy array over all ranks in place,
    ``broadcast(buf, root)`` copies root's array into every rank's in place, ``lowest(flag)`` is the lowest rank whose
    flag is true (None when none is), ``abort(message)`` stops every rank."""

    rank = 0
    size = 1
    name = "single process"

    def allreduce(self, buf: np.ndarray) -> np.ndarray:
        return buf

    def broadcast(self, buf: np.ndarray, root: int = 0) -> np.ndarray:
        return buf

    def lowest(self, flag: bool) -> int | None:
        return 0 if flag else None

    def abort(self, message: str, code: int = 1):
        print(message, file=sys.stderr, flush=True)
        raise SystemExit(code)


def import_mpi():
    """``mpi4py.MPI``, or ``MPIUnavailable`` saying how to install it."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        why = f"data-parallel training needs mpi4py and an MPI library ({e}); install them: {INSTALL}"
        raise MPIUnavailable(why) from None
    return MPI


class MPICommunicator(Communicator):
    """``Communicator`` over an ``mpi4py`` communicator (default ``MPI.COMM_WORLD``).

    Collectives are started non-blocking and waited for with a deadline of ``timeout`` seconds (default: the
    environment's ``NEURONKIT_MPI_TIMEOUT``, else 300): past it, this rank prints one line and calls ``MPI_Abort``,
    which ends every rank of the job."""

    name = "MPI"

    def __init__(self, comm=None, timeout: float | None = None):
        self.MPI = import_mpi()
        self.comm = comm if comm is not None else self.MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.timeout = _timeout(timeout)
        self.name = "MPI, " + " ".join(self.MPI.Get_library_version().splitlines()[0].split())

    def allreduce(self, buf):
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM), "summing gradients")
        return buf

    def broadcast(self, buf, root: int = 0):
        self._wait(self.comm.Ibcast(buf, root=root), f"receiving from rank {root}")
        return buf

    def lowest(self, flag: bool) -> int | None:
        box = np.array([self.rank if flag else self.size], dtype=np.int64)
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, box, op=self.MPI.MIN), "agreeing on errors")
        return None if int(box[0]) >= self.size else int(box[0])

    def abort(self, message: str, code: int = 1):
        print(message, file=sys.stderr, flush=True)
        # The launcher forwards each rank's output through its own process, which Abort tears down: give it a
        # moment to pass the line on (a full-suite run once lost it, leaving a failed job with an empty stderr).
        time.sleep(0.5)
        self.comm.Abort(code)

    def _wait(self, request, what: str) -> None:
        """Wait for ``request``; spin briefly, then poll with short sleeps (a core left to the other ranks when
        there are more ranks than cores); past the deadline abort the job with one line."""
        start = time.monotonic()
        pause = 0.0
        while not request.Test():
            waited = time.monotonic() - start
            if waited > self.timeout:
                self.abort(
                    f"neuronkit: rank {self.rank} of {self.size}: no answer from the other ranks after "
                    f"{self.timeout:g} s while {what} (a rank died or hangs); stopping all ranks "
                    f"(the limit is {TIMEOUT_ENV})"
                )
            if waited > 1e-3:
                pause = min(max(pause * 2, 2e-5), 1e-3)
                time.sleep(pause)


def _timeout(given) -> float:
    """The collectives' deadline in seconds: ``given``, else the environment's ``NEURONKIT_MPI_TIMEOUT``, else 300."""
    value = given if given is not None else os.environ.get(TIMEOUT_ENV, "300")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"{TIMEOUT_ENV}: expected a number of seconds > 0, got {value!r}")
    return seconds


def world_size() -> int:
    """The number of processes the launcher started, from its environment (1 when not under a launcher)."""
    for key in _SIZE_ENV:
        value = os.environ.get(key, "")
        if value.isdigit():
            return int(value)
    return 1


_WORLD = None


def get_communicator(kind="auto") -> Communicator:
    """The communicator for ``kind``: ``"auto"`` (MPI when the launcher started more than one process, else the
    single process), ``"mpi"`` (MPI even for one process), ``"single"``, or a ``Communicator`` itself.

    Raises ``MPIUnavailable`` (with the one-line install command) when MPI is needed and mpi4py is missing."""
    global _WORLD
    if isinstance(kind, Communicator):
        return kind
    if kind not in ("auto", "mpi", "single"):
        raise ValueError(f"distributed: expected 'auto', 'mpi', 'single' or a Communicator, got {kind!r}")
    if kind == "single" or (kind == "auto" and world_size() <= 1):
        return Communicator()
    if _WORLD is None:
        try:
            _WORLD = MPICommunicator()
        except MPIUnavailable as e:
            n = world_size()
            why = f"this process is one of {n} started by an MPI launcher, but {e}" if n > 1 else str(e)
            raise MPIUnavailable(why) from None
    return _WORLD


__all__ = ["INSTALL", "Communicator", "MPICommunicator", "MPIUnavailable", "get_communicator", "world_size"]
