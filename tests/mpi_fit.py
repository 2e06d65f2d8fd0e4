"""A small training run for tests/test_distributed.py, started alone or under ``mpiexec -n N``.

``python mpi_fit.py MODEL OUT [--epochs E] [--batch B] [--samples S] [--resume] [--die-at STEP]``: trains ``mlp``
(Dense+BatchNorm1d+Dropout) or ``lenet`` (Conv2d+BatchNorm2d+pool+Dropout) on the first S digits with SGD+momentum,
seed 0. Rank 0 writes OUT/weights.npz and OUT/history.json; every rank writes OUT/digest-RANK.json, the SHA-256 of
its weights after every epoch. ``--checkpoint`` saves checkpoints in OUT/ckpt, ``--resume`` continues from them;
``--die-at STEP`` makes the last rank kill itself (SIGKILL) at that step, ``--hang-at STEP`` makes it sleep there
(a rank that hangs); ``--bad-val RANK`` gives that rank (-1: every rank) a malformed validation set; ``--no-seed``
trains with ``seed=None``, ``--unseeded-dropout`` gives the Dropout layer an unseeded generator of its own.
"""

import argparse
import json
import os
import signal
import sys
import time

import numpy as np

import neuronkit as nk
from neuronkit import nn
from neuronkit.train import Callback, ModelCheckpoint
from neuronkit.train.distributed import get_communicator
from neuronkit.train.parallel import DataParallel


def build(model: str):
    nk.manual_seed(0)
    if model == "mlp":
        return nn.Sequential(
            nn.Dense(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.3), nn.Dense(32, 10)
        ), lambda x: x.reshape(len(x), 64)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1, activation="relu", max_pool=2),
        nn.Flatten(),
        nn.Dropout(0.25),
        nn.Dense(32, 10),
    ), lambda x: x.reshape(len(x), 1, 8, 8)


class Digests(Callback):
    """Every rank: the SHA-256 of its weights after each epoch; optionally dies at a step."""

    def __init__(self, parallel, die_at, hang_at):
        self.parallel, self.die_at, self.hang_at, self.digests = parallel, die_at, hang_at, []

    def on_step_end(self, trainer, logs):
        if trainer.comm.rank != trainer.comm.size - 1:
            return
        if trainer.step == self.die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if trainer.step == self.hang_at:
            time.sleep(600)

    def on_epoch_end(self, trainer, logs):
        self.digests.append(self.parallel.weights_digest())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--samples", type=int, default=203)
    ap.add_argument("--checkpoint", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--die-at", type=int, default=None)
    ap.add_argument("--hang-at", type=int, default=None)
    ap.add_argument("--bad-val", type=int, default=None)
    ap.add_argument("--no-seed", action="store_true")
    ap.add_argument("--unseeded-dropout", action="store_true")
    a = ap.parse_args()
    (x, y), _ = nk.data.load_dataset("digits")
    model, shape = build(a.model)
    if a.unseeded_dropout:
        next(m for m in model.modules() if isinstance(m, nn.Dropout)).generator = np.random.default_rng()
    x = shape(x[: a.samples].astype(np.float32) / 16.0)
    y = y[: a.samples]
    comm = get_communicator("auto")
    digests = Digests(DataParallel(comm, model), a.die_at, a.hang_at)
    val = (x[:40], y[:40])
    if a.bad_val in (-1, comm.rank):
        val = (x[:40], y[:40], y[:40])
    ckpt = os.path.join(a.out, "ckpt")
    cbs = [digests] + ([ModelCheckpoint(ckpt)] if a.checkpoint else [])
    opt = nk.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    history = nk.train.fit(
        model,
        (x, y),
        optimizer=opt,
        epochs=a.epochs,
        batch_size=a.batch,
        validation=val,
        callbacks=cbs,
        seed=None if a.no_seed else 0,
        progress=False,
        resume=ckpt if a.resume else None,
    )
    with open(os.path.join(a.out, f"digest-{comm.rank}.json"), "w") as f:
        json.dump(digests.digests, f)
    if comm.rank == 0:
        np.savez(os.path.join(a.out, "weights.npz"), **{k: np.asarray(v) for k, v in model.state_dict().items()})
        with open(os.path.join(a.out, "history.json"), "w") as f:
            json.dump({"epochs": history.epochs, "ranks": comm.size}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
