"""The one seam between neuronkit and the array library.

Every array call in the engine goes through this module: ``backend.xp`` is the array namespace (NumPy today; CuPy
on NVIDIA GPUs can be swapped in without touching the ops, since CuPy mirrors NumPy's API). Nothing outside this file
imports NumPy directly in the engine (``tensor.py``, ``autograd/``, ``ops/``); a test enforces it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import itertools
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy

xp = numpy
"""The active array namespace. Ops call ``backend.xp.exp(...)`` and so on."""

ndarray = numpy.ndarray
"""The array type the engine stores inside a ``Tensor``."""

DEFAULT_FLOAT = numpy.dtype(numpy.float32)
"""neuronkit's default floating dtype: Python floats and lists become float32 tensors."""


def asarray(data, dtype=None):
    """Convert ``data`` to an array of the active backend (no copy when it already is one of the right dtype)."""
    return xp.asarray(data, dtype=dtype)


def dtype(d):
    """Normalise a dtype spec (``"float32"``, ``numpy.float64``, ...) to a backend dtype object."""
    return xp.dtype(d)


def default_rng(seed=None):
    """A random generator of the active backend, seeded by ``seed`` (an int, or None for fresh entropy)."""
    return xp.random.default_rng(seed)


def is_generator(obj) -> bool:
    return isinstance(obj, xp.random.Generator)


class Available(NamedTuple):
    """Memory that new arrays can take: ``bytes``, and ``source``, what limits it (for messages)."""

    bytes: int
    source: str


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _address_space_left() -> int | None:
    """What ``ulimit -v`` (RLIMIT_AS) leaves to this process: the limit less its current virtual size."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm", encoding="ascii") as f:
            used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        return max(soft - used, 0)
    except (ImportError, OSError, ValueError, IndexError, AttributeError):
        return None


def available_memory() -> Available | None:
    """Memory the array library can still allocate on this machine, or None where it cannot be told.

    The smaller of the memory the system can give without swapping (``MemAvailable`` in ``/proc/meminfo``; elsewhere
    the free physical pages, ``sysconf(SC_AVPHYS_PAGES)``) and, when ``ulimit -v`` (RLIMIT_AS) is set, the address
    space the limit leaves this process. A GPU backend would report its device memory here.
    """
    found = []
    mem = _meminfo_available()
    if mem is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            mem = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if mem is not None:
        found.append(Available(mem, "available memory"))
    left = _address_space_left()
    if left is not None:
        found.append(Available(left, "the address-space limit, ulimit -v"))
    return min(found, key=lambda a: a.bytes) if found else None


def format_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KB"``: a size for people (powers of 1024, the units ``free -h`` uses)."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"  # pragma: no cover - the loop returns


def random_uint32(rng, shape):
    """Uniform random 32-bit words of ``shape`` from generator ``rng``, taken straight from its bit generator.

    Each 64-bit output of the bit generator gives two words: about twice as fast as ``rng.random(dtype=float32)``
    (which makes one float per 32 bits and converts it). The draws advance ``rng``'s stream like any other draw.
    """
    n = 1
    for s in shape:
        n *= s
    words = rng.bit_generator.random_raw((n + 1) // 2).view(xp.uint32)
    return words[:n].reshape(shape)


def errstate(**kw):
    """Context manager that silences or raises floating-point warnings (NumPy's ``errstate``)."""
    return xp.errstate(**kw)


def add_at(target, index, values):
    """Unbuffered ``target[index] += values``: repeated indices accumulate (the scatter-add of index backward)."""
    xp.add.at(target, index, values)


PARALLEL_MIN = 1 << 17
"""Work (array elements touched) below which ``parallel_for`` stays on the calling thread: handing a chunk to
another thread costs some 10-30 us, about what one core needs to copy 128K floats."""

BLOCK_BYTES = 1 << 20
"""What one piece of a ``parallel_for`` with a ``grain`` should touch: about an L2 cache (measured on the benchmark
CNN: a max-pool forward 1.08 ms in pieces of 16-32 images vs 1.71 ms in one piece, col2im 2.55 vs 3.05 ms)."""

_threads = {"n": None, "pool": None, "pid": None, "set": False}
_in_worker = threading.local()


def _default_threads() -> int:
    value = os.environ.get("NEURONKIT_THREADS", "").strip()
    _threads["set"] = value.isdigit() and int(value) > 0
    return int(value) if _threads["set"] else 1


def num_threads() -> int:
    """Threads the NumPy code of the memory-bound kernels (im2col, col2im, pooling, ReLU, bias) splits its work over
    (``parallel_for``, a pool of Python threads).

    ``NEURONKIT_THREADS`` if set, else 1; ``set_num_threads`` changes it. One by default because, measured on 2-vCPU
    VMs (benchmarks/RESULTS.md, 2026-12-01), a second thread made the CNN epoch slower, not faster: its pieces hold
    the GIL between NumPy calls, share one memory bus, and call BLAS while BLAS's own threads want both cores. On a
    machine where it helps, set it to the cores (``NEURONKIT_THREADS=8``); results are the same either way. With
    ``neuronkit[fast]`` the compiled kernels and the GEMMs run on Numba's threads instead (``pool``), as many as
    OpenBLAS had unless a count is given here.
    """
    if _threads["n"] is None:
        _threads["n"] = _default_threads()
    return _threads["n"]


GEMM_PIECES = None
"""Whether convolutions run their GEMMs piece by piece (True), or as one GEMM per layer with only the memory-bound
work in pieces (False); None: decide by ``gemm_in_pieces``."""


def gemm_in_pieces() -> bool:
    """Run a convolution's GEMMs a few images at a time, in cache with their im2col and bias (``GEMM_PIECES``)?

    Faster when BLAS runs one thread (CNN epoch, single-thread CPU time: op by op 0.92x PyTorch vs 1.13x, fused
    0.69x vs 0.74x); slower when BLAS has several threads, whose gain needs the large GEMM (fused 1.19x vs 1.08x at 2
    threads). The engine cannot ask BLAS, so by default this is True only where the environment keeps it on one
    thread (``OPENBLAS_NUM_THREADS`` or else ``OMP_NUM_THREADS`` set to 1, or a single core). The values are the same
    either way on OpenBLAS's Haswell, SkylakeX and Zen kernels for the shapes checked; see ``ops/im2col.py``.
    """
    if GEMM_PIECES is not None:
        return GEMM_PIECES
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(name, "").strip()
        if value:
            return value == "1"
    return (os.cpu_count() or 1) == 1


JIT = None
"""Whether the ops use the compiled kernels of ``neuronkit/jit_kernels.py`` (True), their NumPy code (False), or
None: decide by ``NEURONKIT_JIT`` (``0`` turns them off) and whether Numba imports. See ``jit``."""

_jit_module = {}


def jit():
    """The compiled kernels (the ``neuronkit.jit_kernels`` module) where they are on, else None.

    On when Numba is installed (``pip install neuronkit[fast]``) unless ``NEURONKIT_JIT=0`` (read once) or ``JIT =
    False``; the ops give the same results either way, bit for bit. With them, max pooling, ReLU, im2col and col2im
    each take one pass over memory instead of several NumPy passes (benchmarks/RESULTS.md, 2026-12-01 fourth round).
    """
    if JIT is None and "env" not in _jit_module:
        _jit_module["env"] = os.environ.get("NEURONKIT_JIT", "").strip() != "0"
    if not (JIT if JIT is not None else _jit_module["env"]) or xp is not numpy:
        return None
    if "module" not in _jit_module:
        try:
            from . import jit_kernels
        except ImportError:  # no Numba: the NumPy code
            jit_kernels = None
        _jit_module["module"] = jit_kernels
    return _jit_module["module"]


def flat(a):
    """A 1-D view of the memory of ``a`` when it is contiguous in some order of its axes (an NHWC-backed NCHW view
    is), else None. Two arrays of the same shape and strides (``empty_like``) have their elements in the same order."""
    if a.flags.c_contiguous:
        return a.reshape(-1)
    order = sorted(range(a.ndim), key=lambda i: -a.strides[i])
    t = a.transpose(order)
    return t.reshape(-1) if t.flags.c_contiguous else None


POOL = None
"""Whether the ops run their GEMMs and kernels on one pool of threads (``neuronkit/jit_pool.py``): True or None
(on where it can be: see ``pool``), False (off; NumPy's OpenBLAS gets its threads back)."""

POOL_MIN = 1 << 17
"""Work (elements, or multiply-adds of a GEMM) below which an op stays on the calling thread. OpenBLAS itself keeps
a GEMM under 262,144 multiply-adds on one thread."""

_one = {"pid": None, "module": None, "blas": 1, "lowered": False}

POOL_ON = False
"""Whether the pool has started (``pool``, with the first convolution). Until then ``linear`` does not call
``matmul`` (a Python call on each GEMM of a tiny MLP is 2 % of its step)."""


def pool(work: int, start: bool = False):
    """The one-pool kernels (the ``neuronkit.jit_pool`` module) for ``work`` elements of work, or None.

    On when the compiled kernels are (``jit``), ``NEURONKIT_POOL`` is not ``0`` (read once), ``POOL`` is not False,
    NumPy's OpenBLAS was found and there are at least 2 threads: ``set_num_threads`` or ``NEURONKIT_THREADS`` if
    given, else the threads OpenBLAS had (``OPENBLAS_NUM_THREADS``, threadpoolctl, the cores). Off in a forked child
    (Numba's OpenMP runtime cannot run there) and below ``POOL_MIN``.

    It starts with the first convolution or pooling (``start``: their im2col, pooling and GEMMs gain most from it);
    from then on NumPy's OpenBLAS runs on one thread, since its threads and the pool's would fight over the cores
    (benchmarks/RESULTS.md), and the other ops (dense layers' GEMMs, ReLU) use the pool too. Before that they leave
    the GEMMs to OpenBLAS's own threads, which an MLP's run faster (no convolution: the pool never starts).
    """
    global POOL_ON
    if work < POOL_MIN:
        return None
    st = _one
    if st["pid"] != os.getpid():
        if POOL is False or not start or jit() is None:
            return None  # (nothing to start or undo yet)
        _pool_start()
    mod = st["module"]
    if mod is None:
        return None
    if POOL is False or jit() is None:
        if st["lowered"] and mod.BLAS[3]() == 1:
            mod.BLAS[2](st["blas"])  # its threads back
        st["lowered"] = POOL_ON = False
        return None
    if not (start or POOL_ON):
        return None
    blas = mod.BLAS[3]()
    if blas != 1:  # (first use, or BLAS's threads were set since, e.g. by threadpoolctl)
        st["blas"], st["lowered"] = blas, False
    num_threads()  # (reads NEURONKIT_THREADS once)
    n = _threads["n"] if _threads["set"] else st["blas"]
    if n < 2:
        return None
    if blas != 1:
        mod.BLAS[2](1)
        st["lowered"] = True
    POOL_ON = True
    if mod.THREADS != n:
        import numba

        mod.THREADS = min(n, numba.config.NUMBA_NUM_THREADS)
        numba.set_num_threads(mod.THREADS)
    return mod


def matmul(a, b):
    """``a @ b``, with a 2-D float32/float64 GEMM of ``POOL_MIN`` multiply-adds or more on the one pool (``pool``) once
    it has started: ``numpy.matmul``'s values on one OpenBLAS thread (to the last bit where the kernel keeps a GEMM's
    rows in blocks: see ``neuronkit/jit_pool.py``)."""
    if a.ndim == 2 and b.ndim == 2 and (mod := pool(a.shape[0] * a.shape[1] * b.shape[1])) is not None:
        if a.dtype == b.dtype and a.dtype.name in ("float32", "float64"):
            out = xp.empty((a.shape[0], b.shape[1]), dtype=a.dtype)
            if mod.gemm(a, b, out):
                return out
    return a @ b


def _pool_start():
    forked = _one["pid"] is not None
    _one.update(pid=os.getpid(), module=None)
    if forked or os.environ.get("NEURONKIT_POOL", "").strip() == "0":
        return
    try:
        from . import jit_pool
    except ImportError:
        return
    if jit_pool.BLAS is not None:
        _one["module"] = jit_pool


def set_num_threads(n: int) -> None:
    """Split the memory-bound kernels over ``n`` threads (1: all on the calling thread), and with ``neuronkit[fast]``
    the GEMMs too (``pool``). Results do not depend on it."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a positive int, got {n!r}")
    if n != _threads["n"] and _threads["pool"] is not None:
        _threads["pool"].shutdown(wait=True)
        _threads["pool"] = None
    _threads["n"], _threads["set"] = n, True


def _pool(n):
    if _threads["pool"] is None or _threads["pid"] != os.getpid():  # (a forked child has no pool threads)
        _threads["pool"] = ThreadPoolExecutor(n - 1, thread_name_prefix="neuronkit")
        _threads["pid"] = os.getpid()
    return _threads["pool"]


def item_size(a) -> int:
    """Elements of one item of ``a`` along its first axis (also for an empty batch, where ``a[0]`` does not exist)."""
    return int(numpy.prod(a.shape[1:], dtype=numpy.int64))


def item_bytes(a) -> int:
    """Bytes of one item of ``a`` along its first axis (see ``item_size``)."""
    return item_size(a) * a.itemsize


def grain(bytes_per_item: int) -> int:
    """Items per piece so that one piece touches about ``BLOCK_BYTES``: a kernel making several passes over a piece
    finds it in cache after the first."""
    return max(1, BLOCK_BYTES // max(1, bytes_per_item))


class _Pieces:
    """The pieces of one ``parallel_for``, taken one at a time by whichever thread asks first."""

    def __init__(self, fn, n, step):
        self.fn, self.n, self.step = fn, n, step
        self.count = -(-n // step)
        self.next = itertools.count()  # next() on it is atomic under the GIL
        self.lock, self.done, self.finished = threading.Lock(), 0, threading.Event()
        self.error = None

    def work(self):
        _in_worker.on = True
        try:
            while (i := next(self.next)) < self.count:
                lo = i * self.step
                error = None
                try:
                    self.fn(lo, min(lo + self.step, self.n))
                except BaseException as e:  # handed to the caller once every piece has finished
                    error = e
                with self.lock:
                    self.error = self.error or error
                    self.done += 1
                    if self.done == self.count:
                        self.finished.set()
        finally:
            _in_worker.on = False


def parallel_for(n: int, fn, work: int, grain: int | None = None) -> None:
    """Call ``fn(lo, hi)`` over consecutive pieces covering ``range(n)`` (e.g. the batch axis), on up to
    ``num_threads()`` threads, and return when all are done; the first exception raised in a piece is raised here.

    ``fn`` must write only its own piece of the output. The pieces are ``range(0, n, grain)``, or without ``grain``
    two per thread; each thread, the caller included, takes the next piece not yet taken, so a pool thread that a
    busy machine does not schedule in time leaves its pieces to the others instead of holding the caller up. With a
    ``grain`` the pieces do not depend on the thread count, so neither do the results, even where ``fn`` calls BLAS,
    and each piece stays in cache between its passes. Below ``PARALLEL_MIN`` elements of ``work``, with one thread,
    or when called from inside a piece, the pieces run in order on the calling thread. NumPy releases the GIL inside
    large copies and ufunc loops, so the threads' pieces run side by side.
    """
    threads = num_threads()
    serial = threads < 2 or work < PARALLEL_MIN or getattr(_in_worker, "on", False)
    step = grain or max(1, -(-n // (1 if serial else 2 * threads)))
    count = -(-n // step)
    if serial or count < 2:
        for lo in range(0, n, step):
            fn(lo, min(lo + step, n))
        return
    pieces = _Pieces(fn, n, step)
    pool = _pool(threads)
    for _ in range(min(threads, count) - 1):
        pool.submit(pieces.work)
    pieces.work()
    pieces.finished.wait()
    if pieces.error is not None:
        raise pieces.error


def tune_allocator(mmap_threshold: int = 32 << 20, trim_threshold: int = 512 << 20, top_pad: int = 16 << 20) -> bool:
    """Make glibc's malloc keep and reuse freed array memory instead of returning it to the OS at once.

    A training step allocates the same large temporaries (activations, gradients, im2col buffers) again and again.
    By default glibc serves each one with a fresh ``mmap`` and unmaps it when freed, so every step the kernel must
    fault in and zero those pages anew: on the CNN benchmark that doubled the epoch time. With arrays up to
    ``mmap_threshold`` (32 MiB, glibc's maximum) served from the heap, and up to ``trim_threshold`` of free heap kept,
    the pages are reused (PyTorch's caching allocator exists for the same reason). The cost: the process keeps up to
    ``trim_threshold`` of freed memory.

    It changes the whole process, so importing neuronkit never does it: the ``neuronkit`` command line and the
    benchmarks call it first thing; call it at the start of your own training script for the same speed
    (``neuronkit.tune_allocator()``). ``NEURONKIT_MALLOC_TUNING=0`` turns it into a no-op. Returns True when the
    settings were applied (Linux with glibc only), False otherwise; calling it again is harmless.
    """
    if os.environ.get("NEURONKIT_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's mallopt parameter numbers
    return bool(
        mallopt(m_mmap_threshold, mmap_threshold)
        and mallopt(m_trim_threshold, trim_threshold)
        and mallopt(m_top_pad, top_pad)
    )
