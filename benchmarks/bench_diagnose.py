"""The diagnosis benchmark: scenarios whose cause is known (``diagnose_scenarios.py``), each trained and diagnosed as
``neuronkit diagnose`` does; prints the table (scenario, expected kind, first finding, verdict) and the precision and
recall of the first-ranked finding.

A sick scenario is right when its first serious finding (warning or error) is of the expected kind; a healthy one when
there is no serious finding at all. Precision: right first findings / runs with a serious first finding; recall: sick
scenarios whose cause is ranked first / sick scenarios.

    python benchmarks/bench_diagnose.py                 # every scenario, seed 0
    python benchmarks/bench_diagnose.py --seeds 0 1 2   # robustness: each scenario under several seeds
    python benchmarks/bench_diagnose.py --only he2015_xavier_relu30 --verbose
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import diagnose_scenarios as D

import neuronkit as nk
from neuronkit.inspect.diagnosis import render


def print_env() -> None:
    from threadpoolctl import threadpool_info

    print(f"python {platform.python_version()}, numpy {np.__version__}, neuronkit {nk.__version__}")
    for info in threadpool_info():
        arch = info.get("architecture") or "-"
        api, version, threads = info["internal_api"], info.get("version"), info["num_threads"]
        print(f"  {info['user_api']} {api} {version} arch={arch} threads={threads}")
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS"):
        print(f"{k}: {os.environ.get(k, 'unset')}")


def scores(outcomes) -> tuple:
    """(precision, recall) of the first-ranked serious finding over ``outcomes``."""
    flagged = [o for o in outcomes if o.first is not None]
    right = [o for o in flagged if o.correct]
    sick = [o for o in outcomes if o.scenario.expected is not None]
    found = [o for o in sick if o.correct]
    precision = len(right) / len(flagged) if flagged else 1.0
    recall = len(found) / len(sick) if sick else 1.0
    return precision, recall


def table(outcomes) -> str:
    """The results as a Markdown table."""
    rows = ["| scenario | seed | expected | first finding | verdict | val acc | s |", "|---|---|---|---|---|---|---|"]
    for o in outcomes:
        first = "none" if o.first is None else f"{o.first.kind} ({o.first.severity}, {o.first.place})"
        acc = "-" if o.val_accuracy is None else f"{o.val_accuracy:.1%}"
        verdict = "right" if o.correct else "WRONG"
        expected = o.scenario.expected or "healthy: nothing"
        rows.append(f"| {o.scenario.name} | {o.seed} | {expected} | {first} | {verdict} | {acc} | {o.seconds:.1f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--only", nargs="+", help="scenario names")
    ap.add_argument("--verbose", action="store_true", help="print each run's ranked diagnosis")
    args = ap.parse_args(argv)
    print_env()
    data = D.digits()
    outcomes = []
    for s in D.SCENARIOS:
        if args.only and s.name not in args.only:
            continue
        for seed in args.seeds:
            o = D.run(s, seed=seed, data=data)
            outcomes.append(o)
            print(f"{s.name} seed {seed}: {'right' if o.correct else 'WRONG'} ({o.seconds:.1f} s)", flush=True)
            if args.verbose:
                print("  " + render(o.findings).replace("\n", "\n  "))
    print()
    print(table(outcomes))
    precision, recall = scores(outcomes)
    print(f"\nprecision {precision:.0%}, recall {recall:.0%} over {len(outcomes)} runs")
    return 0 if all(o.correct for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
