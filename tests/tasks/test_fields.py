"""The real-raster-like task prior: layouts, standardisation, and an oracle that is the exact posterior."""

import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve

from geonp.errors import ConfigError
from geonp.tasks import fields
from geonp.tasks.fields import LAYOUTS, FieldTaskSampler


def _only(layout, **options):
    return FieldTaskSampler(layouts=(layout,), layout_weights=(1.0,), **options)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_give_padded_standardised_tasks(layout):
    sampler = _only(layout, num_target=64)
    batch, info = sampler.sample(7, 6)
    assert batch.y_ctx.shape == (6, 512, 1) and batch.meta_ctx["space"].shape == (6, 512, 2)
    assert batch.y_tgt.shape == (6, 64, 1) and batch.x_ctx.shape == (6, 512, 0)
    assert (info.layout == LAYOUTS.index(layout)).all()
    for b in range(6):
        n = int(info.n_context[b])
        assert 16 <= n <= 512 and batch.mask_ctx[b].sum() == n and not batch.mask_ctx[b, n:].any()
        y = batch.y_ctx[b, :n, 0]
        assert abs(y.mean()) < 1e-4 and (abs(y.std() - 1.0) < 1e-3 or y.std() < 1e-2)  # standardised context
        # coordinates relative to the targets' centre, as at prediction
        assert np.allclose(batch.meta_tgt["space"][b].mean(axis=0), 0.0, atol=1e-4)
    again, _ = sampler.sample(7, 6)
    assert np.array_equal(again.y_tgt, batch.y_tgt)  # same key, same tasks


def test_gap_tasks_put_targets_inside_gaps_and_context_outside():
    batch, info = _only("gaps").sample(3, 16)
    assert info.hidden.mean() > 0.3  # most gap tasks are centred on a hidden cell
    for b in range(16):
        ctx = batch.meta_ctx["space"][b][batch.mask_ctx[b]]
        hidden = batch.meta_tgt["space"][b][info.hidden[b]]
        if len(hidden):  # a hidden target is never a context point
            gaps = np.min(np.abs(hidden[:, None, :] - ctx[None]).sum(-1), axis=1)
            assert (gaps > 1e-6).all()


def test_coarse_tasks_observe_block_means_of_the_fine_cells():
    sampler = _only("coarse", num_target=32)
    rng = np.random.default_rng(0)
    x_obs, blocks, x_tgt, _ = sampler._coarse(rng, 40)
    assert blocks in (4, 9, 16) and len(x_obs) % blocks == 0
    field = sampler._draw_field(rng)
    k_oo, k_ot, _ = fields._covariances(field, x_obs, blocks, x_tgt)
    n = len(x_obs) // blocks
    average = np.kron(np.eye(n), np.full((1, blocks), 1.0 / blocks))  # [n, n * blocks]: block means
    assert np.allclose(k_oo, average @ fields._kernel(field, x_obs, x_obs) @ average.T)
    assert np.allclose(k_ot, average @ fields._kernel(field, x_obs, x_tgt))
    # block centres tile the coarse grid; targets are fine cells (a quarter block apart at most)
    centres = x_obs.reshape(n, blocks, 2).mean(axis=1)
    assert np.unique(np.round(centres, 6), axis=0).shape[0] == n


def test_oracle_equals_the_direct_gp_posterior():
    sampler = _only("scattered", num_context=60, min_context=20, num_target=30)
    rng = np.random.default_rng(5)
    field = sampler._draw_field(rng)
    x_obs, _, x_tgt, _ = sampler._scattered(rng, 50)
    k_oo, k_ot, k_tt = fields._covariances(field, x_obs, 1, x_tgt)
    noise = field.noise_std**2 * np.eye(len(x_obs))
    joint = np.block([[k_oo + noise, k_ot], [k_ot.T, k_tt]])
    chol = fields._cholesky(joint, sampler.jitter)
    z = rng.standard_normal(len(joint))
    y_obs = (chol @ z)[:50]
    factor = cho_factor(k_oo + noise + sampler.jitter * np.eye(50))
    mean = k_ot.T @ cho_solve(factor, y_obs)
    var = np.diag(k_tt) + sampler.jitter - np.sum(k_ot * cho_solve(factor, k_ot), axis=0)
    assert np.allclose(chol[50:, :50] @ z[:50], mean, atol=1e-6)
    assert np.allclose(np.sum(chol[50:, 50:] ** 2, axis=1), var, atol=1e-6)


def test_targets_are_calibrated_under_the_oracle():
    batch, info = FieldTaskSampler(num_target=64).sample(11, 24)
    z = (batch.y_tgt - info.oracle_mean) / info.oracle_std
    assert abs(float(z.mean())) < 0.15 and 0.8 < float((z**2).mean()) < 1.25


def test_bad_options_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="layouts"):
        FieldTaskSampler(layouts=("clouds",), layout_weights=(1.0,))
    with pytest.raises(ConfigError, match="lengthscale"):
        FieldTaskSampler(lengthscale=(0.0, 1.0))
    with pytest.raises(ConfigError, match="observed_fraction"):
        FieldTaskSampler(observed_fraction=(0.0, 0.5))


def test_sparse_grids_grow_to_hold_the_context():
    batch, info = _only("gaps", observed_fraction=(0.05, 0.1)).sample(5, 6)
    full = info.n_context == 512
    assert full.any() and np.all(np.asarray(batch.mask_ctx)[full].sum(1) == 512)
    assert np.all(np.isfinite(info.oracle_mean)) and np.all(info.oracle_std > 0)


def test_covariate_effects_keep_the_task_a_gp_with_an_exact_oracle():
    sampler = FieldTaskSampler(num_target=64, covariate_slots=4)
    batch, info = sampler.sample(13, 16)
    assert batch.x_ctx.shape == (16, 512, 8) and batch.x_tgt.shape == (16, 64, 8)
    for b in range(16):
        n = int(info.n_context[b])
        flags = batch.x_ctx[b, :n, 4:]
        assert (flags == flags[:1]).all() and (batch.x_tgt[b, :, 4:] == flags[:1]).all()  # slots in use per task
        assert (batch.x_ctx[b, :n, :4][:, flags[0] == 0] == 0).all()  # unused slots carry no value
    assert 0.5 < float(batch.x_ctx[..., 4:].mean()) * 2 < 1.5  # 0..4 slots in use, 2 on average
    # the effects are Gaussian given their scales, so the oracle is still the exact posterior: calibrated z
    z = (batch.y_tgt - info.oracle_mean) / info.oracle_std
    assert abs(float(z.mean())) < 0.15 and 0.8 < float((z**2).mean()) < 1.25
    # one task's design: token columns, g_j(x_j) at observations and targets, one variance per slot
    rng = np.random.default_rng(2)
    with_slots = FieldTaskSampler(layouts=("scattered",), layout_weights=(1.0,), num_target=32, covariate_slots=4)
    x_obs, _, x_tgt, _ = with_slots._scattered(rng, 200)
    slots, (g_o, g_t, variance) = with_slots._covariates(rng, x_obs, 1, x_tgt)
    assert slots["covariates_ctx"].shape == (200, 8) and g_o.shape == (200, 4) and variance.shape == (4,)


def test_info_tells_each_tasks_field_within_the_prior():
    sampler = FieldTaskSampler(num_target=16, components=(1, 2), snr=(2.0, 50.0), lengthscale=(0.1, 3.0),
                               anisotropy=(1.0, 2.0))
    _, info = sampler.sample(11, 8)
    assert ((2.0 <= info.snr) & (info.snr <= 50.0)).all()
    assert set(info.components) <= {1, 2}
    assert ((0 <= info.kernel) & (info.kernel < len(fields.FIELD_KERNELS))).all()
    # the shorter axis of the dominant component: l_c itself (the other axis is l_c * rho_c >= l_c)
    assert ((0.1 - 1e-9 <= info.length_scale) & (info.length_scale <= 3.0 + 1e-9)).all()
    rng = np.random.default_rng(5)
    field = sampler._draw_field(rng)
    kernel, length = field.dominant()
    c = int(np.argmax(field.variances))
    assert kernel == field.kernels[c]
    axes = 1.0 / np.linalg.svd(field.transforms[c], compute_uv=False)  # both axis lengths of the component
    assert np.isclose(length, axes.min())
