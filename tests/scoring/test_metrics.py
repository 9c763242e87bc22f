import numpy as np
import pytest
from scipy import integrate, stats

from geonp.scoring import metrics


def test_crps_closed_form_matches_numerical_integral():
    mean, std, y = 0.4, 1.7, -0.9
    dist = stats.norm(mean, std)
    below, _ = integrate.quad(lambda t: dist.cdf(t) ** 2, -np.inf, y)
    above, _ = integrate.quad(lambda t: (1 - dist.cdf(t)) ** 2, y, np.inf)
    assert metrics.crps_gaussian(mean, std, y) == pytest.approx(below + above, rel=1e-6)


def test_crps_reduces_to_mae_as_std_vanishes():
    assert metrics.crps_gaussian(1.0, 1e-9, 3.5) == pytest.approx(2.5, rel=1e-6)


def test_nll_matches_scipy_and_mask_excludes_points():
    mean, std, y = np.array([0.0, 1.0, 5.0]), np.array([1.0, 0.5, 2.0]), np.array([0.2, 1.5, 1000.0])
    mask = np.array([True, True, False])
    expected = -stats.norm(mean[:2], std[:2]).logpdf(y[:2]).mean()
    assert metrics.nll(mean, std, y, mask) == pytest.approx(expected, rel=1e-10)


def test_coverage_of_calibrated_gaussian_is_nominal():
    rng = np.random.default_rng(0)
    y = rng.normal(size=200_000)
    assert metrics.coverage(np.zeros_like(y), np.ones_like(y), y, 0.95) == pytest.approx(0.95, abs=0.003)
    assert metrics.coverage(np.zeros_like(y), np.ones_like(y), y, 0.5) == pytest.approx(0.5, abs=0.005)


def test_rmse_mae():
    assert metrics.rmse([0, 0], [3, 4]) == pytest.approx(np.sqrt(12.5))
    assert metrics.mae([0, 0], [3, -4]) == pytest.approx(3.5)
    scores = metrics.gaussian_scores(np.zeros(3), np.ones(3), np.zeros(3))
    assert set(scores) == {"nll", "rmse", "mae", "crps", "coverage_95"}
