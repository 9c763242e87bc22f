"""The models a statistician fits to prevalence surveys, scored beside geonp on the same folds.

Each takes surveys ``train`` and ``test`` (DataFrames with ``lon``, ``lat``, ``positive``, ``examined``
and the covariate columns) and returns ``(loc [M], scale [M])``: a Gaussian on the logit of the
prevalence at every ``test`` location, a new village's own variation (the nugget) included, which
:func:`geonp.scoring.counts.count_scores` turns into the predictive of its counts.

* :func:`kriging_latent`: (regression) kriging of the empirical logit (pykrige);
* :func:`binomial_glmm_latent`: binomial geostatistics, the model PrevMap, RiskMap or INLA users
  fit: ``logit p(s) = X beta + S(s) + Z_village``, ``S`` a Gaussian process (Matérn, smoothness
  0.5 by default: exponential), ``Z`` a village-level nugget, ``k ~ Binomial(n, p)``; covariance
  parameters by maximum likelihood under the Laplace approximation, covariates as fixed effects
  (GPBoost ``binomial_logit``; a Vecchia approximation above :data:`VECCHIA_ABOVE` villages).
  GPBoost is an optional dependency (``pip install "geonp[bench]"``).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pandas as pd

from geonp.errors import ConfigError
from geonp.features.coordinates import local_km

VECCHIA_ABOVE = 1500  # villages: an exact GP beyond this is slow on a laptop
VECCHIA_NEIGHBOURS = 30


def has_gpboost() -> bool:
    return importlib.util.find_spec("gpboost") is not None


def _km(train: pd.DataFrame, test: pd.DataFrame):
    """Both tables' locations in km on one local plane around their centre: ([N, 2], [M, 2])."""
    both = pd.concat([train[["lon", "lat"]], test[["lon", "lat"]]])
    to_km = local_km(float(both.lon.mean()), float(both.lat.mean()))
    return (np.column_stack(to_km.transform(train.lon.values, train.lat.values)),
            np.column_stack(to_km.transform(test.lon.values, test.lat.values)))


def _design(train: pd.DataFrame, test: pd.DataFrame, covariates):
    """Intercept and the covariates standardised on ``train``: ([N, 1 + C], [M, 1 + C])."""
    covariates = list(covariates)
    mean_x, std_x = train[covariates].mean(), train[covariates].std().replace(0.0, 1.0).fillna(1.0)
    scaled = lambda f: ((f[covariates] - mean_x) / std_x).to_numpy(np.float64)  # noqa: E731
    return np.c_[np.ones(len(train)), scaled(train)], np.c_[np.ones(len(test)), scaled(test)]


def binomial_glmm_latent(train: pd.DataFrame, test: pd.DataFrame, covariates=(), smoothness: float = 0.5,
                         seed: int = 0):
    """Binomial geostatistics fitted to ``train`` by Laplace maximum likelihood: (loc, scale) of the logit at ``test``.

    ``scale`` is the posterior spread of ``X beta + S`` at a new location plus the village nugget
    (a held-out village is a new village). The fixed effects are plug-in estimates, as in
    PrevMap's ``spatial.pred.binomial.MCML`` without ``scale.predictions`` of beta.
    """
    if not has_gpboost():
        raise ConfigError("the binomial geostatistical baseline needs GPBoost: pip install gpboost "
                          '(or pip install -e ".[bench]").')
    import gpboost as gpb

    xs, xt = _km(train, test)
    design, design_t = _design(train, test, covariates)
    n = train.examined.to_numpy(np.float64)
    approx = {"gp_approx": "vecchia", "num_neighbors": VECCHIA_NEIGHBOURS} if len(train) > VECCHIA_ABOVE else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = gpb.GPModel(gp_coords=xs, group_data=np.arange(len(train)), cov_function="matern",
                            cov_fct_shape=smoothness, likelihood="binomial_logit", weights=n, seed=seed, **approx)
        model.fit(y=train.positive.to_numpy(np.float64) / n, X=design, params={"trace": False})
        new_villages = np.arange(len(train), len(train) + len(test))
        pred = model.predict(gp_coords_pred=xt, group_data_pred=new_villages, X_pred=design_t,
                             predict_var=True, predict_response=False)
    return np.asarray(pred["mu"], np.float64), np.sqrt(np.maximum(np.asarray(pred["var"], np.float64), 1e-12))


def kriging_latent(train: pd.DataFrame, test: pd.DataFrame, variogram: str = "exponential", covariates=()):
    """Kriging of the empirical logit: (loc, scale) at ``test`` (scale includes the nugget).

    Without covariates, ordinary kriging; with them, regression kriging: least squares of the
    empirical logit on the standardised covariates, ordinary kriging of the residuals, the trend
    added back, its standard error added to the variance.
    """
    from pykrige.ok import OrdinaryKriging

    (xs, ys), (xt, yt) = (a.T for a in _km(train, test))
    k, n = train.positive.values, train.examined.values
    z = np.log((k + 0.5) / (n - k + 0.5))
    covariates = list(covariates)
    design, design_t = _design(train, test, covariates)
    beta = np.linalg.lstsq(design, z, rcond=None)[0] if covariates else np.zeros(1)
    residual = z - design @ beta
    trend_var = np.zeros(len(test))
    if covariates:
        sigma2 = float(residual @ residual) / max(len(z) - design.shape[1], 1)
        trend_var = sigma2 * np.einsum("ij,jk,ik->i", design_t, np.linalg.pinv(design.T @ design), design_t)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = OrdinaryKriging(xs, ys, residual, variogram_model=variogram, exact_values=False)
        mean, var = ok.execute("points", xt, yt)
    nugget = float(ok.variogram_model_parameters[-1])
    return design_t @ beta + np.asarray(mean), np.sqrt(np.maximum(np.asarray(var), 0.0) + nugget + trend_var)
