import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from geonp.errors import ConfigError
from geonp.nn.likelihoods import Normal, get_likelihood


def test_normal_log_prob_matches_scipy():
    head = Normal(min_std=1e-3)
    raw = jnp.array([[[0.3, -0.2], [-1.0, 1.5]]])  # [B=1, N=2, 2] -> (mean, std_raw)
    y = jnp.array([[[0.1], [-2.0]]])
    mean, std = head.mean_std(raw)
    expected = stats.norm(np.asarray(mean), np.asarray(std)).logpdf(np.asarray(y))[..., 0]
    np.testing.assert_allclose(np.asarray(head.log_prob(raw, y)), expected, rtol=1e-5)


def test_std_never_below_floor_and_quantiles_are_ordered():
    head = Normal(min_std=0.05)
    raw = jnp.array([[[0.0, -50.0]]])
    assert float(head.predict(raw)["std"][0, 0, 0]) == pytest.approx(0.05, rel=1e-4)
    q = [float(head.quantile(jnp.array([[[1.0, 0.0]]]), p)[0, 0, 0]) for p in (0.05, 0.5, 0.95)]
    assert q[0] < q[1] < q[2]
    assert q[1] == pytest.approx(1.0)
    assert q[2] - q[1] == pytest.approx(1.6448536 * (0.05 + np.log(2.0)), rel=1e-5)


def test_get_likelihood_by_name_dict_or_instance():
    assert get_likelihood("normal") == Normal()
    assert get_likelihood({"name": "normal", "min_std": 0.1}).min_std == 0.1
    with pytest.raises(ConfigError, match="available"):
        get_likelihood("student-t")
