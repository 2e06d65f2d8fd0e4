"""The commands that look inside a trained run: ``gradcheck``, ``diagnose`` (``--try-fix``), ``inspect``, ``report``."""

from __future__ import annotations

import math
import sys

import numpy as np

from .. import creation, io
from . import data as D
from . import training as T
from .errors import CLIError
from .models import build_model
from .rundir import RUN_JSON_LIMITS, load_run
from .text import is_text_run, summary_inputs, vocab_size


def _test_data(cfg, info, data_dir=None, n: int | None = None) -> tuple:
    """``(x, y, where, loss, loaded)``: the first ``n`` (default all) test samples of a run's data, prepared as its
    model takes them, where they come from, the run's loss name, and the loaded dataset (raw inputs included)."""
    if data_dir is not None:
        cfg.data_dir = data_dir
    if is_text_run(info):  # x: the encoded test texts (a SequenceDataset), or the (tokens, lengths) of the first n
        from .textinsight import loss_of, test_split

        tt = test_split(_run_of(cfg), cfg, info)
        return (tt.dataset if n is None else tt.batch(n)[:2]), tt.y[:n], tt.where, loss_of(cfg, info), tt
    loaded = D.load_data(cfg)
    where = f"{cfg.data} (test split)"
    n = len(loaded.x_test) if n is None else min(n, len(loaded.x_test))
    x = D.prepare_inputs(loaded.x_test[:n], info, where)
    y = D.check_labels(loaded.y_test[:n], info["task"], info["num_outputs"], where)
    return x, y, where, info.get("loss") or T.loss_name(cfg, info["task"]), loaded


def _run_of(cfg):
    from .rundir import RunDir

    return RunDir(cfg.out)


def _head(x, n: int):
    """The first ``n`` inputs: rows of an array, or the padded ``(tokens, lengths)`` of a text dataset's first n."""
    if hasattr(x, "get_batch") and not hasattr(x, "shape"):
        return tuple(x.get_batch(np.arange(min(n, len(x))))[:2])
    return x[:n]


def _batch(x, y) -> tuple:
    """``(x, y)``, or ``(tokens, lengths, y)`` for a text model's inputs."""
    return (*x, y) if isinstance(x, tuple) else (x, y)


def _n(x) -> int:
    return len(x[0]) if isinstance(x, tuple) else len(x)


def _test_batch(args, cfg, info):
    """The first ``--batch-size`` test samples of a run's data, prepared as its model takes them, and its loss name."""
    return _test_data(cfg, info, args.data_dir, args.batch_size)[:4]


def cmd_gradcheck(args) -> int:
    from ..inspect.gradcheck import check_gradients

    if args.batch_size < 1 or args.max_per_param < 1:
        raise CLIError(
            f"--batch-size and --max-per-param must be at least 1, got {args.batch_size} and {args.max_per_param}"
        )
    run, cfg, info, model = load_run(args.run_dir)
    x, y, where, loss = _test_batch(args, cfg, info)
    report = check_gradients(model, _batch(x, y), loss=loss, max_per_param=args.max_per_param, seed=args.seed)
    print(f"{run.path}: {where}")
    print(report)
    return 0 if report.ok else 1


def _history_epochs(run) -> list:
    """The epoch records of the run's history.jsonl (its ``{"kind": "epoch", ...}`` lines, without ``kind``)."""
    path = run.history_path
    if not path.is_file():
        raise CLIError(f"{path} is missing: the run has no training history to diagnose")
    # a number written as null was NaN or infinite (strict JSON); older runs wrote NaN literals
    records = io.read_jsonl(path, "training history", RUN_JSON_LIMITS, dict, nonfinite=True)
    epochs = [
        {k: math.nan if v is None else v for k, v in r.items() if k != "kind"}
        for r in records
        if r.get("kind") == "epoch"
    ]
    if not epochs:
        raise CLIError(f"{path} has no epoch records: the run has no training history to diagnose")
    return epochs


DIAGNOSE_SAMPLES = 2000  # test samples the diagnosis looks at by default: the whole split of most datasets


def _findings(run, cfg, info, model, x, y, loss, whole_split: bool = True) -> tuple:
    """``(ranked findings, epochs, probes)``: ``inspect.diagnose`` of the run: its initial model (rebuilt from its seed:
    the same start its training had), its trained model on ``(x, y)`` (``whole_split``: all of the test split, or at
    least ``DEAD_MIN_SAMPLES`` of it, so that units silent on it are dead), its history and its saved probes."""
    from ..inspect import diagnose
    from ..inspect.findings import DEAD_MIN_SAMPLES
    from ..train.history import History

    epochs = _history_epochs(run)
    creation.manual_seed(cfg.seed)
    initial = build_model(cfg, tuple(info["model_input_shape"]), info["num_outputs"], vocab_size(info))
    probes = probe_history(run)
    lr = cfg.lr if cfg.optimizer == "sgd" else None  # a plain step's size is judged only for SGD
    findings = diagnose(
        model,
        _batch(x, y),
        history=History.from_state({"epochs": epochs}),
        probe=probes,
        initial=initial,
        loss=loss,
        lr=lr,
        whole_split=whole_split or _n(x) >= DEAD_MIN_SAMPLES,
    )
    if is_text_run(info):  # recurrent gates, gradients through time, attention heads, texts cut by max_len
        from ..inspect.sequence_callback import check_sequence_history
        from .textinsight import text_findings

        after = text_findings(run, cfg, info, model, _batch(x, y), loss)
        saved = sequence_history(run)  # what the sequence probes saw during training
        findings += after + ([] if saved is None else check_sequence_history(saved, after))
    return findings, epochs, probes


def _diagnose_batch(args, cfg, info) -> tuple:
    """The test samples ``diagnose``/``report`` look at: ``--batch-size`` of them, by default the whole test split up
    to ``DIAGNOSE_SAMPLES``; and whether that is the whole split."""
    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    n = DIAGNOSE_SAMPLES if args.batch_size is None else args.batch_size
    x, y, where, loss, loaded = _test_data(cfg, info, args.data_dir, n)
    total = len(loaded.y) if is_text_run(info) else len(loaded.x_test)
    return x, y, where, loss, loaded, _n(x) == total


def cmd_diagnose(args) -> int:
    from ..inspect.diagnosis import render

    if args.fix_epochs is not None and args.fix_epochs < 1:
        raise CLIError(f"--fix-epochs must be at least 1, got {args.fix_epochs}")
    run, cfg, info, model = load_run(args.run_dir)
    x, y, where, loss, _, whole = _diagnose_batch(args, cfg, info)
    findings, epochs, probes = _findings(run, cfg, info, model, x, y, loss, whole)
    if getattr(args, "json", False):
        print(io.dumps_json({"run": str(run.path), "findings": [f.to_dict() for f in findings]}))
        return 1 if any(f.severity == "error" for f in findings) else 0
    print(
        f"{run.path}: the model at initialisation and after training on {_n(x)} samples of {where}, "
        f"{len(epochs)} epochs of history"
        + ("" if probes is None else f" and the neurons' history ({_records(probes)} probe records)")
    )
    verbose = getattr(args, "verbose", False)
    print(render(findings, limit=None if verbose else 10, verbose=verbose))
    if args.try_fix:
        if not any(f.fix for f in findings):
            print("try-fix: no finding proposes a remedy to try")
        else:
            from .tryfix import loaded_for, trial_epochs, try_fixes
            from .tryfix import render as render_trials

            n_epochs, why = trial_epochs(findings, epochs, cfg.epochs, args.fix_epochs)
            if why:
                print(f"try-fix: {why}", file=sys.stderr)
            held, trials = try_fixes(cfg, loaded_for(cfg, args.data_dir), findings, n_epochs, stream=sys.stderr)
            print()
            print(render_trials(trials, n_epochs, held, cfg.seed))
    return 1 if any(f.severity == "error" for f in findings) else 0


def _first_layer(model):
    """``(name, weight array, image shape or None)`` of the first Dense or convolution layer (a convolution's
    filters are drawn in their own (C, kh, kw) shape)."""
    from ..nn.layers.conv import ConvNd
    from ..nn.layers.dense import Dense

    for name, m in model.named_modules():
        if isinstance(m, ConvNd):
            w = np.asarray(m.weight.data)
            return name, w, tuple(w.shape[1:]) if w.ndim == 4 else None
        if isinstance(m, Dense):
            return name, np.asarray(m.weight.data), None
    return None


def cmd_report(args) -> int:
    from ..report import ReportData, write_report
    from ..train import predict
    from .models import image_shape
    from .text import load_encoder
    from .textinsight import text_report

    if args.batch_size is not None and args.batch_size < 1:
        raise CLIError(f"--batch-size must be at least 1, got {args.batch_size}")
    run, cfg, info, model = load_run(args.run_dir)
    x_test, y_test, _, loss, loaded = _test_data(cfg, info, args.data_dir)
    n = min(DIAGNOSE_SAMPLES if args.batch_size is None else args.batch_size, len(y_test))
    findings, epochs, probes = _findings(run, cfg, info, model, _head(x_test, n), y_test[:n], loss, n == len(y_test))
    classification = info["task"] == "classification"
    img = image_shape(tuple(info["sample_shape"]))
    first = _first_layer(model)
    metrics = run.read_json("metrics.json") if run.metrics_path.is_file() else {}
    outputs = predict(model, x_test) if classification else None
    settings = {k: v for k, v in cfg.to_dict().items() if v is not None and k not in ("out",)}
    data = ReportData(
        title=f"neuronkit run: {run.path.name}",
        subtitle=f"{cfg.model} on {loaded.name}: {info['sizes']['train']} training, {info['sizes']['validation']} "
        f"validation and {info['sizes']['test']} test samples; {len(epochs)} epochs",
        settings=settings,
        metrics={k: v for k, v in metrics.items() if not isinstance(v, (list, dict))},
        summary=model.summary(inputs=summary_inputs(info))
        if is_text_run(info)
        else model.summary((1, *info["model_input_shape"])),
        epochs=epochs,
        probes=probes,
        first_layer=first,
        image_shape=img[1:] if img and img[0] == 1 else img,
        classes=info.get("classes") if classification else None,
        test=(loaded.x_test, y_test, outputs) if classification else None,
        findings=findings,
        events=_events(run, probes),
        text=text_report(load_encoder(run), model, loaded, outputs, info["classes"]) if is_text_run(info) else None,
    )
    out = args.out if args.out is not None else run.path / "report.html"
    write_report(out, data)
    print(f"wrote {out}: open it in a browser (it needs no network)")
    return 0


def sequence_history(run):
    """A text run's saved sequence probes (``RUN/probes/sequence.json``), or None when it has none."""
    from ..inspect.sequence_callback import SEQUENCE_FILE, load_sequence_history

    if not (run.probes_path / SEQUENCE_FILE).is_file():
        return None
    try:
        return load_sequence_history(run.probes_path)
    except ValueError as e:
        raise CLIError(f"{run.probes_path / SEQUENCE_FILE} is damaged: {e}") from None


def _events(run, probes) -> list:
    """The run's events in step order: the neurons' (``probes.json``) and the sequence probes' (``sequence.json``)."""
    saved = sequence_history(run)
    events = (list(probes.events) if probes is not None else []) + (saved.events if saved is not None else [])
    return sorted(events, key=lambda e: e.get("step") or 0)


def probe_history(run):
    """The run's saved per-neuron history (``RUN/probes``), or None when it was trained without probes."""
    from ..inspect.probes import load_history

    if not (run.probes_path / "probes.json").is_file():
        return None
    try:
        return load_history(run.probes_path)
    except (OSError, ValueError) as e:
        raise CLIError(f"{run.probes_path} is damaged: {e}") from None


def _records(probes) -> int:
    return max((rec.size for rec in probes.layers.values()), default=0)


def cmd_inspect(args) -> int:
    from ..inspect.unit import format_unit, probed_layers, view_unit
    from .models import image_shape

    run, cfg, info, model = load_run(args.run_dir)
    if is_text_run(info):
        from .textinsight import inspect_text

        return inspect_text(args, run, cfg, info, model, probe_history(run))
    layers = probed_layers(model)
    if args.layer is None or args.layer not in layers:
        what = "--layer is required" if args.layer is None else f"no layer {args.layer!r} with units"
        raise CLIError(
            f"{what}; the layers of {run.path}: " + ", ".join(f"{n} ({type(m).__name__})" for n, m in layers.items())
        )
    if args.top < 0:
        raise CLIError(f"--top must be at least 0, got {args.top}")
    inputs = labels = raw = loaded = None
    if args.top:
        inputs, y, _, _, loaded = _test_data(cfg, info, args.data_dir)
        labels = y if info["task"] == "classification" else None
        raw = loaded.x_test
    probes = probe_history(run)
    view = view_unit(model, args.layer, args.unit, probes=probes, inputs=inputs, labels=labels, top=args.top)
    img = image_shape(tuple(info["sample_shape"]))
    img = img[1:] if img and img[0] == 1 else img
    first = next(iter(layers)) == args.layer  # only the first layer's weights match the input's shape
    classes = info.get("classes")
    print(f"{run.path}:")
    where = None if loaded is None else loaded.describe  # the source row of each top input, for CSV data
    print(format_unit(view, image_shape=img if first else None, classes=classes, source=where))
    if not args.no_image:
        from ..io import atomic_write
        from ..report.unit import unit_figure

        tops = None
        if view.top and img is not None:
            tops = [np.asarray(raw[i], dtype=np.float64).reshape(img) for i, _, _ in view.top]
        out = args.out if args.out is not None else run.path / f"inspect-layer{args.layer}-unit{args.unit}.png"
        atomic_write(str(out), unit_figure(view, image_shape=img if first else None, top_images=tops, classes=classes))
        print(f"picture: {out}")
    return 0


def add_parsers(sub) -> None:
    """Register this module's subcommands on the ``neuronkit`` parser's subparsers."""
    g = sub.add_parser("gradcheck", help="check a run's backpropagated gradients against float64 finite differences")
    g.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="one or more run directories")
    g.add_argument("--batch-size", type=int, default=16, help="test samples in the batch (default 16)")
    g.add_argument("--max-per-param", type=int, default=20, help="entries checked per parameter (default 20)")
    g.add_argument("--seed", type=int, default=0, help="seed of the sampled entries (default 0)")
    g.add_argument("--data-dir", help="folder holding the MNIST-family or text files (default $NEURONKIT_DATA)")
    g.set_defaults(func=cmd_gradcheck)

    dg = sub.add_parser(
        "diagnose",
        help="problems in a run's model (on a test batch) and in its training history",
        description="Check a run's trained model on a batch of its test data and read its history: "
        "dead or saturated units, vanishing or exploding signals and gradients, a learning "
        "rate too high or too low, plateaus, overfitting. Exit status 1 when a finding is "
        "an error.",
    )
    dg.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="one or more run directories")
    dg.add_argument(
        "--batch-size",
        type=int,
        help=f"test samples to look at (default: the whole test split, up to {DIAGNOSE_SAMPLES})",
    )
    dg.add_argument("--verbose", "-v", action="store_true", help="every finding, with the ones each line groups")
    dg.add_argument("--json", action="store_true", help="the ranked findings as JSON, for tools")
    dg.add_argument("--data-dir", help="folder holding the MNIST-family or text files (default $NEURONKIT_DATA)")
    dg.add_argument(
        "--try-fix",
        action="store_true",
        help="re-run a short training from the same start with each proposed remedy and with the original "
        "settings, and report the measured difference",
    )
    dg.add_argument(
        "--fix-epochs",
        type=int,
        help="epochs of each --try-fix training (default 3, or as many as the run took to show a finding, up to "
        "its own epochs)",
    )
    dg.set_defaults(func=cmd_diagnose)

    r = sub.add_parser(
        "report",
        help="one self-contained HTML page with the run's plots, diagnostics and events",
        description="Write RUN/report.html: loss and metric curves, learning rate, activation "
        "histograms, dead and saturated units and gradient norms over time, first-layer "
        "weights, confusion matrix, the most confidently wrong test examples, diagnostics "
        "and events. It opens offline.",
    )
    r.add_argument("run_dirs", metavar="RUN_DIR", nargs="+", help="one or more run directories")
    r.add_argument("--out", "-o", help="where to write the page (default RUN_DIR/report.html)")
    r.add_argument(
        "--batch-size",
        type=int,
        help=f"test samples the diagnostics look at (default: the whole test split, up to {DIAGNOSE_SAMPLES})",
    )
    r.add_argument("--data-dir", help="folder holding the MNIST-family or text files (default $NEURONKIT_DATA)")
    r.set_defaults(func=cmd_report)

    i = sub.add_parser(
        "inspect",
        help="one neuron: weights, bias, activation, history, events, top inputs",
        description="Show one unit (neuron) of a run's model: its weights (drawn as an image when the "
        "inputs are images), bias and activation, its history over training and its events "
        "(from the run's probes), and the test inputs that excite it most. Also writes a "
        "picture (PNG).",
    )
    i.add_argument("run_dir", metavar="RUN_DIR")
    i.add_argument("--layer", help="the layer's name, as `neuronkit summary RUN` lists it (e.g. 0)")
    i.add_argument("--unit", type=int, default=0, help="the unit (neuron) or channel index (default 0)")
    i.add_argument("--top", type=int, default=8, help="how many most-exciting test inputs to show (default 8; 0: none)")
    i.add_argument("--out", "-o", help="the picture's path (default RUN_DIR/inspect-layerL-unitU.png)")
    i.add_argument("--no-image", action="store_true", help="print only; write no picture")
    i.add_argument("--data-dir", help="folder holding the MNIST-family or text files (default $NEURONKIT_DATA)")
    i.set_defaults(func=cmd_inspect)

    from .textinsight import add_explain_parser

    add_explain_parser(sub)
