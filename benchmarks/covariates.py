"""Covariates without retraining: does a model with covariate slots use them, zero-shot?

    python -m benchmarks.covariates --model runs/prevalence-binomial     # a release with covariate slots
    python -m benchmarks.covariates --model prevalence-binomial --quick

Leave-location-out cross-validation (5 folds; log score of the held-out counts, higher is
better, and CRPS on the prevalence scale), every method on the same folds:

* ``geonp_covariates``: the model conditioned on the surveys with their covariates (``fit(steps=0)``,
  which keeps those that improve the model's leave-location-out score on each training fold:
  :mod:`geonp.calibrate.covariates`);
* ``geonp_every_covariate``: the same with ``select_covariates=False`` (every covariate given is used);
* ``geonp_none``: the same model without covariates;
* ``baseline``: regression kriging of the empirical logit: least squares on the covariates,
  ordinary kriging of the residuals (exponential variogram with a nugget), the trend added back;
  the prediction variance adds the trend's standard error and the nugget;
* ``binomial_glmm``: binomial geostatistics with the covariates as fixed effects (GPBoost; what a
  statistician would fit: :mod:`geonp.apps.flows.survey_baselines`), when GPBoost is installed;
* ``noise_covariates`` (simulated only): the model given two covariates of pure noise
  instead of the informative ones, against ``geonp_none``: no worse is the target;
  ``noise_every_covariate``: the same without selection.

Data: ``simulated`` surveys (seeded; a smooth spatial field on the logit scale plus
two smooth covariates with known effects; 300 locations of 20-100 examined) and
the shared Tanzania DHS 2015 surveys (387 clusters; EVI, temperature,
precipitation, night lights), skipped when the shared data (``geonp.apps.recipes.data_root``) are absent.

Last line: JSON ``{"simulated": {method: {"log_score", "crps", ...}}, "tanzania": {...}}``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks._surveys import Survey, geonp_method, summary, survey_cases
from benchmarks._surveys import cross_validate as survey_cv
from geonp.apps.flows.survey_baselines import binomial_glmm_latent, has_gpboost, kriging_latent

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


def tanzania() -> Survey | None:
    """The Tanzania DHS surveys with their covariates (``benchmarks/_surveys.py``), or None without the data."""
    cases = survey_cases(["tanzania+covariates"])
    return cases[0] if cases else None


# --------------------------------------------------------------------------- methods: (loc, scale) of the logit
# (benchmarks/_surveys.py: the same methods and cross-validation as every survey benchmark)


def with_covariates(method, covariates: list[str]):
    """``method`` and the ``covariates`` it is given on every fold."""
    return method, tuple(covariates)


def cross_validate(frame: pd.DataFrame, methods: dict, folds: int = 5, seed: int = 0) -> dict:
    """``methods``: name -> ``(method, covariates)``; every one on the same folds of ``frame``."""
    return {name: summary(survey_cv(Survey(name, frame, covariates), method, folds, seed))
            for name, (method, covariates) in methods.items()}


def glmm(covariates: list[str]) -> dict:
    return {"binomial_glmm": with_covariates(binomial_glmm_latent, covariates)} if has_gpboost() else {}


def mean_over(runs: list[dict]) -> dict:
    return {m: {k: round(float(np.mean([r[m][k] for r in runs])), 4) for k in runs[0][m]} for m in runs[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a release folder or bundled name with covariate slots")
    parser.add_argument("--seeds", type=int, default=4, help="simulated survey sets")
    parser.add_argument("--quick", action="store_true", help="2 simulated sets, Tanzania included")
    args = parser.parse_args()
    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    seeds = 2 if args.quick else args.seeds

    runs = []
    for seed in range(seeds):
        frame = simulated_surveys(seed)
        runs.append(cross_validate(frame, {
            "geonp_covariates": with_covariates(geonp_method(model), ["x1", "x2"]),
            "geonp_none": with_covariates(geonp_method(model), []),
            "baseline": with_covariates(kriging_latent, ["x1", "x2"]), **glmm(["x1", "x2"]),
            "noise_covariates": with_covariates(geonp_method(model), ["noise1", "noise2"]),
            "geonp_every_covariate": with_covariates(geonp_method(model, select=False), ["x1", "x2"]),
            "noise_every_covariate": with_covariates(geonp_method(model, select=False), ["noise1", "noise2"]),
        }, seed=seed))
        print(f"simulated {seed}: " + ", ".join(f"{m} {r['log_score']:.3f}/{r['crps']:.4f}"
                                               for m, r in runs[-1].items()), flush=True)
    result = {"model": args.model, "simulated": mean_over(runs)}
    case = tanzania()
    if case is not None:
        frame, covariates = case.frame, list(case.covariates)
        result["tanzania"] = cross_validate(frame, {
            "geonp_covariates": with_covariates(geonp_method(model), covariates),
            "geonp_none": with_covariates(geonp_method(model), []),
            "baseline": with_covariates(kriging_latent, covariates), **glmm(covariates),
            "geonp_every_covariate": with_covariates(geonp_method(model, select=False), covariates)})
        print("tanzania: " + ", ".join(f"{m} {r['log_score']:.3f}/{r['crps']:.4f}"
                                       for m, r in result["tanzania"].items()), flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
