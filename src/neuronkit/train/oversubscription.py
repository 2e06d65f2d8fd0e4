"""Oversubscribed cores: noticing during training that other processes are taking the CPU cores, and saying once
what to do.

When another process keeps the cores busy, a multi-threaded BLAS can make every step many times slower (OpenBLAS's
threads spin while they wait for one another, and a descheduled thread holds up the rest): one LeNet epoch on a
2-core machine varied from 1.6 s to 24.8 s, against a steady 2.3-2.6 s with one BLAS thread. Nothing fails; training
is just slow, for a reason invisible from inside.

``ContentionDetector`` reads each step's wall time and the process's CPU time (all its threads, ``time.process_time``)
in windows of at least ``window_s`` seconds and ``min_steps`` steps, and compares the windows' medians (so an odd slow
step, a probe record or a checkpoint, does not count):

- *starved*: the process ran for less than ``min_share`` of the wall time (median CPU time / median wall time). A
  training step waits for nothing but the CPU, so the rest of the time it waited for a core;
- *slowed*: a window's median step takes ``slowdown`` times the wall time of the fastest window so far. If the CPU
  time per step did not grow with it, the process waited for cores; if it grew with it, the same work burned more
  CPU: threads spinning while they wait for one another.

Either counts only while the machine's 1-minute load average (``os.getloadavg``) exceeds the cores this process may
run on (``os.sched_getaffinity``): something else is competing for them. Where the load average is unknown, the
timing alone decides. ``WarnOnOversubscription`` is the callback that feeds the detector and prints its one message.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable

from .callbacks import Callback


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float | None:
    """The 1-minute load average, or None where the platform has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def blas_threads(environ=None) -> int | None:
    """The BLAS thread count the environment asks for (``OPENBLAS_NUM_THREADS``, else ``OMP_NUM_THREADS``), or None
    when it asks for none (the BLAS then uses a thread per core)."""
    environ = os.environ if environ is None else environ
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        try:
            return int(environ[name])
        except (KeyError, ValueError):
            continue
    return None


class ContentionDetector:
    """Decides from per-step (wall, CPU) times whether other processes are taking the cores; see the module docstring.

    ``add(wall, cpu)`` takes one step's seconds and returns the message the first time contention is found, else
    None (and None forever after: the advice is given once). ``cores``, ``load`` (a function returning the load
    average or None) and ``threads`` (the BLAS threads asked for, None for the default) are read from the machine by
    default and can be given for tests.
    """

    def __init__(
        self,
        window_s: float = 2.0,
        min_steps: int = 8,
        slowdown: float = 2.0,
        min_share: float = 0.5,
        cores: int | None = None,
        load: Callable[[], float | None] = load_average,
        threads: int | None | str = "environment",
    ):
        if window_s <= 0 or min_steps < 1 or slowdown <= 1 or not 0 < min_share < 1:
            raise ValueError(
                "ContentionDetector: need window_s > 0, min_steps >= 1, slowdown > 1 and 0 < min_share < 1, got "
                f"{window_s}, {min_steps}, {slowdown}, {min_share}"
            )
        self.window_s, self.min_steps, self.slowdown, self.min_share = window_s, min_steps, slowdown, min_share
        self.cores = usable_cores() if cores is None else cores
        self.load = load
        self.threads = blas_threads() if threads == "environment" else threads
        self.best: tuple | None = None  # (median wall, median cpu) of the fastest window so far
        self.message: str | None = None
        self._walls: list = []
        self._cpus: list = []

    def add(self, wall: float, cpu: float) -> str | None:
        if self.message is not None:
            return None
        self._walls.append(wall)
        self._cpus.append(cpu)
        if len(self._walls) < self.min_steps or sum(self._walls) < self.window_s:
            return None
        window = (statistics.median(self._walls), statistics.median(self._cpus))
        self._walls, self._cpus = [], []
        self.message = self._judge(*window)
        if self.best is None or window[0] < self.best[0]:
            self.best = window
        return self.message

    def _judge(self, wall: float, cpu: float) -> str | None:
        share = cpu / wall if wall > 0 else 1.0
        slower = wall / self.best[0] if self.best is not None and self.best[0] > 0 else 1.0
        if share >= self.min_share and slower < self.slowdown:
            return None
        load = self.load()
        if load is not None and load <= self.cores:
            return None  # slow, but nothing else wants the cores: not ours to explain
        if slower >= self.slowdown:
            cpu_then = self.best[1]
            how = (
                f"steps take {slower:.1f}x as long as at their fastest ({wall * 1e3:.3g} ms against "
                f"{self.best[0] * 1e3:.3g} ms), with {cpu / cpu_then if cpu_then > 0 else float('inf'):.1f}x the CPU "
                "time"
            )
        else:
            how = f"this process ran for only {share:.0%} of the time its steps took"
        where = f"load average {load:.1f} on {self.cores} cores" if load is not None else f"{self.cores} cores"
        if self.threads == 1:
            todo = "training will be slower until they finish (or run it when the machine is less busy)"
        else:
            todo = "try OPENBLAS_NUM_THREADS=1 (or run when the machine is less busy)"
        return f"other processes are using the cores: {how}, {where}; {todo}"


class WarnOnOversubscription(Callback):
    """Times every training step (wall and process CPU time) and prints once, to ``stream`` (default stderr), what to
    do when ``ContentionDetector`` finds other processes taking the cores. ``clocks``: ``(wall, cpu)`` functions
    (default ``time.perf_counter``, ``time.process_time``), replaceable in tests. Time outside the steps (validation,
    the epoch's end) is not counted."""

    writes = True

    def __init__(self, stream=None, detector: ContentionDetector | None = None, prefix: str = "warning: ", clocks=None):
        self.stream, self.prefix = stream, prefix
        self.detector = detector if detector is not None else ContentionDetector()
        self.wall, self.cpu = clocks if clocks is not None else (time.perf_counter, time.process_time)
        self._mark = None

    def on_epoch_begin(self, trainer):
        self._mark = (self.wall(), self.cpu())

    def on_step_end(self, trainer, logs):
        now = (self.wall(), self.cpu())
        if self._mark is not None:
            message = self.detector.add(now[0] - self._mark[0], now[1] - self._mark[1])
            if message is not None:
                stream = self.stream or sys.stderr
                clear = "\r\033[K" if getattr(stream, "isatty", lambda: False)() else ""  # a progress bar's line
                print(clear + self.prefix + message, file=stream, flush=True)
        self._mark = now
