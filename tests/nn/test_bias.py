"""The RBF distance bias and the distance metrics it uses."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.nn import bias as bias_lib
from geonp.nn import distances

GC = bias_lib.CoordinateGroup("space", 2, "great_circle", num_basis=4, init_length_scales=(0.01, 1.0))


def _arc(a, b):
    """Great-circle angle (radians) between lon/lat degree pairs, by the spherical law of cosines in float64."""
    lon1, lat1, lon2, lat2 = map(np.deg2rad, (a[0], a[1], b[0], b[1]))
    c = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * np.cos(lon1 - lon2)
    return float(np.arccos(np.clip(c, -1, 1)))


def _gc_sq(a, b, radius=1.0):
    pa = distances.prepare("great_circle", jnp.array([[a]], jnp.float32))
    pb = distances.prepare("great_circle", jnp.array([[b]], jnp.float32))
    return float(distances.tile_sq_dist("great_circle", pa, pb, radius)[0, 0, 0])


@pytest.mark.parametrize(
    "a, b",
    [((0, 0), (90, 0)), ((0, 0), (0, 90)), ((10, 50), (12, 51)), ((-70, -33), (151, -34)), ((5, 60), (5.1, 60.05))],
)
def test_great_circle_matches_spherical_trigonometry(a, b):
    assert math.sqrt(_gc_sq(a, b)) == pytest.approx(_arc(a, b), rel=1e-4, abs=1e-6)


def test_great_circle_wraps_the_date_line_and_accepts_both_longitude_conventions():
    across = _gc_sq((179.5, 10), (-179.5, 10))
    assert math.sqrt(across) == pytest.approx(_arc((179.5, 10), (180.5, 10)), rel=1e-4)
    assert _gc_sq((350, 40), (10, 41)) == pytest.approx(_gc_sq((-10, 40), (10, 41)), rel=1e-5)
    # the poles: every longitude is the same point
    assert _gc_sq((0, 90), (123, 90)) == pytest.approx(0.0, abs=1e-10)


def test_great_circle_radius_scales_distance():
    assert _gc_sq((0, 0), (1, 0), radius=6371.0) == pytest.approx((6371.0 * math.radians(1)) ** 2, rel=1e-4)


def test_great_circle_gradient_is_finite_at_zero_distance():
    def f(x):
        p = distances.prepare("great_circle", x)
        return jnp.sum(distances.tile_sq_dist("great_circle", p, p))

    g = jax.grad(f)(jnp.array([[[10.0, 20.0], [10.0, 20.0]]]))
    assert np.all(np.isfinite(np.asarray(g)))


def test_rates_start_distinct_positive_and_log_spaced():
    group = bias_lib.CoordinateGroup("space", 2, num_basis=5, init_length_scales=(0.1, 10.0))
    params = bias_lib.init_rbf_bias(jax.random.PRNGKey(0), [group], num_heads=3)
    rates = jax.nn.softplus(params["space"]["rate_raw"])
    assert np.all(np.asarray(rates) > 0)
    scales = np.asarray(bias_lib.length_scales(params)["space"][0])
    np.testing.assert_allclose(scales, np.geomspace(0.1, 10.0, 5), rtol=1e-4)
    assert len(np.unique(np.round(scales, 6))) == 5


def test_basis_functions_receive_different_gradients():
    """Identical initial rates would get identical updates forever; distinct ones do not."""
    group = bias_lib.CoordinateGroup("space", 2, num_basis=4)
    params = bias_lib.init_rbf_bias(jax.random.PRNGKey(1), [group], num_heads=1, amplitude_std=0.0)
    x = jax.random.uniform(jax.random.PRNGKey(2), (1, 30, 2), minval=-2, maxval=2)

    def loss(p):
        return jnp.sum(jnp.sin(bias_lib.rbf_bias(p, {"space": x}, {"space": x}, [group])))

    g = np.asarray(jax.grad(loss)(params)["space"]["rate_raw"][0])
    assert len(np.unique(np.round(g, 8))) == 4


def test_bias_depends_only_on_distances():
    groups = [bias_lib.CoordinateGroup("space", 2), bias_lib.CoordinateGroup("time", 1, num_basis=3)]
    params = bias_lib.init_rbf_bias(jax.random.PRNGKey(0), groups, num_heads=2)
    key = jax.random.PRNGKey(3)
    meta = {"space": jax.random.normal(key, (1, 7, 2)), "time": jax.random.normal(key, (1, 7, 1))}
    moved = {"space": meta["space"] + jnp.array([100.0, -50.0]), "time": meta["time"] + 24.0}
    a = bias_lib.rbf_bias(params, meta, meta, groups)
    b = bias_lib.rbf_bias(params, moved, moved, groups)
    assert a.shape == (1, 2, 7, 7)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_sphere_rotation_leaves_great_circle_bias_unchanged():
    params = bias_lib.init_rbf_bias(jax.random.PRNGKey(0), [GC], num_heads=2)
    lonlat = jnp.array([[[0.0, 10.0], [20.0, -5.0], [170.0, 60.0], [-100.0, 0.0]]])
    shifted = lonlat.at[..., 0].add(77.0)  # a rotation about the polar axis
    a = bias_lib.rbf_bias(params, *(bias_lib.prepare_metadata([GC], {"space": lonlat}),) * 2, [GC])
    b = bias_lib.rbf_bias(params, *(bias_lib.prepare_metadata([GC], {"space": shifted}),) * 2, [GC])
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_bad_group_options_raise():
    with pytest.raises(ConfigError, match="metric"):
        bias_lib.CoordinateGroup("space", 2, "manhattan")
    with pytest.raises(ConfigError, match="2 coordinate columns"):
        bias_lib.CoordinateGroup("space", 3, "great_circle")
    with pytest.raises(ConfigError, match="init_length_scales"):
        bias_lib.CoordinateGroup("space", 2, init_length_scales=(1.0, 0.5))
