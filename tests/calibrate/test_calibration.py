"""Context by count at prediction, and the spread calibrated on held-out cells of the user's data."""

import copy

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

import geonp
from geonp.calibrate import calibration, held_out
from geonp.calibrate import spread as spread_lib
from geonp.calibrate.kriging import LocalKriging
from geonp.errors import ConfigError
from geonp.predict.context import ContextSet, neighbourhoods
from geonp.scoring import metrics
from geonp.testing import smooth_field


def _cloudy(da, seed=0, quantile=0.55, sigma=2.5):
    rng = np.random.default_rng(seed)
    hidden = [ndimage.gaussian_filter(rng.standard_normal(da.shape[1:]), sigma) for _ in range(da.shape[0])]
    hidden = np.stack([h > np.quantile(h, quantile) for h in hidden])
    return da.where(~hidden), hidden


def test_neighbourhoods_cover_every_target_once_with_bounded_context():
    rng = np.random.default_rng(0)
    obs = rng.uniform(0, 100, (3000, 2))
    context = ContextSet([obs], [obs], [None], [None], [np.zeros((3000, 0))], [np.zeros((3000, 1))])
    targets = rng.uniform(0, 100, (900, 2))
    groups = neighbourhoods(targets, context, 0, count=128)
    seen = np.concatenate([t for t, _ in groups])
    assert sorted(seen.tolist()) == list(range(900))
    nearest = context.tree(0).query(targets, k=1)[1]
    for t_idx, c_idx in groups:
        assert c_idx.size <= 128 + 4 * t_idx.size
        assert c_idx.size <= 256  # cells hold far fewer targets than the context they take
        assert np.isin(nearest[t_idx], c_idx).all()  # each target keeps its nearest observation
    assert len(groups) > 5  # dense data: many cells, each with its own nearest observations


def test_dense_raster_never_conditions_on_more_than_max_context(field):
    dense = smooth_field(np.arange(45.0, 49.0, 0.1), np.arange(-6.0, -2.0, 0.1), times=1)  # 40 x 40, all observed
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0, max_context=128, trend=0).fit(dense)
    pred = model.predict(dense, progress=False)  # 1,600 observations, 128 per cell
    assert pred.attrs["geonp_context_rule"] == "nearest 128 per cell"
    assert np.isfinite(pred["mean"]).all()


def test_gap_masks_shift_the_data_own_gaps_and_keep_them_whole():
    rng = np.random.default_rng(1)
    observed = np.ones((40, 50), bool)
    gap = np.zeros((40, 50), bool)
    gap[5:15, 10:25] = True  # one 10 x 15 cloud
    masks, how = held_out.gap_masks(observed & ~gap, [gap], rng, 3)
    assert how == "shifted missing-value pattern"
    for m in masks:
        labels, n = ndimage.label(m, structure=np.ones((3, 3)))
        assert n >= 1 and not (m & gap).any()
        # a shifted copy of the cloud (possibly wrapped, split at the edges, minus the real gap)
        assert m.sum() <= gap.sum()
    blobs, how = held_out.gap_masks(observed, [np.zeros_like(gap)], rng, 2)
    assert how == "blobs" and all(0 < b.sum() < observed.sum() for b in blobs)


def test_held_out_gaps_against_a_real_gap_are_dropped_unless_nothing_else_is_left():
    observed = np.ones((30, 30), bool)
    observed[10:20, 10:20] = False  # a real cloud
    hidden = np.zeros((30, 30), bool)
    hidden[10:20, 20:24] = True  # a shifted gap landed against it: one bigger hole
    hidden[2:6, 2:8] = True  # one ringed by observations
    kept = held_out.ringed_by_observations(hidden, observed)
    assert kept[2:6, 2:8].all() and not kept[10:20, 20:24].any() and kept.sum() == 24
    diagonal = np.zeros((30, 30), bool)
    diagonal[20, 20] = True  # touching the cloud's corner is touching it
    assert not held_out.ringed_by_observations(diagonal | kept, observed)[20, 20]
    against = np.zeros((30, 30), bool)
    against[10:20, 20:24] = True
    np.testing.assert_array_equal(held_out.ringed_by_observations(against, observed), against)  # all touch


@pytest.mark.slow
def test_calibration_widens_overconfident_intervals_and_is_reported_and_saved(tmp_path):
    truth = smooth_field(np.arange(50.0, 58.0, 0.25), np.arange(-6.0, 4.0, 0.25), times=4, seed=4)
    cloudy, hidden = _cloudy(truth)
    # the spread's calibration alone (trend=0): with the drift that "auto" picks here (degree 2, real-gap RMSE
    # 0.25 against 0.32) the calibrated intervals cover 0.915 of the real gaps against 0.969 raw
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0, trend=0).fit(cloudy)
    cal = model.calibration_
    assert cal["status"] == "calibrated" and cal["held_out_cells"] >= calibration.MIN_HELD_OUT
    assert abs(cal["after"]["cov95"] - 0.95) < 0.02  # by construction on the held-out cells
    assert model.history_[-1]["calibration"] == cal
    table = cal["by_distance"]
    assert table["scale"] == sorted(table["scale"]) and table["floor"] == sorted(table["floor"])
    pred = model.predict(cloudy, progress=False, quantiles=[0.1])
    raw = model.predict(cloudy, progress=False, calibrated=False, distance=True, quantiles=[0.1])
    std = spread_lib.SpreadCalibration.from_calibration(cal).std(raw["std"], raw["distance_to_data"],
                                                                  raw["context_std"])
    np.testing.assert_allclose(pred["std"], std, rtol=1e-5)
    factor = pred["std"] / raw["std"]
    # the mean moves only by the kriging blend learned on the same held-out cells (geonp.calibrate.kriging)
    kriging = cal["kriging"]
    weight = LocalKriging.from_calibration(cal).weights(raw["distance_to_data"], raw["kriging_explained"])
    np.testing.assert_allclose(pred["mean"], raw["mean"] + weight * (raw["kriging_mean"] - raw["mean"]),
                               rtol=1e-5, atol=1e-4)
    assert kriging["held_out_rmse"]["blended"] <= kriging["held_out_rmse"]["network"]
    assert list(pred.attrs["geonp_kriging_weight"]) == kriging["weight"] and "geonp_kriging_weight" not in raw.attrs
    assert list(kriging["weight"]) == sorted(kriging["weight"], reverse=True)
    np.testing.assert_allclose(pred["quantiles"] - pred["mean"], (raw["quantiles"] - raw["mean"]) * factor,
                               rtol=1e-4, atol=1e-4)
    assert pred.attrs["geonp_calibration_std_scale"] == cal["std_scale"]
    assert list(pred.attrs["geonp_calibration_std_floor"]) == table["floor"]
    assert pred.attrs["geonp_calibration_held_out_cov95_after"] == cal["after"]["cov95"]
    # scored on the real gaps, never seen by the calibration: a better predictive than the network's own
    # (this field is smooth: kriging's mean is ~6x closer), and 95% intervals that cover ~95% of the real
    # gaps as deep as the held-out ones (deeper, the calibration extrapolates: 0.73 beyond 60 km here)
    real = lambda v: v.values[hidden]  # noqa: E731
    crps = lambda p: float(metrics.crps_gaussian(real(p["mean"]), real(p["std"]), real(truth)))  # noqa: E731
    assert crps(pred) < 0.5 * crps(raw)
    reach = real(raw["distance_to_data"]) <= kriging["distance"][-1]
    covered = np.abs(real(pred["mean"]) - real(truth)) <= 1.96 * real(pred["std"])
    assert abs(covered[reach].mean() - 0.95) < 0.04
    model.save(tmp_path / "m")
    assert geonp.load(tmp_path / "m").calibration_ == cal


def test_spread_by_distance_covers_near_and_far_and_never_narrows_farther_out():
    rng = np.random.default_rng(3)
    distance = np.repeat(np.arange(1.0, 41.0), 100)  # grid-like: many equal distances
    std = rng.uniform(0.1, 1.0, distance.size)  # the model's spread: right near data, then too small
    error = rng.standard_normal(distance.size) * np.sqrt(std**2 + (distance > 10) * (0.05 * distance) ** 2)
    spread = spread_lib.fit_by_distance(error, std, distance)
    assert len(spread.distance) == spread_lib.MAX_BINS and np.all(np.diff(spread.distance) > 0)
    assert np.all(np.diff(spread.scale) >= 0) and np.all(np.diff(spread.floor) >= 0)
    assert spread.floor[0] < 0.1 and 1.2 < spread.floor[-1] < 2.4  # the missing spread, 0.05 d, far out
    calibrated = spread.std(std, distance)
    for group in spread_lib.distance_groups(distance, 4):  # about 95% near the data and far from it
        assert abs(np.mean(np.abs(error[group]) <= spread_lib.Z95 * calibrated[group]) - 0.95) < 0.04
    wide = spread_lib.fit_by_distance(rng.standard_normal(400) * 0.5, np.ones(400), np.ones(400))
    assert len(wide.scale) == 1 and 0.4 < wide.scale[0] < 0.6 and wide.floor == (0.0,)  # underconfident: shrunk
    old = spread_lib.SpreadCalibration.from_calibration({"std_scale": 2.5})  # saved before the distance bins
    assert old.std(np.array([1.0, 2.0]), np.array([0.0, 1e6])).tolist() == [2.5, 5.0]


@pytest.mark.filterwarnings("ignore:not calibrated")
def test_distance_to_data_is_the_distance_to_the_nearest_observation(field):
    sparse = field.isel(time=[0]).copy()
    values = np.full(sparse.shape, np.nan, np.float32)
    values[0, ::3, ::4] = sparse.values[0, ::3, ::4]
    sparse = sparse.copy(data=values)
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(sparse)
    targets = pd.DataFrame({"lat": [float(sparse.lat[0]), float(sparse.lat[1])],
                            "lon": [float(sparse.lon[0]), float(sparse.lon[1])]})
    pred = model.predict(sparse, target=targets, distance=True, progress=False)
    d = pred["distance_to_data"].values.ravel()
    assert d[0] < 1e-6  # an observed cell
    lat0, lat1, lon0, lon1 = (np.deg2rad(float(v)) for v in (sparse.lat[0], sparse.lat[1], sparse.lon[0],
                                                             sparse.lon[1]))
    great_circle = 6371.0 * np.arccos(np.sin(lat0) * np.sin(lat1) + np.cos(lat0) * np.cos(lat1) * np.cos(lon1 - lon0))
    assert abs(d[1] - great_circle) / great_circle < 0.01  # its nearest observation: the diagonal neighbour
    assert pred["distance_to_data"].attrs["units"] == "km"


def test_too_few_observations_keep_the_uncalibrated_spread_and_say_so(field):
    sparse = field.isel(time=[0]).copy()
    values = np.full(sparse.shape, np.nan, np.float32)
    values[0, ::6, ::7] = sparse.values[0, ::6, ::7]  # 16 observations
    sparse = sparse.copy(data=values)
    with pytest.warns(UserWarning, match="not calibrated"):
        model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(sparse)
    assert model.calibration_["std_scale"] == 1.0
    pred = model.predict(sparse, progress=False)
    assert pred.attrs["geonp_calibration"].startswith("not calibrated")


def test_count_models_are_not_calibrated_and_say_why():
    from geonp.estimator.state import FittedModel

    empty = FittedModel(config=None, params={}, scaling=None, var="v")  # nothing is read: nothing is calibrated
    from geonp.calibrate import choices

    model = geonp.NeuralProcess(pretrained="gp2d-normal")
    state, selection = choices.calibrate(model, empty, None, None, "v", (), _Head())
    status = state.calibration
    assert status["std_scale"] == 1.0 and "binomial" in status["status"] and selection is None


class _Head:
    standardise = False
    name = "binomial"


def test_calibration_reaches_dataset_inputs_with_covariates():
    ds = xr.Dataset({"t2m": smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25), times=2)})
    ds["t2m"], _ = _cloudy(ds["t2m"], seed=2)
    ds["elevation"] = ds["t2m"].isel(time=0, drop=True).fillna(0.0) * 0 + np.linspace(0, 500, ds.sizes["lon"])
    fitted = geonp.NeuralProcess(pretrained="t2m-elevation", steps=0).fit(ds, "t2m", covariates=["elevation"])
    assert fitted.calibration_["status"] == "calibrated"


@pytest.mark.parametrize("times", [1, 2])
def test_covariates_that_change_with_time_are_held_out_on_their_own_step(times):
    """A covariate over time (e.g. yesterday's field) is taken at each held-out field's own step (it once
    raised xarray's bare ValueError from a transpose to (lat, lon), on a grid of one step or more)."""
    ds = xr.Dataset({"t2m": smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25), times=times)})
    ds["t2m"], _ = _cloudy(ds["t2m"], seed=2)
    ds["lagged"] = ds["t2m"].fillna(0.0) * 0.5 + ds["time"].dt.day  # [time, lat, lon]
    fitted = geonp.NeuralProcess(pretrained="t2m-elevation", steps=0, select_covariates=False).fit(
        ds, "t2m", covariates=["lagged"])
    assert fitted.calibration_["status"] == "calibrated"
    pred = fitted.predict(ds, progress=False)
    assert pred["mean"].sizes == ds["t2m"].sizes and np.isfinite(pred["mean"].values).all()


@pytest.fixture(scope="module")
def deep_gap():
    """One field with small clouds and one large gap."""
    truth = smooth_field(np.arange(50.0, 58.0, 0.25), np.arange(-6.0, 4.0, 0.25), times=1, seed=7)  # 32 x 40
    cloudy, _ = _cloudy(truth, seed=3, quantile=0.85, sigma=1.5)
    hidden = np.zeros(truth.shape, bool)
    hidden[0, 8:24, 12:28] = True  # 16 x 16 cells
    cloudy = cloudy.where(~hidden)
    model = geonp.pretrained("field-normal", progress=False).fit(cloudy)
    return truth, cloudy, model


@pytest.mark.slow
def test_held_out_cells_are_matched_to_the_gaps_and_no_learned_weight_reaches_past_them(deep_gap):
    truth, cloudy, model = deep_gap
    cal = model.calibration_
    design = cal["held_out_design"]
    assert design["matched_to"] == "the data's missing cells" and design["units"] == "km"
    assert design["held_out_distance"]["max"] == design["reach"] == cal["kriging"]["reach"]
    for q in ("q25", "q50", "q75"):  # the held-out cells lie as far from the data as the gaps' cells do
        assert abs(design["held_out_distance"][q] / design["target_distance"][q] - 1.0) < 0.25
    # a shorter reach, as when the observed area cannot host the largest gaps: beyond it, the network's mean
    cal = copy.deepcopy(cal)
    reach = design["target_distance"]["q50"]
    cal["held_out_design"]["reach"] = cal["kriging"]["reach"] = reach
    short = copy.deepcopy(model)
    short.state_ = short.state_.replace(calibration=cal)
    pred = short.predict(cloudy, progress=False)
    raw = short.predict(cloudy, progress=False, calibrated=False, distance=True)
    distance = raw["distance_to_data"].values
    beyond = distance > reach
    assert pred.attrs["geonp_held_out_reach"] == reach
    assert pred.attrs["geonp_targets_beyond_held_out"] == int(beyond.sum()) > 0
    assert pred.attrs["geonp_held_out_matched_to"] == "the data's missing cells"
    assert len(pred.attrs["geonp_target_distance_quantiles"]) == len(pred.attrs["geonp_distance_quantile_levels"])
    np.testing.assert_allclose(pred["mean"].values[beyond], raw["mean"].values[beyond], rtol=1e-6)  # the network's
    assert pred.attrs["geonp_model"].startswith("field-normal (bundled model")


def test_stages_switch_off_by_name_and_unknown_names_say_which_exist(deep_gap):
    _, cloudy, model = deep_gap
    raw = model.predict(cloudy, progress=False, calibrated=False)
    no_blend = model.predict(cloudy, progress=False, without=["blend"])
    np.testing.assert_allclose(no_blend["mean"], raw["mean"], rtol=1e-6)
    assert no_blend.attrs["geonp_stages_off"] == "blend"
    no_spread = model.predict(cloudy, progress=False, without="spread")
    np.testing.assert_allclose(no_spread["std"], raw["std"], rtol=1e-6)
    assert model.predict(cloudy, progress=False, without=["drift"]).attrs["geonp_trend_degree"] == 0
    with pytest.raises(ConfigError, match="unknown stage.*'kriging'.*'blend'"):
        model.predict(cloudy, progress=False, without=["kriging"])
    with pytest.raises(ConfigError, match="stage names"):
        model.predict(cloudy, progress=False, without=3)


def test_fit_matches_the_held_out_cells_to_the_targets_it_is_given(field):
    coarse = field.isel(time=[0])
    model = geonp.pretrained("field-normal", progress=False).fit(coarse, target=2)  # downscaling targets
    design = model.calibration_["held_out_design"]
    assert design["matched_to"] == "the targets given to fit"
    assert design["target_distance"]["max"] < 0.75 * 0.25 * 111.2  # within the coarse cells
    pred = coarse.np.predict(target=2, progress=False)  # the accessor passes its target to fit
    assert pred.attrs["geonp_held_out_matched_to"] == "the targets given to fit"


def test_gaps_larger_than_the_observed_area_can_host_leave_the_network_alone_and_say_so():
    truth = smooth_field(np.arange(50.0, 58.0, 0.25), np.arange(-6.0, 4.0, 0.25), times=1, seed=7)  # 32 x 40
    observed = np.zeros(truth.shape, bool)
    observed[0, 10:18, 10:18] = True  # 64 observed cells in one block: the one gap is the rest
    with pytest.warns(UserWarning, match="cannot host gaps that large"):
        pred = truth.where(observed).np.predict(progress=False)
    beyond = pred.attrs["geonp_targets_beyond_held_out"]
    assert beyond > 0.5 * (~observed).sum() and np.isfinite(pred["mean"]).all()
    raw = truth.where(observed).np.predict(progress=False, calibrated=False, distance=True)
    far = raw["distance_to_data"].values > pred.attrs["geonp_held_out_reach"]
    np.testing.assert_allclose(pred["mean"].values[far], raw["mean"].values[far], rtol=1e-6)
