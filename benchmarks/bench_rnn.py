"""How fast is neuronkit's LSTM? One BiLSTM training epoch on SST-2, neuronkit vs PyTorch (CPU), in one process.

Model (issue 12): embedding 128 (vocabulary of the training split, about 15k words, padding row 0), a bidirectional
LSTM with hidden size 128 (1 layer), masked mean pooling of its outputs over the valid steps, and a linear classifier
256 -> 2; softmax cross-entropy, plain SGD (lr 0.1), batch 64, float32, identical initial weights. Data: the 67,349
phrases of GLUE SST-2 ``train_full.tsv`` (``--data-dir``, default ``$NEURONKIT_DATA`` or ``../shared/data`` from the
repository root), split on whitespace, in one seeded shuffled order; each batch is padded to its longest phrase and
passed with its lengths. Both sides see exactly the same batches:

- neuronkit: ``nn.Embedding``, ``nn.LSTM(bidirectional=True)`` called with ``lengths`` (it packs the batch, so
  padded positions are never computed), the sum of the (zero-padded) outputs over time divided by the lengths,
  ``nn.Linear``.
- PyTorch: ``nn.Embedding``, ``nn.LSTM`` on ``pack_padded_sequence(..., enforce_sorted=False)``, the same pooling
  after ``pad_packed_sequence``, ``nn.Linear``. ``--padded`` also times PyTorch on the padded batch without packing
  (a different function: the reverse direction starts in the padding), as people often run it.

Epochs are interleaved (order alternated each round); the figure is the median of ``--repeats`` rounds after one
warm-up, with the median of the per-round ratios beside it. ``--memory`` instead measures the peak memory of one
epoch of each side in a fresh subprocess: the peak resident set (VmHWM, reset after the set-up) minus the resident
set before the epoch, and for neuronkit also the peak of NumPy's allocations (tracemalloc).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_rnn.py [--repeats N]
        [--batches N] [--threads N] [--memory]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from bench_engine import BLAS_VARS, _load, print_env, sgd_step
from threadpoolctl import threadpool_limits
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import neuronkit as nk

EMB, HID, BATCH, LR, SEED = 128, 128, 64, 0.1, 0
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.join(HERE, "..", "..", "shared", "data")  # ../shared/data from the repository root


def load_sst2(data_dir: str):
    """(token id lists, labels, vocabulary size) of SST-2's training phrases; ids 0 = padding, 1.. = words."""
    path = os.path.join(data_dir, "text", "sst2", "glue", "train_full.tsv")
    with open(path, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f][1:]
    tokens = [r[0].split() for r in rows]
    labels = np.array([int(r[1]) for r in rows], dtype=np.int64)
    counts = collections.Counter(w for t in tokens for w in t)
    vocab = {w: i + 1 for i, (w, _) in enumerate(counts.most_common())}
    return [np.array([vocab[w] for w in t], dtype=np.int64) for t in tokens], labels, len(vocab) + 1


def make_batches(ids, labels, limit=None):
    """Shuffled batches of (padded ids (B, T), lengths (B,), labels (B,)); phrases of no token are skipped."""
    order = [i for i in np.random.default_rng(SEED).permutation(len(ids)) if len(ids[i])]
    batches = []
    for s in range(0, len(order), BATCH):
        idx = order[s : s + BATCH]
        lens = np.array([len(ids[i]) for i in idx], dtype=np.int64)
        x = np.zeros((len(idx), lens.max()), dtype=np.int64)
        for r, i in enumerate(idx):
            x[r, : lens[r]] = ids[i]
        batches.append((x, lens, labels[idx]))
    return batches[:limit]


def init_params(vocab: int) -> dict:
    """PyTorch-named float32 weights: embedding N(0, 1) (row 0 zero), LSTM and linear U(-1/sqrt(fan), +)."""
    rng = np.random.default_rng(SEED + 1)
    p = {"emb.weight": rng.standard_normal((vocab, EMB)).astype(np.float32)}
    p["emb.weight"][0] = 0
    k = 1 / np.sqrt(HID)
    for sfx in ("", "_reverse"):
        p[f"lstm.weight_ih_l0{sfx}"] = rng.uniform(-k, k, (4 * HID, EMB)).astype(np.float32)
        p[f"lstm.weight_hh_l0{sfx}"] = rng.uniform(-k, k, (4 * HID, HID)).astype(np.float32)
        p[f"lstm.bias_ih_l0{sfx}"] = rng.uniform(-k, k, 4 * HID).astype(np.float32)
        p[f"lstm.bias_hh_l0{sfx}"] = rng.uniform(-k, k, 4 * HID).astype(np.float32)
    k = 1 / np.sqrt(2 * HID)
    p["fc.weight"] = rng.uniform(-k, k, (2, 2 * HID)).astype(np.float32)
    p["fc.bias"] = rng.uniform(-k, k, 2).astype(np.float32)
    return p


class NkModel(nk.nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.emb = nk.nn.Embedding(vocab, EMB, padding_idx=0)
        self.lstm = nk.nn.LSTM(EMB, HID, bidirectional=True)
        self.fc = nk.nn.Linear(2 * HID, 2)

    def forward(self, x, lengths):
        out, _ = self.lstm(self.emb(x), lengths=lengths)  # (B, T, 2H), zero at padded steps
        pooled = nk.sum(out, axis=1) / nk.Tensor(lengths[:, None].astype(np.float32))
        return self.fc(pooled)


class TorchModel(torch.nn.Module):
    def __init__(self, vocab, packed=True):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, EMB, padding_idx=0)
        self.lstm = torch.nn.LSTM(EMB, HID, bidirectional=True, batch_first=True)
        self.fc = torch.nn.Linear(2 * HID, 2)
        self.packed = packed

    def forward(self, x, lengths):
        e = self.emb(x)
        if self.packed:
            p = pack_padded_sequence(e, lengths, batch_first=True, enforce_sorted=False)
            out = pad_packed_sequence(self.lstm(p)[0], batch_first=True, total_length=x.shape[1])[0]
        else:
            out = self.lstm(e)[0] * (torch.arange(x.shape[1])[None, :] < lengths[:, None])[..., None]
        return self.fc(out.sum(dim=1) / lengths[:, None].to(out.dtype))


def epoch_neuronkit(init, vocab, batches):
    model = NkModel(vocab)
    model.load_state_dict(init)
    params = list(model.parameters())
    total, t0 = 0.0, time.perf_counter()
    for x, lens, y in batches:
        loss = nk.cross_entropy(model(x, lens), y)
        loss.backward()
        sgd_step(params, LR)
        total += loss.item()
    return time.perf_counter() - t0, total / len(batches)


def epoch_torch(init, vocab, batches, packed=True):
    model = TorchModel(vocab, packed)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
    params = list(model.parameters())
    tb = [(torch.from_numpy(x), torch.from_numpy(lens), torch.from_numpy(y)) for x, lens, y in batches]
    total, t0 = 0.0, time.perf_counter()
    for x, lens, y in tb:
        loss = F.cross_entropy(model(x, lens), y)
        loss.backward()
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-LR)
                p.grad = None
        total += loss.item()
    return time.perf_counter() - t0, total / len(batches)


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def memory_child(side: str, data_dir: str, limit) -> None:
    """One epoch of ``side`` in this (fresh) process; prints peak RSS growth (MiB) and, for neuronkit, NumPy's peak."""
    import tracemalloc

    ids, labels, vocab = load_sst2(data_dir)
    batches, init = make_batches(ids, labels, limit), init_params(vocab)
    run = {"neuronkit": epoch_neuronkit, "pytorch": epoch_torch}[side]
    before = _rss_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM (the peak resident set) to the current resident set
    if side == "neuronkit":
        tracemalloc.start()
    run(init, vocab, batches)
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if side == "neuronkit" else float("nan")
    print(f"{(_rss_kib('VmHWM') - before) / 1024:.1f} {traced:.1f}")


def measure_memory(args) -> None:
    print("\npeak memory of one epoch, each side in a fresh process (MiB above the resident set before the epoch):")
    for side in ("neuronkit", "pytorch"):
        cmd = [sys.executable, __file__, "--memory-child", side, "--data-dir", args.data_dir]
        cmd += ["--batches", str(args.batches)] if args.batches else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        rss, traced = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[-2:]
        extra = f", NumPy allocations (tracemalloc) peak {traced} MiB" if side == "neuronkit" else ""
        print(f"  {side:10} peak RSS growth {rss} MiB{extra}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="timed epochs per side (default 5)")
    ap.add_argument("--batches", type=int, help="only the first N batches of the epoch (a quick run)")
    ap.add_argument("--threads", type=int, help="limit BLAS/OpenMP and torch threads (default: library defaults)")
    ap.add_argument("--padded", action="store_true", help="also time PyTorch on padded batches without packing")
    ap.add_argument("--memory", action="store_true", help="measure peak memory instead of time")
    ap.add_argument("--data-dir", default=os.environ.get("NEURONKIT_DATA", DEFAULT_DATA))
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    tuned = nk.tune_allocator()  # what the command line does first (as the other benchmarks)
    if args.threads:
        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args.memory_child, args.data_dir, args.batches)
    print("neuronkit BiLSTM text benchmark (SST-2). Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset.")
    print_env({k: os.environ.get(k) for k in BLAS_VARS}, tuned)
    print(f"load average (1/5/15 min) at start: {_load()}")
    ids, labels, vocab = load_sst2(args.data_dir)
    batches, init = make_batches(ids, labels, args.batches), init_params(vocab)
    rows = sum(int(b[1].sum()) for b in batches)
    padded = sum(b[0].size for b in batches)
    print(
        f"\n{len(batches)} batches of {BATCH} ({rows} tokens, {rows / padded:.0%} of the padded positions), vocabulary "
        f"{vocab}; embedding {EMB}, BiLSTM hidden {HID}, SGD lr {LR}, float32"
    )
    if args.memory:
        return measure_memory(args)
    impls = {"neuronkit": epoch_neuronkit, "pytorch": epoch_torch}
    if args.padded:
        impls["pytorch padded"] = lambda i, v, b: epoch_torch(i, v, b, packed=False)
    names = list(impls)
    times, losses = {k: [] for k in names}, {}
    for r in range(args.repeats + 1):
        for k in names if r % 2 == 0 else names[::-1]:
            dt, losses[k] = impls[k](init, vocab, batches)
            if r:
                times[k].append(dt)
        if r:
            print(f"  round {r}: " + ", ".join(f"{k} {times[k][-1]:.2f}s" for k in names), flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n{'implementation':<16}{'epoch (s)':>10}{'min (s)':>9}{'ms/batch':>10}{'mean loss':>11}")
    for k in names:
        print(f"{k:<16}{med[k]:>10.2f}{min(times[k]):>9.2f}{med[k] / len(batches) * 1e3:>10.2f}{losses[k]:>11.5f}")
    per_round = statistics.median(a / b for a, b in zip(times["neuronkit"], times["pytorch"]))
    print(
        f"\nneuronkit / pytorch (packed): {med['neuronkit'] / med['pytorch']:.2f}x (ratio of medians), "
        f"{per_round:.2f}x (median of per-round ratios)"
    )
    if args.padded:
        print(f"neuronkit / pytorch padded: {med['neuronkit'] / med['pytorch padded']:.2f}x")
    print(f"mean loss |neuronkit - pytorch| = {abs(losses['neuronkit'] - losses['pytorch']):.1e} (float32 rounding)")
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
