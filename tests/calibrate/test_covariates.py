"""Covariate selection by held-out score: the pure pieces (the estimator's use: tests/xr/test_covariate_slots.py)."""

import numpy as np
import pytest
from scipy.special import expit, ndtr
from scipy.stats import norm

from geonp.calibrate import covariates as selection
from geonp.errors import ConfigError
from geonp.features.scaling import FeatureScaling
from geonp.nn.likelihoods import get_likelihood


def test_every_subset_is_scored_and_the_best_kept():
    assert selection.subsets(["a", "b"]) == [("a", "b"), ("a",), ("b",), ()]
    useful = {"a": 0.3, "b": -0.1, "c": 0.0}  # b costs, c is neutral: ties keep the larger set

    def score(subset, train, test):
        assert not set(train) & set(test) and len(train) + len(test) == 40
        return np.full(len(test), sum(useful[c] for c in subset))

    folds = selection.location_folds(40, 5, np.random.default_rng(0))
    result = selection.select(score, ["a", "b", "c"], folds)
    assert result["kept"] == ["a", "c"] and result["ignored"] == ["b"]
    assert result["scores"]["a + c"] == pytest.approx(0.3) and result["scores"]["none"] == 0.0
    assert len(result["scores"]) == 8


def test_unscored_locations_stay_in_every_context():
    folds = np.array([0, 1, 0, 1, -1, -1])
    seen = []
    selection.select(lambda s, train, test: seen.append((set(train), set(test))) or np.zeros(len(test)), [], folds)
    assert seen == [({1, 3, 4, 5}, {0, 2}), ({0, 2, 4, 5}, {1, 3})]


def test_predictive_log_prob_from_quantiles_matches_the_heads():
    loc, scale = np.array([0.2, -1.0]), np.array([0.5, 1.3])
    quantiles = np.c_[loc, loc + scale]
    y = np.array([[0.9], [-2.0]])
    np.testing.assert_allclose(selection.predictive_log_prob(get_likelihood("normal"), quantiles, y),
                               norm.logpdf(y[:, 0], loc, scale), rtol=1e-5)
    binomial = get_likelihood("binomial")
    counts = np.array([[3.0, 10.0], [0.0, 25.0]])
    z, w = np.polynomial.hermite_e.hermegauss(80)  # E_z[Binom(k | n, expit(loc + scale z))]
    from scipy.stats import binom
    exact = [np.log(np.sum(w * binom.pmf(k, n, expit(m + s * z))) / np.sqrt(2 * np.pi))
             for (k, n), m, s in zip(counts, loc, scale, strict=True)]
    got = selection.predictive_log_prob(binomial, expit(quantiles), counts)
    np.testing.assert_allclose(got, exact, rtol=1e-4)
    assert selection._Q[1] == pytest.approx(ndtr(1.0))


def test_ignored_covariates_leave_their_slots():
    base = dict(kind="geographic", space_unit=100.0, value_names=("p",), value_mean=(0.0,), value_std=(1.0,),
                covariate_names=("a", "b", "c"), covariate_mean=(0.0, 0.0, 0.0), covariate_std=(1.0, 1.0, 1.0),
                covariate_slots=4)
    x = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(FeatureScaling(**base, covariates_ignored=("b",)).scale_covariates(x),
                                  [[1.0, 3.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])  # the kept ones first, as in training
    restored = FeatureScaling.from_dict(FeatureScaling(**base, covariates_ignored=("b",)).to_dict())
    assert restored.covariates_ignored == ("b",)
    with pytest.raises(ConfigError, match="covariates_ignored"):
        FeatureScaling(**base, covariates_ignored=("d",))
