"""The "try the fix" button: the remedies a diagnosis proposes, trained side by side with the settings as they are.

The training itself is the command line's (``neuronkit diagnose --try-fix``, ``cli/tryfix.py``), handed to the session
as its ``trier``; this module only runs it: one trial at a time, bounded in time (``TRIAL_SECONDS`` for all its
trainings together: each stops after its share and says so) and in size (the trier trains on at most
``TRIAL_SAMPLES`` samples, for at most ``TRIAL_PASSES`` samples seen). Its progress and result reach the page as
``trial`` messages.

It runs in the session's worker thread, between two steps of the page's training, which waits for it: gradient
recording (``no_grad``) is one process-wide switch, so two trainings in two threads of one process would turn it off
under each other. While it runs, the commands that need the worker are answered at once with an error saying so.
"""

from __future__ import annotations

import time

from ..io import dumps_json
from ..train.callbacks import Callback
from .config import ProtocolError

TRIAL_SECONDS = 30.0  # all the trainings of one trial together stop after this long
TRIAL_SAMPLES = 5000  # training samples a trial uses at most (the first ones of the page's training split)
TRIAL_PASSES = 200_000  # samples a trial's training sees at most (epochs x training samples)
BUSY = "busy: a 'try the fix' trial is running (the page's training and commands wait for it; its result comes soon)"


class TimeLimit(Callback):
    """Ends a training after ``seconds`` (``trainer.stop_reason`` says so, and the trial's ``stopped`` shows it)."""

    def __init__(self, seconds: float):
        self.seconds, self.t0 = seconds, None

    def on_train_begin(self, trainer):
        self.t0 = time.perf_counter()

    def on_step_end(self, trainer, logs):
        if time.perf_counter() - self.t0 > self.seconds:
            trainer.stop_reason = f"the playground's time limit ({self.seconds:.3g} s)"


class TrialRunner:
    """The session's one trial at a time (see the module docstring)."""

    def __init__(self, session):
        self.session = session
        self.pending = None  # (snapshot, findings, number) of a trial asked for, run at the next step boundary
        self.running = False  # from the ask to the result (read by the server's thread to answer "busy")
        self.latest: str | None = None  # the newest trial message, as JSON text
        self.count = 0  # trials asked for: each message names its trial (a reply may reach the page after the result)

    def start(self, snap, findings) -> dict:
        """Ask for a trial (in the worker); it runs when the current command batch is done."""
        if self.running:
            raise ProtocolError(BUSY)
        self.count += 1
        self.pending, self.running = (snap, findings, self.count), True
        msg = {"type": "trial", "trial": self.count, "status": "running", "step": snap.step}
        msg["config"] = snap.config.to_dict()
        self._send(msg)
        return msg

    def run_pending(self) -> None:
        """Run the trial asked for, if any (in the worker), and send its result."""
        if self.pending is None:
            return
        snap, findings, number = self.pending
        t0 = time.perf_counter()
        base = {"type": "trial", "trial": number, "step": snap.step, "config": snap.config.to_dict()}
        try:
            result = self.session.trier(snap, findings, TRIAL_SECONDS)
            msg = {**base, "status": "done", **result}
        except Exception as e:  # a remedy that cannot be built or trained: the page is told, the server goes on
            msg = {**base, "status": "error", "message": f"{type(e).__name__}: {e}"}
        msg["seconds"] = round(time.perf_counter() - t0, 2)
        self.pending, self.running = None, False
        self._send(msg)

    def _send(self, msg: dict) -> None:
        self.latest = dumps_json(msg)
        self.session.send("trial", self.latest)
