"""How fast does a small transformer encoder train? One SST-2 epoch, neuronkit vs PyTorch (CPU), in one process.

Model (issue 12): token embedding (vocabulary of the training phrases, 128) + positions (learned by default, or
``--positions sinusoidal``), a 2-layer transformer encoder (d_model 128, 4 heads, feed-forward 512, ReLU, dropout 0.1,
post-norm, key padding masks), mean pooling over the real tokens (``neuronkit.masked_mean_pool``; the same formula
inline in PyTorch), a linear classifier to 2 classes; softmax cross-entropy, Adam lr 1e-3, batch 64, float32. Data: the
67,349 phrases of GLUE SST-2 ``train_full.tsv``, tokenized by whitespace after lower-casing, shuffled once (seeded) and
padded per batch to the batch's longest phrase: the same batches for both libraries. PyTorch runs
``nn.TransformerEncoder`` (``enable_nested_tensor=False``: training takes the same path either way) and
``torch.optim.Adam``; both models start from the same weights (copied from PyTorch's initialisation) at every epoch.

Epochs are interleaved between the libraries (order alternated each round); the figure is the median of
``--repeats`` rounds. Peak memory is measured separately, each library in a fresh subprocess running ``--memory-steps``
training steps: the growth of the peak resident set (VmHWM) over the resident set after the model, optimizer and
batches were built (so it counts activations, gradients and optimizer state, and allocator slack).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_transformer.py [--repeats N]
        [--steps N] [--positions learned|sinusoidal] [--data-dir DIR]

``--steps N`` times the first N batches of the epoch only (a smoke run or a quick profile).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

D_MODEL, HEADS, FF, LAYERS, DROPOUT, BATCH, LR, SEED, MAX_LEN = 128, 4, 512, 2, 0.1, 64, 1e-3, 0, 128
HERE = os.path.dirname(os.path.abspath(__file__))


# -- data -------------------------------------------------------------------------------------------------------------
def data_file(data_dir: str | None) -> str:
    root = data_dir or os.environ.get("NEURONKIT_DATA") or os.path.join(HERE, "..", "..", "shared", "data")
    path = os.path.join(root, "text", "sst2", "glue", "train_full.tsv")
    if not os.path.exists(path):
        raise SystemExit(f"bench_transformer: {path} not found; pass --data-dir DIR (the folder holding text/sst2)")
    return path


def load_batches(path: str, batch: int = BATCH, seed: int = SEED):
    """(vocabulary size, [(tokens (B, T) int64, lengths (B,) int64, labels (B,) int64), ...]) in epoch order."""
    words, labels = [], []
    with open(path, encoding="utf-8") as f:
        next(f)  # header: sentence<TAB>label
        for line in f:
            text, _, label = line.rstrip("\n").rpartition("\t")
            words.append(text.lower().split()[:MAX_LEN])
            labels.append(int(label))
    vocab = {"<pad>": 0}
    ids = [np.array([vocab.setdefault(w, len(vocab)) for w in ws], dtype=np.int64) for ws in words]
    order = np.random.default_rng(seed).permutation(len(ids))
    y = np.array(labels, dtype=np.int64)
    batches = []
    for i in range(0, len(order), batch):
        idx = order[i : i + batch]
        lengths = np.array([len(ids[j]) for j in idx], dtype=np.int64)
        tokens = np.zeros((len(idx), max(int(lengths.max()), 1)), dtype=np.int64)
        for r, j in enumerate(idx):
            tokens[r, : lengths[r]] = ids[j]
        batches.append((tokens, lengths, y[idx]))
    return len(vocab), batches


# -- the two models ---------------------------------------------------------------------------------------------------
def torch_model(vocab: int, positions: str):
    import torch

    class Classifier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(vocab, D_MODEL, padding_idx=0)
            if positions == "learned":
                self.pos = torch.nn.Parameter(torch.randn(MAX_LEN, D_MODEL) * 0.02)
            else:
                self.register_buffer("pos", torch.from_numpy(sinusoid(MAX_LEN, D_MODEL)), persistent=False)
            layer = torch.nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, DROPOUT, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = torch.nn.Linear(D_MODEL, 2)

        def forward(self, tokens, lengths):
            t = tokens.shape[1]
            pad = torch.arange(t)[None, :] >= lengths[:, None]  # (B, T), True = padding
            h = self.encoder(self.embed(tokens) + self.pos[:t], src_key_padding_mask=pad)
            keep = (~pad).unsqueeze(-1).to(h.dtype)
            return self.head((h * keep).sum(1) / lengths.clamp(min=1).unsqueeze(-1).to(h.dtype))  # masked mean

    return Classifier()


def sinusoid(length: int, d: int):
    pos = np.arange(length)[:, None]
    freq = np.exp(np.arange(0, d, 2) * (-math.log(10000.0) / d))
    pe = np.zeros((length, d))
    pe[:, 0::2], pe[:, 1::2] = np.sin(pos * freq), np.cos(pos * freq)
    return pe.astype(np.float32)


def neuronkit_model(vocab: int, positions: str):
    import neuronkit as nk
    from neuronkit import nn

    class Classifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(vocab, D_MODEL, padding_idx=0)
            if positions == "learned":
                self.pos = nn.LearnedPositionalEmbedding(D_MODEL, MAX_LEN)
            else:
                self.pos = nn.SinusoidalPositionalEncoding(D_MODEL, MAX_LEN)
            layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FF, DROPOUT)
            self.encoder = nn.TransformerEncoder(layer, LAYERS)
            self.head = nn.Linear(D_MODEL, 2)

        def forward(self, tokens, lengths):
            pad = nn.padding_mask(lengths, tokens.shape[1])  # (B, T), True = padding
            h = self.encoder(self.pos(self.embed(tokens)), src_key_padding_mask=pad)
            return self.head(nk.masked_mean_pool(h, lengths))  # mean over each phrase's real tokens

    return Classifier()


def initial_state(vocab: int, positions: str) -> dict:
    """PyTorch's initial weights as arrays, named as in PyTorch (the neuronkit model uses the same names, with the
    learned position table as ``pos.weight``)."""
    import torch

    torch.manual_seed(SEED)
    return {k: v.detach().numpy().copy() for k, v in torch_model(vocab, positions).state_dict().items()}


def load_neuronkit(model, state: dict) -> None:
    model.load_state_dict({("pos.weight" if k == "pos" else k): v for k, v in state.items()})


# -- timed epochs -----------------------------------------------------------------------------------------------------
def epoch_neuronkit(vocab, positions, state, batches):
    import neuronkit as nk

    nk.manual_seed(SEED)
    model = neuronkit_model(vocab, positions)
    load_neuronkit(model, state)
    opt = nk.optim.Adam(model.parameters(), lr=LR)
    total, t0, c0 = 0.0, time.perf_counter(), time.process_time()
    for tokens, lengths, y in batches:
        loss = nk.cross_entropy(model(nk.Tensor(tokens), nk.Tensor(lengths)), y)
        loss.backward()
        opt.step_and_zero_grad()
        total += loss.item()
    return time.perf_counter() - t0, time.process_time() - c0, total


def epoch_torch(vocab, positions, state, batches):
    import torch

    torch.manual_seed(SEED)
    model = torch_model(vocab, positions)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    data = [(torch.from_numpy(t), torch.from_numpy(n), torch.from_numpy(y)) for t, n, y in batches]
    total, t0, c0 = 0.0, time.perf_counter(), time.process_time()
    for tokens, lengths, y in data:
        loss = torch.nn.functional.cross_entropy(model(tokens, lengths), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        total += loss.item()
    return time.perf_counter() - t0, time.process_time() - c0, total


# -- peak memory, each library in its own process ---------------------------------------------------------------------
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def measure_memory(lib: str, steps: int, positions: str, data_dir) -> None:
    """Child process: build everything, then report peak RSS growth over ``steps`` training steps (printed in MiB)."""
    vocab, batches = load_batches(data_file(data_dir))
    batches = batches[:steps]
    state = initial_state(vocab, positions)
    run = epoch_neuronkit if lib == "neuronkit" else epoch_torch
    run(vocab, positions, state, batches[:1])  # warm-up: imports, first allocations
    base = _status_kib("VmRSS")
    # reset the high-water mark so VmHWM measures the timed steps only
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    run(vocab, positions, state, batches)
    print(f"{(_status_kib('VmHWM') - base) / 1024:.1f}")


def peak_memory(lib: str, steps: int, positions: str, data_dir, threads) -> str:
    cmd = [sys.executable, __file__, "--measure-memory", lib, "--memory-steps", str(steps), "--positions", positions]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    if threads:
        cmd += ["--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    return (
        out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else f"failed: {out.stderr}"
    )


# -- main -------------------------------------------------------------------------------------------------------------
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    ap.add_argument("--steps", type=int, help="time only the first N batches of the epoch (default: all)")
    ap.add_argument("--positions", choices=["learned", "sinusoidal"], default="learned")
    ap.add_argument("--data-dir", help="folder holding text/sst2/glue (default $NEURONKIT_DATA or ../shared/data)")
    ap.add_argument("--threads", type=int, help="limit BLAS/OpenMP and torch threads (default: library defaults)")
    ap.add_argument("--memory-steps", type=int, default=100, help="training steps of the peak-memory runs")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--measure-memory", choices=["neuronkit", "pytorch"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import neuronkit as nk

    tuned = nk.tune_allocator()  # what the command line does first (as the other benchmarks)
    if args.measure_memory:
        return measure_memory(args.measure_memory, args.memory_steps, args.positions, args.data_dir)

    if args.threads:  # on a loaded machine, 1 thread each is far less sensitive to the other work
        import torch
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
        torch.set_num_threads(args.threads)
    if args.measure_memory:
        return measure_memory(args.measure_memory, args.memory_steps, args.positions, args.data_dir)
    sys.path.insert(0, HERE)
    from bench_engine import BLAS_VARS, _load, print_env

    print_env({k: os.environ.get(k) for k in BLAS_VARS}, tuned)
    print(f"load average at start: {_load()}")
    t0 = time.perf_counter()
    vocab, batches = load_batches(data_file(args.data_dir))
    if args.steps:
        batches = batches[: args.steps]
    tokens = sum(int(n.sum()) for _, n, _ in batches)
    padded = sum(t.size for t, _, _ in batches)
    print(
        f"SST-2 train_full: {len(batches)} batches of {BATCH}, vocabulary {vocab}, {tokens} tokens ({padded} with "
        f"padding), loaded in {time.perf_counter() - t0:.1f} s; positions {args.positions}"
    )
    state = initial_state(vocab, args.positions)
    impls = {"neuronkit": epoch_neuronkit, "pytorch": epoch_torch}
    times, cpu, totals = {k: [] for k in impls}, {k: [] for k in impls}, {}
    for r in range(args.repeats):
        for k in list(impls)[r % 2 :] + list(impls)[: r % 2]:
            dt, dc, totals[k] = impls[k](vocab, args.positions, state, batches)
            times[k].append(dt)
            cpu[k].append(dc)
        print(
            f"  round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f}s (cpu {cpu[k][-1]:.2f}s)" for k in impls),
            flush=True,
        )
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    steps = len(batches)
    print(
        f"\ntransformer epoch ({steps} steps): neuronkit {med['neuronkit']:.2f} s, pytorch {med['pytorch']:.2f} s "
        f"(medians of {args.repeats}); ratio {med['neuronkit'] / med['pytorch']:.2f}x "
        f"(min-based {min(times['neuronkit']) / min(times['pytorch']):.2f}x); ms/step "
        f"{med['neuronkit'] / steps * 1e3:.1f} vs {med['pytorch'] / steps * 1e3:.1f}"
    )
    print(
        f"process CPU time: neuronkit {mcpu['neuronkit']:.2f} s, pytorch {mcpu['pytorch']:.2f} s, ratio "
        f"{mcpu['neuronkit'] / mcpu['pytorch']:.2f}x (all threads; with 1 thread a load-independent measure)"
    )
    print(
        f"mean training loss over the epoch: neuronkit {totals['neuronkit'] / steps:.4f}, pytorch "
        f"{totals['pytorch'] / steps:.4f} (dropout masks differ, so these agree only roughly)"
    )
    if not args.no_memory:
        m = {k: peak_memory(k, args.memory_steps, args.positions, args.data_dir, args.threads) for k in impls}
        steps_m = args.memory_steps
        print(f"peak memory growth over {steps_m} steps (MiB): neuronkit {m['neuronkit']}, pytorch {m['pytorch']}")
    print(f"load average at end: {_load()}")


if __name__ == "__main__":
    main()
