"""The neuronkit tour: eight short experiments that show, with measured numbers and pictures, what a neuron is and why
networks work.

What one neuron computes; why networks need activation functions and neurons need biases; that backpropagation gives
the exact gradients; that gradient descent lowers the loss (and what too large a step does); and why a network must be
judged on data it never saw; why the scale of the initial weights decides whether a deep network learns; and why an
LSTM remembers the first token of a long sequence where a plain RNN forgets it. Each
experiment states a claim, measures, and says whether the claim holds.

Run: ``python examples/tour.py [OUT_DIR] [NAME ...]`` (pictures and ``tour.json`` go to OUT_DIR, by default a new
temporary folder). The same runs from the command line as ``neuronkit tour --out OUT_DIR``.
"""

from __future__ import annotations

import sys
import tempfile

from neuronkit.tour import EXPERIMENTS, run_tour


def main(out=None, names=None, seed: int = 0) -> int:
    out = out or tempfile.mkdtemp(prefix="neuronkit-tour-")
    print(f"neuronkit tour: {', '.join(names or EXPERIMENTS)}; pictures in {out}")
    results = run_tour(names, out=out, seed=seed)
    return 0 if all(r.holds for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else None, sys.argv[2:] or None))
