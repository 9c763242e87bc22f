"""GP task sampler and the exact oracle."""

import jax
import numpy as np
import pytest
from scipy import stats

from geonp.errors import ConfigError
from geonp.scoring import metrics
from geonp.tasks import kernels
from geonp.tasks.gp import GPTaskSampler, shift_batch
from geonp.tasks.oracle import gp_posterior


@pytest.fixture(scope="module")
def sampled():
    sampler = GPTaskSampler(num_context=(128, 512), num_target=200)
    batch, hyper = sampler.sample(jax.random.PRNGKey(0), 16)
    return sampler, batch, hyper


def test_shapes_masks_and_domain(sampled):
    _, batch, _ = sampled
    assert batch.y_ctx.shape == (16, 512, 1) and batch.y_tgt.shape == (16, 200, 1)
    assert batch.meta_ctx["space"].shape == (16, 512, 2) and batch.x_ctx.shape == (16, 512, 0)
    n_ctx = np.asarray(batch.mask_ctx).sum(axis=1)
    assert n_ctx.min() >= 128 and n_ctx.max() <= 512
    assert np.all(np.abs(np.asarray(batch.meta_tgt["space"])) <= 2.0)
    assert np.all(np.isfinite(np.asarray(batch.y_ctx))) and np.all(np.isfinite(np.asarray(batch.y_tgt)))


def test_hyperparameters_are_drawn_per_task(sampled):
    _, batch, hyper = sampled
    assert len(np.unique(np.asarray(hyper.lengthscale))) == 16
    assert len(np.unique(np.asarray(hyper.noise_std))) == 16
    assert len(np.unique(np.asarray(hyper.kernel))) >= 3
    assert len(np.unique(np.asarray(batch.mask_ctx).sum(axis=1))) > 8


def test_same_key_same_tasks_and_keys_differ():
    sampler = GPTaskSampler(num_context=(10, 20), num_target=5)
    a, _ = sampler.sample(jax.random.PRNGKey(3), 2)
    b, _ = sampler.sample(jax.random.PRNGKey(3), 2)
    c, _ = sampler.sample(jax.random.PRNGKey(4), 2)
    np.testing.assert_array_equal(np.asarray(a.y_ctx), np.asarray(b.y_ctx))
    assert not np.allclose(np.asarray(a.y_ctx), np.asarray(c.y_ctx))


def test_rbf_samples_have_the_kernel_covariance():
    """Empirical covariance of many draws at two fixed points matches k(x, x')."""
    sampler = GPTaskSampler(kernels=("rbf",), num_context=(2, 2), num_target=1, noise_std=(0.1, 0.1))
    batch, hyper = sampler.sample(jax.random.PRNGKey(1), 4000)
    # noise-free target vs noisy first context value: Cov = k(x_c, x_t)
    x_c, x_t = np.asarray(batch.meta_ctx["space"])[:, 0], np.asarray(batch.meta_tgt["space"])[:, 0]
    ls = np.asarray(hyper.lengthscale)
    k = np.exp(-0.5 * np.sum((x_c - x_t) ** 2, axis=-1) / ls**2)
    prod = np.asarray(batch.y_ctx)[:, 0, 0] * np.asarray(batch.y_tgt)[:, 0, 0]
    assert prod.mean() == pytest.approx(k.mean(), abs=0.05)
    assert np.asarray(batch.y_tgt).var() == pytest.approx(1.0, abs=0.08)


def test_oracle_matches_brute_force_posterior(sampled):
    sampler, batch, hyper = sampled
    mean, std = gp_posterior(batch, hyper, sampler.kernels)
    b = 5
    name = sampler.kernels[int(hyper.kernel[b])]
    m = np.asarray(batch.mask_ctx[b])
    xc = np.asarray(batch.meta_ctx["space"][b], np.float64)[m]
    xt = np.asarray(batch.meta_tgt["space"][b], np.float64)
    ls, per, noise = float(hyper.lengthscale[b]), float(hyper.period[b]), float(hyper.noise_std[b])
    kcc = kernels.covariance(name, xc, xc, ls, per) + noise**2 * np.eye(len(xc))
    ktc = kernels.covariance(name, xt, xc, ls, per)
    inv = np.linalg.inv(kcc)
    mu = ktc @ inv @ np.asarray(batch.y_ctx[b, m, 0], np.float64)
    var = 1.0 - np.einsum("ij,jk,ik->i", ktc, inv, ktc) + hyper.jitter
    np.testing.assert_allclose(mean[b, :, 0], mu, atol=1e-6)
    np.testing.assert_allclose(std[b, :, 0], np.sqrt(var), atol=1e-6)


def test_oracle_is_calibrated_and_beats_the_prior(sampled):
    sampler, batch, hyper = sampled
    mean, std = gp_posterior(batch, hyper, sampler.kernels)
    y = np.asarray(batch.y_tgt)
    prior_nll = -stats.norm(0, 1).logpdf(y).mean()
    assert metrics.nll(mean, std, y) < prior_nll - 0.5
    assert metrics.coverage(mean, std, y) == pytest.approx(0.95, abs=0.03)


def test_shift_and_scale():
    sampler = GPTaskSampler()
    batch, _ = sampler.sample(jax.random.PRNGKey(0), 1)
    moved = shift_batch(batch, 10.0)
    assert float(moved.meta_ctx["space"].min()) >= 8.0 and float(moved.meta_ctx["space"].max()) <= 12.0
    wide = sampler.scaled(2.0)
    assert wide.domain == (-4.0, 4.0) and wide.num_context == (512, 2048)


def test_bad_sampler_options():
    with pytest.raises(ConfigError, match="kernel"):
        GPTaskSampler(kernels=("laplace",))
    with pytest.raises(ConfigError, match="num_context"):
        GPTaskSampler(num_context=(10, 5))
