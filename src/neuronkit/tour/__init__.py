"""``neuronkit tour``: short experiments that answer, with numbers and pictures, what a neuron is and why networks work.

Layer 3 (insight and use): it builds on the engine, ``nn``, ``optim``, ``data``, ``train`` and ``inspect``; only the
command line imports it. Each experiment is a function ``run(seed=0) -> Result`` (see ``tour.result``): it measures,
states a claim, decides from the measurements whether the claim ``holds``, explains the numbers in plain words, and
can draw its picture (``result.draw(out_dir)`` writes ``out_dir/<name>.png``).

::

    from neuronkit.tour import EXPERIMENTS, run_tour
    results = run_tour(out="tour-out")            # all experiments; prints each; pictures + tour.json in tour-out/
    results = run_tour(["neuron", "bias"])        # some of them, printed only
    r = EXPERIMENTS["backprop"](seed=1)           # one experiment: r.figures, r.holds, r.explanation, r.draw(dir)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from . import backprop, bias, descent, generalisation, linear_collapse, memory, neuron, weights
from .result import Result

__all__ = ["EXPERIMENTS", "Result", "run_tour"]

EXPERIMENTS = {
    "neuron": neuron.run,  # a neuron computes activation(w . x + b)
    "linear_collapse": linear_collapse.run,  # without activations, depth collapses to one linear map
    "bias": bias.run,  # the bias moves the threshold away from the origin
    "backprop": backprop.run,  # backpropagation equals finite differences
    "descent": descent.run,  # gradient descent lowers the loss; too large a step makes it rise
    "generalisation": generalisation.run,  # fitting the training data is not the same as working on unseen data
    "weights": weights.run,  # the initial weights' scale decides whether a deep network can learn
    "memory": memory.run,  # an LSTM's gated cell state carries the gradient through time; a plain RNN's does not
}


def run_tour(names=None, out=None, stream=None, seed: int = 0) -> list:
    """Run the experiments ``names`` (default all, in ``EXPERIMENTS`` order) with ``seed``; return their Results.

    For each, prints to ``stream`` (default ``sys.stdout``) a heading, the claim, the explanation with the measured
    figures and whether the claim holds. With ``out`` (a folder, created if needed) it also writes each picture as
    ``out/<name>.png`` and all the numbers as ``out/tour.json``. An unknown name raises ``ValueError`` before
    anything runs.
    """
    stream = sys.stdout if stream is None else stream
    names = list(EXPERIMENTS) if names is None else list(names)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown tour experiment {', '.join(map(repr, unknown))}; known: {', '.join(EXPERIMENTS)}")
    if not names:
        raise ValueError(f"no tour experiment chosen; known: {', '.join(EXPERIMENTS)}")
    out = None if out is None else Path(out)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    results, pictures = [], {}
    for i, name in enumerate(names, 1):
        start = time.perf_counter()
        result = EXPERIMENTS[name](seed=seed)
        result.seconds = time.perf_counter() - start
        results.append(result)
        print(f"\n[{i}/{len(names)}] {name}: {result.title}", file=stream)
        print(result.report(), file=stream)
        if out is not None:
            pictures[name] = result.draw(out).name
            print(f"  picture: {out / pictures[name]}", file=stream)
        stream.flush()
    held = sum(r.holds for r in results)
    print(
        f"\n{held} of {len(results)} claims hold"
        + ("." if held == len(results) else f"; not: {', '.join(r.name for r in results if not r.holds)}."),
        file=stream,
    )
    if out is not None:
        doc = {
            "seed": seed,
            "all_hold": held == len(results),
            "experiments": [dict(r.to_dict(), picture=pictures[r.name]) for r in results],
        }
        path = out / "tour.json"
        path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        print(f"numbers: {path}", file=stream)
    return results
