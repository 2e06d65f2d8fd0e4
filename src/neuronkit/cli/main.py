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
    neuronkit report runs/digits-*                        # several runs: each in turn (also evaluate, summary,
                                                          # gradcheck, diagnose)
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
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from .. import __version__, creation, io
from ..backend import tune_allocator
from ..data import DATASETS, DownloadError
from ..tour import cli as tour_cli
from ..train import predict
from ..train.memory import MemoryLimitError
from . import config as C
from . import data as D
from . import export as export_cli
from . import insight, text
from . import playground as playground_cli
from . import training as T
from .errors import CLIError
from .models import build_model, model_input_shape
from .rundir import load_run
from .train_command import cmd_train, fmt

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
    io.WriteError,
    MemoryLimitError,
)


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
        if not D.is_file_spec(data):
            raise D.unknown_data(data)
        fd = D.read_features_file(data, target if target is not None else info.get("target_name"))
        x, y, where = fd.x, D.labels_for_run(fd, info), data
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
    several = getattr(args, "several", False)  # one line per run, naming it
    if args.json:
        print(io.dumps_json({"run": str(args.run_dir), **m} if several else m))
    else:
        print((f"{args.run_dir}: " if several else "") + "  ".join(f"{k} {fmt(v)}" for k, v in m.items()))
    return 0


def predict_run(run_dir, inputs, target=None, texts=None) -> tuple:
    """``(header, rows)`` of predictions: index, class (and label, when the classes have names other than their
    numbers), one probability per class; or index, prediction for regression. For a text run, of the ``texts``
    and then the texts in the ``inputs`` files, each row ending with its text."""
    run, cfg, info, model = load_run(run_dir)
    if text.is_text_run(info):
        return text.predict_texts(run, info, model, text.read_predict_texts(run, info, inputs, texts))
    if texts:
        raise CLIError(f"{run.path} is not a text run: --text needs a model trained on text")
    if not inputs:
        raise CLIError("predict needs input files (a .csv or .npy file, or images)")
    x = D.prepare_inputs(D.read_inputs(list(inputs), info, target), info, ", ".join(map(str, inputs)))
    out = np.asarray(predict(model, x), dtype=np.float64)
    if info["task"] != "classification":
        header = ["index"] + (["prediction"] if out.shape[1] == 1 else [f"prediction_{j}" for j in range(out.shape[1])])
        return header, [[i, *row] for i, row in enumerate(out.tolist())]
    z = out - out.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    classes = info.get("classes") or [str(j) for j in range(out.shape[1])]
    k = p.argmax(axis=1)
    named = classes != [str(j) for j in range(len(classes))]  # a label column only when labels are not the numbers
    header = ["index", "class", *(["label"] if named else []), *[f"p_{c}" for c in classes]]
    return header, [
        [i, int(k[i]), *([classes[k[i]]] if named else []), *(round(v, 6) for v in p[i].tolist())]
        for i in range(len(p))
    ]


def cmd_predict(args) -> int:
    runs = [p for p in args.inputs if (Path(p) / "config.json").is_file()]
    if runs:  # a glob such as runs/digits-* matched several runs, and predict took the others for inputs
        raise CLIError(f"predict takes one run directory, then its inputs; {runs[0]} is a run directory too")
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
        if getattr(args, "several", False):
            print(f"{args.run_dir}:")
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
    p.add_argument(
        "--model",
        help="mlp (default), lenet, all layer sizes such as 784-256-128-10; text: bow, textcnn, lstm, bilstm, gru, "
        "transformer",
    )
    p.add_argument(
        "--hidden", help="hidden layer sizes of the mlp (or a text model's head), e.g. 256,128 (default 128)"
    )
    p.add_argument("--activation", help="hidden activation (default relu)")
    p.add_argument("--dropout", type=float, help="dropout after each hidden layer (default 0; text models 0.5)")


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
    t.add_argument(
        "--init",
        help="weight initialiser of every layer: a name or NAME:PARAM, e.g. he_uniform, uniform:0.05 (U(-0.05, 0.05)), "
        "normal:0.01, xavier_uniform:2 (gain 2) (default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)))",
    )
    t.add_argument(
        "--bias-init",
        help="bias initialiser of every layer: zeros, ones, constant:V, uniform:B, normal:S "
        "(default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)))",
    )
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
    e.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="one or more run directories")
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
    s.add_argument("run_dirs", metavar="RUN_DIR", nargs="*", help="run directories (or none, with --model/--data)")
    _add_data_flags(s)
    _add_model_flags(s)
    s.set_defaults(func=cmd_summary)

    insight.add_parsers(sub)
    export_cli.add_parser(sub)
    tour_cli.add_parser(sub)
    playground_cli.add_parser(sub)
    return parser


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and len(e.args) == 1 and isinstance(e.args[0], str) else str(e)
    msg = " ".join(msg.split()) or type(e).__name__
    return msg


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """Weights with NaN/Inf: one line on stderr, like an error; other warnings as Python shows them."""
    if issubclass(category, io.NonFiniteWarning):
        print(f"neuronkit: warning: {message}", file=sys.stderr)
    else:
        _default(message, category, filename, lineno, file, line)


def _parse(parser, argv) -> argparse.Namespace:
    """The parsed ``argv``. Run directories left over after a command that takes one (a glob such as
    ``runs/digits-*`` that matched several) get a one-line error that says so."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        runs = [x for x in extra if (Path(x) / "config.json").is_file()]
        if runs and args.command is not None:
            what = "--resume" if args.command == "train" else args.command
            raise CLIError(
                f"{what} takes one run directory, got {len(runs) + 1} (also {', '.join(runs)}); name one, e.g. the "
                "newest of a glob such as runs/digits-*"
            )
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def _run(args) -> int:
    """``args.func(args)``; a command given several run directories (``neuronkit report runs/digits-*``) runs once
    for each, in order, with ``args.several`` set: an error in one run is one line and the others still run; the
    exit status is the worst of theirs."""
    runs = getattr(args, "run_dirs", None)
    if runs is None or len(runs) <= 1:
        if runs is not None:
            args.run_dir = runs[0] if runs else None
        return int(args.func(args) or 0)
    if getattr(args, "out", None) is not None:
        raise CLIError(f"--out names one file: with {len(runs)} runs leave it out (each writes into its run directory)")
    status = 0
    for i, run in enumerate(runs):
        if i and args.command != "evaluate":  # a blank line between multi-line outputs
            print(flush=True)
        try:
            status = max(status, int(args.func(argparse.Namespace(**{**vars(args), "run_dir": run, "several": True}))))
        except USER_ERRORS as e:
            print(f"neuronkit: error: {_one_line(e)}", file=sys.stderr, flush=True)
            status = max(status, 1)
    return status


def main(argv=None) -> int:
    """Run the ``neuronkit`` command line on ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    tune_allocator()  # a training process: keep freed array memory for reuse (see backend.tune_allocator)
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _main(argv)


def _main(argv) -> int:
    parser = build_parser()
    try:
        args = _parse(parser, argv)
        if args.command is None:
            parser.print_help()
            return 2
        return _run(args)
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
