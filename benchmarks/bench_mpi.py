"""Data-parallel training cost on this machine: the allreduce (latency and bandwidth) and the training step.

Run under MPI, one line of JSON from rank 0:

    OPENBLAS_NUM_THREADS=1 mpiexec -n N python bench_mpi.py [--steps 40]

- ``allreduce_ours_blocking``: bytes -> median seconds of neuronkit's allreduce (``MPICommunicator.allreduce``:
  mpi4py's ``Iallreduce`` waited for with the deadline loop) and of mpi4py's blocking ``Allreduce``, for float32
  buffers from 4 bytes to 16 MB (each after a barrier);
- ``step``: an MLP 784-256-128-10 (235,146 parameters, 0.94 MB of float32 gradients) trained by ``fit`` with a global
  batch of 256 on random MNIST-shaped data: the median step time on rank 0, and the part of it spent summing the
  gradients (the allreduce of ``DataParallel.sum_gradients``).

With N = 1 the MPI communicator is used all the same (``comm="mpi"``), so the figures include its overhead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import neuronkit as nk
from neuronkit import nn
from neuronkit.train.distributed import MPICommunicator, get_communicator

SIZES = [1, 256, 4096, 65536, 262144, 1048576, 4194304]  # float32 values


def time_allreduce(comm, n: int, reps: int) -> tuple:
    """Median seconds of (neuronkit's allreduce, mpi4py's blocking ``Allreduce``) of ``n`` float32 values,
    alternated in one loop so that both see the same load."""
    buf = np.ones(n, dtype=np.float32)
    mpi = comm.MPI
    for _ in range(3):
        comm.allreduce(buf)
    ours, blocking = [], []
    for _ in range(reps):
        comm.comm.Barrier()
        t0 = time.perf_counter()
        comm.allreduce(buf)
        ours.append(time.perf_counter() - t0)
        comm.comm.Barrier()
        t0 = time.perf_counter()
        comm.comm.Allreduce(mpi.IN_PLACE, buf, op=mpi.SUM)
        blocking.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(blocking)


class TimedMPI(MPICommunicator):
    """The MPI communicator, adding up the seconds spent in allreduce (rank 0's view)."""

    spent = 0.0

    def allreduce(self, buf):
        t0 = time.perf_counter()
        out = super().allreduce(buf)
        self.spent += time.perf_counter() - t0
        return out


def time_steps(comm, steps: int) -> dict:
    timed = TimedMPI()
    rng = np.random.default_rng(0)
    x = rng.random((256 * steps, 784), dtype=np.float32)  # pixel-like values in [0, 1)
    y = rng.integers(0, 10, 256 * steps)
    nk.manual_seed(0)
    model = nn.Sequential(
        nn.Dense(784, 256, activation="relu"), nn.Dense(256, 128, activation="relu"), nn.Dense(128, 10)
    )
    history = nk.train.fit(
        model, (x, y), optimizer="sgd", lr=0.01, batch_size=256, epochs=1, seed=0, progress=False, comm=timed
    )
    per_step = [s["time"] for s in history.steps[5:]]  # the first steps warm the allocator and BLAS
    return {
        "step_s": statistics.median(per_step),
        "allreduce_s_per_step": timed.spent / len(history.steps),
        "steps": len(history.steps),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    comm = get_communicator("mpi")
    result = {"ranks": comm.size, "mpi": comm.name}
    result["allreduce_ours_blocking"] = {str(n * 4): time_allreduce(comm, n, a.reps) for n in SIZES}
    result["step"] = time_steps(comm, a.steps)
    if comm.rank == 0:
        try:
            from threadpoolctl import threadpool_info

            result["blas"] = [
                (i.get("internal_api"), i.get("architecture"), i.get("num_threads")) for i in threadpool_info()
            ]
        except ImportError:
            pass
        print(json.dumps(result))


if __name__ == "__main__":
    main()
