"""The ``geonp`` command line: ``demo``, ``run RECIPE``, ``predict``, ``models``, ``version``."""

from __future__ import annotations

import argparse
import os
import sys

from geonp.errors import GeonpError


def _parse_value(text: str):
    import yaml

    return yaml.safe_load(text)


def _predict(args) -> None:
    from geonp.errors import ConfigError
    from geonp.estimator import resolve_model
    from geonp.estimator.releases import available

    data = _open(args.data, "the data")
    if args.var is not None and args.var not in data.data_vars:
        raise ConfigError(f"--var {args.var}: {args.data} has no such variable; it has {list(data.data_vars)}.")
    if args.var is None and len(data.data_vars) != 1:
        raise ConfigError(f"{args.data} has variables {list(data.data_vars)}; say which one with --var.")
    var = args.var or next(iter(data.data_vars))
    if args.factor is not None and args.target:
        raise ConfigError("--factor and --target both give the targets; pass one of them.")
    if args.factor is not None and args.factor < 1:
        raise ConfigError(f"--factor {args.factor}: expected a whole number >= 1 (how many times finer the grid is).")
    target = args.factor if args.factor is not None else _open(args.target, "--target") if args.target else None
    model = args.model
    if model is not None and model not in available():
        model = resolve_model(model)
    context = data if args.covariates or args.trials else data[var]
    extra = {k: v for k, v in {"trials": args.trials, "covariates": args.covariates}.items() if v}
    pred = context.np.predict(target=target, model=model, var=var if context is data else None,
                              quantiles=args.quantiles, exceedance=args.exceedance, **extra)
    pred.np.to_netcdf(args.output, overwrite=args.overwrite)
    print(f"wrote {args.output}")
    if args.plot:
        pred.np.plot(path=args.plot)
        print(f"wrote {args.plot}")


def _open(path: str, what: str):
    """A netCDF (or zarr) file's contents, loaded; a :class:`DataError` naming the file where it cannot be read."""
    from pathlib import Path

    import xarray as xr

    from geonp.features.tables import DataError

    if not Path(path).exists():
        raise DataError(f"{what}: {path} not found. Pass the path of a netCDF file.")
    try:
        with xr.open_dataset(path) as source:
            return source.load()
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as err:
        first = (str(err).splitlines() or [""])[0]
        raise DataError(f"{what}: {path} cannot be read as netCDF or zarr ({type(err).__name__}: {first}). Is it a "
                        "complete netCDF file?") from err


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="geonp", description="Neural processes for spatial fields.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="gap-fill a generated field with the bundled model (netCDF + PNG map), "
                                       "and score the bundled model against the exact GP")
    demo.add_argument("--output", default="geonp-demo", help="folder for prediction.nc and map.png")
    demo.add_argument("--train-seconds", type=float, default=0.0,
                      help="also train a small model from scratch for this long (default: skip)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--eval-batches", type=int, default=2, help="batches of 8 GP tasks to score on")
    demo.add_argument("--no-progress", action="store_true")

    run = sub.add_parser("run", help="run a recipe (a YAML workflow, e.g. recipes/prevalence-gambia.yaml)")
    run.add_argument("recipe")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a recipe option (YAML value), e.g. --set folds=5")

    predict = sub.add_parser("predict", help="predict from a netCDF file with a bundled or saved model")
    predict.add_argument("data", help="netCDF with the observations (NaN = missing)")
    predict.add_argument("--model", help="a bundled model name or a saved model folder (default: field-normal to "
                                         "fill gaps, gp2d-normal with --factor or --target)")
    predict.add_argument("--var", help="the variable to model (when the file has several)")
    predict.add_argument("--output", "-o", required=True, help="netCDF to write (atomically, resumable)")
    predict.add_argument("--factor", type=int, help="predict on a grid this many times finer")
    predict.add_argument("--target", help="netCDF whose grid (and covariates) are the targets")
    predict.add_argument("--quantiles", type=float, nargs="*", help="e.g. 0.05 0.95")
    predict.add_argument("--exceedance", type=float, nargs="*", help="thresholds (binomial/poisson models)")
    predict.add_argument("--trials", help="variable with the number examined (binomial models)")
    predict.add_argument("--covariates", nargs="*", help="covariate variables (calibrating a bundled model)")
    predict.add_argument("--plot", help="also write a map (PNG)")
    predict.add_argument("--overwrite", action="store_true")

    sub.add_parser("models", help="list the bundled pretrained models")
    sub.add_parser("version", help="print the version")
    args = parser.parse_args(argv)

    try:
        if args.command == "demo":
            from geonp.apps.demo import run as run_demo

            run_demo(args.train_seconds, args.seed, args.eval_batches, progress=not args.no_progress,
                     output=args.output)
        elif args.command == "run":
            from geonp.apps.recipes import run_recipe
            from geonp.errors import ConfigError

            overrides = {}
            for item in args.set:
                if "=" not in item:
                    raise ConfigError(f"--set {item!r}: expected KEY=VALUE.")
                key, value = item.split("=", 1)
                overrides[key.strip()] = _parse_value(value)
            run_recipe(args.recipe, overrides)
        elif args.command == "predict":
            _predict(args)
        elif args.command == "models":
            from geonp.estimator.releases import available, pretrained

            for name in available():
                config, _, meta = pretrained(name)
                print(f"{name:<22}{config.likelihood.name:<13}{meta.get('description') or meta.get('task', '')}")
        elif args.command == "version":
            from geonp import __version__

            print(__version__)
    except GeonpError as err:
        print(f"geonp: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as err:  # a file the command could not read or write, in one line
        print(f"geonp: error: {type(err).__name__}: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug of geonp's: still one line, with how to get the traceback for a report
        if os.environ.get("GEONP_DEBUG"):
            raise
        print(f"geonp: internal error: {type(err).__name__}: {' '.join(str(err).split())} (a bug: rerun with "
              "GEONP_DEBUG=1 for the traceback and report it)", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
