"""The training loop's own overhead, counted in instructions instead of seconds (noise-free on a shared machine).

Runs a tiny MLP (16-16-16-10, batch 128, plain SGD) under valgrind's callgrind and counts the instructions per
training step of three programs: the engine loop doing ``fit``'s whole job by hand (the same shuffled batches, accuracy
per batch), the same with ``nn`` modules and the loss module, and ``fit`` itself. Each is run for two numbers of
steps and the difference is divided by the extra steps, so start-up and imports cancel (and the objects made before
the loop are frozen out of the garbage collector's full passes, which would otherwise move the count with any change to
what is imported). On a model this small the
step is almost all per-op and per-call overhead, so the ratio shows what the loop, loader, metric and optimizer glue
add; on the MNIST MLP the same absolute overhead is a much smaller share (see ``bench_fit.py``).

Needs valgrind (``apt-get install valgrind``). Runs single-threaded BLAS. Takes about two minutes.

    .venv/bin/python benchmarks/instr_fit.py
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
import sys

import numpy as np

VARIANTS = {
    "engine doing fit's work": "engine",
    "same, with nn modules": "modules",
    "fit": "fit",
}
STEPS = (20, 120)


def program(variant: str, steps: int) -> None:
    """One run: ``steps`` training steps of ``variant`` (called in the child process under valgrind)."""
    import neuronkit as nk
    from neuronkit import nn
    from neuronkit.train import fit

    nk.tune_allocator()  # as the command line and the other benchmarks do

    rng = np.random.default_rng(0)
    n = 128 * steps
    x, y = rng.random((n, 16), dtype=np.float32), rng.integers(0, 10, n)
    model = nn.Sequential(nn.Dense(16, 16, activation="relu"), nn.Dense(16, 16, activation="relu"), nn.Dense(16, 10))
    # Everything made so far (the imported modules' objects) is left out of the cyclic collector's full passes: their
    # cost grows with the number of objects imported, and when they fall inside the counted steps moves with it.
    gc.collect()
    gc.freeze()
    if variant == "fit":
        fit(
            model,
            (x, y),
            optimizer=nk.optim.SGD(model.parameters(), lr=0.1),
            epochs=1,
            batch_size=128,
            seed=0,
            progress=False,
        )
        return
    ps = list(model.parameters())
    loss_module = nn.losses.get_loss("cross_entropy")
    order, correct = np.random.default_rng(0).permutation(n), 0
    for i in range(0, n, 128):
        idx = order[i : i + 128]
        xb, yb = x.take(idx, axis=0), y.take(idx, axis=0)
        if variant == "modules":
            z = model(nk.Tensor(xb))
            loss = loss_module(z, yb)
        else:
            w1, b1, w2, b2, w3, b3 = ps
            h = nk.relu(nk.linear(nk.Tensor(xb), w1, b1))
            z = nk.linear(nk.relu(nk.linear(h, w2, b2)), w3, b3)
            loss = nk.softmax_cross_entropy(z, yb)
        loss.backward()
        with nk.no_grad():
            for p in ps:
                g = p.grad.data
                g *= 0.1
                p.data -= g
                p.grad = None
        correct += int(np.count_nonzero(z.data.argmax(axis=1) == yb))
        loss.item()


def count(variant: str, steps: int) -> int:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0")  # hash order changes the count
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--child",
        variant,
        str(steps),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stderr
    m = re.search(r"Collected : (\d+)", out)
    if not m:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(m.group(1))


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        program(sys.argv[2], int(sys.argv[3]))
        return
    if shutil.which("valgrind") is None:
        sys.exit("instr_fit.py needs valgrind (apt-get install valgrind)")
    per_step = {}
    for name, variant in VARIANTS.items():
        a, b = (count(variant, s) for s in STEPS)
        per_step[name] = (b - a) / (STEPS[1] - STEPS[0])
        print(f"  {name:25s} {per_step[name] / 1e3:8.1f} K instructions per step", flush=True)
    base = per_step["engine doing fit's work"]
    for name, v in per_step.items():
        print(f"  {name:25s} {v / base:.3f}x the engine doing fit's work")


if __name__ == "__main__":
    main()
