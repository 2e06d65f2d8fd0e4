"""The commands that look inside a run, on a text run: ``gradcheck``, ``diagnose``, ``report`` and ``inspect`` read the
run's test texts through its own tokenizer (``RUN/tokenizer.json``, ``cli/text.py``), and ``explain`` shows how much
each token of a text pushed the prediction (integrated gradients, ``inspect.integrated_gradients``).

::

    neuronkit diagnose runs/spam
    neuronkit explain runs/spam --text "WINNER!! claim your free prize now"
    neuronkit inspect runs/spam --layer head.0 --unit 3
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from .errors import CLIError
from .text import load_encoder, load_text

MAX_EXPLAIN_CHARS = 100_000  # a text to explain is read whole: bounded like a CSV field


@dataclass
class TextTest:
    """The test split of a text run as its model takes it."""

    texts: list  # the raw test texts
    y: np.ndarray  # (N,) int64 labels
    dataset: object  # the texts encoded by the run's tokenizer (a SequenceDataset, cut to max_len)
    where: str  # e.g. "sms_spam (test split)"
    name: str  # the dataset's name

    @property
    def x_test(self) -> list:  # what the report lists beside each test label
        return self.texts

    def batch(self, n: int | None = None) -> tuple:
        """``(tokens (n, T), lengths (n,), labels (n,))``: the first ``n`` (default all) test texts, padded."""
        n = len(self.texts) if n is None else min(n, len(self.texts))
        return self.dataset.get_batch(np.arange(n))


def test_split(run, cfg, info, data_dir=None) -> TextTest:
    """The run's test texts, labels and their encoding by the run's tokenizer."""
    if data_dir is not None:
        cfg.data_dir = data_dir
    encoder = load_encoder(run)
    d = load_text(cfg)
    if len(d.classes) != int(info["num_outputs"]):
        raise CLIError(f"{cfg.data} has {len(d.classes)} classes, the model predicts {info['num_outputs']}")
    texts, y = d.test
    y = np.asarray(y, dtype=np.int64)
    return TextTest(list(texts), y, encoder.dataset(texts, y), f"{cfg.data} (test split)", d.name)


def loss_of(cfg, info) -> str:
    from . import training as T

    return info.get("loss") or T.loss_name(cfg, "classification")


def token_strings(encoder, ids, length: int) -> list:
    """The tokens of one encoded text, as strings (out-of-vocabulary ones as ``<unk>``)."""
    return encoder.vocab.lookup(np.asarray(ids[:length]))


# -- explain ------------------------------------------------------------------------------------------------------
def encode_one(encoder, text: str) -> tuple:
    """``(tokens (1, T), lengths (1,), token strings)`` of one text through the run's tokenizer."""
    if not text.strip():
        raise CLIError('--text is empty: give the text to explain, e.g. --text "a gripping, funny film"')
    if len(text) > MAX_EXPLAIN_CHARS:
        raise CLIError(f"--text has {len(text):,} characters; explain reads at most {MAX_EXPLAIN_CHARS:,}")
    tokens, lengths = encoder.dataset([text]).get_batch(np.arange(1))
    if int(lengths[0]) == 0:
        raise CLIError(f"--text {text!r} has no tokens the run's tokenizer keeps")
    return tokens, lengths, token_strings(encoder, tokens[0], int(lengths[0]))


def cmd_explain(args) -> int:
    from ..inspect.attribution import format_attribution, integrated_gradients
    from .rundir import load_run
    from .text import is_text_run

    if args.steps < 2 or args.max_steps < args.steps:
        raise CLIError(
            f"--steps must be at least 2 and --max-steps at least --steps, got {args.steps}, {args.max_steps}"
        )
    run, cfg, info, model = load_run(args.run_dir)
    if not is_text_run(info):
        raise CLIError(f"{run.path} is not a text run: explain needs a model trained on text")
    classes = list(info["classes"])
    encoder = load_encoder(run)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print(f"{run.path}:")
    for k, text in enumerate(args.text):
        tokens, lengths, words = encode_one(encoder, text)
        target = None
        if args.target is not None:
            if args.target not in classes:
                raise CLIError(f"--target {args.target!r} is not one of the model's classes {classes}")
            target = classes.index(args.target)
        a = integrated_gradients(model, tokens, lengths, target, steps=args.steps, max_steps=args.max_steps)
        if k:
            print()
        print(format_attribution(a, words, classes, color=color))
    return 0


def add_explain_parser(sub) -> None:
    e = sub.add_parser(
        "explain",
        help="how much each token of a text pushed a text run's prediction (integrated gradients)",
        description="Attribute a text run's output to the tokens of a text by integrated gradients on the "
        "embeddings (baseline: every token's vector zero, as a padding token's). The attributions add up to the "
        "difference of the class score (logit) between the text and the baseline; the steps of the integral are "
        "refined where the path is steep until they do within 1 %, and the remaining error is shown.",
    )
    e.add_argument("run_dir", metavar="RUN_DIR")
    e.add_argument("--text", action="append", required=True, help="a text to explain (repeat for several)")
    e.add_argument("--target", help="the class to explain (default: the predicted class)")
    e.add_argument("--steps", type=int, default=32, help="equal steps of the integral to start from (default 32)")
    e.add_argument("--max-steps", type=int, default=4096, help="the most steps after refinement (default 4096)")
    e.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour the tokens by their push (default auto: when the output is a terminal)",
    )
    e.set_defaults(func=cmd_explain)


# -- inspect ------------------------------------------------------------------------------------------------------
def inspect_text(args, run, cfg, info, model, probes) -> int:
    """``neuronkit inspect`` on a text run: the unit (with its weights and history, for a dense unit) and the test
    texts that excite it most, the peak token marked; for a unit with a value at every token, those values."""
    from ..inspect.textunits import format_phrases, text_layers, top_phrases
    from ..inspect.unit import format_unit, view_unit
    from ..nn.layers.dense import Dense

    layers = text_layers(model)
    if args.layer is None or args.layer not in layers:
        what = "--layer is required" if args.layer is None else f"no layer {args.layer!r} with units"
        raise CLIError(
            f"{what}; the layers of {run.path}: "
            + ", ".join(f"{n} ({type(m).__name__}, {u} units)" for n, (m, u) in layers.items())
        )
    module, units = layers[args.layer]
    if not 0 <= args.unit < units:
        raise CLIError(f"layer {args.layer} has units 0 to {units - 1}; got --unit {args.unit}")
    if args.top < 0:
        raise CLIError(f"--top must be at least 0, got {args.top}")
    classes = info.get("classes")
    print(f"{run.path}:")
    if isinstance(module, Dense):
        print(format_unit(view_unit(model, args.layer, args.unit, probes=probes), classes=classes))
    else:
        print(f"layer {args.layer} ({type(module).__name__}), unit {args.unit} of {units}: a value at every token")
    if args.top:
        tt = test_split(run, cfg, info, args.data_dir)
        hits = top_phrases(model, args.layer, args.unit, tt.dataset, tt.y, args.top)
        encoder = load_encoder(run)

        def words_of(i):
            return token_strings(encoder, tt.dataset.get_batch(np.array([i]))[0][0], int(tt.dataset.lengths[i]))

        per_token = not isinstance(module, Dense)
        what = "largest activation" if per_token else "output"
        peak = "where it peaks" if per_token else "that contributes most (gradient x input)"
        print(f"  the {len(hits)} test texts (of {len(tt.texts)}) that excite it most, [[the token {peak}]]:")
        print(format_phrases(hits, words_of, what, classes, per_token=per_token))
    return 0


# -- diagnose -----------------------------------------------------------------------------------------------------
def text_findings(run, cfg, info, model, batch, loss) -> list:
    """The text-specific findings on the trained model and the run's test texts: gradients vanishing through time,
    saturated forget gates, collapsed attention heads (``inspect.sequence``), and texts cut by the maximum length."""
    from ..inspect.sequence import check_sequences, check_truncation, measure_sequences

    findings = check_sequences(measure_sequences(model, batch, loss))
    encoder = load_encoder(run)
    _, lengths = encoder.encode(load_text(cfg).test[0])
    return findings + check_truncation(lengths, encoder.max_len)


# -- report -------------------------------------------------------------------------------------------------------
REPORT_MISTAKES, REPORT_UNITS, REPORT_ATTENTION = 8, 3, 3


def _words(encoder, tt: TextTest, i: int) -> list:
    return token_strings(encoder, tt.dataset.get_batch(np.array([i]))[0][0], int(tt.dataset.lengths[i]))


def text_report(encoder, model, tt: TextTest, outputs, classes):
    """The report's "Reading the texts" (``report.text.TextReport``): the most confidently wrong test texts with
    their attributions, attention maps of the first test texts (when the model attends), and the test texts that
    excite the first units of the first layer after the embedding."""
    from ..inspect.attribution import integrated_gradients
    from ..inspect.sequence import measure_sequences
    from ..inspect.textunits import text_layers, top_phrases
    from ..nn.layers.attention import MultiHeadAttention
    from ..nn.layers.embedding import Embedding
    from ..report.page import predicted_confidence
    from ..report.text import Mistake, TextReport, UnitPhrases, attention_plot

    t = TextReport()
    pred, conf = predicted_confidence(outputs)
    wrong = np.flatnonzero(pred != tt.y)
    for i in wrong[np.argsort(-conf[wrong], kind="stable")][:REPORT_MISTAKES]:
        toks, lens = tt.dataset.get_batch(np.array([i]))[:2]
        a = integrated_gradients(model, toks, lens, target=int(pred[i]), steps=32, max_steps=512)
        t.mistakes.append(
            Mistake(int(i), _words(encoder, tt, i), a.scores, classes[tt.y[i]], classes[pred[i]], conf[i], a.error)
        )
    layers = [(n, m, u) for n, (m, u) in text_layers(model).items() if not isinstance(m, Embedding)]
    if layers:
        name, _, units = layers[0]
        for unit in range(min(REPORT_UNITS, units)):
            hits = top_phrases(model, name, unit, tt.dataset, top=3)
            t.units.append(UnitPhrases(name, unit, [(_words(encoder, tt, h.index), h.peak, h.response) for h in hits]))
    if any(isinstance(m, MultiHeadAttention) for _, m in model.named_modules()):
        stats = measure_sequences(model, tt.batch(REPORT_ATTENTION), keep_attention=REPORT_ATTENTION)
        for layer, w in stats.attention.items():
            t.attention += [attention_plot(w[i], _words(encoder, tt, i), layer, i) for i in range(len(w))]
    return t
