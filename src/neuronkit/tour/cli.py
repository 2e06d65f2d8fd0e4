"""The ``neuronkit tour`` subcommand: ``add_parser(subparsers)`` registers it, ``cmd_tour(args)`` runs it.

Wiring, in ``neuronkit.cli.main.build_parser`` after ``sub = parser.add_subparsers(...)``::

    from ..tour.cli import add_parser as add_tour_parser
    add_tour_parser(sub)        # sets func=cmd_tour; main() calls args.func(args) and returns its status

::

    neuronkit tour                              # every experiment, printed
    neuronkit tour --only neuron,bias --seed 1  # some of them, another seed
    neuronkit tour --out tour-out               # also tour-out/<name>.png for each and tour-out/tour.json

Exit status 0 when every claim holds, 1 when one does not; an unknown ``--only`` name raises ``ValueError``, which
``main`` reports as one line with status 1.
"""

from __future__ import annotations

__all__ = ["add_parser", "cmd_tour"]


def add_parser(subparsers):
    """Register ``tour`` on ``subparsers`` (what ``ArgumentParser.add_subparsers()`` returned); returns its parser."""
    from . import EXPERIMENTS

    p = subparsers.add_parser(
        "tour",
        help="short experiments showing what a neuron is and why networks work (numbers and pictures)",
        description="Run short experiments, each testing one claim about neurons and networks with measured "
        f"numbers: {', '.join(EXPERIMENTS)}. Exit status 1 if a claim does not hold.",
    )
    p.add_argument("--only", metavar="NAME[,NAME]", help=f"run only these experiments (of: {', '.join(EXPERIMENTS)})")
    p.add_argument("--out", metavar="DIR", help="write each experiment's picture as DIR/<name>.png and DIR/tour.json")
    p.add_argument("--seed", type=int, default=0, help="seed of data, weights and shuffling (default 0)")
    p.set_defaults(func=cmd_tour)
    return p


def cmd_tour(args) -> int:
    """Run the tour for parsed ``args`` (``only``, ``out``, ``seed``); 0 when every claim holds, else 1."""
    from . import run_tour

    names = None
    if args.only is not None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        if not names:
            raise ValueError("--only needs at least one experiment name")
    results = run_tour(names, out=args.out, seed=args.seed)
    return 0 if all(r.holds for r in results) else 1
