"""Scores of a Gaussian predictive N(mean, std^2) against observations y.

All functions take arrays of the same shape (numpy or jax) and an optional
boolean ``mask`` of real points, and return the mean over real points.
Lower is better except for coverage, which should match its nominal level.
"""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri
from scipy.stats import norm

LOG_2PI = float(np.log(2.0 * np.pi))


def _mean(values, mask):
    values = np.asarray(values, np.float64)
    if mask is None:
        return float(values.mean())
    mask = np.broadcast_to(np.asarray(mask, bool), values.shape)
    return float(values[mask].mean())


def _as(mean, std, y):
    return (np.asarray(mean, np.float64), np.asarray(std, np.float64), np.asarray(y, np.float64))


def nll(mean, std, y, mask=None) -> float:
    """Negative log predictive density per point (nats)."""
    mean, std, y = _as(mean, std, y)
    z = (y - mean) / std
    return _mean(0.5 * z * z + np.log(std) + 0.5 * LOG_2PI, mask)


def rmse(mean, y, mask=None) -> float:
    err = np.asarray(mean, np.float64) - np.asarray(y, np.float64)
    return float(np.sqrt(_mean(err * err, mask)))


def mae(mean, y, mask=None) -> float:
    return _mean(np.abs(np.asarray(mean, np.float64) - np.asarray(y, np.float64)), mask)


def crps_gaussian_points(mean, std, y) -> np.ndarray:
    """Continuous ranked probability score of a Gaussian at every point, closed form (Gneiting & Raftery 2007):
    CRPS = std * [ z (2 Phi(z) - 1) + 2 phi(z) - 1 / sqrt(pi) ],  z = (y - mean) / std.
    """
    mean, std, y = _as(mean, std, y)
    z = (y - mean) / std
    return std * (z * (2.0 * norm.cdf(z) - 1.0) + 2.0 * norm.pdf(z) - 1.0 / np.sqrt(np.pi))


def crps_gaussian(mean, std, y, mask=None) -> float:
    """The mean of :func:`crps_gaussian_points` over real points."""
    return _mean(crps_gaussian_points(mean, std, y), mask)


def coverage(mean, std, y, level: float = 0.95, mask=None) -> float:
    """Fraction of y inside the central ``level`` predictive interval."""
    mean, std, y = _as(mean, std, y)
    half_width = ndtri(0.5 + level / 2.0) * std
    return _mean(np.abs(y - mean) <= half_width, mask)


def gaussian_scores(mean, std, y, mask=None) -> dict:
    """All of the above in one dict (keys: nll, rmse, mae, crps, coverage_95)."""
    return {
        "nll": nll(mean, std, y, mask),
        "rmse": rmse(mean, y, mask),
        "mae": mae(mean, y, mask),
        "crps": crps_gaussian(mean, std, y, mask),
        "coverage_95": coverage(mean, std, y, 0.95, mask),
    }
