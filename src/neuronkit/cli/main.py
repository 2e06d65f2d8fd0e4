"""``neuronkit``: train, evaluate and use networks from the command line.

::

    neuronkit train --data digits                         # mlp 64-128-10, adam 1e-3, 20 epochs: ~97% test accuracy
    neuronkit train --data mnist --data-dir DIR --model lenet --epochs 3
    neuronkit train --data my.csv --target label --hidden 64,32 --out runs/mine
    neuronkit train --data sst2 --data-dir DIR --model bow    # text: see cli/text.py
    neuronkit train --data reviews.csv --text review --target stars
    neuronkit train --config run.toml --lr 3e-4           # flags override the file
    neuronkit train --resume runs/mine --epochs 30        # continue a stopped or interrupted run
    neuronkit evaluate runs/mine [--data other.csv --target label]
    neuronkit predict runs/mine inputs.csv [--output predictions.csv]
    neuronkit predict runs/text-run --text "a gripping, funny film" [texts.txt]
    neuronkit datasets
    neuronkit summary runs/mine | neuronkit summary --model lenet --data mnist
    neuronkit gradcheck runs/mine [--batch-size 16]      # float64 check of backprop on a test batch; exit 1 if off
    neuronkit diagnose runs/mine [--batch-size 64]       # problems in the model and its history; exit 1 on an error
    neuronkit export runs/mine --onnx mine.onnx          # the model as ONNX (pip install 'neuronkit[onnx]')

A user mistake prints one line, ``neuronkit: error: ...``, on stderr and exits with status 1 (2 for bad usage);
``main(argv)`` returns the exit status, so tests can call it in-process.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io as io_
import json
import os
import sys
from pathlib import Path

import numpy as np

from .. import __version__, creation, io
from ..data import DATASETS, DownloadError
from ..tour import cli as tour_cli
from ..train import (
    EarlyStopping,
    JSONLLogger,
    ModelCheckpoint,
    ProgressBar,
    latest_checkpoint,
    predict,
)
from ..train.callbacks import Callback
from . import config as C
from . import data as D
from . import export as export_cli
from . import insight, text
from . import training as T
from .errors import CLIError
from .models import build_model, model_input_shape
from .rundir import RunDir, load_run

# The mistakes a user can make and the errors they surface as: reported in one line, never a traceback.
USER_ERRORS = (
    CLIError,
    ValueError,
    KeyError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    DownloadError,
)


# -- printing -----------------------------------------------------------------------------------------------------
def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e4 or v == 0 else f"{v:.3g}"
    return str(v)


class EpochPrinter(Callback):
    """One line per epoch on stdout (loss, training and validation metrics, time), readable when piped."""

    def __init__(self, stream=None):
        self.stream = stream

    def on_epoch_end(self, trainer, logs):
        skip = {"epoch", "time", "steps", "lr"}
        parts = [f"epoch {logs['epoch']:>{len(str(trainer.epochs))}}/{trainer.epochs}"]
        parts += [f"{k} {_fmt(v)}" for k, v in logs.items() if k not in skip and isinstance(v, (int, float))]
        parts += [f"lr {logs['lr']:.3g}", f"{logs['time']:.1f}s"]
        print("  ".join(parts), file=self.stream or sys.stdout, flush=True)


class _Bar(ProgressBar):
    """The progress bar within an epoch; the epoch's line itself comes from ``EpochPrinter``."""

    def on_epoch_end(self, trainer, logs):
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


# -- train --------------------------------------------------------------------------------------------------------
def _flags(args) -> dict:
    return {k: getattr(args, k, None) for k in C.KEYS}


def _resolve_train_config(args) -> tuple:
    """``(config, run)``: the resolved settings, and the run directory to continue (None for a new run).

    With ``--resume`` the run's saved settings are used; only ``epochs`` may differ from them."""
    file_values = C.load_toml(args.config) if args.config else {}
    flags = _flags(args)
    if args.resume is None:
        return C.resolve(file_values, flags, where=f"config file {args.config}"), None
    run = RunDir.open(args.resume)
    saved = C.resolve(C.from_mapping(run.config["config"], f"{run.config_path}")).to_dict()
    given = {**file_values, **{k: v for k, v in flags.items() if v is not None}}
    if given.get("out") is not None and Path(given["out"]).resolve() == run.path.resolve():
        del given["out"]
    asked = C.resolve({**saved, **given}).to_dict()
    changed = sorted(k for k in given if k != "epochs" and asked[k] != saved[k])
    if changed:
        raise CLIError(
            f"--resume continues the run in {run.path} with its saved settings; only --epochs can change "
            f"(got {', '.join('--' + k.replace('_', '-') for k in changed)})"
        )
    cfg = C.resolve(saved, {"epochs": given.get("epochs")})
    cfg.out = str(run.path)
    return cfg, run


def cmd_train(args) -> int:
    cfg, resume_run = _resolve_train_config(args)
    encoder = None
    if text.is_text_config(cfg):
        loaded, info, train, val, test, encoder = text.prepare(cfg, resume_run)
    else:
        loaded = D.load_data(cfg)
        info, train, val, test = T.prepare(cfg, loaded)
    task = info["task"]
    loss = T.loss_name(cfg, task)
    creation.manual_seed(cfg.seed)
    model = build_model(cfg, tuple(info["model_input_shape"]), info["num_outputs"], text.vocab_size(info))

    run = resume_run or RunDir.create(cfg.out, loaded.name)
    cfg.out = str(run.path)
    run.write_json("config.json", {"config": cfg.to_dict(), "data": {**info, "loss": loss}, "neuronkit": __version__})
    if encoder is not None:
        text.save_encoder(run, encoder)
    resume = probe_history = resume_step = None
    if resume_run is not None:
        ckpt = latest_checkpoint(run.checkpoints_path) if run.checkpoints_path.exists() else None
        if ckpt is None:
            print(f"neuronkit: {run.path} has no checkpoint yet: training from the start", file=sys.stderr)
            run.history_path.unlink(missing_ok=True)
        else:
            resume = run.checkpoints_path
            # history.jsonl is rewritten from the checkpoint, so it never holds epochs the resumed run repeats
            with open(Path(ckpt) / "trainer.json", encoding="utf-8") as f:
                state = json.load(f)
            epochs = state.get("history", {}).get("epochs", [])
            run.history_path.write_text("".join(json.dumps({"kind": "epoch", **e}) + "\n" for e in epochs))
            resume_step = int(state.get("step", 0))
            try:  # the neurons' history continues too
                probe_history = insight.probe_history(run)
            except CLIError as e:
                print(f"neuronkit: warning: {e}; the neurons' history starts again from here", file=sys.stderr)

    # order matters at an epoch's end: checkpoint before the log line (a logged epoch is always resumable), the
    # progress bar clears its line before the epoch's line is printed
    callbacks = [ModelCheckpoint(run.checkpoints_path), JSONLLogger(run.history_path)]
    if cfg.patience is not None:
        callbacks.insert(0, EarlyStopping(monitor="val_loss", patience=cfg.patience))
    if sys.stderr.isatty():
        callbacks.append(_Bar())
    callbacks.append(EpochPrinter())
    trainer, probe, gradcheck = T.make_trainer(cfg, model, loss, task, train, callbacks, probe_history, resume_step)
    print(
        f"training {cfg.model} on {loaded.name} ({info['sizes']['train']} train, {info['sizes']['validation']} "
        f"validation, {info['sizes']['test']} test samples; {sum(p.size for p in model.parameters()):,} parameters)"
        f" -> {run.path}",
        flush=True,
    )
    history = trainer.fit(train, epochs=cfg.epochs, batch_size=cfg.batch_size, validation=val, resume=resume)
    if probe is not None and probe.probe is not None and probe.probe.layers:
        probe.probe.remove()
        probe.probe.save(run.probes_path)  # the neurons' history of this (part of the) run: neuronkit inspect/report
    if gradcheck is not None:
        run.write_text("gradcheck.jsonl", "".join(json.dumps(r) + "\n" for r in gradcheck.results))
        bad = [r["step"] for r in gradcheck.results if not r["ok"]]
        print(
            f"gradient checks: {len(gradcheck.results) - len(bad)} of {len(gradcheck.results)} passed"
            + (f" (failed at steps {bad})" if bad else "")
            + f"; {run.path / 'gradcheck.jsonl'}"
        )
    if history.interrupted:
        print(
            f"neuronkit: interrupted at epoch {trainer.epoch + 1}, step {trainer.step}; checkpoint saved. "
            f"Continue with: neuronkit train --resume {run.path}",
            file=sys.stderr,
        )
        return 130
    io.save(model, run.model_path)
    train_time = sum(e.get("time", 0.0) for e in history.epochs)
    metrics = {
        "split": "test",
        "samples": info["sizes"]["test"],
        **T.test_metrics(model, test, task, loss),
        "epochs": len(history.epochs),
        "steps": trainer.step,
        "train_time_s": round(train_time, 3),
        "stopped_early": history.stopped_early,
    }
    run.write_json("metrics.json", metrics)
    if history.stopped_early:
        print(f"neuronkit: {history.stopped_early}", file=sys.stderr)
    head = (
        f"test accuracy {metrics['accuracy']:.2%}"
        if task == "classification"
        else f"test mse {metrics['mse']:.4g}, r2 {metrics['r2']:.4f}"
    )
    print(
        f"{head} on {info['sizes']['test']} held-out samples; {metrics['epochs']} epochs in {train_time:.1f}s; "
        f"run: {run.path}"
    )
    return 0


# -- evaluate / predict / summary ---------------------------------------------------------------------------------
def evaluate_run(run_dir, data: str | None = None, target: str | None = None, data_dir: str | None = None) -> dict:
    """The run's model on its test split (or on ``data``: a dataset's test split, or every row of a file)."""
    run, cfg, info, model = load_run(run_dir)
    if text.is_text_run(info):
        return text.evaluate_run(run, cfg, info, model, data, target, data_dir)
    task, n_out = info["task"], info["num_outputs"]
    if data is None:
        if data_dir is not None:
            cfg.data_dir = data_dir
        loaded = D.load_data(cfg)
        x, y, where = loaded.x_test, loaded.y_test, f"{cfg.data} (test split)"
    elif data in DATASETS:
        cfg.data, cfg.data_dir = data, data_dir
        loaded = D.load_data(cfg)
        x, y, where = loaded.x_test, loaded.y_test, f"{data} (test split)"
    else:
        if not D._is_file_spec(data):
            raise CLIError(f"unknown dataset {data!r}; available: {', '.join(DATASETS)} (or a .csv, .npy or .npz file)")
        x, y, classes, _ = D.read_features_file(data, target if target is not None else info.get("target_name"))
        if classes and task == "classification" and classes != info.get("classes"):
            index = {c: i for i, c in enumerate(info.get("classes", []))}
            unknown = [c for c in classes if c not in index]
            if unknown:
                raise CLIError(f"{data}: labels out of range: {unknown[0]!r} is not one of the model's classes")
            y = np.array([index[classes[int(k)]] for k in y], dtype=np.int64)
        where = data
    inputs = D.prepare_inputs(x, info, where)
    labels = D.check_labels(y, task, n_out, where)
    loss = info.get("loss") or T.loss_name(cfg, task)
    return {
        "split": "test" if data is None else where,
        "samples": len(inputs),
        **T.test_metrics(model, (inputs, labels), task, loss),
    }


def cmd_evaluate(args) -> int:
    m = evaluate_run(args.run_dir, args.data, args.target, args.data_dir)
    if args.json:
        print(json.dumps(m))
    else:
        print("  ".join(f"{k} {_fmt(v)}" for k, v in m.items()))
    return 0


def _read_predict_inputs(paths, info, target) -> np.ndarray:
    suffixes = {Path(p).suffix.lower() for p in paths}
    if suffixes <= set(D.IMAGE_SUFFIXES):
        return D.read_images(paths, tuple(info["sample_shape"]), float(info.get("pixel_max", 1.0)))
    if len(paths) != 1:
        raise CLIError("predict takes one .csv or .npy file, or any number of image files")
    p = Path(paths[0])
    if p.suffix.lower() not in (".csv", ".npy", ".npz"):
        raise CLIError(f"{p}: unsupported input type {p.suffix or '(none)'!r}; expected .csv, .npy, .npz or images")
    if p.suffix.lower() == ".csv":
        if not p.exists():
            raise FileNotFoundError(f"input file not found: {p}")
        header = D._csv_header(p)
        name = target if target is not None else info.get("target_name")
        if header is not None and name is not None and name in header:  # a labelled file: predict from its features
            x, _, _, _ = D.read_features_file(p, name)
            return x
        return D.read_features_file(p, None, require_target=False)[0]
    return D.read_features_file(p, target, require_target=target is not None)[0]


def predict_run(run_dir, inputs, target=None, texts=None) -> tuple:
    """``(header, rows)`` of predictions: index, class, label, one probability per class (or index, prediction);
    for a text run, of the ``texts`` and then the texts in the ``inputs`` files, each row ending with its text."""
    run, cfg, info, model = load_run(run_dir)
    if text.is_text_run(info):
        return text.predict_texts(run, info, model, text.read_predict_texts(run, info, inputs, texts))
    if texts:
        raise CLIError(f"{run.path} is not a text run: --text needs a model trained on text")
    if not inputs:
        raise CLIError("predict needs input files (a .csv or .npy file, or images)")
    x = D.prepare_inputs(_read_predict_inputs(list(inputs), info, target), info, ", ".join(map(str, inputs)))
    out = np.asarray(predict(model, x), dtype=np.float64)
    if info["task"] != "classification":
        header = ["index"] + (["prediction"] if out.shape[1] == 1 else [f"prediction_{j}" for j in range(out.shape[1])])
        return header, [[i, *row] for i, row in enumerate(out.tolist())]
    z = out - out.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    classes = info.get("classes") or [str(j) for j in range(out.shape[1])]
    header = ["index", "class", "label", *[f"p_{c}" for c in classes]]
    k = p.argmax(axis=1)
    return header, [[i, int(k[i]), classes[k[i]], *(round(v, 6) for v in p[i].tolist())] for i in range(len(p))]


def cmd_predict(args) -> int:
    header, rows = predict_run(args.run_dir, args.inputs, args.target, args.text)
    buf = io_.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([header, *rows])  # quotes a text or label holding a comma
    out = buf.getvalue()
    if args.output:
        Path(args.output).write_text(out, encoding="utf-8")
        print(f"wrote {len(rows)} predictions to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    return 0


def cmd_datasets(args) -> int:
    rows = [("name", "kind", "size", "shape", "classes", "source")]
    for name, info in DATASETS.items():
        rows.append(
            (
                name,
                info.kind,
                "-" if info.size is None else f"{info.size:,}",
                "x".join(map(str, info.shape)) or "text",
                str(info.num_classes),
                info.source,
            )
        )
    widths = [max(len(r[j]) for r in rows) for j in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
    print("\n".join(text.dataset_locations(args.data_dir)))
    return 0


def cmd_summary(args) -> int:
    if args.run_dir is not None:
        if args.model is not None or args.data is not None:
            raise CLIError("summary takes a run directory or --model/--data, not both")
        _, _, info, model = load_run(args.run_dir)
        if text.is_text_run(info):
            print(model.summary(inputs=text.summary_inputs(info)))
            return 0
        shape = tuple(info["model_input_shape"])
    else:
        if args.model is None and args.data is None:
            raise CLIError("summary needs a run directory, or --model and --data (e.g. --model mlp --data digits)")
        cfg = C.resolve(
            None,
            {
                k: getattr(args, k, None)
                for k in ("model", "data", "hidden", "activation", "dropout", "target", "data_dir")
            },
        )
        if text.is_text_config(cfg):
            model, inputs = text.summary_model(cfg)
            print(model.summary(inputs=inputs))
            return 0
        if cfg.data in DATASETS:
            ds = DATASETS[cfg.data]
            sample_shape, n_out = ds.shape, ds.num_classes
        else:
            loaded = D.load_data(cfg)
            sample_shape = loaded.sample_shape
            n_out = len(loaded.classes) if loaded.task == "classification" else 1
        shape = model_input_shape(cfg.model, sample_shape)
        creation.manual_seed(0)
        model = build_model(cfg, shape, n_out)
    print(model.summary((1, *shape)))
    return 0


# -- the parser ---------------------------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not usage + message
        raise CLIError(f"{message} (see {self.prog} --help)")


def _add_model_flags(p) -> None:
    p.add_argument("--model", help="mlp (default), lenet, bow (text), or all layer sizes such as 784-256-128-10")
    p.add_argument("--hidden", help="hidden layer sizes of the mlp, e.g. 256,128 (default 128)")
    p.add_argument("--activation", help="hidden activation (default relu)")
    p.add_argument("--dropout", type=float, help="dropout after each hidden layer (default 0)")


def _add_data_flags(p, required: bool = False) -> None:
    p.add_argument(
        "--data", required=required, help="a dataset name (see `neuronkit datasets`) or a .csv/.npy/.npz file"
    )
    p.add_argument("--data-dir", help="folder holding the MNIST-family or text files (default $NEURONKIT_DATA)")
    p.add_argument("--target", help="label column of a CSV (name or index; default the last column)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="neuronkit", description="Train, evaluate and use neuronkit networks.")
    parser.add_argument("--version", action="version", version=f"neuronkit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser(
        "train",
        help="train a network; writes a run directory",
        description="Train a network. Settings: defaults < --config FILE.toml < flags.",
    )
    _add_data_flags(t)
    t.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="fetch missing MNIST-family files into the cache ($NEURONKIT_CACHE)",
    )
    t.add_argument("--task", choices=C.TASKS, help="classification or regression (default auto: from the labels)")
    _add_model_flags(t)
    t.add_argument("--loss", help="loss name (default auto: cross_entropy or mse)")
    t.add_argument("--optimizer", help="sgd, adam (default), adamw, rmsprop, adagrad, nadam, lion")
    t.add_argument("--lr", type=float, help="learning rate (default 1e-3)")
    t.add_argument("--schedule", choices=C.SCHEDULES, help="learning-rate schedule (default none)")
    t.add_argument("--epochs", type=int, help="epochs (default 20)")
    t.add_argument("--batch-size", type=int, help="batch size (default 32)")
    t.add_argument("--seed", type=int, help="seed of weights, shuffling, dropout and file splits (default 0)")
    t.add_argument("--val-fraction", type=float, help="validation part of the training split (default 0.1)")
    t.add_argument("--test-fraction", type=float, help="test part of a data file (default 0.2)")
    t.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="standardise inputs with training-split statistics (default on)",
    )
    t.add_argument("--patience", type=int, help="early stopping after this many epochs without val_loss progress")
    t.add_argument("--init", help="weight initialiser of the dense layers, e.g. he_uniform (default: each layer's)")
    t.add_argument("--weight-decay", type=float, help="the optimizer's weight decay (default: its own)")
    t.add_argument("--clip-grad-norm", type=float, help="clip the gradients to this global norm each step")
    t.add_argument(
        "--probe-every",
        type=int,
        help="record every neuron's statistics every N steps into RUN/probes (0: off; default: about "
        f"{T.PROBE_RECORDS} records over the run)",
    )
    t.add_argument(
        "--gradcheck-every",
        type=int,
        help="check backprop against float64 finite differences every N steps (default 0: off)",
    )
    t.add_argument("--out", help="run directory (default runs/<data>-<timestamp>)")
    t.add_argument("--config", help="a TOML file with any of these settings")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its latest checkpoint")
    text.add_train_flags(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="metrics of a run's model on its test split or other data")
    e.add_argument("run_dir", metavar="RUN_DIR")
    _add_data_flags(e)
    e.add_argument("--json", action="store_true", help="print the metrics as JSON")
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predictions of a run's model for a CSV/NPY file, images or texts")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument(
        "inputs",
        metavar="INPUT",
        nargs="*",
        help="a .csv or .npy file, or image files (needs Pillow); for a text run, files of texts (one per line)",
    )
    p.add_argument("--text", action="append", help="a text run: a text to classify (repeat for several)")
    p.add_argument("--output", "-o", help="write the predictions to this CSV file (default stdout)")
    p.add_argument("--target", help="a label column in the CSV to leave out (default the run's target column)")
    p.set_defaults(func=cmd_predict)

    d = sub.add_parser("datasets", help="list the built-in datasets and where their files are looked for")
    d.add_argument("--data-dir", help="folder holding the MNIST-family or text files (default $NEURONKIT_DATA)")
    d.set_defaults(func=cmd_datasets)

    s = sub.add_parser("summary", help="the layer table of a run's model, or of --model for --data")
    s.add_argument("run_dir", metavar="RUN_DIR", nargs="?")
    _add_data_flags(s)
    _add_model_flags(s)
    s.set_defaults(func=cmd_summary)

    insight.add_parsers(sub)
    export_cli.add_parser(sub)
    tour_cli.add_parser(sub)
    return parser


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    msg = " ".join(msg.split()) or type(e).__name__
    return msg


def main(argv=None) -> int:
    """Run the ``neuronkit`` command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except SystemExit as e:  # --help, --version
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except USER_ERRORS as e:
        print(f"neuronkit: error: {_one_line(e)}", file=sys.stderr)
        return 2 if isinstance(e, CLIError) and "--help" in str(e) else 1
    except KeyboardInterrupt:
        print("neuronkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (`| head`): not an error of ours
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # the interpreter flushes stdout at exit: let that go nowhere
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
