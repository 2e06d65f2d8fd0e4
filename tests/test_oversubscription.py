"""Oversubscribed cores found during training from synthetic step timings (no real timing anywhere), said once."""

from __future__ import annotations

import io

import numpy as np
import pytest

from neuronkit import nn
from neuronkit.train import Callback, Trainer
from neuronkit.train.oversubscription import ContentionDetector, WarnOnOversubscription, blas_threads


def feed(detector, steps) -> list:
    """The messages ``detector`` returns for ``steps`` = [(wall, cpu), ...], with the step index of each."""
    return [(i, m) for i, (w, c) in enumerate(steps) if (m := detector.add(w, c)) is not None]


def detector(load=3.0, cores=2, threads=None, **kw) -> ContentionDetector:
    return ContentionDetector(cores=cores, load=lambda: load, threads=threads, **kw)


STEADY = [(0.01, 0.0098)] * 1000  # 10 ms steps with the process on a core all the time


def test_a_steady_run_says_nothing():
    assert feed(detector(), STEADY) == []


def test_steps_slowing_while_cpu_time_stays_is_said_once_with_what_to_do():
    slow = [(0.05, 0.0098)] * 1000  # 5x the wall time for the same CPU time: waiting for a core
    found = feed(detector(), STEADY + slow)
    assert len(found) == 1  # once, however long it lasts
    step, message = found[0]
    assert 1000 <= step < 1000 + 200 + 8  # within the first full window of slow steps (2 s of them)
    assert message.startswith("other processes are using the cores: steps take 5.0x as long as at their fastest")
    assert "1.0x the CPU time" in message and "load average 3.0 on 2 cores" in message
    assert "try OPENBLAS_NUM_THREADS=1" in message


def test_spinning_threads_burning_cpu_for_the_same_work_are_found():
    spin = [(0.04, 0.07)] * 500  # 4x the wall time and 7x the CPU time: two threads spinning while they wait
    (step, message), *more = feed(detector(), STEADY + spin)
    assert not more and "4.0x as long" in message and "7.1x the CPU time" in message


def test_a_process_starved_from_its_first_step_is_found_without_a_baseline():
    starved = [(0.01, 0.003)] * 400  # ran 30 % of the time
    found = feed(detector(), starved)
    assert [s for s, _ in found] == [199]  # the first window: 2 s of 10 ms steps
    assert "this process ran for only 30% of the time its steps took" in found[0][1]


def test_odd_slow_steps_do_not_count():
    steps = [(0.1, 0.1) if i % 10 == 0 else (0.01, 0.0098) for i in range(2000)]  # a probe record every 10 steps
    assert feed(detector(), steps) == []


def test_below_the_threshold_nothing_is_said():
    assert feed(detector(), STEADY + [(0.019, 0.0098)] * 1000) == []  # 1.9x slower, under the 2x threshold
    assert feed(detector(), [(0.01, 0.0051)] * 1000) == []  # 51 % of a core, above the 50 % threshold


def test_a_short_run_is_never_judged():
    assert feed(detector(), [(0.01, 0.001)] * 150) == []  # 1.5 s of steps: no full window yet
    assert feed(detector(), [(1.0, 0.1)] * 7) == []  # 7 s, but fewer than 8 steps


def test_only_while_something_else_loads_the_machine():
    load = [1.5]
    d = ContentionDetector(cores=2, load=lambda: load[0], threads=None)
    assert feed(d, STEADY + [(0.05, 0.0098)] * 400) == []  # slow, but the load is under the cores: not contention
    load[0] = 2.6
    assert len(feed(d, [(0.05, 0.0098)] * 400)) == 1
    unknown = ContentionDetector(cores=2, load=lambda: None, threads=None)  # no load average: timing decides
    (_, message), *_ = feed(unknown, STEADY + [(0.05, 0.0098)] * 400)
    assert "CPU time, 2 cores; try" in message and "load average" not in message


def test_with_one_blas_thread_already_it_does_not_advise_it():
    (_, message), *_ = feed(detector(threads=1), STEADY + [(0.05, 0.0098)] * 400)
    assert "OPENBLAS_NUM_THREADS" not in message and "slower until they finish" in message


def test_blas_threads_come_from_the_environment():
    assert blas_threads({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "4"}) == 1
    assert blas_threads({"OMP_NUM_THREADS": "4"}) == 4
    assert blas_threads({"OPENBLAS_NUM_THREADS": "x"}) is None and blas_threads({}) is None


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="slowdown > 1"):
        ContentionDetector(slowdown=1.0)


class FakeClocks:
    """Wall and CPU clocks that advance by a scripted amount at each step end (the callback reads both there)."""

    def __init__(self, steps):
        self.steps, self.i, self.now = list(steps), 0, [0.0, 0.0]

    def wall(self):
        return self.now[0]

    def cpu(self):
        return self.now[1]

    def advance(self):
        w, c = self.steps[min(self.i, len(self.steps) - 1)]
        self.now[0] += w
        self.now[1] += c
        self.i += 1


def test_the_callback_in_a_real_training_prints_one_line(capsys):
    clocks = FakeClocks([(0.01, 0.0098)] * 250 + [(0.05, 0.0098)] * 10_000)
    out = io.StringIO()
    warn = WarnOnOversubscription(stream=out, detector=detector(), clocks=(clocks.wall, clocks.cpu))

    class Tick(Callback):  # placed first: the step's scripted time passes before the warning's callback reads it
        def on_step_end(self, trainer, logs):
            clocks.advance()

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)).astype(np.float32), rng.integers(0, 2, 64)
    trainer = Trainer(nn.Dense(3, 2), optimizer="sgd", lr=0.1, callbacks=[Tick(), warn], progress=False)
    trainer.fit((x, y), epochs=200, batch_size=8)  # 1,600 steps
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: other processes are using the cores: steps take 5.0x")
