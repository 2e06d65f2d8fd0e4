"""The ``neuronkit`` command line: ``train``, ``evaluate``, ``predict``, ``datasets``, ``summary``.

Run it as ``neuronkit ...`` (the console script) or ``python -m neuronkit ...``; in Python, ``main(argv) -> int``.
"""

from .errors import CLIError
from .main import build_parser, evaluate_run, main, predict_run

__all__ = ["CLIError", "build_parser", "evaluate_run", "main", "predict_run"]
