"""The survey prior covers what real survey sets look like: binary maps to hundreds examined, clustered sites."""

import jax
import numpy as np
import pytest
from scipy.spatial import cKDTree

from geonp.errors import ConfigError
from geonp.tasks.gp import GPTaskSampler
from geonp.tasks.prevalence import BinomialSurveySampler


@pytest.fixture(scope="module")
def batch():
    return BinomialSurveySampler().sample(jax.random.PRNGKey(0), 96)


def test_examined_range_from_binary_maps_to_hundreds(batch):
    data, _ = batch
    n, mask = np.asarray(data.y_ctx[..., 1]), np.asarray(data.mask_ctx)
    k = np.asarray(data.y_ctx[..., 0])
    assert np.all(n[mask] >= 1) and np.all(n == np.round(n)) and np.all((k >= 0) & (k <= n))
    binary = np.array([np.all(n[i][mask[i]] == 1) for i in range(len(n))])
    assert 0.05 < binary.mean() < 0.35  # ~15% of tasks are binary maps
    typical = np.array([np.median(n[i][mask[i]]) for i in range(len(n))])
    assert typical.max() > 100 and np.mean(typical < 5) > 0.15


def test_prevalence_from_near_zero_to_high(batch):
    data, _ = batch
    k, n, mask = (np.asarray(a) for a in (data.y_ctx[..., 0], data.y_ctx[..., 1], data.mask_ctx))
    prevalence = np.array([k[i][mask[i]].sum() / n[i][mask[i]].sum() for i in range(len(k))])
    assert prevalence.min() < 0.03 and prevalence.max() > 0.7


def test_length_scales_reach_from_site_spacing_to_trends(batch):
    _, hyper = batch
    ls = np.asarray(hyper.lengthscale)
    assert ls.min() < 0.15 and np.percentile(ls, 90) > 1.0


def nearest_neighbour_distance(sampler) -> float:
    data, _ = sampler.sample(jax.random.PRNGKey(1), 32)
    x, mask = np.asarray(data.meta_ctx["space"]), np.asarray(data.mask_ctx)
    return float(np.median([np.mean(cKDTree(x[i][mask[i]]).query(x[i][mask[i]], k=2)[0][:, 1])
                            for i in range(len(x))]))


def test_clustered_sites_sit_closer_than_spread_ones():
    spread = GPTaskSampler(num_context=(100, 100), num_target=16)
    clustered = GPTaskSampler(num_context=(100, 100), num_target=16, clustered_share=1.0)
    assert nearest_neighbour_distance(clustered) < 0.6 * nearest_neighbour_distance(spread)
    # tasks drawn without clustering are drawn exactly as before it existed
    a = spread.sample(jax.random.PRNGKey(2), 4)[0]
    b = GPTaskSampler(num_context=(100, 100), num_target=16, clustered_share=0.0).sample(jax.random.PRNGKey(2), 4)[0]
    assert np.array_equal(np.asarray(a.meta_ctx["space"]), np.asarray(b.meta_ctx["space"]))


@pytest.mark.parametrize("options", [{"trials_spread": (1.0, 0.5)}, {"binary_share": 1.5}])
def test_bad_survey_prior_options_are_refused(options):
    with pytest.raises(ConfigError):
        BinomialSurveySampler(**options)


@pytest.mark.parametrize("options", [{"lengthscale_range": (0.0, 1.0)}, {"clustered_share": -0.1}])
def test_bad_site_options_are_refused(options):
    with pytest.raises(ConfigError):
        GPTaskSampler(**options)
