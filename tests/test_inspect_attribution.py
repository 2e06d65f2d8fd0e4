"""Integrated gradients on a text model's embeddings: completeness (float32 within 1 %, float64 far tighter), the
adaptive steps, the same numbers as a Riemann sum written by hand with torch autograd, and the display."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuronkit as nk
from neuronkit import nn
from neuronkit.inspect import integrated_gradients
from neuronkit.inspect.attribution import format_attribution
from neuronkit.nn.layers.attention import padding_mask

VOCAB, E, H, C = 30, 6, 5, 3
TOKENS = np.array([4, 17, 9, 2, 25, 1, 13])


class LastHidden(nn.Module):
    """Encoder of the tests' recurrent text models: the last layer's final hidden state, (B, H)."""

    def __init__(self, rnn):
        super().__init__()
        self.rnn = rnn

    def forward(self, x, lengths):
        _, h = self.rnn(x, lengths)
        return (h[0] if isinstance(h, tuple) else h)[-1]


class Attend(nn.Module):
    """A test encoder: one transformer layer over the padded tokens, then their mean."""

    def __init__(self, layer):
        super().__init__()
        self.layer, self.pool = layer, nn.SequencePool("mean")

    def forward(self, x, lengths):
        t = x.shape[1]
        return self.pool(self.layer(x, src_key_padding_mask=padding_mask(lengths, t)), lengths)


def bow(dtype="float32", seed=0):
    return nn.TextClassifier(
        nn.Embedding(VOCAB, E, padding_idx=0, generator=seed, dtype=dtype),
        nn.SequencePool("mean"),
        nn.Sequential(
            nn.Dense(E, 8, activation="tanh", generator=seed + 1, dtype=dtype),
            nn.Dense(8, C, generator=seed + 2, dtype=dtype),
        ),
    )


def lstm(dtype="float64", seed=0):
    return nn.TextClassifier(
        nn.Embedding(VOCAB, E, padding_idx=0, generator=seed, dtype=dtype),
        LastHidden(nn.LSTM(E, H, generator=seed + 1, dtype=dtype)),
        nn.Dense(H, C, generator=seed + 2, dtype=dtype),
    )


def _logits(model, tokens):
    return np.asarray(model(tokens[None], np.array([len(tokens)])).data, dtype=np.float64)[0]


@pytest.mark.parametrize("make", [bow, lstm])
def test_attributions_add_up_to_the_output_difference_within_one_percent(make):
    model = make("float32")
    a = integrated_gradients(model, TOKENS, target=1)
    # the outputs it compares with, computed here independently: the text's logit, and the logit with every token
    # vector zero (the padding token's, which is zero by construction)
    ref = _logits(model, TOKENS)[1]
    base = _logits(model, np.zeros_like(TOKENS))[1]
    assert a.output == pytest.approx(ref, rel=1e-6) and a.baseline_output == pytest.approx(base, rel=1e-5, abs=1e-7)
    assert a.ok and a.error <= 0.01
    assert abs(a.scores.sum() - (ref - base)) <= 0.01 * max(abs(ref - base), 1e-3)
    assert a.scores.shape == (len(TOKENS),) and a.target == 1


def test_float64_completeness_is_far_tighter_and_the_steps_grow_until_it_holds():
    model = lstm("float64", seed=3)
    coarse = integrated_gradients(model, TOKENS, steps=1, max_steps=1)  # one midpoint: a poor integral
    fine = integrated_gradients(model, TOKENS, steps=2, max_steps=2**14, tol=1e-6)
    assert fine.steps > 2 and fine.error <= 1e-6 and fine.ok
    assert coarse.steps == 1 and coarse.error > fine.error
    delta = _logits(model, TOKENS)[fine.target] - _logits(model, np.zeros_like(TOKENS))[fine.target]
    assert fine.scores.sum() == pytest.approx(delta, rel=1e-6)
    capped = integrated_gradients(model, TOKENS, steps=1, max_steps=2, tol=1e-12)  # cannot reach it: says so
    assert capped.steps == 2 and not capped.ok and capped.error > 1e-12


def _torch_lstm_ig(model, tokens, target, m):
    """Integrated gradients by hand: the same LSTM in torch, a midpoint sum of ``m`` gradients from torch autograd."""
    sd = {k: torch.tensor(np.asarray(v)) for k, v in model.state_dict().items()}
    rnn = torch.nn.LSTM(E, H, batch_first=True, dtype=torch.float64)
    rnn.load_state_dict({k.split(".", 2)[-1]: v for k, v in sd.items() if k.startswith("encoder.rnn.")})
    x = sd["embedding.weight"][torch.tensor(tokens)]  # (T, E)
    total = torch.zeros_like(x)
    for k in range(m):
        p = ((k + 0.5) / m * x).requires_grad_()
        h = rnn(p[None])[1][0][-1]  # (1, H)
        out = h @ sd["head.weight"].T + sd["head.bias"]
        out[0, target].backward()
        total += p.grad
    return (x * total / m).sum(1).numpy()


def test_the_same_attributions_as_a_riemann_sum_by_hand_with_torch_autograd():
    model = lstm("float64", seed=5)
    a = integrated_gradients(model, TOKENS, target=2, steps=16, max_steps=16)
    np.testing.assert_allclose(a.scores, _torch_lstm_ig(model, TOKENS, 2, 16), rtol=1e-9, atol=1e-12)


def test_the_model_is_left_as_it_was_and_padding_is_dropped():
    model = bow("float32")
    model.train()
    grads = {n: None for n, _ in model.named_parameters()}
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    padded = np.concatenate([TOKENS, [0, 0, 0]])[None]
    a = integrated_gradients(model, padded, np.array([len(TOKENS)]))
    b = integrated_gradients(model, TOKENS)
    np.testing.assert_allclose(a.scores, b.scores)
    assert model.training and all(p.grad is grads[n] for n, p in model.named_parameters())
    assert all(np.array_equal(p.data, before[n]) for n, p in model.named_parameters())


def test_bad_arguments_are_one_line():
    model = bow()
    with pytest.raises(ValueError, match="one text"):
        integrated_gradients(model, np.ones((2, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="target must be a class 0 to 2"):
        integrated_gradients(model, TOKENS, target=3)
    with pytest.raises(ValueError, match="steps"):
        integrated_gradients(model, TOKENS, steps=0)


def test_display_is_coloured_only_when_asked():
    nk.manual_seed(0)
    a = integrated_gradients(bow(), TOKENS)
    words = [f"w{i}" for i in range(len(TOKENS))]
    plain = format_attribution(a, words, ["a", "b", "c"], color=False)
    colored = format_attribution(a, words, ["a", "b", "c"], color=True)
    assert "\x1b[" not in plain and "\x1b[48;5;" in colored
    assert "completeness error" in plain and f"w0({a.scores[0]:+.3g})" in plain


def test_a_steep_path_is_refined_where_it_is_steep():
    # post-norm transformer: LayerNorm(alpha x) hardly depends on alpha except within about 1e-3 of the zero
    # baseline, where the score jumps; equal steps miss the jump, refined ones find it
    model = nn.TextClassifier(
        nn.Embedding(VOCAB, E, padding_idx=0, generator=2, dtype="float64"),
        Attend(nn.TransformerEncoderLayer(E, 2, 12, dropout=0.0, generator=2, dtype="float64")),
        nn.Dense(E, C, generator=2, dtype="float64"),
    )
    even = integrated_gradients(model, TOKENS, target=0, steps=64, max_steps=64)
    refined = integrated_gradients(model, TOKENS, target=0, steps=64, max_steps=4096, tol=1e-3)
    assert even.error > 0.1 and refined.ok and refined.steps < 1024
    # each token's share converges too: the same as a far finer refinement (equal steps would need more than 2^16
    # points to get each token within 1e-3 here: measured)
    fine = integrated_gradients(model, TOKENS, target=0, steps=64, max_steps=2**15, tol=1e-6)
    assert fine.ok and fine.steps > refined.steps
    np.testing.assert_allclose(refined.scores, fine.scores, atol=2e-3 * np.abs(fine.scores).max())
