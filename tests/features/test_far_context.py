"""Far context: a thinned sample beyond the nearest observations, the same rule in training and prediction."""

import jax
import numpy as np
from scipy.spatial import cKDTree

from geonp.features.far_context import FAR_REACH, far_indices
from geonp.predict.context import ContextSet, neighbourhoods
from geonp.tasks.fields import FieldTaskSampler


def test_far_points_lie_between_the_near_reach_and_its_multiple_and_skip_the_near_ones():
    rng = np.random.default_rng(0)
    points = rng.uniform(-20, 20, size=(20000, 2))
    tree = cKDTree(points)
    reach, near = tree.query(np.zeros(2), k=400)
    far = far_indices(tree, np.zeros(2), float(reach[-1]), 64, rng, near)
    assert 50 <= far.size <= 64 and not np.isin(far, near).any() and np.unique(far).size == far.size
    d = np.linalg.norm(points[far], axis=1)
    assert d.min() >= 0.9 * reach[-1] and d.max() <= 1.1 * FAR_REACH * reach[-1]
    # log-uniform in distance: as many within 2x the reach as beyond it
    assert 0.3 < np.mean(d < 2 * reach[-1]) < 0.7
    # on the sphere (3-D km): the points stay near the surface around the centre
    lon, lat = np.radians(rng.uniform(-30, 30, 20000)), np.radians(rng.uniform(-30, 30, 20000))
    sphere = 6371.0 * np.c_[np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]
    tree = cKDTree(sphere)
    centre = np.array([6371.0, 0.0, 0.0])
    reach, near = tree.query(centre, k=300)
    far = far_indices(tree, centre, float(reach[-1]), 32, rng, near)
    assert far.size >= 24 and np.linalg.norm(sphere[far] - centre, axis=1).max() <= 1.2 * FAR_REACH * reach[-1]


def test_field_tasks_with_far_context_reach_beyond_the_nearest_ones():
    plain, farther = FieldTaskSampler(), FieldTaskSampler(far_fraction=0.125)
    key = jax.random.PRNGKey(3)
    spread = {}
    for name, sampler in (("plain", plain), ("far", farther)):
        batch, info = sampler.sample(key, 12)
        x, mask = np.asarray(batch.meta_ctx["space"]), np.asarray(batch.mask_ctx)
        full = [i for i in range(12) if info.n_context[i] > 448 and info.layout[i] != 2]
        assert full
        spread[name] = np.median([np.linalg.norm(x[i][mask[i]], axis=1).max() for i in full])
        assert np.all(np.isfinite(info.oracle_std))
    assert spread["far"] > 2.0 * spread["plain"]


def test_prediction_neighbourhoods_add_far_points_reproducibly():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, size=(5000, 2))
    context = ContextSet(embedding=[points], space=[points], time=[None], hours=[None],
                         covariates=[np.zeros((5000, 0))], values=[np.zeros((5000, 1))])
    targets = rng.uniform(40, 60, size=(200, 2))
    plain = neighbourhoods(targets, context, 0, 256)
    farther = neighbourhoods(targets, context, 0, 256, far=32)
    again = neighbourhoods(targets, context, 0, 256, far=32)
    for (t0, c0), (t1, c1), (_, c2) in zip(plain, farther, again, strict=True):
        np.testing.assert_array_equal(t0, t1)
        np.testing.assert_array_equal(c1, c2)
        assert c1.size <= 256 + 4 * t1.size
        centre = targets[t1].mean(axis=0)
        assert np.linalg.norm(points[c1] - centre, axis=1).max() > 1.5 * np.linalg.norm(points[c0] - centre,
                                                                                          axis=1).max()
