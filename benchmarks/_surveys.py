"""Every real survey set in the shared data, cross-validated the same way for every method.

Cases (``../shared/data/disease_prevalence`` or ``$GEONP_DATA``; a case whose files are absent is left out):

* ``gambia``: 65 villages, children's blood tests (Thomson et al. 1999); ``gambia+covariates`` with
  the villages' greenness and bed-net use;
* ``tanzania``: 387 DHS 2015 clusters, RDT (Giorgi et al. 2021); ``tanzania+covariates`` with EVI,
  temperature, precipitation and log night lights;
* ``kenya``: western Kenya highlands, 8,204 individual RDTs (4,868 household locations) aggregated
  to 277 locations of ~1 km (households in one 0.01 degree cell; 1-126 examined, median 17);
  ``kenya+covariates`` with elevation;
* ``uk-binary``: a binary map, one examined per point: 400 random cells of the ERA5 UK 2 m
  temperature above its median (the first hour), positives 0/1.

Leave-location-out cross-validation (10 folds of locations, seeded) gives per location a Gaussian
on the logit (every method's ``(loc, scale)``), scored by :func:`geonp.scoring.counts.count_score_table`:
log score of the counts, CRPS of the prevalence, 95% coverage of the counts and of the prevalence;
on binary cases also the Brier score.
"""

from __future__ import annotations

import time
import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from geonp.apps.flows.prevalence import _binomial_model, _dataset, geonp_latent
from geonp.apps.recipes import data_root
from geonp.scoring.counts import count_score_table

FOLDS = 10


class Survey(NamedTuple):
    name: str
    frame: pd.DataFrame  # lon, lat, positive, examined, covariates
    covariates: tuple[str, ...]


def _gambia(base):
    frame = pd.read_csv(base / "gambia_villages.csv").rename(columns={"n_positive": "positive",
                                                                       "n_tested": "examined"})
    return frame[["lon", "lat", "positive", "examined", "green", "frac_netuse"]], ("green", "frac_netuse")


def _tanzania(base):
    frame = pd.read_csv(base / "tz_malaria_dhs2015.csv").rename(columns={"Long": "lon", "Lat": "lat",
                                                                          "Pf": "positive", "Ex": "examined"})
    frame["NTL"] = np.log1p(frame["NTL"])  # night lights span orders of magnitude
    covariates = ("EVI", "Temperature", "Precipitation", "NTL")
    return frame[["lon", "lat", "positive", "examined", *covariates]].dropna(), covariates


KENYA_CELL = 0.01  # degrees (~1.1 km): households within one cell make one location


def _kenya(base):
    people = pd.read_csv(base / "malkenya_individuals.csv")
    cell = (people.Long / KENYA_CELL).round().astype(int).astype(str) + "/" + \
        (people.Lat / KENYA_CELL).round().astype(int).astype(str)
    frame = people.groupby(cell).agg(lon=("Long", "mean"), lat=("Lat", "mean"), positive=("RDT", "sum"),
                                     examined=("RDT", "size"), elevation=("elevation", "mean"))
    return frame.reset_index(drop=True), ("elevation",)


def _uk_binary(base, points: int = 400, seed: int = 0):
    t2m = xr.open_dataset(base.parent / "era5_t2m_uk" / "era5_t2m_uk_2019-03_0p25deg.nc")["t2m"].isel(time=0)
    table = t2m.to_dataframe().reset_index().dropna(subset=["t2m"])
    table = table.iloc[np.random.default_rng(seed).choice(len(table), points, replace=False)]
    return pd.DataFrame({"lon": table.longitude.to_numpy(), "lat": table.latitude.to_numpy(),
                         "positive": (table.t2m > table.t2m.median()).to_numpy(float), "examined": 1.0}), ()


READERS = {"gambia": ("gambia_villages.csv", _gambia), "tanzania": ("tz_malaria_dhs2015.csv", _tanzania),
           "kenya": ("malkenya_individuals.csv", _kenya),
           "uk-binary": ("../era5_t2m_uk/era5_t2m_uk_2019-03_0p25deg.nc", _uk_binary)}


def survey_cases(names=None) -> list[Survey]:
    """The shared survey sets present, each with and without its covariates (``<name>+covariates``)."""
    base = data_root() / "disease_prevalence"
    cases = []
    for name, (file, read) in READERS.items():
        if not (base / file).exists():
            continue
        frame, covariates = read(base)
        frame = frame.astype({"positive": float, "examined": float}).reset_index(drop=True)
        cases.append(Survey(name, frame, ()))
        if covariates:
            cases.append(Survey(f"{name}+covariates", frame, tuple(covariates)))
    return [c for c in cases if names is None or c.name in names]


# --------------------------------------------------------------------------- methods: (loc, scale) of the logit


def geonp_method(model: str, select: bool = True):
    """``model`` (a bundled name or a release folder) fitted without training (``steps=0``) on each
    training fold, covariates chosen by its own leave-location-out selection; its latent at the test fold."""
    from pathlib import Path

    def predict(train: pd.DataFrame, test: pd.DataFrame, covariates=()):
        estimator = _binomial_model(Path.cwd(), model)
        with warnings.catch_warnings():  # covariates left out by selection: counted in the history, not here
            warnings.simplefilter("ignore", UserWarning)
            estimator.set_params(progress=False, select_covariates=select)
            estimator.fit(_dataset(train, list(covariates)), "positive", trials="examined",
                          covariates=list(covariates), steps=0)
        return geonp_latent(estimator, train, test)

    return predict


def idw_method(k: int = 10, power: float = 2.0, floor: float = 0.01):
    """Inverse-distance weighting of the empirical prevalence of the ``k`` nearest (weights n / d^power), as a
    point forecast clipped to ``[floor, 1 - floor]``: the logit of it with a negligible spread."""
    from scipy.spatial import cKDTree

    from geonp.apps.flows.survey_baselines import _km

    def predict(train, test, covariates=()):
        xs, xt = _km(train, test)
        dist, idx = cKDTree(xs).query(xt, k=min(k, len(xs)))
        weight = train.examined.to_numpy()[idx] / np.maximum(dist, 1e-6) ** power
        prevalence = (train.positive / train.examined).to_numpy()[idx]
        p = np.clip((weight * prevalence).sum(1) / weight.sum(1), floor, 1 - floor)
        return np.log(p / (1 - p)), np.full(len(test), 1e-3)

    return predict


def baseline_methods() -> dict:
    from geonp.apps.flows.survey_baselines import binomial_glmm_latent, has_gpboost, kriging_latent

    methods = {"kriging": kriging_latent, "idw10": idw_method()}
    if has_gpboost():
        methods["binomial_glmm"] = binomial_glmm_latent
    return methods


# --------------------------------------------------------------------------- cross-validation


def folds_of(frame: pd.DataFrame, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(len(frame)) % folds


def cross_validate(case: Survey, method, folds: int = FOLDS, seed: int = 0) -> dict:
    """Per-location scores ``{"log_score": [L], "crps": [L], ...}`` and ``seconds`` of one method on one case."""
    frame, fold = case.frame, folds_of(case.frame, folds, seed)
    loc, scale, started = np.zeros(len(frame)), np.zeros(len(frame)), time.perf_counter()
    for f in range(folds):
        loc[fold == f], scale[fold == f] = method(frame[fold != f], frame[fold == f], covariates=case.covariates)
    table = count_score_table(loc, scale, frame.positive.values, frame.examined.values)
    if (frame.examined == 1).all():  # binary: the Brier score of P(positive)
        table["brier"] = (table["mean_prevalence"] - frame.positive.values) ** 2
    table["seconds"] = time.perf_counter() - started
    return table


def summary(table: dict) -> dict:
    """Means of a per-location score table (coverage as shares), seconds as they are."""
    names = {"covered": "coverage_95", "prevalence_covered": "coverage_95_prevalence"}
    out = {names.get(k, k): round(float(np.mean(v)), 4) for k, v in table.items()
           if k not in ("seconds", "mean_prevalence")}
    out["seconds"] = round(float(table["seconds"]), 1)
    return out
