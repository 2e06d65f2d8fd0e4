"""``neuronkit train`` on a text model with recurrent or attention layers records the sequence probes
(``inspect.SequenceProbeCallback``: gate saturation, gradient through time, attention entropy) into
``RUN/probes/sequence.json``; a resumed run continues them; ``diagnose`` and ``report`` read them."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_cli_text import one_line_error, run_cli
from test_cli_text_models import reviews  # noqa: F401 (the fixture: 240 short reviews in a CSV)

from neuronkit.inspect.sequence_callback import check_sequence_history, load_sequence_history

LSTM = ("--model", "lstm", "--embed-dim", "8", "--hidden-size", "6", "--batch-size", "32", "--probe-every", "5")
TRANSFORMER = ("--model", "transformer", "--embed-dim", "8", "--hidden-size", "16", "--heads", "2", "--layers", "1")


def train(reviews, out, *args, epochs=2):  # noqa: F811
    rc, text, err = run_cli("train", "--data", reviews, "--text", "review", *args, "--epochs", epochs, "--out", out)
    assert rc == 0, err
    return text


def steps_of(run) -> int:
    return json.loads((run / "metrics.json").read_text())["steps"]


@pytest.fixture(scope="module")
def lstm_run(reviews, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("runs") / "lstm"
    train(reviews, out, *LSTM)
    return out


def test_an_lstm_run_records_gates_and_the_gradient_through_time(lstm_run):
    saved = load_sequence_history(lstm_run / "probes")
    h = saved.history
    steps = steps_of(lstm_run)
    assert saved.every == 5 and steps >= 10
    assert h["step"].tolist() == [1, *range(5, steps + 1, 5)]  # step 1, then every 5 steps (after the update)
    assert np.all(np.isfinite(h["first_last"])) and np.all(h["first_last"] > 0)
    assert list(h["forget_shut"]) == ["encoder.rnn.l0"]  # one LSTM layer, one direction
    shut = h["forget_shut"]["encoder.rnn.l0"]
    assert shut.shape == (len(h["step"]), 6) and np.all((shut >= 0) & (shut <= 1))  # a share of steps per unit
    assert h["head_entropy"] == {} and h["head_top_share"] == {}  # no attention in an LSTM
    doc = json.loads((lstm_run / "probes" / "sequence.json").read_text())  # plain JSON, as the file says
    assert doc["format"] == "neuronkit.sequence_probes" and len(doc["records"]) == len(h["step"])


def test_a_transformer_run_records_the_entropy_of_each_head(reviews, tmp_path):  # noqa: F811
    out = tmp_path / "transformer"
    train(reviews, out, *TRANSFORMER, "--batch-size", "32", "--probe-every", "4", epochs=1)
    h = load_sequence_history(out / "probes").history
    assert len(h["step"]) >= 2 and h["forget_shut"] == {}
    (layer,) = h["head_entropy"]
    ent, top = h["head_entropy"][layer], h["head_top_share"][layer]
    assert ent.shape == top.shape == (len(h["step"]), 2)  # 2 heads
    assert np.all((ent >= 0) & (ent <= 1 + 1e-9)) and np.all((top > 0) & (top <= 1 + 1e-9))


def test_a_bag_of_embeddings_and_runs_without_probes_record_no_sequence_probes(reviews, tmp_path):  # noqa: F811
    bow = tmp_path / "bow"
    train(reviews, bow, "--model", "bow", "--embed-dim", "8", "--hidden", "8", epochs=1)
    assert not (bow / "probes" / "sequence.json").exists()  # nothing recurrent or attending to measure
    off = tmp_path / "off"
    train(reviews, off, *LSTM[:-2], "--probe-every", "0", epochs=1)
    assert not (off / "probes" / "sequence.json").exists()


def test_a_resumed_run_continues_its_sequence_probes(lstm_run, reviews, tmp_path):  # noqa: F811
    out = tmp_path / "resumed"
    train(reviews, out, *LSTM, epochs=1)
    first = load_sequence_history(out / "probes").history["step"].tolist()
    rc, _, err = run_cli("train", "--resume", out, "--epochs", "2")
    assert rc == 0, err
    steps = load_sequence_history(out / "probes").history["step"].tolist()
    assert steps[: len(first)] == first and steps == sorted(set(steps))  # continued, no step twice
    assert steps == load_sequence_history(lstm_run / "probes").history["step"].tolist()  # as the run without a stop


def _add_event(run, kind="saturated_forget_gate", layer="encoder.rnn.l0") -> str:
    path = run / "probes" / "sequence.json"
    doc = json.loads(path.read_text())
    message = f"at step 5, the forget gates of 4 of 6 units of {layer} are shut (test event)."
    doc["events"] = [{"step": 5, "kind": kind, "layer": layer, "message": message, "remedy": "try something"}]
    path.write_text(json.dumps(doc))
    return message


def test_diagnose_and_report_read_what_the_sequence_probes_saw_during_training(lstm_run, tmp_path):
    run = tmp_path / "copy"
    shutil.copytree(lstm_run, run)
    message = _add_event(run)
    rc, text, err = run_cli("diagnose", run)
    assert rc in (0, 1) and err == "", err
    line = next(ln for ln in text.splitlines() if "(test event)" in ln)
    assert line.startswith("INFO layer encoder.rnn.l0:") and "The trained model no longer shows it." in line, text
    rc, _, err = run_cli("report", run, "--out", tmp_path / "report.html")
    assert rc == 0, err
    assert message in (tmp_path / "report.html").read_text(encoding="utf-8")  # in the report's events
    (run / "probes" / "sequence.json").write_text('{"format": "neuronkit.sequence_probes", "records": 3}')
    rc, _, err = run_cli("diagnose", run)
    one_line_error(rc, err, "sequence.json is damaged")


def test_a_finding_seen_during_and_after_training_is_reported_once():
    from neuronkit.inspect import Finding
    from neuronkit.inspect.sequence_callback import SequenceHistory

    event = {"step": 7, "kind": "vanishing_through_time", "layer": None, "message": "at step 7, ...", "remedy": "r"}
    saved = SequenceHistory(every=5, records=[], events=[event])
    after = [Finding("vanishing_through_time", "warning", {"scope": "time steps"}, "after training, ...", "r")]
    assert check_sequence_history(saved, after) == []
    assert "from step 7 on" in after[0].message
    (gone,) = check_sequence_history(saved, [])
    assert gone.kind == "vanishing_through_time" and gone.severity == "info" and gone.phase == "training"
