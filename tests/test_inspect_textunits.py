"""A text model's units seen through texts (``inspect.textunits``), and the pre-training checks on a text batch."""

from __future__ import annotations

import numpy as np
import pytest
from test_inspect_attribution import VOCAB, E, bow, lstm

from neuronkit import nn
from neuronkit.data import SequenceDataset
from neuronkit.inspect import check_before_training
from neuronkit.inspect.textunits import format_phrases, text_layers, top_phrases, unit_over_tokens

RNG = np.random.default_rng(0)
SEQS = [RNG.integers(1, VOCAB, size=n) for n in (5, 9, 3, 7, 9, 1)]
DS = SequenceDataset(SEQS, labels=np.array([0, 1, 2, 0, 1, 2]))


def test_a_recurrent_unit_over_the_tokens_is_the_layer_output_and_padding_is_nan():
    model = lstm("float64")
    tokens, lengths, _ = DS.get_batch(np.arange(len(SEQS)))
    response, per = unit_over_tokens(model, "encoder.rnn", 3, tokens, lengths)
    out, _ = model.encoder.rnn(model.embedding(tokens), lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(per[b, :n], np.asarray(out.data)[b, :n, 3])
        assert np.isnan(per[b, n:]).all() and response[b] == pytest.approx(per[b, :n].max())


def test_a_dense_units_token_contributions_add_up_to_its_pre_activation():
    # head.0 of a bag of embeddings: z = W mean_t(x_t) + b, so gradient x input on each token vector gives each
    # token's share of z - b exactly where the unit is active (tanh: scaled by tanh'(z), the same for every token)
    model = nn.TextClassifier(
        nn.Embedding(VOCAB, E, padding_idx=0, generator=1, dtype="float64"),
        nn.SequencePool("mean"),
        nn.Sequential(nn.Dense(E, 4, activation="relu", generator=2, dtype="float64"), nn.Dense(4, 2, dtype="float64")),
    )
    tokens, lengths, _ = DS.get_batch(np.arange(len(SEQS)))
    for unit in range(4):
        response, per = unit_over_tokens(model, "head.0", unit, tokens, lengths)
        pooled = np.stack([np.asarray(model.embedding.weight.data)[s].mean(0) for s in SEQS])
        z = pooled @ np.asarray(model.head[0].weight.data)[unit] + float(model.head[0].bias.data[unit])
        np.testing.assert_allclose(response, np.maximum(z, 0))
        active = z > 0
        sums = np.nansum(per, axis=1)
        np.testing.assert_allclose(sums[active], z[active] - float(model.head[0].bias.data[unit]), atol=1e-12)
        np.testing.assert_allclose(sums[~active], 0.0, atol=1e-12)


def test_top_phrases_are_the_strongest_texts_with_their_peak_and_read_in_batches(monkeypatch):
    import neuronkit.inspect.textunits as TU

    model = lstm("float64")
    monkeypatch.setattr(TU, "BATCH", 4)  # two batches of different padded lengths
    hits = top_phrases(model, "embedding", 1, DS, DS.labels, top=3)
    w = np.asarray(model.embedding.weight.data)[:, 1]
    best = sorted(range(len(SEQS)), key=lambda i: -w[SEQS[i]].max())[:3]
    assert [h.index for h in hits] == best
    for h in hits:
        assert h.peak == int(np.argmax(w[SEQS[h.index]])) and h.label == DS.labels[h.index]
    text = format_phrases(hits, lambda i: [f"t{k}" for k in SEQS[i]], "largest activation", per_token=True)
    assert text.count("[[") == 3 and text.count("over its tokens:") == 3


def test_text_layers_and_bad_units():
    model = bow()
    assert list(text_layers(model)) == ["embedding", "head.0", "head.1"]
    tokens, lengths, _ = DS.get_batch(np.arange(2))
    with pytest.raises(ValueError, match="units 0 to 2"):
        unit_over_tokens(model, "head.1", 3, tokens, lengths)
    with pytest.raises(KeyError, match="no layer 'x'"):
        unit_over_tokens(model, "x", 0, tokens, lengths)


def test_check_before_training_takes_a_text_batch_and_measures_from_the_embedding():
    model = bow("float32")
    tokens, lengths, y = DS.get_batch(np.arange(len(SEQS)))
    kinds = [f.kind for f in check_before_training(model, (tokens, lengths, y))]
    assert "output_scale" not in kinds and "exploding_activation" not in kinds, kinds
    model.head[1].weight.data *= 1e4  # logits far too large
    found = {f.kind for f in check_before_training(model, (tokens, lengths, y))}
    assert {"output_scale", "initial_loss"} <= found
