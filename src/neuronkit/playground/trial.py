"""The "try the fix" button: the remedies a diagnosis proposes, trained side by side with the settings as they are.

The training itself is the command line's (``neuronkit diagnose --try-fix``, ``cli/tryfix.py``), handed to the session
as its ``trier``; this module only runs it: one trial at a time, in a thread of its own (the page's training goes on),
bounded in time (``TRIAL_SECONDS``: each short training stops there and says so) and in size (the trier trains on at
most ``TRIAL_SAMPLES`` samples, for at most ``TRIAL_PASSES`` samples seen). Its progress and result reach the page as
``trial`` messages.
"""

from __future__ import annotations

import threading
import time

from ..io import dumps_json
from ..train.callbacks import Callback
from .config import ProtocolError

TRIAL_SECONDS = 30.0  # each training of a trial stops after this long
TRIAL_SAMPLES = 5000  # training samples a trial uses at most (the first ones of the page's training split)
TRIAL_PASSES = 200_000  # samples a trial's training sees at most (epochs x training samples)


class TimeLimit(Callback):
    """Ends a training after ``seconds`` (``trainer.stop_reason`` says so, and the trial's ``stopped`` shows it)."""

    def __init__(self, seconds: float):
        self.seconds, self.t0 = seconds, None

    def on_train_begin(self, trainer):
        self.t0 = time.perf_counter()

    def on_step_end(self, trainer, logs):
        if time.perf_counter() - self.t0 > self.seconds:
            trainer.stop_reason = f"the playground's time limit ({self.seconds:g} s)"


class TrialRunner:
    """The session's one trial at a time (see the module docstring)."""

    def __init__(self, session):
        self.session = session
        self.thread: threading.Thread | None = None
        self.latest: str | None = None  # the newest trial message, as JSON text
        self.count = 0  # trials started: each message names its trial (a reply may reach the page after the result)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, snap, findings) -> dict:
        if self.running:
            raise ProtocolError("try the fix: a trial is already running; its result comes when it ends")
        self.count += 1
        msg = {"type": "trial", "trial": self.count, "status": "running", "step": snap.step}
        msg["config"] = snap.config.to_dict()
        self._send(msg)
        args = (snap, findings, self.count)
        self.thread = threading.Thread(target=self._run, args=args, name="playground-trial", daemon=True)
        self.thread.start()
        return msg

    def _run(self, snap, findings, number: int) -> None:
        t0 = time.perf_counter()
        base = {"type": "trial", "trial": number, "step": snap.step, "config": snap.config.to_dict()}
        try:
            result = self.session.trier(snap, findings, TRIAL_SECONDS)
            msg = {**base, "status": "done", **result}
        except Exception as e:  # a remedy that cannot be built or trained: the page is told, the server goes on
            msg = {**base, "status": "error", "message": f"{type(e).__name__}: {e}"}
        msg["seconds"] = round(time.perf_counter() - t0, 2)
        self._send(msg)

    def _send(self, msg: dict) -> None:
        self.latest = dumps_json(msg)
        self.session.send("trial", self.latest)

    def join(self, timeout: float | None = None) -> None:
        if self.thread is not None:
            self.thread.join(timeout)
