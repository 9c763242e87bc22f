"""The covariates' trend fitted in context equals a ridge regression, ignores padding and unused slots."""

import jax.numpy as jnp
import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.nn.covariate_trend import RIDGE, covariate_trend
from geonp.nn.models import BSATNPConfig

SLOTS = BSATNPConfig(x_dim=8, covariate_slots=4, covariate_trend=True, num_blocks=1, width=16, num_heads=2,
                     head_dim=8, ff_dim=16, likelihood="binomial")


def test_the_trend_is_the_ridge_fit_of_the_empirical_logit_on_the_used_slots():
    rng = np.random.default_rng(0)
    n, nt = 120, 30
    x = rng.normal(size=(1, n + nt, 4))
    x[..., 2:] = 0.0  # two slots in use
    flags = np.zeros_like(x)
    flags[..., :2] = 1.0
    slots = np.concatenate([x, flags], -1)
    examined = rng.integers(20, 80, (1, n))
    logit = -0.5 + 0.9 * x[0, :n, 0] - 0.4 * x[0, :n, 1]
    positive = rng.binomial(examined, 1 / (1 + np.exp(-logit)))
    y = np.stack([positive, examined], -1).astype(float)
    mask = np.ones((1, n), bool)
    mask_padded = np.concatenate([mask, np.zeros((1, 7), bool)], 1)  # padding must not count
    y_padded = np.concatenate([y, np.full((1, 7, 2), 3.0)], 1)
    x_padded = np.concatenate([slots[:, :n], rng.normal(size=(1, 7, 8))], 1)
    t_ctx, t_tgt = covariate_trend(SLOTS, jnp.asarray(x_padded), jnp.asarray(y_padded), jnp.asarray(mask_padded),
                                   jnp.asarray(slots[:, n:]))

    z = np.log((positive[0] + 0.5) / (examined[0] - positive[0] + 0.5))
    design = np.column_stack([np.ones(n), x[0, :n, :2]])
    coef = np.linalg.solve(design.T @ design + np.diag([1e-6, RIDGE, RIDGE]), design.T @ z)
    np.testing.assert_allclose(np.asarray(t_ctx)[0, :n, 0], x[0, :n, :2] @ coef[1:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(t_tgt)[0, :, 0], x[0, n:, :2] @ coef[1:], rtol=1e-4, atol=1e-5)
    assert np.all(np.asarray(t_ctx)[0, n:] == 0.0)
    assert abs(coef[1] - 0.9) < 0.25 and abs(coef[2] + 0.4) < 0.25  # it recovers the effects


def test_a_trend_needs_covariates_and_a_tnp():
    with pytest.raises(ConfigError, match="covariate_trend.*x_dim > 0"):
        BSATNPConfig(covariate_trend=True)
