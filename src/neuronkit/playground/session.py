"""The training state of a playground: one experiment trained by ``neuronkit.train.Trainer`` in a worker thread.

The worker runs ``Trainer.fit`` (the same loop, NaN guard and probes as ``neuronkit train``) with one more callback,
``Control``, which at every step boundary runs the commands the page sent (edits, ablations, details, saving), then
either lets the next step run (playing, or a pending single step) or waits (paused). Everything that reads or writes
the model runs in the worker, between two steps, so no lock guards the weights. Changing the data or the network
rebuilds the experiment from its seed (``fit`` is stopped and started again); changing the learning rate or L2 is
applied to the live optimizer.

Frames (``frames.frame``) are computed in the worker at a bounded rate: at most ``MAX_FPS`` per second, and never
more than ``FRAME_BUDGET`` of the worker's time (``FRAME_BUDGET_2D`` for the 2-D sets, whose heatmaps are what the
page is for); the interval grows with what the last frame cost, so drawing never slows learning by more than that,
however slow the machine. They are only computed while someone listens; the page draws the newest it has received.
While playing, the diagnosis (``inspect.diagnose``) is refreshed the same way: at most every ``DIAGNOSE_EVERY`` seconds
and at most ``DIAGNOSE_BUDGET`` of the worker's time. "Try the fix" trains in the worker too, the page's training
waiting for it (``trial``).
"""

from __future__ import annotations

import concurrent.futures
import copy
import dataclasses
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from .. import creation, nn
from ..inspect import ProbeCallback
from ..io import dumps_json
from ..nn.init import skip_init
from ..optim import make_optimizer
from ..tensor import Tensor
from ..train import StopOnNaN, Trainer
from ..train.callbacks import Callback
from . import frames, insight
from .config import PlaygroundConfig, ProtocolError, needs_rebuild
from .data import PlayData, from_arrays, make_2d
from .trial import TrialRunner

MAX_FPS = 40.0
FULL_FPS = 10.0  # frames with metrics, flags and weights (the others carry the heatmaps only)
FRAME_BUDGET = 0.05  # at most this part of the worker's time goes to frames (MNIST: the page trains at >= 90 %)
FRAME_BUDGET_2D = 0.25  # for 2-D sets, whose heatmaps are the point and whose small nets learn in seconds anyway
DIAGNOSE_EVERY = 2.0  # seconds at least between two live diagnoses
DIAGNOSE_BUDGET = 0.02  # and at most this part of the worker's time (with the frames' 5 %: MNIST trains at >= 90 %)
PROBE_EVERY = 20  # steps between two probe records
KEEP_STEPS, KEEP_EPOCHS = 1000, 5000  # the trainer's history is trimmed to these (a session runs for hours)
REBUILD = "playground: rebuild"
EPOCHS = 10**9  # fit runs until the page stops it


@dataclass
class Snapshot:
    """What a saved run needs: the settings, the data, the live model, its epoch history and its probe."""

    config: PlaygroundConfig
    data: PlayData
    model: object
    epochs: list
    probe: object
    step: int
    epoch: int
    ablated: list = dataclasses.field(default_factory=list)  # [layer, unit] silenced in the page (not in the model)
    frozen: list = dataclasses.field(default_factory=list)


def build_model(cfg: PlaygroundConfig, n_inputs: int, n_classes: int) -> nn.Sequential:
    """Dense layers ``n_inputs -> hidden... -> n_classes``, each hidden one with its activation (and dropout)."""
    init = None if cfg.init == "auto" else cfg.init
    layers, width = [], n_inputs
    for h, act in zip(cfg.hidden, cfg.activations):
        layers.append(nn.Dense(width, h, activation=None if act == "linear" else act, init=init))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = h
    layers.append(nn.Dense(width, n_classes, init=init))
    return nn.Sequential(*layers)


class Control(Callback):
    """The session's hook into ``fit``: commands, freezes, frames and the pause, at every step boundary."""

    def __init__(self, session: Session):
        self.session = session

    def on_train_begin(self, trainer):
        self.session.between_steps(trainer)

    def on_step_end(self, trainer, logs):
        s = self.session
        s.restore_frozen()
        if len(trainer.history.steps) > 2 * KEEP_STEPS:
            del trainer.history.steps[:-KEEP_STEPS]
        if len(trainer.history.epochs) > 2 * KEEP_EPOCHS:
            del trainer.history.epochs[:-KEEP_EPOCHS]
        s.maybe_publish()
        s.maybe_diagnose()
        s.between_steps(trainer)


class Session:
    """One experiment and its worker thread. ``providers``: data name -> callable returning ``data.Arrays`` (digits,
    mnist, a file from the command line); ``saver(snapshot) -> str`` writes a run directory and returns its path;
    ``trier(snapshot, findings, deadline) -> dict`` trains the findings' remedies side by side with the original
    settings (``neuronkit diagnose --try-fix``) and returns what the page shows."""

    def __init__(self, config: PlaygroundConfig | None = None, providers=None, saver=None, trier=None):
        self.config = config or PlaygroundConfig()
        self.providers = dict(providers or {})
        self.saver = saver
        self._arrays: dict = {}
        self._commands: queue.Queue = queue.Queue()
        self._wake = threading.Condition()
        self.playing = False
        self._steps = 0  # single steps asked for while paused
        self._after_single = False
        self._rebuild = True
        self._closed = False
        self._listeners: list = []
        self._last_frame = 0.0
        self._interval = 1.0 / MAX_FPS
        self._cost: float | None = None  # moving average of a frame's cost (seconds)
        self._last_full = 0.0
        self.latest: str | None = None  # the newest frame, as JSON text
        self.frame_count, self.frame_seconds = 0, 0.0  # frames computed, and the worker's time they took
        self.status = "paused"
        self.error: str | None = None
        self.model = self.data = self.trainer = self.probe = None
        self.ablated: set = set()
        self.frozen: dict = {}
        self._masks: dict = {}
        self.data_version = 0
        self.data_message: str | None = None
        self._initial: list = []  # the parameters the model started from (the diagnosis checks that start too)
        self._revived = 0
        self._last_diagnosis, self._diag_interval = 0.0, DIAGNOSE_EVERY
        self.findings: list = []  # the newest diagnosis's findings (what "try the fix" tries)
        self.trier = trier
        self.trial = TrialRunner(self)
        self._thread = threading.Thread(target=self._run, name="playground-trainer", daemon=True)

    # -- the page's side ------------------------------------------------------------------------------------------
    @property
    def datasets(self) -> tuple:
        return tuple(self.providers)

    def start(self) -> Session:
        self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def add_listener(self, fn) -> None:
        """``fn(kind, text)`` is called from the worker with each new data message (``kind`` "data") and frame
        ("frame"), as JSON text; it must only hand them over."""
        self._listeners.append(fn)

        def first():
            if self.data_message is not None:
                fn("data", self.data_message)
            if self.trial.latest is not None:
                fn("trial", self.trial.latest)
            self.publish()

        self.submit(first)

    def remove_listener(self, fn) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def submit(self, fn) -> concurrent.futures.Future:
        """Run ``fn()`` in the worker at the next step boundary; its result (or exception) comes in the future."""
        fut: concurrent.futures.Future = concurrent.futures.Future()
        self._commands.put((fn, fut))
        with self._wake:
            self._wake.notify_all()
        return fut

    def play(self, on: bool = True) -> None:
        with self._wake:
            self.playing = bool(on)
            self._wake.notify_all()

    def step(self) -> None:
        with self._wake:
            self._steps = min(self._steps + 1, 1000)
            self._wake.notify_all()

    # -- commands (run in the worker) -----------------------------------------------------------------------------
    def configure(self, cfg: PlaygroundConfig) -> dict:
        """New settings: rebuild when the data or the network changes, else update the optimizer in place."""
        rebuild = needs_rebuild(self.config, cfg)
        self.config = cfg
        if rebuild:  # a new experiment starts paused
            self._rebuild, self.playing = True, False
        elif self.trainer is not None:
            for g in self.trainer.optimizer.param_groups:
                g["lr"] = cfg.lr
                if "weight_decay" in g:
                    g["weight_decay"] = cfg.l2
        return {"rebuilt": rebuild}

    def reset(self, seed: int | None = None) -> dict:
        if seed is not None:
            self.config.seed = seed
        self._rebuild, self.playing = True, False
        return {"seed": self.config.seed}

    def unit(self, layer, unit) -> tuple:
        """The dense layer ``layer`` and ``unit``, checked; ``ProtocolError`` when they do not exist."""
        if self.model is None:
            raise ProtocolError("no model yet: the settings could not be built")
        layers = frames.dense_layers(self.model)
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
            raise ProtocolError(f"layer: expected an integer in [0, {len(layers) - 1}], got {layer!r}")
        m = layers[layer][1]
        if isinstance(unit, bool) or not isinstance(unit, int) or not 0 <= unit < m.out_features:
            raise ProtocolError(f"unit: expected an integer in [0, {m.out_features - 1}], got {unit!r}")
        return m, unit

    def neuron(self, layer, unit, top: bool = False) -> dict:
        """One neuron's details; ``top``: with the inputs that excite it most (first layer of image data)."""
        self.unit(layer, unit)
        d = frames.neuron(self.model, self.data, layer, unit, self.probe.probe, self.probe.events)
        d["ablated"], d["frozen"] = (layer, unit) in self.ablated, (layer, unit) in self.frozen
        if top:
            d["top"] = insight.top_inputs(self.model, self.data, layer, unit)
        return d

    def revive(self, layer, unit) -> dict:
        """Fresh incoming weights and bias for a unit (a dead one starts over), from the layer's initialiser and a
        generator drawn from the seed, the unit and how many revivals came before (so a session repeats)."""
        m, u = self.unit(layer, unit)
        self._revived += 1
        rng = np.random.default_rng([self.config.seed, layer, u, self._revived])
        insight.revive(self.model, self.trainer.optimizer, layer, u, rng)
        if (layer, u) in self.frozen:  # a frozen neuron keeps the values it was given
            self.frozen[(layer, u)] = (m.weight.data[u].copy(), None if m.bias is None else m.bias.data[u].copy())
        return {**self.neuron(layer, u), "revived": True}

    def explain(self, layer, unit, sample) -> dict:
        """The terms of a neuron on test sample ``sample`` (``nn.Neuron.explain``)."""
        self.unit(layer, unit)
        n = len(self.data.y_test)
        if isinstance(sample, bool) or not isinstance(sample, int) or not 0 <= sample < n:
            raise ProtocolError(f"sample: expected an integer in [0, {n - 1}] (a test sample), got {sample!r}")
        return {**insight.explain(self.model, self.data, layer, unit, sample), "ablated": (layer, unit) in self.ablated}

    def initial_model(self):
        """The model as this experiment started: built without drawing (the training's random streams stay as they
        are) and given the parameters saved at the start."""
        with skip_init():
            model = build_model(self.config, self.data.n_inputs, len(self.data.classes))
        for p, a in zip(model.parameters(), self._initial):
            p.data[...] = a
        return model

    def diagnose(self) -> dict:
        """``inspect.diagnose`` of the live run (the findings ``neuronkit diagnose`` prints for a saved one)."""
        if self.model is None or self.trainer is None:
            raise ProtocolError("no model yet: the settings could not be built")
        t0 = time.perf_counter()
        lr = self.config.lr if self.config.optimizer == "sgd" else None
        self.findings, msg = insight.diagnosis(
            self.model, self.data, self.trainer.history, self.probe.probe, self.initial_model(), lr
        )
        cost = time.perf_counter() - t0
        self._pace_diagnosis(cost)
        return {**msg, "step": self.trainer.step, "epoch": self.trainer.epoch, "seconds": round(cost, 4)}

    def _pace_diagnosis(self, cost: float) -> None:
        self._last_diagnosis = time.perf_counter()
        self._diag_interval = max(DIAGNOSE_EVERY, cost * (1 - DIAGNOSE_BUDGET) / DIAGNOSE_BUDGET)

    def maybe_diagnose(self) -> None:
        """While playing with someone listening: a fresh diagnosis at most every ``DIAGNOSE_EVERY`` seconds and at
        most ``DIAGNOSE_BUDGET`` of the worker's time, sent to the listeners as a ``diagnosis`` message."""
        if self._listeners and self.playing and time.perf_counter() - self._last_diagnosis >= self._diag_interval:
            t0 = time.perf_counter()
            self.send("diagnosis", dumps_json(self.diagnose()))
            self._pace_diagnosis(time.perf_counter() - t0)  # its whole cost, the message's JSON included

    def send(self, kind: str, text: str) -> None:
        for fn in list(self._listeners):
            fn(kind, text)

    def try_fix(self) -> dict:
        """Train the remedies the newest diagnosis proposes, side by side with the settings as they are, from the same
        seed, at the next step boundary (one trial at a time, bounded by ``trial.TRIAL_SECONDS``); the result comes
        as a ``trial`` message."""
        if self.trier is None:
            raise ProtocolError("try the fix: this server was started without the command line's try-fix")
        if not self.findings:
            self.diagnose()
        if not any(f.fix for f in self.findings):
            raise ProtocolError("try the fix: the diagnosis proposes no remedy to try")
        return self.trial.start(self.snapshot(), list(self.findings))

    def snapshot(self) -> Snapshot:
        return Snapshot(
            copy.deepcopy(self.config),
            self.data,
            self.model,
            list(self.trainer.history.epochs),
            self.probe.probe,
            self.trainer.step,
            self.trainer.epoch,
            sorted(map(list, self.ablated)),
            sorted(map(list, self.frozen)),
        )

    def edit(self, layer, unit, bias=None, weight=None, value=None) -> dict:
        """Set the bias of a neuron, or its incoming weight number ``weight`` to ``value``."""
        m, u = self.unit(layer, unit)
        if bias is not None:
            m.bias.data[u] = _finite("bias", bias)
        if weight is not None:
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight < m.in_features:
                raise ProtocolError(f"weight: expected an integer in [0, {m.in_features - 1}], got {weight!r}")
            m.weight.data[u, weight] = _finite("value", value)
        if (layer, u) in self.frozen:  # a frozen neuron keeps the values it was given by hand
            self.frozen[(layer, u)] = (m.weight.data[u].copy(), None if m.bias is None else m.bias.data[u].copy())
        return self.neuron(layer, u)

    def ablate(self, layer, unit, on: bool = True) -> dict:
        """Silence a neuron (its output is 0 in every forward pass, training too) or bring it back; returns the test
        accuracy before and after."""
        self.unit(layer, unit)
        before = frames.accuracy(self.model, self.data.x_test, self.data.y_test)
        (self.ablated.add if on else self.ablated.discard)((layer, unit))
        self._apply_ablation()
        after = frames.accuracy(self.model, self.data.x_test, self.data.y_test)
        return {"type": "ablated", "layer": layer, "unit": unit, "on": bool(on), "before": before, "after": after}

    def freeze(self, layer, unit, on: bool = True) -> dict:
        """Keep a neuron's incoming weights and bias as they are now (restored after every update) or let them
        learn again."""
        m, u = self.unit(layer, unit)
        if on:
            self.frozen[(layer, u)] = (m.weight.data[u].copy(), None if m.bias is None else m.bias.data[u].copy())
        else:
            self.frozen.pop((layer, u), None)
        return {"type": "frozen", "layer": layer, "unit": u, "on": bool(on)}

    def save(self) -> dict:
        if self.saver is None:
            raise ProtocolError("save: this server was started without a place to save runs")
        return {"type": "saved", "path": str(self.saver(self.snapshot()))}

    # -- the worker -----------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            if self._rebuild:
                try:
                    self._build()
                except Exception as e:  # data that cannot load, a model too large: say so, keep serving
                    self._fail(e)
            if self.trainer is None or self.status == "diverged" or self.status == "error":
                self.between_steps(None)
                continue
            try:
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                    self.trainer.fit(
                        (self.data.x_train, self.data.y_train),
                        epochs=EPOCHS,
                        batch_size=self.config.batch_size,
                        validation=(self.data.x_test, self.data.y_test),
                    )
            except Exception as e:  # e.g. the memory check of fit: the page is told, the server goes on
                self._fail(e)
                continue
            reason = next((c.reason for c in self.trainer.callbacks if isinstance(c, StopOnNaN) and c.reason), None)
            if reason:
                self.status, self.error, self.playing = "diverged", reason, False
                self.publish()

    def _fail(self, e: Exception) -> None:
        self.error, self.status, self.playing, self._rebuild = f"{type(e).__name__}: {e}", "error", False, False
        self.publish()

    def _data(self) -> PlayData:
        cfg = self.config
        if cfg.is_2d:
            return make_2d(cfg)
        if cfg.data not in self._arrays:
            self._arrays = {cfg.data: self.providers[cfg.data]()}  # one large set in memory at a time
        return from_arrays(cfg.data, self._arrays[cfg.data])

    def _build(self) -> None:
        self._rebuild = False
        cfg = self.config
        self.error, self.status = None, "paused"
        data = self._data()
        creation.manual_seed(cfg.seed)
        model = build_model(cfg, data.n_inputs, len(data.classes))
        self._initial = [p.data.copy() for p in model.parameters()]
        self.findings = []
        self.probe = ProbeCallback(every=PROBE_EVERY)
        opts = {"lr": cfg.lr, **({"weight_decay": cfg.l2} if cfg.l2 else {})}
        optimizer = make_optimizer(cfg.optimizer, model.parameters(), **opts)
        self.trainer = Trainer(
            model,
            loss="cross_entropy",
            optimizer=optimizer,
            callbacks=[StopOnNaN(), Control(self), self.probe],  # Control before the probe arms the next step
            seed=cfg.seed,
            progress=False,
        )
        self.model, self.data = model, data
        self.ablated, self.frozen = set(), {}
        self._masks = {}
        for i, (_, m) in enumerate(frames.dense_layers(model)):
            m.register_forward_hook(self._ablation_hook(i))
        self.data_version += 1
        self.data_message = dumps_json(frames.data_message(data, self.data_version))
        for fn in list(self._listeners):
            fn("data", self.data_message)
        self.publish()

    def _ablation_hook(self, layer: int):
        def hook(module, inputs, output):
            mask = self._masks.get(layer)
            return None if mask is None else output * Tensor(mask)

        return hook

    def _apply_ablation(self) -> None:
        masks = {}
        for layer, unit in self.ablated:
            m = frames.dense_layers(self.model)[layer][1]
            masks.setdefault(layer, np.ones(m.out_features, dtype=np.float32))[unit] = 0.0
        self._masks = masks

    def restore_frozen(self) -> None:
        layers = frames.dense_layers(self.model)
        for (layer, unit), (w, b) in self.frozen.items():
            m = layers[layer][1]
            m.weight.data[unit] = w
            if b is not None:
                m.bias.data[unit] = b

    def between_steps(self, trainer) -> None:
        """Run the queued commands; return when a step may run (playing, or a single step asked for), or when the
        experiment must stop (a rebuild, the server closing); otherwise wait."""
        while True:
            ran = self._run_commands()
            if self._closed or self._rebuild:
                if trainer is not None:
                    trainer.stop_reason = REBUILD
                return
            if ran:
                self.publish()
            if self.trial.pending is not None:
                self._run_trial()
                continue
            if trainer is not None:
                if self.playing:
                    self.status = "playing"
                    return
                if self._steps > 0:
                    self._steps -= 1
                    self.status = "paused"
                    self._after_single = True
                    return
                if self.status != "paused" or self._after_single:  # show where training stopped
                    self.status, self._after_single = "paused", False
                    self.publish()
            with self._wake:
                if self._commands.empty() and not self._closed and not (self.playing or self._steps):
                    self._wake.wait(0.5)

    def _run_trial(self) -> None:
        """ "Try the fix", here between two steps: the page's training waits for it (see ``trial``)."""
        status, self.status = self.status, "trying the fix"
        self.publish()
        self.trial.run_pending()
        self.status = status
        self.publish()

    def _run_commands(self) -> bool:
        ran = False
        while not self._rebuild:  # the commands after a rebuild act on the new model
            try:
                fn, fut = self._commands.get_nowait()
            except queue.Empty:
                return ran
            ran = True
            if fut.set_running_or_notify_cancel():
                try:
                    fut.set_result(fn())
                except Exception as e:  # the page gets the error as its reply; the worker goes on
                    fut.set_exception(e)
        return ran

    # -- frames ---------------------------------------------------------------------------------------------------
    def maybe_publish(self) -> None:
        if self._listeners and time.perf_counter() - self._last_frame >= self._interval:
            self.publish()

    def publish(self) -> None:
        """Compute a frame now (in the worker) and hand it to every listener; the next one waits long enough that
        frames take at most ``FRAME_BUDGET`` of the time."""
        if not self._listeners:
            return
        t0 = time.perf_counter()
        full = not (self.playing and self.status == "playing") or t0 - self._last_full >= 1.0 / FULL_FPS
        f = {"type": "frame", "status": self.status, "error": self.error, "config": self.config.to_dict()}
        if self.model is not None and self.trainer is not None:
            with np.errstate(all="ignore"):
                t = self.trainer
                f.update(frames.frame(self.model, self.data, self.config.features, t.step, t.epoch, full))
            f["status"] = "playing" if self.playing and self.status == "playing" else self.status
            f["ablated"] = sorted(map(list, self.ablated))
            f["frozen"] = sorted(map(list, self.frozen))
            f["layers"] = [m.out_features for _, m in frames.dense_layers(self.model)]
            f["data_version"] = self.data_version
        text = dumps_json(f)
        self.latest = text
        for fn in list(self._listeners):
            fn("frame", text)
        now = time.perf_counter()
        self.frame_count, self.frame_seconds = self.frame_count + 1, self.frame_seconds + (now - t0)
        self._cost = (now - t0) if self._cost is None else 0.8 * self._cost + 0.2 * (now - t0)  # full and light
        budget = FRAME_BUDGET_2D if self.data is not None and self.data.points_train is not None else FRAME_BUDGET
        # start to start: at most MAX_FPS frames a second, each followed by enough training that frames take at most
        # the budget (a gap measured from the frame's end would add its cost to every period: 31 instead of 40 fps)
        self._interval = max(1.0 / MAX_FPS, self._cost / budget)
        self._last_frame = t0
        if full:
            self._last_full = t0


def _finite(name: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or abs(v) > 1e6:
        raise ProtocolError(f"{name}: expected a finite number of magnitude at most 1e6, got {v!r}")
    return float(v)
