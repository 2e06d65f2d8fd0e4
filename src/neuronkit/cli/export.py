"""``neuronkit export RUN --onnx model.onnx``: a run's model as an ONNX file, checked in onnxruntime when installed.

::

    neuronkit export runs/digits --onnx digits.onnx            # opset 17, dynamic batch axis
    neuronkit export runs/sst2-bow --onnx bow.onnx --opset 18    # a text run: inputs tokens (B, T) and lengths (B,)

The example batch that fixes the graph's shapes is random data of the run's input shape (token ids and lengths for a
text run). When onnxruntime is installed the written file is run on that batch and compared with neuronkit's output.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from ..io.onnx import DEFAULT_OPSET, INSTALL_HINT, export_onnx
from . import text
from .errors import CLIError
from .rundir import load_run

CHECK_BATCH = 8
"""Samples in the example batch that the exported graph is checked on."""


def add_parser(sub) -> None:
    x = sub.add_parser(
        "export",
        help="write a run's model as an ONNX file",
        description="Export a run's model to ONNX (needs: pip install 'neuronkit[onnx]').",
    )
    x.add_argument("run_dir", metavar="RUN_DIR")
    x.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    x.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    x.add_argument(
        "--static-batch", action="store_true", help=f"fix the batch axis at {CHECK_BATCH} instead of leaving it free"
    )
    x.set_defaults(func=cmd_export)


def example_inputs(info: dict, model, n: int = CHECK_BATCH, seed: int = 0) -> tuple:
    """A random batch the run's model takes: standard normal features, or token ids and lengths for a text run."""
    rng = np.random.default_rng(seed)
    if text.is_text_run(info):
        t = max(1, min(16, info["text"].get("max_len") or 16))
        vocab = int(info["text"]["vocab_size"])
        tokens = rng.integers(1, max(vocab, 2), size=(n, t), dtype=np.int64)
        lengths = rng.integers(1, t + 1, size=n, dtype=np.int64)
        lengths[0] = t
        tokens[np.arange(t) >= lengths[:, None]] = 0
        return tokens, lengths
    return (rng.standard_normal((n, *info["model_input_shape"])).astype(np.float32),)


def cmd_export(args) -> int:
    out = Path(args.onnx).expanduser()
    if out.is_dir():
        raise CLIError(f"--onnx {out} is a directory; expected a file name such as model.onnx")
    if not out.parent.is_dir():
        raise CLIError(f"--onnx {out}: the folder {out.parent} does not exist")
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise CLIError(INSTALL_HINT) from None
    run, _, info, model = load_run(args.run_dir)
    inputs = example_inputs(info, model)
    proto = export_onnx(model, inputs, out, dynamic_batch=not args.static_batch, opset=args.opset)
    size = os.path.getsize(out)
    print(
        f"wrote {out} ({size / 1024:.1f} KiB, {len(proto.graph.node)} nodes, opset {args.opset}) from {run.path}; "
        f"inputs {', '.join(i.name for i in proto.graph.input)}"
    )
    diff = check_in_onnxruntime(out, model, inputs)
    if diff is None:
        print("onnxruntime is not installed: the file was not run (pip install onnxruntime)", file=sys.stderr)
    else:
        print(f"checked in onnxruntime on {len(inputs[0])} random inputs: max abs difference {diff:.2g}")
    return 0


def check_in_onnxruntime(path, model, inputs) -> float | None:
    """Largest absolute difference between onnxruntime's output for ``inputs`` and the model's (None without
    onnxruntime)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    from ..autograd import no_grad

    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    feed = {i.name: a for i, a in zip(session.get_inputs(), inputs)}
    (got,) = session.run(None, feed)
    was = model.training
    model.eval()
    try:
        with no_grad():
            want = model(*inputs).data
    finally:
        model.train(was)
    return float(np.max(np.abs(got.astype(np.float64) - want)))
