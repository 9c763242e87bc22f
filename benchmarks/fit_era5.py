"""Gap filling of ERA5 2 m temperature: zero-shot bundled model vs the same model fitted on the data.

    python -m benchmarks.fit_era5 --steps 150

Data: ``../shared/data/era5_t2m_uk`` (hourly, 0.25 deg, 33 x 49). A random
``--missing`` fraction of cells is hidden at every hour. The model is fitted
(meta-trained on random 512-point windows of the observed cells) on the first
``--train-hours`` hours and scored on the last ``--test-hours`` hours, which
it never saw, against nearest-neighbour filling. Prints a table, then a JSON
line (RMSE and MAE in K, NLL, 95% coverage, training seconds and steps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "era5_t2m_uk" / "era5_t2m_uk_2019-03_0p25deg.nc"


def scores(pred, truth, missing) -> dict:
    err = (pred["mean"] - truth).values[missing]
    z = err / pred["std"].values[missing]
    nll = 0.5 * z**2 + np.log(pred["std"].values[missing]) + 0.5 * np.log(2 * np.pi)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err))),
            "nll": float(np.mean(nll)), "coverage95": float(np.mean(np.abs(z) < 1.96))}


def nearest(gappy, truth, missing) -> dict:
    from scipy.interpolate import griddata

    lat, lon = np.meshgrid(truth.latitude, truth.longitude, indexing="ij")
    errors = []
    for t in range(truth.sizes["time"]):
        seen = ~missing[t]
        fill = griddata((lat[seen], lon[seen]), gappy.values[t][seen], (lat, lon), method="nearest")
        errors.append((fill - truth.values[t])[~seen])
    err = np.concatenate(errors)
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--missing", type=float, default=0.7)
    parser.add_argument("--train-hours", type=int, default=600)
    parser.add_argument("--test-hours", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import geonp

    with xr.open_dataset(DATA) as ds:
        truth = ds["t2m"].load()
    gappy = truth.where(np.random.default_rng(args.seed).random(truth.shape) > args.missing)
    train = gappy.isel(time=slice(0, args.train_hours))
    test, test_truth = gappy.isel(time=slice(-args.test_hours, None)), truth.isel(time=slice(-args.test_hours, None))
    missing = test.isnull().values

    zero_shot = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(train)
    started = time.perf_counter()
    fitted = geonp.NeuralProcess(pretrained="gp2d-normal", steps=args.steps, batch_size=8,
                                 learning_rate=3e-4, seed=args.seed).fit(train)
    train_seconds = time.perf_counter() - started

    report = {
        "nearest_neighbour": nearest(test, test_truth, missing),
        "zero_shot": scores(zero_shot.predict(test, progress=False), test_truth, missing),
        "fitted": scores(fitted.predict(test, progress=False), test_truth, missing),
        "train_seconds": round(train_seconds, 1), "steps": fitted.steps_trained_,
        "missing": args.missing, "test_hours": args.test_hours,
    }
    print(f"{'filler':<20}{'RMSE K':>9}{'MAE K':>9}{'NLL':>9}{'cov95':>9}")
    for name in ("nearest_neighbour", "zero_shot", "fitted"):
        r = report[name]
        print(f"{name:<20}{r['rmse']:>9.3f}{r['mae']:>9.3f}{r.get('nll', float('nan')):>9.3f}"
              f"{r.get('coverage95', float('nan')):>9.3f}")
    print(f"fitted: {report['steps']} steps in {train_seconds:.0f} s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
