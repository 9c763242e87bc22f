"""The ``geonp`` command line."""

from __future__ import annotations

import argparse
import sys

from geonp.errors import GeonpError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="geonp", description="Neural processes for spatial fields.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="bundled model + a short training run on 2-D GP tasks, vs the exact GP")
    demo.add_argument("--train-seconds", type=float, default=60.0,
                      help="how long to train the small model from scratch (0 skips it); default 60")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--eval-batches", type=int, default=2, help="batches of 8 tasks to score on")
    demo.add_argument("--no-progress", action="store_true")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)

    try:
        if args.command == "demo":
            from geonp.demo import run

            run(args.train_seconds, args.seed, args.eval_batches, progress=not args.no_progress)
        elif args.command == "version":
            from geonp import __version__

            print(__version__)
    except GeonpError as err:
        print(f"geonp: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
