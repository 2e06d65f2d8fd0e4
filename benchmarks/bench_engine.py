"""How fast is neuronkit's engine? One MLP training epoch, side by side with PyTorch (CPU) and hand-written NumPy.

The model is an MLP 784-256-128-10 (ReLU, softmax cross-entropy), trained for one epoch with plain SGD (lr 0.1,
batch 128, float32; then batch 32 and batch 512, see ``--batch-sizes``) on 60,000 random samples (seeded inputs in
[0, 1), random labels 0..9; the last partial batch is included). Three implementations run in this one process,
from identical initial weights:

- neuronkit: leaf tensors, ``linear``/``relu``/``cross_entropy``, ``loss.backward()``, in-place SGD under no_grad.
- neuronkit fused: the same with each hidden layer's ReLU fused into its op, ``linear(x, w, b, activation="relu")``:
  what ``Dense(..., activation="relu")`` runs (one array and one graph node fewer per layer; the same bits).
- PyTorch: ``torch.nn.functional`` on CPU, ``p.add_(p.grad, alpha=-lr)``, grads set to None.
- NumPy: forward and backward written by hand; the floor any NumPy-based engine can hope to reach.

Each epoch time is the median of ``--repeats`` runs after one warm-up round; the three are interleaved (and their order
rotated) so machine noise hits them alike. The losses are printed as a sanity check: they should agree to ~1e-3.
Also timed: the cost of one tiny op with gradient tracking (``a * b`` on two (4,) tensors), neuronkit vs PyTorch.

Run it with the OpenBLAS tuning variables unset, as ``make bench`` does:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_engine.py [--repeats N] [--quick]

On a small shared machine, multi-threaded BLAS was seen to slow down 10-30x while other work held a core (its threads
wait for each other), so an epoch took 10+ s instead of 1 s. ``--threads 1`` avoids that and still compares fairly.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_info, threadpool_limits

import neuronkit as nk

SIZES = (784, 256, 128, 10)
LR, BATCH, SEED = 0.1, 128, 0
BLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def make_data(n: int):
    """``n`` random samples: float32 inputs in [0, 1) (like pixel intensities) and int64 labels in 0..9."""
    rng = np.random.default_rng(SEED)
    return rng.random((n, SIZES[0]), dtype=np.float32), rng.integers(0, SIZES[-1], n, dtype=np.int64)


def init_params():
    """[W1, b1, W2, b2, W3, b3] as float32 arrays, W (out, in); PyTorch's nn.Linear default (bound 1/sqrt(fan_in))."""
    rng = np.random.default_rng(SEED + 1)
    params = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        bound = 1.0 / np.sqrt(fan_in)
        params.append(rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32))
        params.append(rng.uniform(-bound, bound, fan_out).astype(np.float32))
    return params


def sgd_step(ps, lr: float) -> None:
    """The hand-written update of the reference loops: ``p -= lr * grad`` in place, gradients dropped."""
    with nk.no_grad():
        for p in ps:
            g = p.grad.data
            g *= lr
            p.data -= g
            p.grad = None


def epoch_neuronkit(init, X, Y, batch=BATCH, fused=False):
    ps = [nk.Tensor(p.copy(), requires_grad=True) for p in init]
    W1, b1, W2, b2, W3, b3 = ps
    total, steps = 0.0, 0
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        x = nk.Tensor(X[i : i + batch])
        if fused:
            h = nk.linear(x, W1, b1, activation="relu")
            h = nk.linear(h, W2, b2, activation="relu")
        else:
            h = nk.relu(nk.linear(x, W1, b1))
            h = nk.relu(nk.linear(h, W2, b2))
        loss = nk.softmax_cross_entropy(nk.linear(h, W3, b3), Y[i : i + batch])
        loss.backward()
        sgd_step(ps, LR)
        last = loss.item()
        total, steps = total + last, steps + 1
    return time.perf_counter() - t0, total / steps, last


def epoch_torch(init, X, Y, batch=BATCH):
    ps = [torch.tensor(p, requires_grad=True) for p in init]
    W1, b1, W2, b2, W3, b3 = ps
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    total, steps = 0.0, 0
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        h = F.relu(F.linear(Xt[i : i + batch], W1, b1))
        h = F.relu(F.linear(h, W2, b2))
        loss = F.cross_entropy(F.linear(h, W3, b3), Yt[i : i + batch])
        loss.backward()
        with torch.no_grad():
            for p in ps:
                p.add_(p.grad, alpha=-LR)
                p.grad = None
        last = loss.item()
        total, steps = total + last, steps + 1
    return time.perf_counter() - t0, total / steps, last


def epoch_neuronkit_fused(init, X, Y, batch=BATCH):
    """The same model with each hidden layer's ReLU fused into its linear op."""
    return epoch_neuronkit(init, X, Y, batch, fused=True)


FLOOR_BLAS = {"threads": None}
"""OpenBLAS's threads for the NumPy floor: what it had before neuronkit ran (whose pool of threads, where it is on,
sets OpenBLAS to one thread while it runs: see neuronkit/jit_pool.py)."""


def epoch_floor(init, X, Y, batch=BATCH):
    """``epoch_numpy`` with OpenBLAS's own threads, as NumPy code runs without neuronkit."""
    with threadpool_limits(FLOOR_BLAS["threads"], user_api="blas"):
        return epoch_numpy(init, X, Y, batch)


def epoch_numpy(init, X, Y, batch=BATCH):
    ps = [p.copy() for p in init]
    W1, b1, W2, b2, W3, b3 = ps
    total, steps = 0.0, 0
    t0 = time.perf_counter()
    for i in range(0, len(X), batch):
        x, y = X[i : i + batch], Y[i : i + batch]
        n = len(y)
        rows = np.arange(n)
        # forward
        h1 = x @ W1.T
        h1 += b1
        np.maximum(h1, 0, out=h1)
        h2 = h1 @ W2.T
        h2 += b2
        np.maximum(h2, 0, out=h2)
        z = h2 @ W3.T
        z += b3
        z -= z.max(axis=1, keepdims=True)  # stable softmax
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - z[rows, y]))
        # backward: d loss / d z = (softmax - onehot) / n
        g = e
        g /= s
        g[rows, y] -= 1
        g /= n
        dW3, db3 = g.T @ h2, g.sum(axis=0)
        g = g @ W3
        g *= h2 > 0  # ReLU backward
        dW2, db2 = g.T @ h1, g.sum(axis=0)
        g = g @ W2
        g *= h1 > 0
        dW1, db1 = g.T @ x, g.sum(axis=0)
        for p, gp in zip(ps, (dW1, db1, dW2, db2, dW3, db3)):
            gp *= LR
            p -= gp
        total, steps = total + loss, steps + 1
    return time.perf_counter() - t0, total / steps, loss


def tiny_op_us(lib: str, n: int, repeats: int) -> float:
    """Median microseconds of one ``a * b`` on two (4,) float32 tensors that require grad (graph recorded)."""
    v = np.arange(1, 5, dtype=np.float32)
    if lib == "neuronkit":
        a, b = nk.tensor(v, requires_grad=True), nk.tensor(v + 1, requires_grad=True)
    else:
        a, b = torch.tensor(v, requires_grad=True), torch.tensor(v + 1, requires_grad=True)
    times = []
    for _ in range(repeats + 1):
        t0 = time.perf_counter()
        for _ in range(n):
            a * b
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:]) / n * 1e6


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def limit_threads(n: int | None) -> None:
    """``n`` threads for OpenBLAS/OpenMP, neuronkit's kernel pool and torch (None: leave the defaults)."""
    if n:  # fewer threads than cores is far less sensitive to other work on the machine
        threadpool_limits(n)
        torch.set_num_threads(n)
        if hasattr(nk.backend, "set_num_threads"):  # (absent before the kernel pool, for A/B runs against old code)
            nk.backend.set_num_threads(n)
            nk.backend.GEMM_PIECES = n == 1  # what the environment variables would tell it


def _pool_state() -> str:
    """Whether neuronkit's one pool of threads can run here (it starts with the first convolution)."""
    if not hasattr(nk.backend, "pool"):
        return "none (older code)"
    if nk.backend.jit() is None:
        return "off (compiled kernels off)"
    from neuronkit import jit_pool

    if jit_pool.BLAS is None:
        return "off (NumPy's OpenBLAS not found)"
    return "available: starts with the first convolution, then OpenBLAS runs on 1 thread"


def _numba_layer() -> str:
    try:
        import numba

        return f"{numba.config.THREADING_LAYER} layer"
    except ImportError:
        return "not installed"


def print_env(env_blas: dict, tuned: bool) -> None:
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, torch {torch.__version__}, "
        f"neuronkit {nk.__version__}; {os.cpu_count()} CPUs ({platform.machine()}, {platform.processor() or '?'})"
    )
    blas = next((w[10:] for w in torch.__config__.show().replace(",", " ").split() if w.startswith("BLAS_INFO=")), "?")
    print(f"torch.get_num_threads() = {torch.get_num_threads()}; torch BLAS_INFO={blas} (built in; not listed below)")
    print("threadpoolctl.threadpool_info():")
    for info in threadpool_info():
        arch = info.get("architecture") or info.get("corename") or "-"
        print(
            f"  {info['user_api']:7} {info['internal_api']:9} {info.get('version') or '?':10} arch={arch:10} "
            f"threads={info['num_threads']}  {os.path.basename(info['filepath'])}"
        )
    for k, v in env_blas.items():
        print(f"{k}: {'set to ' + repr(v) if v is not None else 'unset'} in this process")
    pool = nk.backend.num_threads() if hasattr(nk.backend, "num_threads") else "none"
    pieces = nk.backend.gemm_in_pieces() if hasattr(nk.backend, "gemm_in_pieces") else "none"
    print(f"neuronkit kernel threads (backend.num_threads): {pool}; GEMMs in pieces: {pieces}; load: {_load()}")
    print(f"one pool of threads for GEMMs and kernels (backend.pool, Numba's {_numba_layer()}): {_pool_state()}")
    print(f"glibc malloc tuned (neuronkit.tune_allocator): {tuned}")
    if any(v is not None for v in env_blas.values()):
        print("NOTE: run with `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ...` for comparable BLAS numbers")


def run_batch(batch: int, X, Y, init, repeats: int) -> None:
    """Interleaved epochs of the three implementations at one batch size; prints the times, ratios and losses."""
    steps = -(-len(X) // batch)
    print(
        f"\nMLP {'-'.join(map(str, SIZES))}, SGD lr {LR}, batch {batch}, float32, {len(X)} samples "
        f"({steps} steps/epoch); median of {repeats} epochs after 1 warm-up, interleaved\n"
    )

    impls = {"neuronkit": epoch_neuronkit, "neuronkit fused": epoch_neuronkit_fused}
    impls.update(pytorch=epoch_torch, numpy=epoch_floor)
    names = list(impls)
    times = {k: [] for k in names}
    losses = {}
    for r in range(repeats + 1):
        for k in names[r % len(names) :] + names[: r % len(names)]:  # rotate the order each round
            dt, mean_loss, last_loss = impls[k](init, X, Y, batch)
            losses[k] = (mean_loss, last_loss)
            if r:
                times[k].append(dt)
        if r:
            print(f"  batch {batch} round {r}: " + ", ".join(f"{k} {times[k][-1]:.3f}s" for k in names), flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'implementation':<16}{'epoch (s)':>11}{'min (s)':>10}{'ms/step':>9}{'mean loss':>12}{'last loss':>12}")
    for k in names:
        print(
            f"{k:<16}{med[k]:>11.3f}{min(times[k]):>10.3f}{med[k] / steps * 1e3:>9.2f}"
            f"{losses[k][0]:>12.6f}{losses[k][1]:>12.6f}"
        )
    best = {k: min(v) for k, v in times.items()}
    print()
    for what, t in (("median", med), ("min", best)):
        print(
            f"batch {batch}, ratios of {what:6}  neuronkit / numpy floor: "
            f"{t['neuronkit'] / t['numpy']:.3f}x   fused / numpy floor: {t['neuronkit fused'] / t['numpy']:.3f}x   "
            f"neuronkit / pytorch: {t['neuronkit'] / t['pytorch']:.2f}x   "
            f"fused / pytorch: {t['neuronkit fused'] / t['pytorch']:.2f}x   "
            f"pytorch / numpy floor: {t['pytorch'] / t['numpy']:.2f}x"
        )
    # float32 rounding differences grow over an epoch, so the last batch drifts more than the epoch mean
    spread = [max(abs(losses[a][i] - losses[b][i]) for a in names for b in names) for i in (0, 1)]
    verdict = "OK" if spread[0] < 1e-3 else "MISMATCH"
    print(f"loss agreement, max |diff|: mean loss {spread[0]:.1e} ({verdict}), last batch {spread[1]:.1e}")


def main(argv=None) -> None:
    tuned = nk.tune_allocator()  # what the command line does first: freed array memory is reused
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed epochs per implementation (default 5)")
    ap.add_argument("--quick", action="store_true", help="10,000 samples and fewer tiny ops (a smoke run)")
    ap.add_argument(
        "--batch-sizes",
        type=lambda v: [int(b) for b in v.split(",")],
        default=[BATCH, 32, 512],
        help="comma-separated batch sizes, each timed in its own interleaved epochs (default 128,32,512)",
    )
    ap.add_argument("--threads", type=int, help="limit BLAS/OpenMP and torch threads (default: library defaults)")
    args = ap.parse_args(argv)
    limit_threads(args.threads)
    FLOOR_BLAS["threads"] = max(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")
    n_samples, n_ops = (10_000, 50_000) if args.quick else (60_000, 200_000)
    env_blas = {k: os.environ.get(k) for k in BLAS_VARS}

    print(
        "neuronkit engine benchmark. Run as: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "
        ".venv/bin/python benchmarks/bench_engine.py"
    )
    print_env(env_blas, tuned)
    print(f"load average (1/5/15 min) at start: {_load()}")
    X, Y = make_data(n_samples)
    init = init_params()
    for batch in args.batch_sizes:
        run_batch(batch, X, Y, init, args.repeats)

    us = {lib: tiny_op_us(lib, n_ops, args.repeats) for lib in ("neuronkit", "pytorch")}
    print(
        f"\ntiny op a * b, shape (4,), requires_grad (median of {args.repeats} x {n_ops} ops): "
        f"neuronkit {us['neuronkit']:.2f} us, pytorch {us['pytorch']:.2f} us, "
        f"ratio {us['neuronkit'] / us['pytorch']:.2f}x"
    )
    print(f"load average at end: {_load()}  (this benchmark alone adds about 1-2 on 2 cores; more = other work)")


if __name__ == "__main__":
    main()
