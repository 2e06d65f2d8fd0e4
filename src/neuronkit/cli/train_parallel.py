"""``mpiexec -n N neuronkit train ...``: the same run as ``neuronkit train ...``, trained by N processes.

Every rank resolves the settings, loads the data and builds the model (the same seed: the same model; rank 0's
weights are broadcast anyway). An error in that set-up (a bad flag, a missing file on one node) is printed once, by
the lowest rank that failed, and every rank exits with it. Rank 0 alone opens, locks and writes the run directory
(config, checkpoints, history, probes, model, test metrics) and prints; the other ranks train and write nothing. A
resumed run reads the checkpoint on every rank (the run directory must be visible to all of them, as on a shared
file system), and may use another number of ranks than the run before.
"""

from __future__ import annotations

import numpy as np

from ..train import latest_checkpoint
from ..train.distributed import Communicator, MPIUnavailable, get_communicator
from . import train_command as TC
from . import training as T
from .errors import CLIError
from .rundir import RunDir


def launcher_communicator() -> Communicator:
    """The MPI communicator when started by ``mpiexec``/``srun`` with more than one process, else the single one."""
    try:
        return get_communicator("auto")
    except MPIUnavailable as e:
        raise CLIError(str(e)) from None


def cmd_train_parallel(args, comm: Communicator) -> int:
    """``neuronkit train`` as rank ``comm.rank`` of ``comm.size``; the exit status."""
    error = None
    try:
        cfg, resume_run = TC.resolve_train_config(args)
        s = TC.set_up(cfg, resume_run)
    except Exception as e:  # reported below by the lowest failing rank only
        error = e
    first = comm.lowest(error is not None)
    if first is not None:
        if comm.rank == first:
            raise error
        return 1
    if comm.rank != 0:
        return _train_quietly(cfg, s, resume_run, comm)
    run = resume_run or RunDir.create(cfg.out, s.loaded.name)
    with run.lock():  # one job trains in a run directory at a time
        print(f"neuronkit: data-parallel training on {comm.size} processes ({comm.name})", flush=True)
        return TC.train_in_run(cfg, s, run, resume_run)


def _train_quietly(cfg, s, resume_run: RunDir | None, comm: Communicator) -> int:
    """A rank other than 0: the same trainer and callbacks but those that write, and no files; rank 0's status."""
    checkpoints = None
    if resume_run is not None and resume_run.checkpoints_path.exists():
        checkpoints = resume_run.checkpoints_path if latest_checkpoint(resume_run.checkpoints_path) else None
    cbs = TC.quiet_callbacks(cfg)
    trainer, _, gradcheck = T.make_trainer(cfg, s.model, s.loss, s.task, s.train, cbs, None, None)
    if gradcheck is not None:
        gradcheck.verbose = False
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        history = trainer.fit(
            s.train, epochs=cfg.epochs, batch_size=cfg.batch_size, validation=s.val, resume=checkpoints
        )
    if history.interrupted:
        return 130
    return 1 if TC.divergence(trainer) else 0
