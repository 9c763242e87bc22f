"""Which of the user's covariates to give a slot model: the subset with the best held-out score.

A model with covariate slots (:mod:`geonp.tasks.covariates`) learns covariate effects in context,
zero-shot. Given covariates that carry nothing (pure noise for this outcome), it mostly learns
to ignore them, but not entirely: on simulated surveys two noise covariates cost it 0.01-0.05
nats per location against no covariates (``benchmarks/covariates.py``). A geostatistician chooses
the covariates of a linear predictor by cross-validation; ``fit`` does the same on the user's data:

    folds      F random folds of the observed locations (leave-location-out cross-validation)
    score(S)   = mean_i log p(y_i | the observations outside i's fold, covariates S)
                 the model's own predictive log-likelihood of each held-out observation
                 (binomial: of its counts out of the trials, the latent integrated out)
    chosen     = argmax_S score(S)      over every subset S of the n given covariates (2^n, n <= K)

The covariates left out stay in the model's signature (a user still passes them at prediction)
and enter as unused slots (:attr:`geonp.features.scaling.FeatureScaling.covariates_ignored`).
Every subset's score goes into ``fit``'s history, so a user sees what each covariate bought.

This is the rule for surveys (points along one dimension). On grids, random folds of cells would
be optimistic about every covariate (a held-out cell's neighbours are in the context); there the
calibration's held-out cells in the data's own gap shapes (:mod:`geonp.calibrate.calibration`) score each
subset, by the CRPS of the calibrated prediction (a Gaussian field's own spread is overconfident
deep in gaps until calibrated, which would let the log score rank subsets by luck), and the
chosen subset keeps its calibration (``geonp.estimator.fit``). Cost: ``2^n`` calibrations, or ``2^n * F``
predictions of the held-out locations.
"""

from __future__ import annotations

import itertools
import warnings

import jax.numpy as jnp
import numpy as np
from scipy.special import ndtr
from tqdm.auto import tqdm

FOLDS = 5
MIN_LOCATIONS = 30  # fewer observed locations: 5 folds say too little to choose by
MAX_HELD_OUT = 2000  # locations scored per subset (a random sample of them, where there are more)
_Q = (0.5, float(ndtr(1.0)))  # the median and the +1 sd quantile: the predictive (loc, scale) on the link scale


def subsets(names) -> list[tuple[str, ...]]:
    """Every subset of ``names``, the full set first (ties go to the first one scored)."""
    names = tuple(names)
    return [s for r in range(len(names), -1, -1) for s in itertools.combinations(names, r)]


def label(subset) -> str:
    return " + ".join(subset) if subset else "none"


def every_covariate(why: str, names) -> dict:
    """The record of a fit that did not choose: ``why``, and every covariate kept."""
    return {"status": f"not selected: {why}, every covariate used", "kept": list(names), "ignored": []}


def with_subset(state, names, subset):
    """``state`` (a :class:`~geonp.estimator.state.FittedModel`) seeing only ``subset`` of its covariates ``names``."""
    return state.with_scaling(covariates_ignored=tuple(c for c in names if c not in subset))


def location_folds(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Fold index ``[n]`` of each location: a random permutation, balanced."""
    return rng.permutation(n) % count


def predictive_log_prob(head, quantiles: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Log predictive density ``[n]`` of observations ``y [n, C]`` from the model's median and +1 sd quantile.

    Every head with quantiles is Gaussian on its link scale (normal: identity, binomial: logit,
    poisson: log), so the two quantiles give its (loc, scale) exactly and the head's own
    ``log_prob`` (for counts: integrated over the latent) scores the observations.
    """
    link = getattr(head, "link", lambda v: v)
    floor = getattr(head, "min_scale", getattr(head, "min_std", 0.0))
    q = jnp.asarray(quantiles, jnp.float32)  # [n, 2]
    if hasattr(head, "link"):
        q = jnp.clip(q, 1e-6, 1 - 1e-6) if head.name in ("binomial", "bernoulli") else jnp.maximum(q, 1e-12)
    loc, upper = link(q[:, 0]), link(q[:, 1])
    scale = jnp.maximum(upper - loc, floor + 1e-6) - floor
    raw = jnp.stack([loc, jnp.log(jnp.expm1(scale))], axis=-1)[None]  # [1, n, 2]: (loc, softplus^-1(scale))
    return np.asarray(head.log_prob(raw, jnp.asarray(y, jnp.float32)[None]))[0]


def select(score_subset, names, folds: np.ndarray, progress: bool = False) -> dict:
    """Score every subset of ``names`` and keep the best.

    ``score_subset(subset, train_index, test_index) -> [len(test_index)]`` log scores of the held-out
    locations; ``folds [n]`` the fold of each location (-1: always context, never scored).
    Returns ``{"kept", "ignored", "scores"}`` (mean log score per location of each subset, by :func:`label`).
    """
    scores, fold_ids = {}, np.unique(folds[folds >= 0])  # fold -1: context for every fold, never scored
    candidates = subsets(names)
    with tqdm(total=len(candidates) * fold_ids.size, desc=f"choosing among {len(names)} covariates",
              unit="fold", disable=not progress or not names, mininterval=1.0) as bar:
        for subset in candidates:
            per_location = np.full(folds.size, np.nan)
            for f in fold_ids:
                test = np.flatnonzero(folds == f)
                per_location[test] = score_subset(subset, np.flatnonzero(folds != f), test)
                bar.update(1)
            scores[subset] = float(np.nanmean(per_location))
    kept = max(scores, key=lambda s: scores[s])  # the full set wins ties: max keeps the first
    return {"kept": list(kept), "ignored": [n for n in names if n not in kept],
            "scores": {label(s): round(v, 4) for s, v in scores.items()}}


def select_for_survey(model, data, point_dim: str, names, y: np.ndarray, seed: int) -> dict:
    """Choose among ``names`` for a fitted estimator on survey ``data`` (a Dataset along ``point_dim``).

    ``y [n, C]``: each location's observation columns as the likelihood reads them (binomial:
    positives, trials). Locations without an observation must already be dropped from ``data``.
    Each subset is scored on a copy of ``model`` (:func:`with_subset`); the chosen one is not applied here.
    """
    n = data.sizes[point_dim]
    rng = np.random.default_rng(seed)
    folds = location_folds(n, FOLDS, rng)
    if n > MAX_HELD_OUT:  # every location is context for the others; only a sample is scored
        folds = np.where(np.isin(np.arange(n), rng.choice(n, MAX_HELD_OUT, replace=False)), folds, -1)
    head = model.config_.likelihood
    value_vars = [v for v in data.data_vars if v not in names]

    def score_subset(subset, train, test):
        target = data.isel({point_dim: test}).drop_vars(value_vars)
        candidate = model._with_state(with_subset(model.state_, names, subset))
        with warnings.catch_warnings():  # warnings fit gives once
            warnings.simplefilter("ignore", UserWarning)
            pred = candidate.predict(data.isel({point_dim: train}), target=target, quantiles=_Q, progress=False,
                                 calibrated=False)
        q = pred["quantiles"].transpose(point_dim, "quantile").values
        return predictive_log_prob(head, q, y[test])

    result = select(score_subset, names, folds, progress=bool(model.progress))
    result.update(folds=FOLDS, held_out=int((folds >= 0).sum()))
    return result
