"""Layers over padded sequences: SequencePool and TextClassifier. Padding never changes an output or gets a gradient;
the layer matches PyTorch; a text model trains with fit on (tokens, lengths, labels) batches, predicts in order and
passes the float64 whole-model gradient check with integer inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuronkit as nk
from neuronkit import nn
from neuronkit.data import DataLoader, SequenceDataset
from neuronkit.inspect import check_gradients
from neuronkit.train import fit, predict


def _model(mode="mean", vocab=20, e=6, seed=0):
    return nn.TextClassifier(
        nn.Embedding(vocab, e, padding_idx=0, generator=seed),
        nn.SequencePool(mode),
        nn.Sequential(nn.Dense(e, 8, activation="tanh", generator=seed + 1), nn.Dense(8, 2, generator=seed + 2)),
    )


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_sequence_pool_matches_torch_on_a_padded_batch(mode):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 7, 5))
    lengths = np.array([7, 3, 1, 5])
    ours = nk.Tensor(x, requires_grad=True)
    out = nn.SequencePool(mode)(ours, lengths)
    g = rng.standard_normal(out.shape)
    out.backward(nk.Tensor(g))
    ref_x = torch.tensor(x, requires_grad=True)
    rows = []
    for b, n in enumerate(lengths):  # the reference pools each row's real steps separately: no mask at all
        seq = ref_x[b, :n]
        rows.append(seq.mean(0) if mode == "mean" else seq.max(0).values)
    ref = torch.stack(rows)
    ref.backward(torch.tensor(g))
    np.testing.assert_allclose(out.data, ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.grad.data, ref_x.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_padding_never_changes_the_output_or_gets_a_gradient(mode):
    m = _model(mode)
    tokens = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]])
    lengths = np.array([3, 2])
    base = m(nk.Tensor(tokens), nk.Tensor(lengths)).data
    # whatever sits in the padded positions (and however far the batch is padded) is ignored
    junk = tokens.copy()
    junk[0, 3:], junk[1, 2:] = [9, 11], [12, 13, 19]
    np.testing.assert_array_equal(m(nk.Tensor(junk), nk.Tensor(lengths)).data, base)
    wide = np.pad(tokens, ((0, 0), (0, 6)), constant_values=17)
    np.testing.assert_allclose(m(nk.Tensor(wide), nk.Tensor(lengths)).data, base, rtol=1e-6)
    m(nk.Tensor(junk), nk.Tensor(lengths)).sum().backward()
    g = m.embedding.weight.grad.data
    assert np.all(g[[9, 11, 12, 13, 19]] == 0) and np.any(g[[3, 4, 5, 6, 7]] != 0)


def test_sequence_pool_checks_its_inputs():
    pool = nn.SequencePool()
    x = nk.zeros(2, 3, 4)
    with pytest.raises(ValueError, match=r"length 4 is outside 0..3"):
        pool(x, np.array([1, 4]))
    with pytest.raises(ValueError, match=r"expected lengths of shape \(2,\)"):
        pool(x, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"\(batch, time, features\)"):
        pool(nk.zeros(2, 3), np.array([1, 2]))
    with pytest.raises(ValueError, match="mode must be one of"):
        nn.SequencePool("sum")
    with pytest.raises(TypeError, match="must be a Module"):
        nn.TextClassifier(nn.Embedding(3, 2), "mean", nn.Dense(2, 2))


def _toy_text(n=400, seed=0):
    """Class 1 texts contain token 2 somewhere; lengths 1..12 (token 2 never appears in class 0)."""
    rng = np.random.default_rng(seed)
    seqs, labels = [], []
    for i in range(n):
        s = rng.integers(3, 20, size=rng.integers(1, 13))
        if i % 2:
            s[rng.integers(len(s))] = 2
        seqs.append(s)
        labels.append(i % 2)
    return SequenceDataset(seqs, labels=np.array(labels))


def test_a_text_model_learns_with_fit_on_bucketed_batches_and_predicts_in_order():
    ds = _toy_text()
    m = _model("max", seed=3)
    loader = DataLoader(ds, batch_size=16, shuffle=True, seed=0, bucket=True)
    hist = fit(m, loader, epochs=15, lr=1e-2, progress=False, seed=0)
    assert hist.epochs[-1]["accuracy"] > 0.95  # the max over time finds the one marker token
    out = predict(m, SequenceDataset([ds[i][0] for i in range(len(ds))]))
    assert (out.argmax(1) == ds.labels).mean() > 0.95
    one = predict(m, SequenceDataset([ds[5][0]]))
    np.testing.assert_allclose(one[0], out[5], rtol=1e-5)


def test_whole_model_gradient_check_with_integer_inputs():
    ds = _toy_text(32)
    m = _model("mean")
    report = check_gradients(m, ds.get_batch(np.arange(16)), max_per_param=10)
    assert report.ok, str(report)
    assert {r.layer for r in report.rows} == {"embedding", "head.0", "head.1"}


def test_summary_of_a_model_with_two_inputs():
    s = _model().summary(inputs=(np.ones((1, 5), np.int64), np.array([5])))
    text = str(s)
    assert "embedding (Embedding)" in text and "(1, 5, 6)" in text and "encoder (SequencePool)" in text
    assert s.total_params == 20 * 6 + 6 * 8 + 8 + 8 * 2 + 2
