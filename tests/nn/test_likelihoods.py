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


# --------------------------------------------------------------------------- count and category heads

from scipy import integrate  # noqa: E402

from geonp.nn.likelihoods import Bernoulli, Binomial, Categorical, Poisson  # noqa: E402


def _raw(loc, scale):
    """Raw outputs whose softplus gives ``scale`` (above the tiny floor)."""
    scale_raw = np.log(np.expm1(np.asarray(scale) - 1e-3))
    return jnp.asarray(np.stack([loc, scale_raw], -1)[None, :, :], jnp.float32)  # [1, N, 2]


def test_binomial_marginal_matches_numerical_integral():
    loc, scale, n, k = np.array([-0.5, 1.2, 0.0]), np.array([0.8, 0.3, 1.5]), np.array([20.0, 7.0, 50.0]), \
        np.array([6.0, 6.0, 0.0])
    head = Binomial()
    got = np.asarray(head.log_prob(_raw(loc, scale), jnp.asarray(np.stack([k, n], -1))[None]))[0]
    for i in range(3):
        def integrand(z):
            p = 1 / (1 + np.exp(-(loc[i] + scale[i] * z)))
            return stats.binom.pmf(k[i], n[i], p) * stats.norm.pdf(z)
        expected = np.log(integrate.quad(integrand, -10, 10)[0])
        assert got[i] == pytest.approx(expected, abs=2e-4)


def test_binomial_probabilities_sum_to_one_and_moments_match_sampling():
    head = Binomial()
    raw = _raw(np.array([0.4]), np.array([0.9]))
    ks = jnp.arange(13.0)[None, :, None]
    observations = jnp.concatenate([ks, jnp.full_like(ks, 12.0)], -1)  # (k, n = 12)
    total = np.exp(np.asarray(head.log_prob(jnp.repeat(raw, 13, axis=1), observations)))
    assert total.sum() == pytest.approx(1.0, abs=1e-4)
    draws = np.asarray(head.sample(raw, __import__("jax").random.PRNGKey(0), 200_000))[:, 0, 0, 0]
    out = head.predict(raw)
    assert float(out["mean"][0, 0, 0]) == pytest.approx(draws.mean(), abs=3e-3)
    assert float(out["std"][0, 0, 0]) == pytest.approx(draws.std(), abs=3e-3)
    median = float(head.quantile(raw, 0.5)[0, 0, 0])
    assert median == pytest.approx(1 / (1 + np.exp(-0.4)), rel=1e-5)
    assert float(head.exceedance(raw, median)[0, 0, 0]) == pytest.approx(0.5, abs=1e-5)


def test_bernoulli_is_binomial_with_one_trial():
    raw = _raw(np.array([0.3, -1.0]), np.array([0.5, 0.2]))
    y = jnp.array([[[1.0], [0.0]]])
    one_trial = jnp.concatenate([y, jnp.ones_like(y)], -1)
    np.testing.assert_allclose(Bernoulli().log_prob(raw, y), Binomial().log_prob(raw, one_trial), rtol=1e-6)


def test_poisson_with_exposure_sums_to_one_and_has_lognormal_moments():
    head = Poisson()
    raw = _raw(np.array([0.2]), np.array([0.4]))
    ks = jnp.arange(80.0)[None, :, None]
    exposure = jnp.full((1, 80, 1), 3.0)
    total = np.exp(np.asarray(head.log_prob(jnp.repeat(raw, 80, axis=1), jnp.concatenate([ks, exposure], -1))))
    assert total.sum() == pytest.approx(1.0, abs=1e-4)
    mean = float(head.predict(raw)["mean"][0, 0, 0])
    assert mean == pytest.approx(np.exp(0.2 + 0.5 * 0.4**2), rel=1e-5)
    expected_count = float(np.sum(np.arange(80) * total))
    assert expected_count == pytest.approx(3.0 * mean, rel=1e-3)  # E[k] = exposure * E[rate]


def test_categorical_log_prob_and_probabilities():
    head = Categorical(num_classes=3)
    raw = jnp.array([[[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]]])
    y = jnp.array([[[0.0], [2.0]]])
    logp = np.asarray(head.log_prob(raw, y))[0]
    soft = np.exp([2.0, 0.0, -1.0]) / np.exp([2.0, 0.0, -1.0]).sum()
    np.testing.assert_allclose(logp, [np.log(soft[0]), np.log(1 / 3)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(head.predict(raw)["probs"]).sum(-1), 1.0, rtol=1e-6)
    with pytest.raises(ConfigError, match="2 classes"):
        Categorical(num_classes=1)


def test_count_heads_have_finite_gradients_and_round_trip_by_name():
    import jax

    for head in (Binomial(), Poisson()):
        y = jnp.array([[[0.0, 30.0], [30.0, 1.0 if head.name == "poisson" else 30.0]]])  # (k, n) / (k, exposure)
        raw = _raw(np.array([-6.0, 6.0]), np.array([0.01, 3.0]))  # extreme but legal
        grad = jax.grad(lambda r: head.log_prob(r, y).sum())(raw)
        assert np.isfinite(np.asarray(grad)).all()
        assert get_likelihood(head.to_dict()) == head
    assert get_likelihood("categorical").num_outputs == 3
    assert isinstance(get_likelihood({"name": "bernoulli"}), Bernoulli)


def test_encodings_give_finite_token_features():
    y = jnp.array([[[0.0, 5.0], [5.0, 5.0], [2.0, 200.0]]])
    enc = np.asarray(Binomial().encode(y))[0]
    assert np.isfinite(enc).all()
    np.testing.assert_allclose(enc[:, 0], np.log(np.array([0.5, 5.5, 2.5]) / np.array([5.5, 0.5, 198.5])), rtol=1e-6)
    np.testing.assert_allclose(enc[:, 1], np.log1p([5.0, 5.0, 200.0]), rtol=1e-6)
    onehot = np.asarray(Categorical(num_classes=3).encode(jnp.array([[[2.0], [0.0]]])))
    np.testing.assert_array_equal(onehot, [[[0, 0, 1], [1, 0, 0]]])
    assert Binomial().observation_columns == 2 and Bernoulli().observation_columns == 1


def test_exceedance_is_the_upper_tail_of_the_quantile_function():
    raw = _raw(np.array([-0.7]), np.array([0.6]))
    for head in (Binomial(), Poisson()):
        for q in (0.1, 0.5, 0.9):
            t = head.quantile(raw, q)
            assert float(head.exceedance(raw, t)[0, 0, 0]) == pytest.approx(1 - q, abs=1e-5)
