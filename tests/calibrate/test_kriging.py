"""The neighbourhood kriging beside the network (geonp.calibrate.kriging), against the exact GP."""

import jax
import numpy as np
import pytest

from geonp.calibrate import kriging as local_kriging
from geonp.calibrate.kriging import LocalKriging
from geonp.errors import ConfigError
from geonp.tasks import kernels
from geonp.tasks.gp import GPTaskSampler
from geonp.tasks.oracle import gp_posterior


@pytest.mark.parametrize("kernel", ["matern12", "matern32", "matern52"])
def test_kriging_mean_is_the_exact_gp_posterior_mean_given_the_true_kernel(kernel):
    sampler = GPTaskSampler(kernels=(kernel,), num_context=(128, local_kriging.MAX_POINTS), num_target=64)
    batch, hyper = sampler.sample(jax.random.PRNGKey(3), 2)
    oracle, _ = gp_posterior(batch, hyper, (kernel,))
    for b in range(2):
        m = np.asarray(batch.mask_ctx[b], bool)
        k = LocalKriging(kernel, float(hyper.lengthscale[b]), float(hyper.noise_std[b]) ** 2 - local_kriging.JITTER)
        mean = k.mean(np.asarray(batch.meta_ctx["space"][b])[m], np.asarray(batch.y_ctx[b])[m, 0],
                      np.asarray(batch.meta_tgt["space"][b]))
        np.testing.assert_allclose(mean, oracle[b, :, 0], rtol=1e-6, atol=1e-6)


def test_a_large_context_is_kriged_on_its_nearest_points_at_little_cost_in_accuracy():
    rng = np.random.default_rng(4)
    ctx, tgt = rng.uniform(0, 30, (700, 2)), rng.uniform(12, 18, (50, 2))
    cov = kernels.covariance("matern32", ctx, ctx, 3.0) + 0.01 * np.eye(700)
    z = np.linalg.cholesky(cov) @ rng.standard_normal(700)
    k = LocalKriging("matern32", 3.0, 0.01)
    full = kernels.covariance("matern32", tgt, ctx, 3.0) @ np.linalg.solve(cov, z)
    near = k.mean(ctx, z, tgt)
    assert np.sqrt(np.mean((near - full) ** 2)) < 0.02 * np.std(full)


def test_kernel_fit_recovers_the_length_scale_and_noise_of_gp_data():
    rng = np.random.default_rng(0)
    truth = LocalKriging("matern32", 3.0, 0.01)
    sets = []
    for _ in range(6):
        points = rng.uniform(0, 20, size=(256, 2))
        cov = kernels.covariance("matern32", points, points, truth.length_scale) + truth.noise * np.eye(256)
        z = np.linalg.cholesky(cov) @ rng.standard_normal(256)
        sets.append((points, (z - z.mean()) / z.std()))
    fitted = local_kriging.fit_kernel(sets)
    assert fitted.kernel in ("matern32", "matern52")
    assert 3.0 / 1.6 < fitted.length_scale < 3.0 * 1.6
    assert 1e-3 <= fitted.noise <= 0.03
    assert local_kriging.fit_kernel([]) is None


def test_universal_kriging_is_the_gp_with_a_vague_prior_on_a_plane():
    """The plane's generalised least squares fit and the kriged residuals (trend=1) equal the plain GP posterior
    mean under the kernel plus a plane with a very wide prior on its coefficients (the limit they are)."""
    rng = np.random.default_rng(2)
    ctx, tgt = rng.uniform(0, 10, (90, 2)), rng.uniform(-5, 15, (40, 2))
    z = 0.3 * ctx[:, 0] - 0.2 * ctx[:, 1] + rng.standard_normal(90)
    k = LocalKriging("matern32", 2.0, 0.05, trend=1)
    basis, at = local_kriging.plane_basis(ctx, tgt)
    prior = 1e6  # the coefficients' prior variance
    cov = kernels.covariance("matern32", ctx, ctx, 2.0) + (0.05 + local_kriging.JITTER) * np.eye(90)
    cross = kernels.covariance("matern32", tgt, ctx, 2.0) + prior * at @ basis.T
    reference = cross @ np.linalg.solve(cov + prior * basis @ basis.T, z)
    np.testing.assert_allclose(k.mean(ctx, z, tgt), reference, atol=1e-4)


@pytest.mark.parametrize("trend", [0, 1])
def test_the_share_explained_is_one_minus_the_posterior_variance_of_the_signal(trend):
    """``explained = 1 - var``: about the mean, var the GP's posterior variance; about a plane, that of the GP plus
    the plane with a very wide prior on its coefficients (which carries the plane's own uncertainty)."""
    rng = np.random.default_rng(4)
    ctx, tgt = rng.uniform(0, 10, (70, 2)), rng.uniform(2, 8, (25, 2))
    k = LocalKriging("matern52", 3.0, 0.05, trend=trend)
    _, explained = k.predict(ctx, rng.standard_normal(70), tgt)
    basis, at = local_kriging.plane_basis(ctx, tgt)
    prior = 1e5 * trend
    cov = (kernels.covariance("matern52", ctx, ctx, 3.0) + (0.05 + local_kriging.JITTER) * np.eye(70)
           + prior * basis @ basis.T)
    cross = kernels.covariance("matern52", tgt, ctx, 3.0) + prior * at @ basis.T
    variance = 1.0 + prior * np.sum(at**2, axis=1) - np.einsum("tc,tc->t", cross, np.linalg.solve(cov, cross.T).T)
    assert np.all((explained > 0) & (explained < 1))
    np.testing.assert_allclose(explained, 1.0 - variance, atol=2e-3)


def test_the_plane_explains_nothing_far_beyond_its_neighbourhood_so_it_is_not_blended_there():
    rng = np.random.default_rng(5)
    ctx, far = rng.uniform(0, 10, (60, 2)), np.array([[5.0, 5.0], [60.0, 60.0]])
    plane = LocalKriging("matern32", 3.0, 0.01, distance=(0.0, 100.0), weight=(1.0, 1.0), trend=1)
    _, explained = plane.predict(ctx, rng.standard_normal(60), far)
    assert explained[0] > 0.9 and explained[1] == 0.0
    np.testing.assert_allclose(plane.weights([0.1, 30.0], explained), explained)
    np.testing.assert_allclose(plane.weights([0.1, 30.0]), plane.explained(np.array([0.1, 30.0])))  # without: rho^2


def test_a_plane_is_kriged_exactly_far_from_the_data_with_the_trend_and_not_without():
    rng = np.random.default_rng(3)
    ctx, far = rng.uniform(0, 10, (60, 2)), np.array([[40.0, 40.0], [-30.0, 5.0]])
    plane = lambda p: 1.0 + 0.5 * p[:, 0] - 0.25 * p[:, 1]  # noqa: E731
    with_plane = LocalKriging("matern52", 2.0, 1e-4, trend=1).mean(ctx, plane(ctx), far)
    np.testing.assert_allclose(with_plane, plane(far), rtol=1e-6)
    mean_only = LocalKriging("matern52", 2.0, 1e-4).mean(ctx, plane(ctx), far)
    assert np.all(np.abs(mean_only) < 0.1 * np.abs(plane(far)))  # simple kriging falls back to 0 out there


def test_the_kernel_fit_with_a_plane_is_not_fooled_by_a_trend():
    """On GP data plus a steep plane, the restricted likelihood of the plane's residuals finds the GP's own
    length scale; the likelihood of the raw values takes the plane for a much longer correlation."""
    rng = np.random.default_rng(6)
    sets = []
    for _ in range(4):
        points = rng.uniform(0, 20, size=(200, 2))
        cov = kernels.covariance("matern32", points, points, 2.0) + 0.01 * np.eye(200)
        z = np.linalg.cholesky(cov) @ rng.standard_normal(200) + 0.6 * points[:, 0]
        sets.append((points, (z - z.mean()) / z.std()))
    with_plane, without = local_kriging.fit_kernel(sets, trend=1), local_kriging.fit_kernel(sets, trend=0)
    assert with_plane.trend == 1 and without.trend == 0
    assert 2.0 / 1.6 < with_plane.length_scale < 2.0 * 1.6 < without.length_scale


def test_translating_the_points_does_not_change_the_kriging_mean():
    rng = np.random.default_rng(1)
    ctx, tgt, z = rng.uniform(0, 10, (80, 2)), rng.uniform(0, 10, (30, 2)), rng.standard_normal(80)
    for trend in (0, 1):
        k = LocalKriging("matern52", 2.0, 0.05, trend=trend)
        np.testing.assert_allclose(k.mean(ctx, z, tgt), k.mean(ctx + 1e3, z, tgt + 1e3), atol=1e-8)


def test_blend_weights_follow_the_better_mean_and_never_grow_with_distance():
    rng = np.random.default_rng(2)
    n = 2000
    distance = rng.uniform(0, 10, n)
    truth = rng.standard_normal(n)
    # near the data kriging is nearly exact, far from it pure noise; the network is equally noisy everywhere
    kriged = truth + np.where(distance < 5, 0.1, 3.0) * rng.standard_normal(n)
    network = truth + 0.5 * rng.standard_normal(n)
    groups = [np.flatnonzero((distance >= a) & (distance < a + 2.5)) for a in (0, 2.5, 5, 7.5)]
    knots, weights = local_kriging.fit_weights(truth - network, truth - kriged, distance, groups)
    assert list(knots) == sorted(knots)
    assert weights[0] > 0.9 and weights[-1] < 0.1
    assert all(a >= b for a, b in zip(weights[:-1], weights[1:], strict=False))
    blend = LocalKriging(length_scale=1e9, distance=knots, weight=weights)  # a kernel that does not cap them
    assert blend.blends and blend.weights([0.0])[0] == weights[0] and blend.weights([99.0])[0] == weights[-1]
    # the cap: never above the share of variance the nearest observation explains under the kernel
    short = LocalKriging(length_scale=1.0, distance=knots, weight=weights)
    d = np.array([0.0, 0.5, 2.0, 5.0])
    np.testing.assert_allclose(short.weights(d), np.minimum(np.interp(d, knots, weights), short.explained(d)))
    assert short.weights([0.0])[0] == weights[0] and short.weights([5.0])[0] < 0.05
    assert not LocalKriging().blends and LocalKriging().weights([1.0])[0] == 0.0


def test_a_singular_system_gives_nan_not_an_error(monkeypatch):
    from scipy.linalg import LinAlgError

    import geonp.calibrate.kriging

    def singular(*args, **kwargs):
        raise LinAlgError("not positive definite")

    monkeypatch.setattr(geonp.calibrate.kriging, "cho_factor", singular)
    out = LocalKriging("matern32", 1.0, 0.0).mean(np.zeros((3, 2)), np.zeros(3), np.ones((2, 2)))
    assert np.isnan(out).all()
    with pytest.raises(ConfigError, match="noise"):  # a negative nugget is refused where it is made
        LocalKriging("matern32", 1.0, -1.0)


def test_blas_threads_are_restored_after_the_solves():
    from threadpoolctl import ThreadpoolController

    before = [m["num_threads"] for m in ThreadpoolController().select(user_api="blas").info()]
    LocalKriging("matern32", 1.0, 0.1).mean(np.random.default_rng(0).random((40, 2)), np.ones(40), np.zeros((3, 2)))
    assert [m["num_threads"] for m in ThreadpoolController().select(user_api="blas").info()] == before


def test_blend_weights_taper_to_zero_at_the_held_out_reach_and_stay_zero_beyond():
    blend = LocalKriging(length_scale=1e9, distance=(1.0, 3.0), weight=(0.8, 0.6), reach=5.0)
    w = blend.weights([0.0, 1.0, 3.0, 4.0, 5.0, 50.0])
    np.testing.assert_allclose(w, [0.8, 0.8, 0.6, 0.3, 0.0, 0.0], atol=1e-12)
    assert LocalKriging.from_calibration({"kriging": blend.to_dict()}) == blend
    assert "reach" not in LocalKriging().to_dict()  # no reach: an old model, constant beyond the last knot
    planar = LocalKriging(length_scale=2.0, trend=1)
    assert LocalKriging.from_calibration({"kriging": planar.to_dict()}) == planar
    old = {k: v for k, v in planar.to_dict().items() if k != "trend"}  # saved before the plane: the mean alone
    assert LocalKriging.from_calibration({"kriging": old}).trend == 0


def test_blend_weight_is_kept_only_where_its_gain_is_clear_across_gaps():
    rng = np.random.default_rng(5)
    n = 3000
    truth = rng.standard_normal(n)
    network = truth + 0.5 * rng.standard_normal(n)
    distance = np.ones(n)
    gaps = np.repeat(np.arange(30), 100)
    # kriging no better: the network's mean shifted by an error of its own in each gap
    kriged = network + rng.normal(0.0, 0.3, 30)[gaps]
    _, weights = local_kriging.fit_weights(truth - network, truth - kriged, distance, [np.arange(n)], gaps)
    assert weights == (0.0,)
    clear = truth + 0.1 * rng.standard_normal(n)  # kriging better in every gap
    _, weights = local_kriging.fit_weights(truth - network, truth - clear, distance, [np.arange(n)], gaps)
    assert weights[0] > 0.9
    assert not local_kriging.clear_gain(np.ones(100), np.zeros(100))  # one gap: no evidence


def test_fit_keeps_the_kernel_whose_blend_does_best_on_the_held_out_cells():
    """The kriging about each neighbourhood's mean and the kriging about a plane are both blended on the same
    held-out cells; the one with the lower held-out RMSE is kept, the first (the mean) on a tie."""
    from types import SimpleNamespace

    from geonp.calibrate.calibration import choose_kriging

    rng = np.random.default_rng(8)
    n = 4000
    truth = rng.standard_normal(n)
    network = truth + 0.6 * rng.standard_normal(n)
    about_mean, about_plane = truth + 0.5 * rng.standard_normal(n), truth + 0.2 * rng.standard_normal(n)
    distance, unit = rng.uniform(0.0, 3.0, n), np.ones(n)
    cluster = np.arange(n) // 20
    flat, planar = LocalKriging(length_scale=1e9), LocalKriging(length_scale=1e9, trend=1)
    model = SimpleNamespace(calibration_={"kriging": flat.to_dict(), "kriging_candidates": [planar.to_dict()]})
    for kriged, kept in ((np.stack([about_mean, about_plane], -1), 1), (np.stack([about_plane, about_mean], -1), 0),
                         (np.stack([about_mean, about_mean], -1), 0)):
        blended, chosen = choose_kriging(model, network, kriged, np.ones_like(kriged), truth, distance, unit, cluster,
                                         reach=3.0)
        assert chosen["trend"] == kept and chosen["choice"]["trend"] == [0, 1]
        assert np.sqrt(np.mean((blended - truth) ** 2)) == pytest.approx(chosen["held_out_rmse"]["blended"], abs=1e-5)
    no_kernel = SimpleNamespace(calibration_={})
    assert choose_kriging(no_kernel, network, kriged, np.ones_like(kriged), truth, distance, unit)[1] is None
