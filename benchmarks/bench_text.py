"""How fast is text preparation? Tokenizing SST-2's 67,349 training phrases and building the vocabulary.

neuronkit's ``TextEncoder("word").fit_encode`` (Unicode word tokenizer, lower-casing, vocabulary with <pad>/<unk>,
every phrase encoded to int64 ids) against the same work done by the Hugging Face ``tokenizers`` package in Rust
(a ``WordLevel`` model trained with ``WordLevelTrainer`` and ``encode_batch``, its ids gathered into NumPy), in one
process, alternating, medians of ``--repeats`` rounds (the first round is a warm-up). Also the word tokenizer with
the encoding of the 1,821 test sentences, and the BPE and WordPiece encoders. Target (issue 12): under 1 s.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python benchmarks/bench_text.py [--data-dir DIR]

(``--data-dir`` defaults to ``$NEURONKIT_DATA``, else ``../shared/data`` beside the repository.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
from bench_engine import BLAS_VARS, _load, print_env

import neuronkit as nk
from neuronkit.data.text import TextEncoder, load_text_dataset

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data")
"""../shared/data from the repository root, as bench_rnn.py and bench_transformer.py look for it."""


def neuronkit_word(train, test):
    enc = TextEncoder("word")
    ids, lengths = enc.fit_encode(train)
    return len(enc), int(lengths.sum())


def hf_wordlevel(train, test):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(train, trainers.WordLevelTrainer(special_tokens=["<pad>", "<unk>"], show_progress=False))
    enc = tok.encode_batch(train, add_special_tokens=False)
    lengths = np.fromiter((len(e.ids) for e in enc), np.int64, len(enc))
    np.fromiter((i for e in enc for i in e.ids), np.int64, int(lengths.sum()))
    return tok.get_vocab_size(), int(lengths.sum())


def timed(fn, *args) -> tuple:
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--data-dir", default=os.environ.get("NEURONKIT_DATA", DEFAULT_DATA))
    args = ap.parse_args()
    tuned = nk.tune_allocator()  # what the command line does first (as the other benchmarks)
    print_env({k: os.environ.get(k) for k in BLAS_VARS}, tuned)
    s = load_text_dataset("sst2", data_dir=args.data_dir)
    train, test = s.train_texts, s.test_texts
    print(f"SST-2: {len(train):,} training phrases, {sum(map(len, train)):,} characters; load {_load()}")
    cases = {"neuronkit word (fit_encode)": neuronkit_word, "tokenizers WordLevel (Rust)": hf_wordlevel}
    results, vocabs = {k: [] for k in cases}, {}
    for r in range(args.repeats + 1):
        order = list(cases.items()) if r % 2 == 0 else list(cases.items())[::-1]
        for name, fn in order:
            wall, cpu, (vocabs[name], _) = timed(fn, train, test)
            if r:
                results[name].append((wall, cpu))
    for name, rs in results.items():
        wall, cpu = statistics.median(w for w, _ in rs), statistics.median(c for _, c in rs)
        print(f"{name:30} median {wall:.3f} s wall, {cpu:.3f} s CPU over {len(rs)} rounds (vocab {vocabs[name]:,})")
    for kind in ("word", "bpe", "wordpiece"):
        enc = TextEncoder(kind)
        wall, cpu, _ = timed(enc.fit_encode, train)
        w2, c2, _ = timed(enc.encode, test)
        print(
            f"TextEncoder({kind!r}): fit_encode {wall:.3f} s ({cpu:.3f} s CPU), vocab {len(enc):,}; "
            f"encode the 1,821 test sentences {w2 * 1e3:.1f} ms"
        )
    print(f"load after: {_load()}")


if __name__ == "__main__":
    main()
