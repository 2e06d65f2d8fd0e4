"""DataLoader: batches of NumPy arrays from a dataset, shuffled through an explicit random generator."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator

import numpy as np

from .dataset import ArrayDataset, GeneratorDataset

__all__ = ["DataLoader", "default_collate", "shard_bounds"]


def shard_bounds(n: int, rank: int, size: int) -> tuple:
    """``(lo, hi)``: rank ``rank``'s contiguous part of ``n`` items split over ``size`` ranks; the first ``n % size``
    ranks get one more item, so the parts differ by at most 1 (``numpy.array_split``'s rule)."""
    q, r = divmod(n, size)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (rank < r)


def default_collate(samples: list):
    """Stack a list of samples into batch arrays: tuples field by field, arrays/scalars along a new axis 0."""
    first = samples[0]
    if isinstance(first, tuple):
        return tuple(default_collate([s[k] for s in samples]) for k in range(len(first)))
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if first is None:
        return None
    return np.stack([np.asarray(s) for s in samples])


def _jsonable(obj):
    """A generator state with arrays turned into lists, so ``json.dumps`` can write it."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _restore_state(state):
    """The inverse of ``_jsonable`` for bit generators whose state holds an array (MT19937's ``key``)."""
    state = copy.deepcopy(state)
    inner = state.get("state")
    if isinstance(inner, dict) and isinstance(inner.get("key"), list):
        inner["key"] = np.asarray(inner["key"], dtype=np.uint32)
    return state


_PREFETCH = None


def _prefetcher():
    """One shared background thread for batch prefetching (created on first use)."""
    global _PREFETCH
    if _PREFETCH is None:
        from concurrent.futures import ThreadPoolExecutor

        _PREFETCH = ThreadPoolExecutor(1, thread_name_prefix="neuronkit-prefetch")
    return _PREFETCH


class DataLoader:
    """Iterate over ``dataset`` in batches of NumPy arrays (not Tensors: the training loop wraps them).

    Args:
        dataset: an ``ArrayDataset``/``SequenceDataset`` (or anything with ``get_batch(indices)``: one fancy-indexing
            call per batch, no Python loop per sample), any map-style dataset (``len`` + ``ds[i]``, batched with
            ``collate_fn``), or a ``GeneratorDataset`` stream (consecutive samples, no shuffling).
        batch_size: samples per batch. Defaults to 32.
        shuffle: draw a new permutation from the generator at the start of every epoch. Defaults to False.
        drop_last: drop the final batch when it is smaller than ``batch_size``. Defaults to False.
        seed: an int seed for a private generator (same seed, same order of batches, epoch after epoch).
        generator: a ``numpy.random.Generator`` to draw permutations from (give ``seed`` or ``generator``, not
            both). With neither, neuronkit's default generator is used (``neuronkit.manual_seed`` seeds it).
        collate_fn: turns a list of samples into a batch (default: stack field by field). For datasets with
            ``get_batch`` it is applied to the batch ``get_batch`` returns.
        prefetch: gather the next batch in a background thread while the current one is used (datasets with
            ``get_batch`` only; the order of batches is unchanged). Defaults to False: on a machine whose cores are
            all busy with BLAS threads the extra thread slows training down (measured 1.3x slower on 2 cores).
        bucket: group samples of similar length into the same batch, so that a batch of short sequences is not
            padded to the length of a long one (the dataset needs a ``lengths`` array, as ``SequenceDataset`` has).
            With ``shuffle``, each epoch draws a permutation, sorts each chunk of ``bucket_chunk`` batches' worth of
            it by length, cuts the chunks into batches and shuffles the order of the batches: every sample still
            comes exactly once per epoch, in batches whose composition changes from epoch to epoch. Without
            ``shuffle``, the whole dataset is sorted by length (stable). Defaults to False.
        bucket_chunk: batches per sorted chunk (see ``bucket``). Larger chunks pad less and mix less. Defaults to 50.
        shard: ``(rank, size)``: yield only rank's contiguous part of every batch (``shard_bounds``), for
            data-parallel training; the batches, their order and the generator's draws are those of the unsharded
            loader, so ``size`` loaders with the same seed together yield exactly its batches. ``batch_rows`` is then
            ``(lo, hi, total)`` for the batch last yielded. Defaults to ``(0, 1)``: whole batches.

    ``len(loader)`` is the number of batches per epoch: ``ceil(N / batch_size)``, or ``floor`` with ``drop_last``.
    ``state_dict()`` holds the generator state and the position within the epoch (JSON-able); a loader given it by
    ``load_state_dict`` yields exactly the remaining batches of the interrupted epoch and then continues as the
    original would have. Batches from an unshuffled ``ArrayDataset`` may be views of its arrays: do not modify them
    in place.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 32,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
        generator: np.random.Generator | None = None,
        collate_fn: Callable | None = None,
        prefetch: bool = False,
        bucket: bool = False,
        bucket_chunk: int = 50,
        shard: tuple = (0, 1),
    ):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if seed is not None and generator is not None:
            raise ValueError("DataLoader takes seed or generator, not both")
        self.dataset = dataset
        self.batch_size, self.shuffle, self.drop_last = int(batch_size), bool(shuffle), bool(drop_last)
        self.collate_fn = collate_fn
        self.prefetch = bool(prefetch)
        self._stream = isinstance(dataset, GeneratorDataset) or not hasattr(dataset, "__getitem__")
        if self._stream and shuffle:
            raise ValueError("DataLoader cannot shuffle a stream (GeneratorDataset); shuffle the source instead")
        self.bucket = bool(bucket)
        if self.bucket:
            if isinstance(bucket_chunk, bool) or not isinstance(bucket_chunk, (int, np.integer)) or bucket_chunk < 1:
                raise ValueError(f"bucket_chunk must be a positive int, got {bucket_chunk!r}")
            lengths = getattr(dataset, "lengths", None)
            if self._stream or lengths is None or len(np.asarray(lengths)) != len(dataset):
                raise ValueError(
                    f"DataLoader(bucket=True) needs a dataset with one length per sample (a .lengths array, as "
                    f"SequenceDataset has); {type(dataset).__name__} has none"
                )
        self.bucket_chunk = int(bucket_chunk)
        self.shard = shard
        self.batch_rows = None  # (lo, hi, total) of the batch last yielded, with a shard
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
                raise TypeError(f"seed must be an int, got {type(seed).__name__}")
            self.generator = np.random.default_rng(int(seed))
        elif generator is not None:
            if not isinstance(generator, np.random.Generator):
                raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
            self.generator = generator
        else:
            from ..creation import get_generator  # layer 1; imported late to keep package import order free

            self.generator = get_generator(None)
        self.epoch = 0  # completed epochs
        self._pos = 0  # batches handed out in the current epoch
        self._in_epoch = False
        self._epoch_start_state = None  # generator state before this epoch's permutation was drawn
        self._resume_pos = None

    @property
    def shard(self) -> tuple:
        return self._shard

    @shard.setter
    def shard(self, value) -> None:
        ok = isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, np.integer)) for v in value)
        if not ok or not 0 <= value[0] < value[1]:
            raise ValueError(f"DataLoader: shard must be (rank, size) with 0 <= rank < size, got {value!r}")
        self._shard = (int(value[0]), int(value[1]))

    def _cut(self, items):
        """This shard's part of one batch's ``items`` (indices or samples); records ``batch_rows``."""
        rank, size = self._shard
        if size == 1:
            return items
        lo, hi = shard_bounds(len(items), rank, size)
        self.batch_rows = (lo, hi, len(items))
        return items[lo:hi]

    # -- sizes -------------------------------------------------------------------------------------------------
    def _num_samples(self) -> int:
        return len(self.dataset)

    def __len__(self) -> int:
        n = self._num_samples()
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    # -- iteration ---------------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator:
        if self._stream:
            return self._iter_stream()
        return self._iter_map()

    def _iter_map(self):
        n = self._num_samples()
        nb = len(self)
        if self._resume_pos is not None:
            start, self._resume_pos = self._resume_pos, None
            self.generator.bit_generator.state = _restore_state(self._epoch_start_state)
        else:
            start = 0
            self._epoch_start_state = _jsonable(self.generator.bit_generator.state)
        order = self.generator.permutation(n) if self.shuffle else None
        batches = self._buckets(order) if self.bucket else None
        self._in_epoch, self._pos = True, start
        get_batch = getattr(self.dataset, "get_batch", None)
        # The permutation's indices are valid by construction: an ArrayDataset (whose get_batch is not overridden)
        # is asked for them without the index checks that user calls get.
        take = self.dataset._take if getattr(type(self.dataset), "get_batch", None) is ArrayDataset.get_batch else None
        bs = self.batch_size

        sharded = self._shard[1] > 1

        def make(b):
            lo, hi = b * bs, min((b + 1) * bs, n)
            if batches is not None:
                idx = self._cut(batches[b])
            elif order is not None:
                idx = self._cut(order[lo:hi])
            elif sharded:
                cut = self._cut(range(lo, hi))
                idx = slice(cut.start, cut.stop) if get_batch is not None else cut
            else:
                idx = slice(lo, hi) if get_batch is not None else range(lo, hi)
            if get_batch is not None:
                batch = get_batch(idx) if take is None or isinstance(idx, slice) else take(idx)
                return batch if self.collate_fn is None else self.collate_fn(batch)
            return (self.collate_fn or default_collate)([self.dataset[int(i)] for i in idx])

        # With prefetch, the next batch is gathered in a background thread while the caller trains on this one
        # (NumPy releases the GIL while it copies): a shuffled gather of scattered rows then costs no step time.
        pool = _prefetcher() if self.prefetch and get_batch is not None and nb - start > 1 and not sharded else None
        pending = pool.submit(make, start) if pool is not None and start < nb else None
        for b in range(start, nb):
            if pending is not None:
                batch = pending.result()
                pending = pool.submit(make, b + 1) if b + 1 < nb else None
            else:
                batch = make(b)
            self._pos = b + 1  # set before yielding: a state_dict taken now resumes after this batch
            yield batch
        self._in_epoch, self._pos = False, 0
        self.epoch += 1

    def _buckets(self, order):
        """This epoch's batches of indices when bucketing (see ``bucket`` in the class docstring); ``order`` is the
        epoch's permutation (None without shuffle). The batch order is drawn from the same generator, after the
        permutation, so a resumed epoch rebuilds exactly the same batches."""
        lengths = np.asarray(self.dataset.lengths)
        bs, n = self.batch_size, len(lengths)
        if order is None:
            order = np.argsort(lengths, kind="stable")
        else:
            chunk = bs * self.bucket_chunk
            parts = [order[s : s + chunk] for s in range(0, n, chunk)]
            order = np.concatenate([p[np.argsort(lengths[p], kind="stable")] for p in parts]) if parts else order
        batches = [order[s : s + bs] for s in range(0, n, bs)]
        if self.drop_last and batches and len(batches[-1]) < bs:
            batches.pop()
        if self.shuffle:
            batches = [batches[i] for i in self.generator.permutation(len(batches))]
        return batches

    def _iter_stream(self):
        collate = self.collate_fn or default_collate
        buf = []
        for sample in self.dataset:
            buf.append(sample)
            if len(buf) == self.batch_size:
                yield collate(self._cut(buf))
                buf = []
        if buf and not self.drop_last:
            yield collate(self._cut(buf))
        self.epoch += 1

    # -- resumable state ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A JSON-able dict: completed epochs, batches handed out in the current epoch, and generator states."""
        mid = self._in_epoch and self._pos < len(self)
        # every batch handed out but the iterator not yet exhausted: the epoch is complete
        done = self._in_epoch and not mid
        return {
            "epoch": self.epoch + int(done),
            "batch": self._pos if mid else 0,
            "in_epoch": bool(mid),
            "epoch_start_generator": self._epoch_start_state if mid else None,
            "generator": _jsonable(self.generator.bit_generator.state),
            "batch_size": self.batch_size,
            "shuffle": self.shuffle,
            "bucket": self.bucket,
            "num_samples": None if self._stream else self._num_samples(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()``; the next ``iter(loader)`` yields the rest of the interrupted epoch."""
        missing = {"epoch", "batch", "in_epoch", "generator"} - set(state)
        if missing:
            raise KeyError(f"DataLoader.load_state_dict: state is missing {sorted(missing)}")
        for key, mine in (("batch_size", self.batch_size), ("shuffle", self.shuffle), ("bucket", self.bucket)):
            if key in state and state[key] != mine:
                raise ValueError(f"DataLoader.load_state_dict: state has {key}={state[key]!r}, this loader {mine!r}")
        n = state.get("num_samples")
        if n is not None and not self._stream and n != self._num_samples():
            raise ValueError(
                f"DataLoader.load_state_dict: state was saved with {n} samples, this dataset has {self._num_samples()}"
            )
        self.epoch = int(state["epoch"])
        self._in_epoch = False
        self._pos = 0
        if state["in_epoch"]:
            self._epoch_start_state = state["epoch_start_generator"]
            self._resume_pos = int(state["batch"])
        else:
            self._epoch_start_state = None
            self._resume_pos = None
            self.generator.bit_generator.state = _restore_state(state["generator"])

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"drop_last={self.drop_last}{', bucket=True' if self.bucket else ''})"
        )
