"""The statistician's models for prevalence surveys, and the per-location count scores they are judged by."""

import numpy as np
import pandas as pd
import pytest

from geonp.apps.flows.survey_baselines import binomial_glmm_latent, kriging_latent
from geonp.scoring.counts import count_score_table, count_scores

pytest.importorskip("gpboost")


def surveys(seed: int, n: int = 160, effect: float = 0.0) -> pd.DataFrame:
    """Villages over a 2 x 2 degree box: logit p = -1 + 1.2 f(s) + effect * x + village noise (f smooth)."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(30.0, 32.0, n), rng.uniform(-5.0, -3.0, n)
    w, b = rng.normal(size=(20, 2)) / 0.5, rng.uniform(0, 2 * np.pi, 20)
    field = np.sqrt(2 / 20) * np.cos(np.c_[lon, lat] @ w.T + b).sum(1)
    x = rng.normal(size=n)
    examined = rng.integers(20, 80, n)
    eta = -1.0 + 1.2 * field + effect * x + 0.2 * rng.normal(size=n)
    positive = rng.binomial(examined, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"lon": lon, "lat": lat, "positive": positive.astype(float),
                         "examined": examined.astype(float), "x": x})


def held_out_scores(frame, method, **options):
    train, test = frame.iloc[:120], frame.iloc[120:]
    loc, scale = method(train, test, **options)
    return count_scores(loc, scale, test.positive.values, test.examined.values)


def test_binomial_glmm_beats_a_constant_prevalence_and_covers():
    frame = surveys(0)
    glmm = held_out_scores(frame, binomial_glmm_latent)
    train = frame.iloc[:120]
    logit_mean = np.log(train.positive.sum() / (train.examined.sum() - train.positive.sum()))
    spread = np.std(np.log((train.positive + 0.5) / (train.examined - train.positive + 0.5)))
    constant = count_scores(np.full(40, logit_mean), np.full(40, spread), frame.positive.values[120:],
                            frame.examined.values[120:])
    assert glmm["log_score"] > constant["log_score"] + 0.3, (glmm, constant)
    assert 0.85 <= glmm["coverage_95"] <= 1.0, glmm
    # kriging of the empirical logit, the other baseline, is in the same league but not better here
    kriging = held_out_scores(frame, kriging_latent)
    assert glmm["log_score"] > kriging["log_score"] - 0.2, (glmm, kriging)


def test_binomial_glmm_uses_covariates_as_fixed_effects():
    frame = surveys(1, effect=1.5)
    with_x = held_out_scores(frame, binomial_glmm_latent, covariates=["x"])
    without = held_out_scores(frame, binomial_glmm_latent)
    assert with_x["log_score"] > without["log_score"] + 0.2, (with_x, without)


def test_binomial_glmm_spread_includes_a_new_villages_nugget():
    frame = surveys(2)
    # predicting at a training village's own location: a new village there still has its own variation
    loc, scale = binomial_glmm_latent(frame.iloc[:120], frame.iloc[:5])
    assert np.all(scale > 0.1) and np.all(np.isfinite(loc))


def test_count_score_table_means_are_the_count_scores():
    rng = np.random.default_rng(0)
    n = rng.integers(10, 40, 50)
    k = rng.binomial(n, 0.3)
    loc, scale = rng.normal(-0.8, 0.3, 50), rng.uniform(0.2, 1.0, 50)
    table, means = count_score_table(loc, scale, k, n), count_scores(loc, scale, k, n)
    assert np.isclose(table["log_score"].mean(), means["log_score"])
    assert np.isclose(table["crps"].mean(), means["crps"])
    assert np.isclose(table["covered"].mean(), means["coverage_95"])
    # a latent interval far from every village's prevalence covers none of them; a wide one covers all
    assert not count_score_table(np.full(50, 6.0), np.full(50, 0.1), k, n)["prevalence_covered"].any()
    assert count_score_table(np.zeros(50), np.full(50, 20.0), k, n)["prevalence_covered"].all()
