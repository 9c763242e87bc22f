"""Odd inputs through the public API: how many end in a typed error, a correct output, or a broken promise.

    python -m benchmarks.fuzz [--examples 1500] [--seed 0]

Draws cases from :mod:`geonp.testing.odd_inputs` (coordinates, values, shapes, options, targets, fits, checkpoints,
paths, aggregation, site selection) and prints the count of each outcome by kind, then every broken promise
(a bare exception, or a wrong output) with its case. Exit code 1 when any promise is broken. The suite's
``tests/test_odd_inputs.py`` runs a few hundred of the same cases.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time

from hypothesis import HealthCheck, given, seed, settings

from geonp.testing import odd_cases, odd_inputs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    outcomes = []

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(odd_cases.cases())
    def draw(case):
        outcomes.append((case.kind, odd_inputs.check(case)))

    start = time.perf_counter()
    draw()
    seconds = time.perf_counter() - start
    table = collections.Counter((kind, o.kind) for kind, o in outcomes)
    kinds = sorted({k for k, _ in outcomes})
    print(f"{len(outcomes)} odd inputs in {seconds:.0f} s (seed {args.seed})\n")
    print(f"{'entry point':12s} " + " ".join(f"{o:>15s}" for o in odd_inputs.OUTCOMES))
    for kind in kinds:
        print(f"{kind:12s} " + " ".join(f"{table[(kind, o)]:15d}" for o in odd_inputs.OUTCOMES))
    totals = collections.Counter(o.kind for _, o in outcomes)
    print(f"{'all':12s} " + " ".join(f"{totals[o]:15d}" for o in odd_inputs.OUTCOMES))
    broken = [o for _, o in outcomes if o.kind in ("bare exception", "wrong output")]
    for o in broken:
        print(f"\n{o.kind}: {o.case}\n    {o.detail}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
