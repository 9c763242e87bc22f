"""Where to survey next: greedy site selection with fantasised observations.

    sites = geonp.design.next_sites(model, surveys, candidates, n=10, criterion="variance")

Each of the ``n`` steps scores every candidate given the observations and the sites
chosen so far, takes the best, and adds a *fantasised* observation there, the
predictive mean (a survey of the context's median size showing the mean prevalence,
for count models), so that the next choice knows the last one will be observed. The
fantasy does not move the mean; it shrinks the uncertainty around the chosen site,
which is what spreads the sites out (the "kriging believer" rule of batch design).

Criteria (higher is better):

    "variance"     predictive variance at the candidate: survey where the map knows least (count
                   models: of the latent surface, the logit of the prevalence or the log of the
                   rate, so that a prevalence near 0.5 does not look less known than one near 0)
    "exceedance"   p (1 - p), p = P(value > threshold) at the candidate: survey where it is
                   least sure on which side of the threshold the value lies
    "integrated"   minus the mean predictive variance over ``targets`` (the map) once the
                   candidate is observed: survey where it helps the whole map most; each step
                   predicts the map once per short-listed candidate (the ``shortlist``
                   candidates of highest variance), so it costs ``n * shortlist`` predictions

Works with point contexts (a DataFrame or a Dataset with a site dimension) and with
gridded fields (their observed cells become the points).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import norm

from geonp import options
from geonp.errors import ConfigError
from geonp.features.tables import dataframe_to_dataset
from geonp.scoring.counts import LATENT_QUANTILES, LINKS, latent_from_quantiles

CRITERIA = ("variance", "exceedance", "integrated")


def next_sites(model, context, candidates, n: int, criterion: str = "variance", *, threshold: float | None = None,
               targets=None, shortlist: int = 8) -> pd.DataFrame:
    """The ``n`` candidate sites to survey next, in order of choice.

    Args:
        model: a fitted :class:`geonp.NeuralProcess` (Gaussian, binomial, bernoulli or poisson).
        context: the observations so far, as ``model.predict`` takes them (a DataFrame, a Dataset with a
            site dimension, or a gridded field whose observed cells count).
        candidates: a DataFrame of candidate sites with the model's coordinate columns (and covariates).
        n: how many sites to choose.
        criterion: ``"variance"``, ``"exceedance"`` (needs ``threshold``) or ``"integrated"`` (needs
            ``targets``); see the module docstring.
        threshold: the exceedance threshold (prevalence or rate for count models; the value's units otherwise).
        targets: the map the ``"integrated"`` criterion averages over (anything ``predict`` takes as target).
        shortlist: candidates tried per step by ``"integrated"``.

    Returns:
        The chosen rows of ``candidates`` with ``order`` (1 = first choice) and ``score`` (the criterion
        when chosen).
    """
    model._check_fitted()
    if criterion not in CRITERIA:
        raise ConfigError(f"criterion={criterion!r}; choose one of {CRITERIA}.")
    if criterion == "exceedance" and threshold is None:
        raise ConfigError("criterion='exceedance' needs threshold= (e.g. threshold=0.3 for 30% prevalence).")
    if criterion == "integrated" and targets is None:
        raise ConfigError("criterion='integrated' needs targets= (the map whose variance to reduce).")
    if not isinstance(candidates, pd.DataFrame):
        raise ConfigError(f"candidates must be a pandas DataFrame of sites; got {type(candidates).__name__}.")
    head = model.config_.likelihood
    if head.name == "categorical":
        raise ConfigError("site selection needs a Gaussian or count model; a categorical one has no variance.")
    y, x = model.layout_["y"], model.layout_["x"]
    missing = [c for c in (y, x, *model.covariates_) if c not in candidates]
    if missing:
        raise ConfigError(f"candidates lack column(s) {missing}; they need the model's coordinates {[y, x]} "
                          f"and covariates {list(model.covariates_)}.")
    n = options.whole_number(n, "n (sites to choose)", 1)
    shortlist = options.whole_number(shortlist, "shortlist", 1)
    if threshold is not None and not (options.is_real(threshold) and np.isfinite(threshold)):
        raise ConfigError(f"threshold={threshold!r}: expected a finite number (a prevalence or rate for count "
                          "models).")
    if n > len(candidates):
        raise ConfigError(f"n={n}: choose between 1 and the {len(candidates)} candidates.")
    observed = _observations(model, context)
    sites = candidates.reset_index(drop=True)
    free = np.ones(len(sites), bool)
    chosen, scores = [], []
    for _ in range(int(n)):
        pred = _predict(model, observed, sites[[y, x, *model.covariates_]], threshold)
        if criterion == "variance":
            score = _latent_variance(pred, head)
        elif criterion == "exceedance":
            p = _exceedance(pred, head, threshold)
            score = p * (1.0 - p)
        else:
            score = np.full(len(sites), -np.inf)
            variance = pred["std"].values ** 2
            trial = np.flatnonzero(free)[np.argsort(-variance[free])[: max(1, shortlist)]]
            for i in trial:
                fantasy = _with_fantasy(model, observed, sites.iloc[[i]], pred.isel(point=[i]))
                score[i] = -float(np.nanmean(_predict(model, fantasy, targets, None)["std"].values ** 2))
        score = np.where(free, np.nan_to_num(score, nan=-np.inf), -np.inf)
        best = int(np.argmax(score))
        chosen.append(best)
        scores.append(float(score[best]))
        free[best] = False
        observed = _with_fantasy(model, observed, sites.iloc[[best]], pred.isel(point=[best]))
    return sites.iloc[chosen].assign(order=np.arange(1, len(chosen) + 1), score=scores)


def _observations(model, context) -> pd.DataFrame:
    """The observed points of ``context`` as a table: coordinates, covariates, the value (and its count)."""
    columns = [model.layout_["y"], model.layout_["x"], *model.covariates_, model.var_]
    columns += [model.count_var_] if model.count_var_ else []
    if isinstance(context, xr.DataArray):
        context = context.to_dataset(name=model.var_)
    frame = context.to_dataframe().reset_index() if isinstance(context, xr.Dataset) else pd.DataFrame(context)
    missing = [c for c in columns if c not in frame]
    if missing:
        raise ConfigError(f"the context lacks {missing}; it needs the model's coordinates, covariates and "
                          f"variable(s) {columns}.")
    return frame[columns].dropna().reset_index(drop=True)


def _predict(model, observed: pd.DataFrame, target, threshold) -> xr.Dataset:
    head = model.config_.likelihood
    exceedance = [threshold] if threshold is not None and hasattr(head, "exceedance") else None
    quantiles = LATENT_QUANTILES if head.name in LINKS else None
    with warnings.catch_warnings():  # candidates far from the data are what a design looks for
        warnings.filterwarnings("ignore", message=".*lie farther than", category=UserWarning)
        return model.predict(dataframe_to_dataset(observed, "site"), target=target, exceedance=exceedance,
                             quantiles=quantiles, progress=False)


def _latent_variance(pred: xr.Dataset, head) -> np.ndarray:
    """Predictive variance per candidate: of the value (Gaussian), of the logit or log (count models)."""
    if head.name not in LINKS:
        return pred["std"].values.reshape(-1) ** 2
    quantiles = pred["quantiles"].transpose(..., "quantile").values.reshape(-1, len(LATENT_QUANTILES))
    return latent_from_quantiles(quantiles, head.name, 1e-9)[1] ** 2


def _exceedance(pred: xr.Dataset, head, threshold: float) -> np.ndarray:
    if "exceedance" in pred:
        return pred["exceedance"].values.reshape(-1)
    return norm.sf((threshold - pred["mean"].values) / np.maximum(pred["std"].values, 1e-12))


def _with_fantasy(model, observed: pd.DataFrame, site: pd.DataFrame, pred: xr.Dataset) -> pd.DataFrame:
    """``observed`` plus a fantasised observation at ``site``: the predictive mean (counts: a typical survey)."""
    row = {c: site[c].to_numpy() for c in (model.layout_["y"], model.layout_["x"], *model.covariates_)}
    mean = pred["mean"].values.reshape(-1)
    if model.config_.likelihood.standardise:  # a Gaussian field: the predictive mean itself
        row[model.var_] = mean
        return pd.concat([observed, pd.DataFrame(row)], ignore_index=True)
    size = 1.0  # counts: a survey of the context's median size showing the mean prevalence (rate)
    if model.count_var_:
        size = float(np.median(observed[model.count_var_]))
        row[model.count_var_] = np.full(1, size)
    row[model.var_] = np.round(mean * size)
    return pd.concat([observed, pd.DataFrame(row)], ignore_index=True)
