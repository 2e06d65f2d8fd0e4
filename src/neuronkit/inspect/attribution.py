"""How much each token of a text pushed a text model's prediction: integrated gradients on the embeddings.

For a text with token vectors ``x`` (T, E) (the embedding layer's output), a baseline ``x'`` (here all zeros: the
vector of the padding token, which carries nothing) and the score ``F`` of the target class (its logit), the
attribution of token ``t`` is (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks")::

    a_t = sum_e (x[t, e] - x'[t, e]) * integral_0^1 dF/dx[t, e] (x' + alpha (x - x')) d alpha

The integral is a midpoint Riemann sum, first over ``steps`` equal intervals of ``alpha``. Completeness: the
attributions add up to ``F(x) - F(x')`` exactly for the true integral, and on every interval ``[a, b]`` of the path
their share adds up to ``F(b x) - F(a x)``; while the whole is not within ``tol`` (1 % by default), the intervals that
miss their own difference most are halved (adaptive quadrature, at most ``max_steps`` intervals), and the remaining
error is reported. The refinement matters where the path is steep: with a layer norm after the embeddings, F jumps
within ``alpha`` of about 1e-3 of the zero baseline, which equal steps would need thousands of points to see.

Everything attaches through a forward hook on the embedding layer that replaces its output by the points on the
path: nothing in ``nn`` knows about it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..autograd.grad_mode import no_grad
from ..nn.layers.embedding import Embedding
from ..tensor import Tensor

__all__ = ["Attribution", "integrated_gradients", "format_attribution"]

MIN_DELTA = 1e-3  # a score difference below this has nothing to attribute: errors are relative to at least it
CHUNK_VALUES = 2**22  # path points evaluated at once: at most this many embedding values (bounded memory)


@dataclass
class Attribution:
    """The integrated-gradients attribution of one text.

    ``scores`` (T,): each token's push on the target's logit (positive: towards the class). ``output`` = F(x),
    ``baseline_output`` = F(x') (the all-zero embeddings), ``error`` = ``|sum(scores) - (output - baseline_output)|``
    relative to ``max(|output - baseline_output|, 1e-3)``, with ``steps`` intervals (gradient evaluations); ``ok``
    when within ``tol``. ``probabilities`` (C,): the softmax of the text's outputs.
    """

    tokens: np.ndarray
    scores: np.ndarray
    target: int
    output: float
    baseline_output: float
    steps: int
    error: float
    tol: float
    probabilities: np.ndarray

    @property
    def ok(self) -> bool:
        return bool(self.error <= self.tol)

    @property
    def delta(self) -> float:
        return self.output - self.baseline_output


def find_embedding(model):
    """The model's token embedding: its ``embedding`` attribute, else its first ``Embedding`` layer."""
    m = getattr(model, "embedding", None)
    if m is not None:
        return m
    for _, m in model.named_modules():
        if isinstance(m, Embedding):
            return m
    raise ValueError(f"integrated_gradients: {type(model).__name__} has no Embedding layer to attribute through")


def _one_text(tokens, lengths) -> tuple:
    t = np.asarray(tokens.data if isinstance(tokens, Tensor) else tokens)
    t = t.reshape(1, -1) if t.ndim == 1 else t
    if t.ndim != 2 or t.shape[0] != 1 or t.dtype.kind not in "iu":
        raise ValueError(f"integrated_gradients: expected the token ids of one text, (T,) or (1, T), got {t.shape}")
    n = t.shape[1] if lengths is None else int(np.asarray(getattr(lengths, "data", lengths)).reshape(-1)[0])
    if not 1 <= n <= t.shape[1]:
        raise ValueError(f"integrated_gradients: the text's length must be 1 to {t.shape[1]}, got {n}")
    return t[:, :n].astype(np.int64), np.array([n], dtype=np.int64)


class _Path:
    """Runs the model with the embedding layer's output replaced by ``alpha * x`` for a batch of alphas."""

    def __init__(self, model, embedding, tokens, lengths):
        self.model, self.tokens, self.lengths = model, tokens, lengths
        self.vectors = None  # x: (1, T, E), the text's token vectors
        self.replace = None  # the Tensor the hook returns instead of the embedding's output
        self.handle = embedding.register_forward_hook(self._hook)

    def _hook(self, module, args, output):
        if self.replace is None:
            self.vectors = np.array(output.data)
            return None
        return self.replace

    def outputs(self, alphas, grad_of: int | None = None) -> tuple:
        """``(outputs (m, C), gradients (m, T, E) of output[:, grad_of] or None)`` at the points ``alphas * x``."""
        m = len(alphas)
        path = alphas.reshape(m, 1, 1).astype(self.vectors.dtype) * self.vectors
        self.replace = Tensor(path, requires_grad=grad_of is not None)
        try:
            toks, lens = np.repeat(self.tokens, m, axis=0), np.repeat(self.lengths, m)
            if grad_of is None:
                with no_grad():
                    return np.asarray(self.model(toks, lens).data, dtype=np.float64), None
            out = self.model(toks, lens)
            out[:, grad_of].sum().backward()
            return np.asarray(out.data, dtype=np.float64), np.asarray(self.replace.grad.data, dtype=np.float64)
        finally:
            self.replace = None


def _chunks(path: _Path, n: int) -> int:
    t, e = path.vectors.shape[1:]
    return max(1, min(n, CHUNK_VALUES // max(1, t * e)))


def _midpoints(path: _Path, lo: np.ndarray, hi: np.ndarray, target: int) -> np.ndarray:
    """``(n, T)``: each interval's share of the integral, ``(hi - lo) * sum_e x * dF/dx`` at its midpoint."""
    mid, out = (lo + hi) / 2, []
    step = _chunks(path, len(mid))
    for s in range(0, len(mid), step):
        out.append(path.outputs(mid[s : s + step], grad_of=target)[1])
    g = np.concatenate(out) * (hi - lo)[:, None, None]
    return (np.asarray(path.vectors, dtype=np.float64) * g).sum(-1)


def _scores_at(path: _Path, alphas: np.ndarray, target: int) -> np.ndarray:
    step = _chunks(path, len(alphas))
    return np.concatenate([path.outputs(alphas[s : s + step])[0][:, target] for s in range(0, len(alphas), step)])


def _integrate(path: _Path, steps: int, max_steps: int, tol: float, target: int, delta: float) -> tuple:
    """``(scores (T,), intervals, error)``: the path integral by the midpoint rule on ``steps`` equal intervals,
    refined where it is needed: each interval's share must add up to ``F(hi) - F(lo)`` (completeness on every piece
    of the path), and while the pieces' errors add up to more than ``tol`` (relative to the whole difference), the
    intervals missing it most are halved, as long as ``max_steps`` intervals are not exceeded. ``error`` is the
    whole's completeness error. A path with a steep part (a layer norm near the zero baseline,
    a saturating unit) gets its points where F changes, not spread evenly."""
    edges = np.linspace(0.0, 1.0, steps + 1)
    lo, hi = edges[:-1], edges[1:]
    f = _scores_at(path, edges, target)
    share, fl, fh = _midpoints(path, lo, hi, target), f[:-1], f[1:]
    scale = max(abs(delta), MIN_DELTA)
    while True:
        error = abs(float(share.sum()) - delta) / scale
        local = np.abs(share.sum(1) - (fh - fl))
        # done when every piece of the path is complete (their errors summed without cancelling out, which bounds
        # the whole's error and keeps each token's share from hiding errors that cancel in the sum)
        if local.sum() <= tol * scale or len(lo) >= max_steps:
            return share.sum(0), len(lo), error
        budget = max_steps - len(lo)  # each halving adds one interval
        split = np.argsort(-local, kind="stable")[: max(1, min(budget, int((local > tol * scale / len(lo)).sum())))]
        keep = np.setdiff1d(np.arange(len(lo)), split)
        mid = (lo[split] + hi[split]) / 2
        fm = _scores_at(path, mid, target)
        nlo, nhi = np.concatenate([lo[split], mid]), np.concatenate([mid, hi[split]])
        nfl, nfh = np.concatenate([fl[split], fm]), np.concatenate([fm, fh[split]])
        nshare = _midpoints(path, nlo, nhi, target)
        lo, hi = np.concatenate([lo[keep], nlo]), np.concatenate([hi[keep], nhi])
        fl, fh = np.concatenate([fl[keep], nfl]), np.concatenate([fh[keep], nfh])
        share = np.concatenate([share[keep], nshare])


@contextlib.contextmanager
def eval_keeping_grads(model):
    """Within: ``model`` in eval mode, free to backpropagate. Afterwards (also on an exception) every parameter's
    gradient and every module's training mode are as they were (a measurement leaves no trace on a training run)."""
    saved = [(p, p.grad) for _, p in model.named_parameters()]
    modes = [(m, m.training) for _, m in model.named_modules()]
    model.eval()
    try:
        yield
    finally:
        for p, g in saved:
            p.grad = g
        for m, mode in modes:
            m.__dict__["training"] = mode


def embedding_leaf(model, store: dict):
    """Make the embedding's output a leaf copy, kept as ``store["x"]``, so a backward leaves the gradient reaching the
    token vectors on it. Returns the hook's handle (``remove()`` it when done)."""

    def hook(mod, args, output):
        store["x"] = Tensor(np.array(output.data), requires_grad=True)
        return store["x"]

    return find_embedding(model).register_forward_hook(hook)


def integrated_gradients(
    model, tokens, lengths=None, target: int | None = None, steps: int = 32, max_steps: int = 4096, tol: float = 0.01
) -> Attribution:
    """Attribute ``model(tokens, lengths)[target]`` (the target class's logit) to the tokens of one text.

    ``tokens``: the text's ids, (T,) or (1, T) (positions past ``lengths`` are dropped); ``target``: the class to
    explain (default: the predicted one). ``steps`` equal intervals are refined until the completeness error is at
    most ``tol`` or there are ``max_steps`` intervals (see the module docstring). The model is run in eval mode and its
    parameters' gradients are put back as they were. Returns an :class:`Attribution`.
    """
    if steps < 1 or max_steps < steps or not 0 < tol:
        raise ValueError(
            f"integrated_gradients: need 1 <= steps <= max_steps and tol > 0, got {steps}, {max_steps}, {tol}"
        )
    toks, lens = _one_text(tokens, lengths)
    with eval_keeping_grads(model):
        path = _Path(model, find_embedding(model), toks, lens)
        try:
            with no_grad():
                out = np.asarray(model(toks, lens).data, dtype=np.float64)[0]  # records x through the hook
            target = int(out.argmax()) if target is None else int(target)
            if not 0 <= target < out.shape[-1]:
                raise ValueError(f"integrated_gradients: target must be a class 0 to {out.shape[-1] - 1}, got {target}")
            base = float(path.outputs(np.zeros(1))[0][0, target])
            delta = float(out[target]) - base
            scores, m, error = _integrate(path, steps, max_steps, tol, target, delta)
        finally:
            path.handle.remove()
    z = out - out.max()
    prob = np.exp(z) / np.exp(z).sum()
    return Attribution(toks[0], scores, target, float(out[target]), base, m, error, tol, prob)


# -- display ------------------------------------------------------------------------------------------------------
_GREENS = (194, 157, 120, 77)  # 256-colour backgrounds, weakest to strongest
_REDS = (224, 217, 210, 203)


def _colored(word: str, share: float) -> str:
    level = min(3, int(abs(share) * 4))
    if abs(share) < 0.05:
        return word
    bg = (_GREENS if share > 0 else _REDS)[level]
    return f"\x1b[48;5;{bg}m\x1b[30m{word}\x1b[0m"


def format_attribution(a: Attribution, words: list, classes=None, color: bool = False, top: int = 10) -> str:
    """The attribution as text: the prediction, the completeness check, the text with each token's push (coloured
    green towards the class and red against it when ``color``; ``token(+0.52)`` otherwise), and the ``top`` tokens
    that pushed hardest."""
    name = classes[a.target] if classes else str(a.target)
    pred = int(np.argmax(a.probabilities))
    shown = classes[pred] if classes else str(pred)
    check = "within" if a.ok else "NOT within"
    lines = [
        f"prediction: {shown} (p = {a.probabilities[pred]:.3f}); explaining the score (logit) of {name}",
        f"  score {a.output:.4g}, baseline (all-zero token vectors) {a.baseline_output:.4g}: difference "
        f"{a.delta:.4g}; the attributions add up to {a.scores.sum():.4g} ({a.steps} steps, completeness error "
        f"{a.error:.2%}, {check} {a.tol:.0%})",
    ]
    scale = float(np.abs(a.scores).max()) or 1.0
    if color:
        body = " ".join(_colored(w, s / scale) for w, s in zip(words, a.scores))
        lines.append("  " + body + "   (green: towards " + name + ", red: against)")
    else:
        lines.append("  " + " ".join(f"{w}({s:+.3g})" for w, s in zip(words, a.scores)))
    order = np.argsort(-np.abs(a.scores), kind="stable")[:top]
    lines.append(f"  the tokens that pushed hardest (towards {name} +, against -):")
    width = max(len(words[i]) for i in order)
    for i in order:
        bar = ("+" if a.scores[i] > 0 else "-") * max(1, round(20 * abs(a.scores[i]) / scale))
        lines.append(f"    {i:>4}  {words[i]:<{width}}  {a.scores[i]:+.4f}  {bar}")
    return "\n".join(lines)
