"""Inside the layers that read sequences: gate saturation, the gradient reaching each time step, attention heads,
and the findings drawn from them, each on a model built so that the finding must (or must not) appear."""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_inspect_attribution import Attend, LastHidden, bow, lstm

from neuronkit import nn
from neuronkit.inspect.sequence import attention_weights, check_sequences, check_truncation, measure_sequences
from neuronkit.nn.layers.attention import padding_mask

VOCAB, E = 30, 6


def _batch(t=50, b=16, seed=0, short=True):
    rng = np.random.default_rng(seed)
    lengths = np.full(b, t)
    if short:
        lengths[::3] = rng.integers(2, t, size=len(lengths[::3]))
    tokens = rng.integers(1, VOCAB, size=(b, t)) * (np.arange(t)[None] < lengths[:, None])
    return tokens.astype(np.int64), lengths.astype(np.int64), rng.integers(0, 3, size=b)


def rnn_model(scale):
    m = nn.TextClassifier(
        nn.Embedding(VOCAB, E, padding_idx=0, generator=0, dtype="float64"),
        LastHidden(nn.RNN(E, 5, generator=1, dtype="float64")),
        nn.Dense(5, 3, generator=2, dtype="float64"),
    )
    m.encoder.rnn.weight_hh_l0.data *= scale
    return m


def test_gradients_vanishing_through_time_are_found_in_a_plain_rnn_and_not_in_a_bag_of_embeddings():
    batch = _batch()
    weak = measure_sequences(rnn_model(0.2), batch)
    assert np.median(weak.first_last) < 1e-6  # contracting recurrence: the signal dies over 50 steps
    assert [f.kind for f in check_sequences(weak)] == ["vanishing_through_time"]
    flat = measure_sequences(bow("float64"), batch)
    # a mean of embeddings: every token of a text gets the same gradient
    np.testing.assert_allclose(flat.first_last, 1.0)
    assert not flat.recurrent and check_sequences(flat) == []


def test_shut_forget_gates_are_found_and_default_ones_are_not():
    batch, h = _batch(t=12), 5
    model = lstm("float64")
    stats = measure_sequences(model, batch)
    assert set(stats.gates["encoder.rnn.l0"]) == {"input", "forget", "output"}
    assert stats.gates["encoder.rnn.l0"]["forget"]["shut"].shape == (h,)
    assert not [f for f in check_sequences(stats) if f.kind == "saturated_forget_gate"]
    model.encoder.rnn.bias_ih_l0.data[h : 2 * h] = -20.0  # gate order i, f, g, o: the forget gates shut
    found = [f for f in check_sequences(measure_sequences(model, batch)) if f.kind == "saturated_forget_gate"]
    assert len(found) == 1 and found[0].where["units"] == list(range(h))


def _transformer(seed=0):
    layer = nn.TransformerEncoderLayer(E, 2, 12, dropout=0.0, generator=seed, dtype="float64")
    return nn.TextClassifier(
        nn.Embedding(VOCAB, E, padding_idx=0, generator=seed, dtype="float64"),
        Attend(layer),
        nn.Dense(E, 3, generator=seed, dtype="float64"),
    )


def test_attention_weights_are_the_layers_own():
    model = _transformer()
    tokens, lengths, _ = _batch(t=9)
    x = model.embedding(tokens)
    mha = model.encoder.layer.self_attn
    _, theirs = mha(x, x, x, key_padding_mask=padding_mask(lengths, 9), need_weights=True, average_attn_weights=False)
    ours = attention_weights(mha, np.asarray(x.data), np.asarray(x.data), lengths)
    theirs = np.asarray(theirs.data)
    for i, n in enumerate(lengths):  # padded queries are not compared: no text reads them
        np.testing.assert_allclose(ours[i, :, :n], theirs[i, :, :n], atol=1e-12)


def test_a_head_that_gives_all_its_attention_to_one_token_is_found():
    model = _transformer()
    batch = _batch(t=10)
    stats = measure_sequences(model, batch)
    (layer,) = stats.heads
    assert layer == "encoder.layer.self_attn" and stats.heads[layer]["entropy"].shape == (2,)
    assert check_sequences(stats) == []  # random projections: the attention is spread
    # head 0: the same query everywhere (bias only) and large keys: every query picks the same token
    w = model.encoder.layer.self_attn.in_proj_weight.data
    b = model.encoder.layer.self_attn.in_proj_bias.data
    w[0:3] = 0.0
    b[0:3] = 1.0
    w[E : E + 3] *= 1e3
    stats = measure_sequences(model, batch)
    assert stats.heads[layer]["top_share"][0] > 0.9 and stats.heads[layer]["entropy"][0] < 0.2
    (f,) = check_sequences(stats)
    assert f.kind == "collapsed_head" and f.where["heads"] == [0] and f.severity == "info"


def test_texts_cut_by_the_maximum_length():
    assert check_truncation(np.arange(1, 101), 96) == []  # 4 % cut
    (f,) = check_truncation(np.arange(1, 101), 80)
    assert f.kind == "truncated_sequences" and f.fix == {"max_len": 95} and "--max-len 95" in f.remedy


def test_the_model_is_left_as_it_was():
    model = rnn_model(1.0)
    model.train()
    measure_sequences(model, _batch(t=6))
    assert model.training and all(p.grad is None for _, p in model.named_parameters())
    with pytest.raises(ValueError, match="batch must be"):
        measure_sequences(model, _batch(t=6)[:2])


def test_every_text_finding_names_flags_that_exist_with_the_values_it_would_try():
    from test_diagnose_advice import CONCEPTS, train_flags

    from neuronkit.inspect.diagnostics import FIX_FLAGS
    from neuronkit.inspect.sequence import SequenceStats

    stats = SequenceStats(
        gates={"rnn.l0": {"forget": {"shut": np.ones(4), "open": np.zeros(4)}}},
        first_last=np.full(5, 1e-9),
        heads={"attn": {"entropy": np.zeros(2), "top_share": np.ones(2)}},
        recurrent=True,
    )
    findings = check_sequences(stats) + check_truncation(np.arange(1, 101), 50)
    kinds = ["vanishing_through_time", "saturated_forget_gate", "collapsed_head", "truncated_sequences"]
    assert [f.kind for f in findings] == kinds
    flags = train_flags()
    for f in findings:
        assert set(re.findall(r"--[a-z][a-z-]*", f.remedy)) <= flags, f.remedy
        for key, value in f.fix.items():
            flag = FIX_FLAGS[key]
            assert (f"{flag} {value:.3g}" if isinstance(value, float) else f"{flag} {value}") in f.remedy
        for words, flag in CONCEPTS.items():
            assert not re.search(words, f.remedy) or flag in f.remedy, (f.kind, words)


def test_the_sequence_probe_records_while_training_and_reports_each_finding_once():
    from neuronkit.data import DataLoader, SequenceDataset
    from neuronkit.inspect.sequence_callback import SequenceProbeCallback
    from neuronkit.train import fit

    tokens, lengths, y = _batch(t=30, b=32, short=False)
    ds = SequenceDataset(list(tokens), labels=y)
    model = lstm("float64")
    model.encoder.rnn.bias_ih_l0.data[5:10] = -20.0  # forget gates shut from the start
    probe = SequenceProbeCallback(ds.get_batch(np.arange(8)), every=2)
    fit(model, DataLoader(ds, batch_size=8, shuffle=True, seed=0), epochs=2, callbacks=[probe], progress=False)
    h = probe.history
    assert list(h["step"]) == [1, 2, 4, 6, 8]  # 4 steps per epoch, 2 epochs
    assert h["forget_shut"]["encoder.rnn.l0"].shape == (5, 5) and (h["forget_shut"]["encoder.rnn.l0"] == 1).all()
    kinds = [e["kind"] for e in probe.events]
    assert kinds.count("saturated_forget_gate") == 1 and probe.events[0]["step"] == 1  # once, when first seen
    assert "at step 1" in probe.events[0]["message"] and probe.events[0]["remedy"]
    with pytest.raises(ValueError, match="every"):
        SequenceProbeCallback(ds.get_batch(np.arange(2)), every=0)
