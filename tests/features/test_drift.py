"""The polynomial drift fitted to a field's observations (geonp.features.drift)."""

import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.features.drift import design, fit_trend
from geonp.features.scaling import FeatureScaling
from geonp.features.tables import euclidean_embedding


def test_design_holds_every_monomial_up_to_the_degree():
    z = np.array([[2.0, 3.0]])
    np.testing.assert_array_equal(design(z, 2), [[1.0, 2.0, 3.0, 4.0, 6.0, 9.0]])
    assert design(np.zeros((5, 3)), 2).shape == (5, 10)


def test_a_plane_polynomial_is_recovered_and_held_at_the_edge_beyond_the_data():
    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, (400, 2))
    drift = lambda p: (3.0 + 0.02 * p[:, 0] - 0.001 * (p[:, 1] - 40) ** 2)[:, None]  # noqa: E731
    trend = fit_trend(points, drift(points), 2)
    inside = rng.uniform(10, 90, (50, 2))
    np.testing.assert_allclose(trend(inside), drift(inside), atol=1e-8)
    # far beyond the observations the polynomial is not extrapolated: the drift stays near its values at the edge
    beyond = np.array([[10_000.0, 40.0], [50.0, -10_000.0]])
    on_data = trend(points)
    assert (trend(beyond) > on_data.min() - 0.5).all() and (trend(beyond) < on_data.max() + 0.5).all()
    assert np.abs(drift(beyond)).min() > 100  # where the polynomial itself would be


def test_on_the_sphere_the_equator_to_pole_contrast_is_a_degree_two_drift():
    lon, lat = np.meshgrid(np.arange(0.0, 360.0, 10.0), np.arange(-80.0, 81.0, 10.0))
    emb = euclidean_embedding("geographic", lon.ravel(), lat.ravel())
    values = (30.0 * np.cos(np.deg2rad(lat.ravel())) ** 2)[:, None]  # warm tropics, cold poles
    trend = fit_trend(emb, values, 2)
    assert trend.axes.shape == (3, 3)  # a global field keeps all three axes
    np.testing.assert_allclose(trend(emb), values, atol=1e-6)
    assert fit_trend(emb, values, 1) is not None  # a plane in 3-D cannot bend: degree 1 misses it
    assert np.abs(fit_trend(emb, values, 1)(emb) - values).max() > 5


def test_a_regional_field_leaves_out_the_earth_curvature_axis():
    lon, lat = np.meshgrid(np.arange(-5.0, 2.0, 0.25), np.arange(50.0, 56.0, 0.25))
    emb = euclidean_embedding("geographic", lon.ravel(), lat.ravel())
    trend = fit_trend(emb, lat.reshape(-1, 1), 1)
    assert trend.axes.shape == (3, 2)


def test_no_drift_for_degree_zero_or_too_few_observations():
    points = np.random.default_rng(1).uniform(size=(30, 2))
    assert fit_trend(points, np.ones((30, 1)), 0) is None
    assert fit_trend(points, np.ones((30, 1)), 2) is None  # 6 terms need 60 points
    assert fit_trend(points, np.ones((30, 1)), 1) is not None


def test_the_degree_is_part_of_the_scaling_and_counts_take_none():
    s = FeatureScaling("projected", 1.0, ("z",), (0.0,), (1.0,), trend_degree=2)
    assert FeatureScaling.from_dict(s.to_dict()).trend_degree == 2
    old = {k: v for k, v in s.to_dict().items() if k != "trend_degree"}  # saved before drifts existed
    assert FeatureScaling.from_dict(old).trend_degree == 0
    with pytest.raises(ConfigError, match="trend_degree must be one of"):
        FeatureScaling("projected", 1.0, ("z",), (0.0,), (1.0,), trend_degree=3)
    with pytest.raises(ConfigError, match="counts and classes"):
        FeatureScaling("projected", 1.0, ("z",), (0.0,), (1.0,), center="global", trend_degree=1)
