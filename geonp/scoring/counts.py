"""Scores of count predictions whose latent is logit-normal: log score, CRPS and interval coverage.

Both geonp's binomial head and a kriging baseline on the empirical logit give,
per held-out location, a Gaussian (loc, scale) on the logit of the prevalence.
The predictive of the held-out count k of n examined is then

    P(k | n) = E_z[Binom(k | n, sigmoid(loc + scale * z))]      (Gauss-Hermite, as the head)

and every score is of that discrete predictive:

    log score  log P(k | n)
    CRPS       sum_j (F(j) - 1{k <= j})^2 / n       (prevalence scale: divided by n)
    coverage   k inside the central 95% interval of P(. | n); of the prevalence: k / n inside
               the central 95% interval of the latent prevalence
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from scipy.special import expit, logit
from scipy.stats import norm

from geonp.nn.likelihoods import Binomial

# quantiles one standard deviation either side of the median: on the link scale a latent Gaussian head's are
# loc - scale, loc, loc + scale exactly (the link is monotone)
LATENT_QUANTILES = (float(norm.cdf(-1.0)), 0.5, float(norm.cdf(1.0)))
LINKS = {"binomial": logit, "bernoulli": logit, "poisson": np.log}  # float64, for predictions already made


def latent_from_quantiles(quantiles, likelihood: str, eps: float):
    """``(loc [N], scale [N])`` of a count head's latent Gaussian from its predictive's :data:`LATENT_QUANTILES`
    ``[N, 3]`` (prevalences clipped to ``[eps, 1 - eps]``, rates to ``>= eps``, so that the link is finite)."""
    q = np.asarray(quantiles, np.float64)
    lq = LINKS[likelihood](np.clip(q, eps, np.inf if likelihood == "poisson" else 1.0 - eps))
    return lq[:, 1], (lq[:, 2] - lq[:, 0]) / 2.0


def count_pmf(loc, scale, trials) -> list[np.ndarray]:
    """Per location, the predictive pmf over k = 0..n (one batched evaluation of the head, padded to max n)."""
    head = Binomial()
    loc, scale, n = np.asarray(loc, float), np.asarray(scale, float), np.asarray(trials, int)
    if n.size == 0:
        return []
    ks = np.arange(n.max() + 1)[None, :]  # [1, K]
    valid = ks <= n[:, None]  # [L, K]
    scale_raw = np.log(np.expm1(np.maximum(scale - head.min_scale, 1e-6)))
    raw = np.broadcast_to(np.stack([loc, scale_raw], -1)[:, None, :], valid.shape + (2,))
    y = np.stack([np.where(valid, ks, n[:, None]), np.broadcast_to(n[:, None], valid.shape)], -1)
    log_p = np.asarray(head.log_prob(jnp.asarray(raw, jnp.float32), jnp.asarray(y, jnp.float32)), np.float64)
    p = np.where(valid, np.exp(log_p), 0.0)
    return [row[: ni + 1] / row[: ni + 1].sum() for row, ni in zip(p, n, strict=True)]


def count_score_table(loc, scale, positives, trials, level: float = 0.95) -> dict[str, np.ndarray]:
    """Per location ``[L]``: log score, CRPS (prevalence scale), whether the count and the prevalence
    are covered, and the predictive mean prevalence (for bootstraps over locations).

    ``prevalence_covered``: the empirical prevalence k / n inside the central ``level`` interval of the
    latent prevalence ``sigmoid(loc +- z scale)`` (the surface, without the binomial noise of n), to
    within half a person (0.5 / n: no open interval holds a prevalence of exactly 0 or 1).
    """
    k = np.asarray(positives, int)
    n = np.asarray(trials, int)
    pmfs = count_pmf(loc, scale, n)
    log_score, crps, covered, mean_prev = [], [], [], []
    for pmf, ki, ni in zip(pmfs, k, n, strict=True):
        cdf = np.cumsum(pmf)
        log_score.append(np.log(max(pmf[ki], 1e-300)))
        crps.append(np.sum((cdf - (np.arange(ni + 1) >= ki)) ** 2) / ni)
        lo = int(np.searchsorted(cdf, (1 - level) / 2))
        hi = int(np.searchsorted(cdf, 1 - (1 - level) / 2))
        covered.append(lo <= ki <= hi)
        mean_prev.append(np.sum(pmf * np.arange(ni + 1)) / ni)
    z = norm.ppf(0.5 + level / 2)
    loc, scale = np.asarray(loc, float), np.asarray(scale, float)
    half = 0.5 / n
    inside = (expit(loc - z * scale) - half <= k / n) & (k / n <= expit(loc + z * scale) + half)
    return {"log_score": np.asarray(log_score), "crps": np.asarray(crps), "covered": np.asarray(covered),
            "prevalence_covered": inside, "mean_prevalence": np.asarray(mean_prev)}


def count_scores(loc, scale, positives, trials, level: float = 0.95) -> dict:
    """Mean log score (higher is better), CRPS on the prevalence scale, coverage of the counts and of
    the prevalence, n-weighted RMSE."""
    k = np.asarray(positives, int)
    n = np.asarray(trials, int)
    table = count_score_table(loc, scale, k, n, level)
    err = table["mean_prevalence"] - k / n
    return {"log_score": float(np.mean(table["log_score"])), "crps": float(np.mean(table["crps"])),
            "coverage_95": float(np.mean(table["covered"])),
            "coverage_95_prevalence": float(np.mean(table["prevalence_covered"])),
            "rmse_weighted": float(np.sqrt(np.sum(n * err**2) / n.sum())), "n_locations": int(k.size)}
