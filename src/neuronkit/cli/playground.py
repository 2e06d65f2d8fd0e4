"""``neuronkit playground``: start the local web page (``neuronkit.playground``) and print its URL.

The command line decides everything the page cannot: which data files exist (``--data``, read here, never a path sent
by the browser), where saved runs go (``--runs``), and the address. A saved run is a normal run directory (config,
model, history, metrics, probes), so ``report``, ``inspect``, ``diagnose`` and ``evaluate`` work on it; the data of a
2-D set or of a file is saved with it (``data.csv`` and its parsed splits in ``data-cache/``), so those commands see
exactly the samples the page trained and tested on.
"""

from __future__ import annotations

import ipaddress
import os
import sys
import time
import webbrowser
from pathlib import Path

import numpy as np

from .. import __version__, io
from ..data import load_dataset
from ..playground import PlaygroundConfig, Session
from ..playground.data import Arrays
from ..playground.server import DEFAULT_PORT, bind, create_app, make_server, new_token, url
from . import config as C
from . import data as D
from . import training as T
from .errors import CLIError
from .models import image_shape
from .rundir import RunDir


def add_parser(sub) -> None:
    p = sub.add_parser(
        "playground",
        help="a local web page: build a network, train it and touch its neurons while it learns",
        description="Start the playground's local web server and print the URL of its page (with a random token).",
    )
    p.add_argument("--data", help="your own data file (.csv/.npy/.npz) offered in the page as 'file'")
    p.add_argument("--target", help="label column of the CSV (name or index; default the last column)")
    p.add_argument(
        "--data-dir",
        help="folder holding the MNIST and text files (default $NEURONKIT_DATA): offers mnist, sms_spam, sentiment",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free one)")
    p.add_argument("--runs", default="runs", help="folder where the page's 'save' writes run directories (runs)")
    p.add_argument("--no-browser", action="store_true", help="print the URL without opening a browser")
    p.set_defaults(func=cmd_playground)


def digits_arrays() -> Arrays:
    s = load_dataset("digits")
    return Arrays(s.x_train, s.y_train, s.x_test, s.y_test, [str(i) for i in range(10)], (8, 8))


def mnist_provider(data_dir: str | None):
    def load() -> Arrays:
        s = load_dataset("mnist", data_dir=data_dir)
        return Arrays(s.x_train, s.y_train, s.x_test, s.y_test, [str(i) for i in range(10)], (28, 28))

    return load


TEXT_SETS = ("sms_spam", "sentiment")  # text sets offered with --data-dir (sst2's 67,349 texts: too many as counts)
TEXT_VOCAB = 1000  # words kept (the most frequent of the training texts): one input each, plus <unk>


def text_arrays(splits, vocab: int = TEXT_VOCAB) -> Arrays:
    """A text set (``data.text.TextSplits``) as word counts: the library's word ``TextEncoder`` learns the ``vocab``
    most frequent words of the training texts (at least twice each), every text becomes how often it holds each one
    (and how many other words, ``<unk>``); the test texts come along for the page to show."""
    from ..data.text import TextEncoder
    from ..playground.data import bag_of_words

    enc = TextEncoder("word", min_freq=2, max_size=vocab + 2)
    x_tr = bag_of_words(*enc.fit_encode(splits.train_texts), len(enc))
    x_te = bag_of_words(*enc.encode(splits.test_texts), len(enc))
    names = enc.vocab.lookup(np.arange(1, len(enc)))
    classes = [str(c) for c in splits.classes]
    return Arrays(
        x_tr, splits.train_labels, x_te, splits.test_labels, classes, None, names, list(splits.test_texts), False
    )


def text_provider(name: str, data_dir: str):
    def load() -> Arrays:
        from ..data.text import load_text_dataset

        return text_arrays(load_text_dataset(name, data_dir=data_dir))

    return load


def file_arrays(spec: str, target: str | None) -> Arrays:
    """The file given with ``--data`` read as ``neuronkit train`` reads it (classification only), split 80/20."""
    cfg = C.resolve(None, {"data": spec, "target": target})
    loaded = D.load_data(cfg)
    if loaded.task != "classification":
        raise CLIError(f"{spec}: the playground trains classifiers; the target column holds real numbers")
    img = image_shape(loaded.sample_shape) if len(loaded.sample_shape) != 1 else None
    return Arrays(loaded.x_train, loaded.y_train, loaded.x_test, loaded.y_test, list(loaded.classes), _hw(img))


def _hw(img):
    return None if img is None else tuple(img[1:])


def providers(args) -> dict:
    out = {"digits": digits_arrays}
    data_dir = args.data_dir or os.environ.get("NEURONKIT_DATA")
    if data_dir:
        out["mnist"] = mnist_provider(data_dir)
        out.update({name: text_provider(name, data_dir) for name in TEXT_SETS})
    if args.data:
        arrays = file_arrays(args.data, args.target)  # read now: a bad file is one line before the server starts
        out["file"] = lambda: arrays
    return out


# -- saving a run -------------------------------------------------------------------------------------------------
def _train_config(snap, data_spec: str, data_dir, test_fraction: float, standardize: bool) -> C.TrainConfig:
    cfg = snap.config
    acts = ["identity" if a == "linear" else a for a in cfg.activations] or ["relu"]
    values = {
        "data": data_spec,
        "data_dir": data_dir,
        "target": "label" if data_spec.endswith(".csv") else None,
        "task": "classification",
        "model": "mlp",
        "hidden": list(cfg.hidden) or [1],
        "activation": acts[0],
        "dropout": cfg.dropout,
        "init": cfg.init,
        "optimizer": cfg.optimizer,
        "lr": cfg.lr,
        "weight_decay": cfg.l2 or None,
        "epochs": max(1, snap.epoch),
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "val_fraction": 0.0,
        "test_fraction": test_fraction,
        "standardize": standardize,
        "probe_every": snap.probe.every if snap.probe is not None else 0,
    }
    return C.resolve(values)


def _loaded(snap, limit: int) -> D.Loaded:
    """The page's splits, as the model inputs it trains on, as the command line's ``Loaded``: at most ``limit``
    samples of each split (the first ones)."""
    d = snap.data
    return D.Loaded(
        d.x_train[:limit],
        d.y_train[:limit],
        d.x_test[:limit],
        d.y_test[:limit],
        d.name,
        "classification",
        list(d.classes),
        "dataset" if d.name in ("digits", "mnist") else "file",
    )


def try_fix(snap, findings, seconds: float) -> dict:
    """``neuronkit diagnose --try-fix`` on the page's experiment (the playground's ``trier``): the settings as they
    are and each remedy the findings propose, trained by ``cli.tryfix.try_fixes`` from the same seed on the same
    data (the page's model inputs: at most ``TRIAL_SAMPLES`` of each split), as many epochs as the page trained (at
    least what the command line would, at most what ``TRIAL_PASSES`` samples allow), all stopped after ``seconds``
    (each training after its share)."""
    from ..playground.trial import TRIAL_PASSES, TRIAL_SAMPLES, TimeLimit
    from .tryfix import distinct_fixes, render, trial_epochs, try_fixes, verdict

    acts = snap.config.activations
    if len(set(acts)) > 1:
        raise CLIError(
            "try the fix trains the command line's mlp, which has one activation for all hidden layers; this "
            f"network has {', '.join(acts)}"
        )
    loaded = _loaded(snap, TRIAL_SAMPLES)
    n_test = len(snap.data.y_test)  # (the split is the page's: the fraction is only recorded)
    cfg = _train_config(snap, snap.data.name, None, n_test / (n_test + len(snap.data.y_train)), False)
    at_least = trial_epochs(findings, snap.epochs, max(1, snap.epoch))[0]
    n = max(1, min(max(at_least, snap.epoch), TRIAL_PASSES // len(loaded.y_train)))
    share = seconds / (1 + len(distinct_fixes(findings)))  # the original settings and each distinct remedy
    held, trials = try_fixes(cfg, loaded, findings, n, callbacks=lambda: [TimeLimit(share)])
    return {
        "epochs": n,
        "held_out": held,
        "trials": [t.to_dict() for t in trials],
        "verdicts": [verdict(trials[0], t) for t in trials[1:]],
        "text": render(trials, n, held, cfg.seed),
    }


def _write_csv(run: RunDir, snap) -> tuple:
    """The 2-D or file data as RUN/data.csv (inputs, then the label; training rows first) and its cache of splits."""
    d = snap.data
    raw = [d.x_train, d.x_test]
    if d.standardize is not None:
        raw = [d.standardize.inverse_transform(x) for x in raw]
    x = np.concatenate(raw)
    y = np.concatenate([d.y_train, d.y_test])
    names = [n.replace(",", " ") for n in d.input_names] if d.n_inputs <= 64 else [f"x{i}" for i in range(d.n_inputs)]
    path = run.path / "data.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join([*names, "label"]) + "\n")
        for row, label in zip(x.tolist(), y.tolist()):
            f.write(",".join(repr(float(v)) for v in row) + f",{int(label)}\n")
    n_tr = len(d.y_train)
    loaded = D.Loaded(
        x[:n_tr].astype(np.float32),
        d.y_train,
        x[n_tr:].astype(np.float32),
        d.y_test,
        "data.csv",
        "classification",
        list(d.classes),
        "file",
        "label",
        test_rows=np.arange(n_tr, len(y)) + 2,  # CSV line numbers (line 1 is the header)
        row_word="row",
    )
    return str(path.resolve()), loaded


def save_run(snap, root: str, data_dir) -> str:
    """Write ``snap`` (a ``playground.Snapshot``) as a run directory under ``root``; returns its path."""
    d = snap.data
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"playground-{d.name}-{stamp}"
    k = 1
    while path.exists():
        k += 1
        path = Path(root) / f"playground-{d.name}-{stamp}-{k}"
    run = RunDir.create(str(path), d.name)
    named = d.name in ("digits", "mnist")
    n = len(d.y_train) + len(d.y_test)
    if named:
        spec, loaded = d.name, None
    else:
        spec, loaded = _write_csv(run, snap)
    cfg = _train_config(snap, spec, data_dir if named else None, len(d.y_test) / n, d.standardize is not None)
    cfg.out = str(run.path)
    if loaded is not None:
        D.save_cache(run.path, cfg, loaded)
    info = {
        "name": d.name,
        "source": "dataset" if named else "file",
        "task": "classification",
        "classes": list(d.classes),
        "num_outputs": len(d.classes),
        "sample_shape": [d.n_inputs],
        "model_input_shape": [d.n_inputs],
        "standardize": None if d.standardize is None else d.standardize.state_dict(),
        "target_name": None if named else "label",
        "pixel_max": 16.0 if d.name == "digits" else 1.0,
        "sizes": {"train": len(d.y_train), "validation": 0, "test": len(d.y_test)},
        "loss": "cross_entropy",
    }
    run.write_json("config.json", {"config": cfg.to_dict(), "data": info, "neuronkit": __version__})
    page = {"playground": snap.config.to_dict(), "step": snap.step, "epoch": snap.epoch}
    # the page's ablations act through a hook, not the weights: the saved model is the one without them
    run.write_json("playground.json", {**page, "ablated_in_page": snap.ablated, "frozen_in_page": snap.frozen})
    io.save(snap.model, run.model_path)
    run.write_text("history.jsonl", "".join(io.dumps_json({"kind": "epoch", **e}) + "\n" for e in snap.epochs))
    test = (d.x_test, d.y_test)
    metrics = {
        "split": "test",
        "samples": len(d.y_test),
        **T.test_metrics(snap.model, test, "classification", "cross_entropy"),
        "epochs": len(snap.epochs),
        "steps": snap.step,
        "train_time_s": round(sum(e.get("time", 0.0) for e in snap.epochs), 3),
        "stopped_early": None,
    }
    run.write_json("metrics.json", metrics)
    if snap.probe is not None and snap.probe.layers and any(r.count for r in snap.probe.layers.values()):
        snap.probe.save(run.probes_path)
    return str(run.path)


# -- the command --------------------------------------------------------------------------------------------------
def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def cmd_playground(args) -> int:
    if not 0 <= args.port <= 65535:
        raise CLIError(f"--port must be in 0..65535, got {args.port}")
    provided = providers(args)
    try:
        sock = bind(args.host, args.port)
    except OSError as e:
        raise CLIError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e} (choose another --port)") from None
    if not _loopback(args.host):
        print(
            f"neuronkit: warning: listening on {args.host}: other machines can reach the playground; anyone holding "
            "the URL's token can train on this machine and save runs in it",
            file=sys.stderr,
        )
    token = new_token()
    data_dir = args.data_dir or os.environ.get("NEURONKIT_DATA")
    runs = os.path.abspath(args.runs)
    session = Session(
        PlaygroundConfig(), provided, saver=lambda snap: save_run(snap, runs, data_dir), trier=try_fix
    ).start()
    server = make_server(create_app(session, token, ("localhost", args.host)), sock)
    link = url(args.host, sock.getsockname()[1], token)
    print(f"neuronkit playground: open {link}", flush=True)
    print("(Ctrl-C stops the server)", file=sys.stderr, flush=True)
    if not args.no_browser:
        webbrowser.open(link)
    try:
        server.run(sockets=[sock])
    finally:
        session.close()
        sock.close()
    return 0


__all__ = ["add_parser", "cmd_playground", "save_run", "try_fix"]
