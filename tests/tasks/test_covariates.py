"""The covariate prior: covariates of random kinds, effects on the latent, the slot layout of the tokens."""

import jax
import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.features.scaling import FeatureScaling
from geonp.nn.models import BSATNPConfig
from geonp.tasks import covariates as cov
from geonp.tasks.prevalence import BinomialSurveySampler


def test_covariates_are_standardised_on_the_context_and_noise_never_has_an_effect():
    prior = cov.CovariatePrior(slots=4)
    points = jax.random.uniform(jax.random.PRNGKey(0), (64, 200, 2), minval=-2, maxval=2)
    context = np.arange(200)[None, :].repeat(64, 0) < 150
    x, kinds = cov.draw_covariates(prior, jax.random.PRNGKey(1), points, context)
    x, kinds = np.asarray(x), np.asarray(kinds)
    on_context = x[:, :150]
    np.testing.assert_allclose(on_context.mean(1), 0.0, atol=1e-4)
    np.testing.assert_allclose(on_context.std(1), 1.0, atol=1e-3)
    effect, used = cov.draw_effects(prior, jax.random.PRNGKey(2), x, kinds)
    used = np.asarray(used)
    assert np.all(used[:, 1:] <= used[:, :-1])  # the first n slots, as a user's covariates fill them
    assert set(used.sum(1).tolist()) == {0, 1, 2, 3, 4}
    assert set(kinds.ravel().tolist()) == {0, 1, 2}
    # a task whose used covariates are all noise (or none is used) gets no effect at all
    silent = ~np.any(used & (kinds != 2), axis=1)
    assert silent.any() and np.all(np.asarray(effect)[silent] == 0.0)
    # smooth covariates vary slowly: neighbouring points agree far more than for noise
    columns = np.asarray(cov.slot_columns(x, used))
    assert columns.shape == (64, 200, 8)
    np.testing.assert_array_equal(columns[..., 4:], np.broadcast_to(used[:, None, :], (64, 200, 4)))
    assert np.all(columns[..., :4][~np.broadcast_to(used[:, None, :], (64, 200, 4))] == 0.0)


def test_survey_tasks_with_slots_have_the_token_layout_a_user_gets():
    batch, _ = BinomialSurveySampler(covariate_slots=4).sample(jax.random.PRNGKey(3), 6)
    assert batch.x_ctx.shape[-1] == 8 and batch.x_tgt.shape[-1] == 8
    scaling = FeatureScaling(kind="projected", space_unit=1.0, value_names=("k", "n"), value_mean=(0.0, 0.0),
                             value_std=(1.0, 1.0), covariate_names=("elevation", "ndvi"),
                             covariate_mean=(100.0, 0.5), covariate_std=(50.0, 0.1), covariate_slots=4)
    got = scaling.scale_covariates(np.array([[150.0, 0.4]]))
    np.testing.assert_allclose(got, [[1.0, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]])
    with pytest.raises(ConfigError, match="at most K=1"):
        FeatureScaling(kind="projected", space_unit=1.0, value_names=("k",), value_mean=(0.0,), value_std=(1.0,),
                       covariate_names=("a", "b"), covariate_mean=(0.0, 0.0), covariate_std=(1.0, 1.0),
                       covariate_slots=1)
    with pytest.raises(ConfigError, match="x_dim = 8"):
        BSATNPConfig(x_dim=4, covariate_slots=4)
