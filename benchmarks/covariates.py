"""Covariates without retraining: does a model with covariate slots use them, zero-shot?

    python benchmarks/covariates.py --model runs/prevalence-binomial     # a release with covariate slots
    python benchmarks/covariates.py --model runs/prevalence-binomial --quick

Leave-location-out cross-validation (5 folds; log score of the held-out counts, higher is
better, and CRPS on the prevalence scale), every method on the same folds:

* ``geonp_covariates``: the model conditioned on the surveys with their covariates (``fit(steps=0)``);
* ``geonp_none``: the same model without covariates;
* ``baseline``: regression kriging of the empirical logit: least squares on the covariates,
  ordinary kriging of the residuals (exponential variogram with a nugget), the trend added back;
  the prediction variance adds the trend's standard error and the nugget;
* ``noise_covariates`` (simulated only): the model given two covariates of pure noise
  instead of the informative ones, against ``geonp_none``: no worse is the target.

Data: ``simulated`` surveys (seeded; a smooth spatial field on the logit scale plus
two smooth covariates with known effects; 300 locations of 20-100 examined) and
the shared Tanzania DHS 2015 surveys (387 clusters; EVI, temperature,
precipitation, night lights), skipped when ``../shared/data`` is absent.

Last line: JSON ``{"simulated": {method: {"log_score", "crps", ...}}, "tanzania": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import geonp  # noqa: E402
from geonp.features.coordinates import local_km  # noqa: E402
from geonp.features.tables import dataframe_to_dataset  # noqa: E402
from geonp.flows.prevalence import _Q  # noqa: E402
from geonp.metrics_counts import count_scores  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "disease_prevalence"
TANZANIA = ["EVI", "Temperature", "Precipitation", "NTL"]


# --------------------------------------------------------------------------- data


def simulated_surveys(seed: int, n: int = 300) -> pd.DataFrame:
    """Surveys over a 3 x 3 degree box: logit p = -1 + f(s) + 0.8 x1 - 0.6 x2 (f: a smooth random field)."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(30.0, 33.0, n), rng.uniform(-6.0, -3.0, n)

    def smooth(scale):  # a random smooth field: 30 random cosines of wavelength ~ scale degrees
        w = rng.normal(size=(30, 2)) / scale
        b = rng.uniform(0, 2 * np.pi, 30)
        return np.sqrt(2 / 30) * np.cos(np.c_[lon, lat] @ w.T + b).sum(1)

    x1, x2, field = smooth(1.0), smooth(0.5), smooth(0.7)
    examined = rng.integers(20, 101, n)
    eta = -1.0 + 0.7 * field + 0.8 * x1 - 0.6 * x2
    positive = rng.binomial(examined, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"lon": lon, "lat": lat, "positive": positive.astype(float),
                         "examined": examined.astype(float), "x1": x1, "x2": x2,
                         "noise1": rng.normal(size=n), "noise2": rng.normal(size=n)})


def tanzania() -> pd.DataFrame | None:
    path = DATA / "tz_malaria_dhs2015.csv"
    if not path.exists():
        return None
    frame = pd.read_csv(path).rename(columns={"Long": "lon", "Lat": "lat", "Pf": "positive", "Ex": "examined"})
    frame["NTL"] = np.log1p(frame["NTL"])  # night lights span orders of magnitude
    keep = frame[["lon", "lat", "positive", "examined", *TANZANIA]].dropna()
    return keep.astype({"positive": float, "examined": float})


# --------------------------------------------------------------------------- methods: (loc, scale) of the logit


def geonp_method(model_path: str, covariates: list[str]):
    def predict(train: pd.DataFrame, test: pd.DataFrame):
        columns = ["lon", "lat", "positive", "examined", *covariates]
        model = geonp.NeuralProcess(pretrained=model_path, likelihood="binomial", steps=0, progress=False)
        model.fit(dataframe_to_dataset(train[columns], "site"), "positive", trials="examined",
                  covariates=covariates)
        target = dataframe_to_dataset(test[["lon", "lat", *covariates]], "site")
        pred = model.predict(dataframe_to_dataset(train[columns], "site"), target, quantiles=_Q, progress=False)
        q = pred["quantiles"].transpose(..., "quantile").values.astype(np.float64)
        lq = np.log(np.clip(q, 1e-7, 1 - 1e-7) / np.clip(1 - q, 1e-7, 1))
        return lq[:, 1], np.maximum((lq[:, 2] - lq[:, 0]) / 2.0, 1e-3)

    return predict


def regression_kriging(covariates: list[str]):
    def predict(train: pd.DataFrame, test: pd.DataFrame):
        from pykrige.ok import OrdinaryKriging

        to_km = local_km(float(train.lon.mean()), float(train.lat.mean()))
        xs, ys = to_km.transform(train.lon.values, train.lat.values)
        xt, yt = to_km.transform(test.lon.values, test.lat.values)
        k, n = train.positive.values, train.examined.values
        z = np.log((k + 0.5) / (n - k + 0.5))
        mean_x, std_x = train[covariates].mean(), train[covariates].std().replace(0, 1)
        design = np.c_[np.ones(len(train)), ((train[covariates] - mean_x) / std_x).values]
        design_t = np.c_[np.ones(len(test)), ((test[covariates] - mean_x) / std_x).values]
        beta, *_ = np.linalg.lstsq(design, z, rcond=None)
        residual = z - design @ beta
        sigma2 = float(residual @ residual) / max(len(z) - design.shape[1], 1)
        trend_var = sigma2 * np.einsum("ij,jk,ik->i", design_t, np.linalg.pinv(design.T @ design), design_t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok = OrdinaryKriging(xs, ys, residual, variogram_model="exponential", exact_values=False)
            res_mean, res_var = ok.execute("points", xt, yt)
        nugget = float(ok.variogram_model_parameters[-1])
        scale = np.sqrt(np.maximum(np.asarray(res_var), 0.0) + nugget + trend_var)
        return design_t @ beta + np.asarray(res_mean), scale

    return predict


# --------------------------------------------------------------------------- cross-validation


def cross_validate(frame: pd.DataFrame, methods: dict, folds: int = 5, seed: int = 0) -> dict:
    fold = np.random.default_rng(seed).permutation(len(frame)) % folds
    out = {}
    for name, method in methods.items():
        loc, scale, started = np.zeros(len(frame)), np.zeros(len(frame)), time.perf_counter()
        for f in range(folds):
            loc[fold == f], scale[fold == f] = method(frame[fold != f], frame[fold == f])
        scores = count_scores(loc, scale, frame.positive.values, frame.examined.values)
        out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()}
        out[name]["seconds"] = round(time.perf_counter() - started, 1)
    return out


def mean_over(runs: list[dict]) -> dict:
    return {m: {k: round(float(np.mean([r[m][k] for r in runs])), 4) for k in runs[0][m]} for m in runs[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a release folder or bundled name with covariate slots")
    parser.add_argument("--seeds", type=int, default=4, help="simulated survey sets")
    parser.add_argument("--quick", action="store_true", help="2 simulated sets, Tanzania included")
    args = parser.parse_args()
    model = args.model if Path(args.model).exists() else str(args.model)
    seeds = 2 if args.quick else args.seeds

    runs = []
    for seed in range(seeds):
        frame = simulated_surveys(seed)
        runs.append(cross_validate(frame, {
            "geonp_covariates": geonp_method(model, ["x1", "x2"]), "geonp_none": geonp_method(model, []),
            "baseline": regression_kriging(["x1", "x2"]), "noise_covariates": geonp_method(model, ["noise1", "noise2"]),
        }, seed=seed))
        print(f"simulated {seed}: " + ", ".join(f"{m} {r['log_score']:.3f}/{r['crps']:.4f}"
                                               for m, r in runs[-1].items()), flush=True)
    result = {"model": args.model, "simulated": mean_over(runs)}
    frame = tanzania()
    if frame is not None:
        result["tanzania"] = cross_validate(frame, {
            "geonp_covariates": geonp_method(model, TANZANIA), "geonp_none": geonp_method(model, []),
            "baseline": regression_kriging(TANZANIA)})
        print("tanzania: " + ", ".join(f"{m} {r['log_score']:.3f}/{r['crps']:.4f}"
                                       for m, r in result["tanzania"].items()), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
