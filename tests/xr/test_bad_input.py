"""Bad input gets a typed GeonpError that says how to fix it; random layouts give the same answer."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geonp
from geonp.errors import ConfigError, GeonpError, MetadataMismatchError
from geonp.features.coordinates import CoordinateError
from geonp.features.tables import DataError
from geonp.testing import smooth_field, with_gaps


def test_non_monotonic_and_duplicate_coordinates(gappy, calibrated):
    shuffled = gappy.isel(lat=[0, 2, 1] + list(range(3, gappy.sizes["lat"])))
    with pytest.raises(CoordinateError, match="sortby"):
        shuffled.np.predict(model=calibrated)
    doubled = gappy.isel(lon=[0, 0] + list(range(1, gappy.sizes["lon"])))
    with pytest.raises(CoordinateError, match="drop_duplicates"):
        doubled.np.predict(model=calibrated)


def test_unrecognised_dims_and_override(gappy, calibrated):
    anon = xr.DataArray(gappy.values, dims=("t", "a", "b"), coords={"a": gappy.lat.values, "b": gappy.lon.values})
    with pytest.raises(CoordinateError, match="spatial_dims"):
        anon.np.predict(model=calibrated)
    pred = anon.np.predict(spatial_dims=("a", "b"), crs="EPSG:3857")  # projected, zero-shot default model
    assert pred["mean"].dims == ("t", "a", "b")


def test_all_nan_and_nan_coordinates(gappy, calibrated):
    with pytest.raises(DataError, match="no observed value"):
        (gappy * np.nan).np.predict(model=calibrated)
    bad = gappy.assign_coords(lat=gappy.lat.where(gappy.lat != gappy.lat[3]))
    with pytest.raises(CoordinateError, match="NaN"):
        bad.np.predict(model=calibrated)


def test_wrong_dtype_and_wrong_kind(gappy, calibrated):
    text = xr.DataArray(np.full((3, 4), "x", object), dims=("lat", "lon"),
                        coords={"lat": np.arange(3.0), "lon": np.arange(4.0)}, name="t2m")
    with pytest.raises(DataError, match="expected numbers"):
        calibrated.predict(text)
    projected = gappy.rename(lat="y", lon="x").assign_coords(x=np.arange(28.0) * 1e3, y=np.arange(24.0) * 1e3)
    for name in ("x", "y"):
        projected[name].attrs = {"units": "m"}
    with pytest.raises(MetadataMismatchError, match="geographic"):
        calibrated.predict(projected)


def test_bad_options(gappy, calibrated):
    with pytest.raises(ConfigError, match="quantiles"):
        calibrated.predict(gappy, quantiles=[0.5, 1.5])
    with pytest.raises(ConfigError, match="whole number"):
        calibrated.predict(gappy, target=1.5)
    with pytest.raises(ConfigError, match="context="):
        gappy.np.predict(model=calibrated, context="some")
    with pytest.raises(ConfigError, match="arch"):
        geonp.NeuralProcess(arch="nope", steps=1).fit(gappy)
    with pytest.raises(ConfigError, match="steps=0"):
        geonp.NeuralProcess(steps=0, pretrained=None).fit(gappy)
    with pytest.raises(ConfigError, match="needs trials="):
        geonp.NeuralProcess(likelihood="binomial", steps=1).fit(gappy)


@pytest.mark.parametrize("option, value, says", [
    ("quantiles", 0.5, "list of numbers"), ("quantiles", "0.5", "list of numbers"),
    ("quantiles", [1 - 1e-12], "strictly between"), ("quantiles", [float("nan")], "finite"),
    ("samples", None, "whole number"), ("samples", float("nan"), "whole number"), ("samples", -1, ">= 0"),
    ("tile", float("nan"), "whole number"), ("tile", 1.5, "whole number"), ("tile", "8", "whole number"),
    ("halo", [1.0], "halo="), ("halo", float("inf"), "finite"), ("exceedance", 0.5, "list of numbers"),
    ("seed", "x", "whole number"), ("without", ["kriging"], "unknown stage"),
])
def test_options_of_the_wrong_type_say_what_to_pass(gappy, calibrated, option, value, says):
    with pytest.raises(ConfigError, match=says):
        calibrated.predict(gappy, progress=False, **{option: value})


@st.composite
def layouts(draw):
    order = draw(st.permutations(["time", "lat", "lon"]))
    return order, draw(st.booleans()), draw(st.booleans())


BASE = with_gaps(smooth_field(np.arange(40.0, 43.0, 0.25), np.arange(-2.0, 2.0, 0.25), times=2), 0.5, seed=4)


@pytest.fixture(scope="module")
def base_pred():
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(BASE)
    return model, model.predict(BASE)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layouts())
def test_any_layout_gives_the_same_prediction(base_pred, layout):
    model, expected = base_pred
    order, descending, east_360 = layout
    da = BASE.transpose(*order)
    if descending:
        da = da.isel(lat=slice(None, None, -1))
    if east_360:
        da = da.assign_coords(lon=da.lon % 360).sortby("lon")
    pred = model.predict(da)
    assert pred["mean"].dims == da.dims
    got = pred["mean"].assign_coords(lon=((pred.lon + 180) % 360) - 180).sortby(["lat", "lon"])
    np.testing.assert_allclose(got.transpose("time", "lat", "lon").values, expected["mean"].values, atol=2e-4)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["nan", "dup", "shuffle", "lat91", "nodata", "strings"]), st.integers(0, 10))
def test_corrupted_inputs_always_raise_geonp_errors(base_pred, corruption, where):
    model, _ = base_pred
    da = BASE.copy(deep=True)
    i = where % da.sizes["lat"]
    if corruption == "nan":
        da = da.assign_coords(lat=da.lat.where(np.arange(da.sizes["lat"]) != i))
    elif corruption == "dup":
        da = da.isel(lat=[i] + list(range(da.sizes["lat"])))
    elif corruption == "shuffle":
        da = da.isel(lon=np.roll(np.arange(da.sizes["lon"]), 1 + where % 3))
    elif corruption == "lat91":
        da = da.assign_coords(lat=da.lat + 60.0)
    elif corruption == "nodata":
        da = da.where(da.lat < -1000)
    else:
        da = da.astype(str)
    with pytest.raises(GeonpError):
        model.predict(da)


def test_negative_steps_and_infinite_values_are_reported(gappy):
    with pytest.raises(ConfigError, match="steps must be an integer >= 0"):
        geonp.NeuralProcess(pretrained="gp2d-normal", steps=-1).fit(gappy)
    spiked = gappy.copy()
    spiked[0, 3, 3], spiked[1, 5, 5] = np.inf, -np.inf
    with pytest.warns(UserWarning, match="2 point.s. hold an infinite value") as caught:
        model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(spiked)
    assert sum("infinite" in str(w.message) for w in caught) == 1  # once, not again from the calibration
    with pytest.warns(UserWarning, match="infinite"):
        pred = model.predict(spiked, progress=False)
    assert np.isfinite(pred["mean"]).all()  # treated as missing: filled like any gap
    assert np.isfinite(pred["filled"]).all() and float(pred["filled"][0, 3, 3]) == float(pred["mean"][0, 3, 3])


def test_a_raster_without_gaps_says_there_is_nothing_to_fill(field, calibrated):
    with pytest.warns(UserWarning, match="no gap to fill"):
        pred = calibrated.predict(field.isel(time=[0]), progress=False)
    np.testing.assert_array_equal(pred["filled"].values, field.isel(time=[0]).transpose(*pred["filled"].dims).values)


def _with_elevation(elevation):
    ds = xr.Dataset({"t2m": smooth_field(np.arange(50.0, 54.0, 0.25), np.arange(-4.0, 0.0, 0.25), times=1)})
    ds["elevation"] = (("lat", "lon"), np.broadcast_to(elevation, (ds.sizes["lat"], ds.sizes["lon"])).copy())
    return ds


def test_covariates_missing_or_constant_are_reported():
    ramp = _with_elevation(np.linspace(0.0, 500.0, 16))
    holes = ramp.copy()
    holes["elevation"] = holes["elevation"].where(holes["lat"] > 50.6)  # 3 rows of cells without elevation
    model = geonp.NeuralProcess(pretrained="t2m-elevation", steps=0)
    with pytest.warns(UserWarning, match=r"left out 48 .*\(a covariate missing\)"):
        model.fit(holes, "t2m", covariates=["elevation"])
    with pytest.warns(UserWarning, match="48 of 256 target point.*no value of a covariate"):
        pred = model.predict(holes)
    assert int(pred["mean"].isnull().sum()) == 48
    # elevation from another file whose coordinates differ by rounding: xarray's assignment leaves NaN
    shifted = ramp["elevation"].assign_coords(lat=ramp["lat"] + 1e-9, lon=ramp["lon"] + 1e-9)
    misaligned = ramp.drop_vars("elevation").assign(elevation=shifted)
    with pytest.raises(DataError, match=r"256 point\(s\) have a value .* Most points lack it.*interp_like"):
        geonp.NeuralProcess(pretrained="t2m-elevation", steps=0).fit(misaligned, "t2m", covariates=["elevation"])
    half = ramp.assign(elevation=ramp["elevation"].where(ramp["lat"] >= 52.5))  # 160 of 256 cells without
    with pytest.warns(UserWarning, match=r"left out \d+ .*Most points lack it"):
        geonp.NeuralProcess(pretrained="t2m-elevation", steps=0).fit(half, "t2m", covariates=["elevation"])
    with pytest.warns(UserWarning, match="'elevation' takes one value .* no information"):
        geonp.NeuralProcess(pretrained="t2m-elevation", steps=0).fit(_with_elevation(120.0), "t2m",
                                                                    covariates=["elevation"])
    with pytest.raises(ConfigError, match="takes 1 covariate"):
        geonp.NeuralProcess(pretrained="t2m-elevation", steps=0).fit(
            ramp.assign(slope=ramp["elevation"] * 2), "t2m", covariates=["elevation", "slope"])


# ----------------------------------------------------------------------------- decisions (issue 39)


@pytest.mark.parametrize("change, says", [
    (lambda g: g.isel(lat=slice(0, 0)), "is empty"),
    (lambda g: g.assign_coords(lon=np.r_[g.lon.values[:-1], np.inf]), "infinite"),
    (lambda g: g.assign_coords(lon=[str(v) for v in g.lon.values]), "real numbers"),
    (lambda g: g.assign_coords(lat=np.arange(g.sizes["lat"]) % 2 == 0), "real numbers"),
    (lambda g: g.astype("complex64"), "complex"),
    (lambda g: g.fillna(0).astype("int64").astype("timedelta64[s]"), "durations"),
])
def test_coordinates_and_values_that_are_not_real_numbers_are_refused(gappy, calibrated, change, says):
    with pytest.raises(GeonpError, match=says):
        change(gappy).np.predict(model=calibrated)


def test_a_target_along_a_dimension_nobody_has_is_refused_not_dropped(gappy, calibrated):
    import pandas as pd

    one = gappy.isel(time=0, drop=True)
    target = xr.Dataset(coords={"time": pd.date_range("2001", periods=2), "lat": one.lat, "lon": one.lon})
    with pytest.raises(MetadataMismatchError, match="neither the context"):
        one.np.predict(model=calibrated, target=target)
    with pytest.raises(MetadataMismatchError, match="projected"):  # the README: another kind is an error
        one.np.predict(model=calibrated, target=pd.DataFrame({"y": [4e6], "x": [3e5]}))


def test_values_in_other_units_than_the_fit_are_refused_and_scale_is_otherwise_kept(gappy, calibrated):
    one = gappy.isel(time=0)
    for factor, says in ((1e30, "standard deviations"), (1e-30, "varies by")):
        with pytest.raises(DataError, match=says):
            (one * factor).np.predict(model=calibrated)
    base = one.np.predict(model=geonp.pretrained("gp2d-normal").fit(one, steps=0, progress=False))["mean"]
    scaled = (one * 1e30).np.predict(model=geonp.pretrained("gp2d-normal").fit(one * 1e30, steps=0,
                                                                                progress=False))["mean"]
    np.testing.assert_allclose(scaled.values / 1e30, base.values, rtol=1e-4, atol=1e-5)
    with pytest.raises(DataError, match="float32"):  # beyond what a float32 output holds
        geonp.pretrained("gp2d-normal").fit(one.astype("float64") * 1e-310, steps=0)


def test_paths_and_seeds_of_the_wrong_type(gappy, calibrated, tmp_path):
    with pytest.raises(ConfigError, match="expected a path"):
        geonp.load(123)
    with pytest.raises(ConfigError, match="expected a path"):
        calibrated.save(None)
    (tmp_path / "notes.txt").write_text("keep")
    pred = calibrated.predict(gappy.isel(time=0), progress=False)
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        pred.np.to_netcdf(tmp_path / "notes.txt" / "out.nc")
    assert (tmp_path / "notes.txt").read_text() == "keep"
    with pytest.raises(ConfigError, match="seed="):
        geonp.pretrained("gp2d-normal").fit(gappy, steps=0, seed="x")
    with pytest.raises(ConfigError, match="samples=.*at most"):
        calibrated.predict(gappy, samples=10**7)


def test_a_hand_edited_config_is_refused_at_load(calibrated, tmp_path):
    import json

    calibrated.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["metadata"]["calibration"]["by_distance"]["scale"] = None
    config["model"]["covariate_trend"] = []
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(geonp.errors.CheckpointError, match="corrupted"):
        geonp.load(tmp_path / "m")


def test_poisson_counts_without_exposure_are_counts_per_cell(gappy):
    counts = (gappy.isel(time=0) - gappy.min()).round()
    model = geonp.NeuralProcess(likelihood="poisson", window_points=32, num_target=16, max_context=32,
                                num_blocks=1, width=16, ff_dim=16, batch_size=2, progress=False).fit(counts, steps=1)
    assert np.isfinite(model.predict(counts, progress=False)["mean"].values).all()


def test_a_fractional_number_examined_and_a_fractional_site_count_are_refused(calibrated, gappy):
    import pandas as pd

    from geonp.design import next_sites

    survey = pd.DataFrame({"lat": [13.1, 13.5, 13.9], "lon": [-16.0, -15.0, -14.5], "positive": [1.0, 2.0, 0.0],
                           "examined": [10.0, 10.5, 8.0]})
    with pytest.raises(DataError, match="non-integer 'examined'"):
        geonp.pretrained("prevalence-binomial").fit(survey, "positive", trials="examined", steps=0)
    candidates = pd.DataFrame({"lat": [51.0, 53.0], "lon": [-1.0, 0.5]})
    with pytest.raises(ConfigError, match="whole number"):
        next_sites(calibrated, gappy.isel(time=0), candidates, 1.5)
