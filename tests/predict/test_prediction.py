"""Predictions through the accessor: targets, CF outputs, tiling, invariances, laziness."""

import numpy as np
import pandas as pd
import xarray as xr

import geonp
from geonp.features.grids import refine_coordinate
from geonp.testing import smooth_field, with_gaps


def test_fill_keeps_coordinates_attrs_units_and_input(gappy, calibrated):
    before = gappy.copy(deep=True)
    pred = gappy.np.predict(model=calibrated, quantiles=[0.05, 0.5, 0.95], samples=3)
    xr.testing.assert_identical(gappy, before)  # the input is never modified
    assert pred["mean"].dims == gappy.dims
    for name in gappy.coords:
        xr.testing.assert_identical(pred[name], gappy[name])
    assert pred["mean"].attrs["units"] == "K" and pred["std"].attrs["units"] == "K"
    assert pred["std"].attrs["standard_name"] == "air_temperature standard_error"
    assert pred.attrs["Conventions"] == "CF-1.8" and pred.attrs["geonp_context_points"] == int(gappy.notnull().sum())
    assert np.isfinite(pred["mean"]).all() and (pred["std"] > 0).all()
    q = pred["quantiles"]
    assert (q.diff("quantile") > 0).all()
    np.testing.assert_allclose(q.sel(quantile=0.5), pred["mean"], rtol=1e-6)
    assert pred["samples"].sizes["sample"] == 3
    observed = gappy.notnull()
    xr.testing.assert_equal(pred["filled"].where(observed), gappy.where(observed))
    xr.testing.assert_equal(pred["filled"].where(~observed), pred["mean"].where(~observed))


def test_gap_filling_beats_the_field_spread(field, gappy, calibrated):
    pred = gappy.np.predict(model=calibrated)
    missing = gappy.isnull()
    rmse = float(np.sqrt(((pred["mean"] - field) ** 2).where(missing).mean()))
    assert rmse < 0.35 * float(field.std())
    z = ((field - pred["mean"]) / pred["std"]).where(missing)
    inside = float((np.abs(z) < 1.96).where(missing).sum() / missing.sum())
    assert inside > 0.75  # calibrated-ish, zero-shot


def test_resolution_factor_refines_cells():
    np.testing.assert_allclose(refine_coordinate(np.array([0.0, 1.0]), 2), [-0.25, 0.25, 0.75, 1.25])
    np.testing.assert_allclose(refine_coordinate(np.array([1.0, 0.0]), 2), [1.25, 0.75, 0.25, -0.25])


def test_target_factor_and_descending_latitude(gappy, calibrated):
    one = gappy.isel(time=0)
    pred = one.np.predict(target=2, model=calibrated)
    assert pred.sizes == {"lat": 48, "lon": 56}
    np.testing.assert_allclose(pred.lat.coarsen(lat=2).mean(), one.lat)
    assert pred.lat.attrs["units"] == "degrees_north"
    flipped = one.isel(lat=slice(None, None, -1)).np.predict(target=2, model=calibrated)
    xr.testing.assert_allclose(flipped["mean"].sortby("lat"), pred["mean"], atol=1e-4)


def test_points_target_from_grid(gappy, calibrated):
    points = pd.DataFrame({"lat": [51.1, 53.3, 54.9], "lon": [-3.3, 0.1, 2.2], "name": ["a", "b", "c"]})
    pred = gappy.np.predict(target=points, model=calibrated)
    assert pred["mean"].dims == ("time", "point") and pred["mean"].shape == (3, 3)
    grid = gappy.np.predict(target=gappy.sel(lat=[51.0, 53.25], lon=[-3.25, 0.0]), model=calibrated)
    near = gappy.np.predict(target=pd.DataFrame({"lat": [51.0, 53.25], "lon": [-3.25, 0.0]}), model=calibrated)
    np.testing.assert_allclose(near["mean"].values, np.diagonal(grid["mean"].values, axis1=1, axis2=2), atol=1e-4)


def test_tiled_equals_untiled_when_the_halo_covers_all_context(field, gappy, calibrated):
    # the network's part is the same however the grid is tiled
    whole, tiled = (gappy.np.predict(model=calibrated, context="all", tile=tile, without=["blend"])
                    for tile in (512, 7))
    xr.testing.assert_allclose(whole[["mean", "std"]], tiled[["mean", "std"]], atol=2e-4, rtol=1e-5)
    # the kriging blend kriges each tile's targets on the MAX_POINTS nearest to its centre (and each target's own
    # nearest): a plane fitted through them moves a little with the tile, well inside the predictive spread
    whole, tiled = (gappy.np.predict(model=calibrated, context="all", tile=tile) for tile in (512, 7))
    missing = gappy.isnull()
    gap = np.abs(whole["mean"] - tiled["mean"]).where(missing)
    spread = float(whole["std"].where(missing).median())
    assert float(gap.max()) < 0.5 * spread and float(gap.mean()) < 0.01 * spread, (float(gap.max()), spread)
    xr.testing.assert_allclose(whole["std"], tiled["std"], atol=2e-4, rtol=1e-5)
    auto = gappy.np.predict(model=calibrated, tile=7)  # halo from the learned bias: as good as all context
    rmse = lambda p: float(np.sqrt(((p["mean"] - field) ** 2).where(missing).mean()))  # noqa: E731
    assert rmse(tiled) < 1.01 * rmse(whole) and rmse(auto) < 1.1 * rmse(whole), (rmse(tiled), rmse(auto), rmse(whole))


def test_lazy_prediction_matches_eager(gappy, calibrated):
    eager = gappy.np.predict(model=calibrated, tile=10)
    lazy = gappy.chunk({"time": 1}).np.predict(model=calibrated, tile=10)
    assert lazy["mean"].chunks is not None
    xr.testing.assert_allclose(eager[["mean", "std"]], lazy[["mean", "std"]].compute())


def test_longitude_conventions_and_date_line_agree():
    lat = np.arange(-10.0, -4.0, 0.5)
    lon = np.arange(170.0, 190.0, 1.0)  # crosses the date line in 0..360
    field = with_gaps(smooth_field(lat, lon, times=1), 0.5)
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(field)
    a = model.predict(field)
    wrapped = field.assign_coords(lon=((field.lon + 180) % 360) - 180)  # -180..180: jumps at 180
    b = model.predict(wrapped)
    np.testing.assert_allclose(a["mean"].values, b["mean"].values, atol=1e-4)
    np.testing.assert_allclose(a["std"].values, b["std"].values, atol=1e-4)


def test_projected_coordinates_are_translation_invariant():
    x = np.arange(0.0, 40_000.0, 2_000.0)
    y = np.arange(0.0, 30_000.0, 2_000.0)
    base = with_gaps(smooth_field(y / 1e5, x / 1e5, times=1), 0.5).rename(lat="y", lon="x")
    base = base.assign_coords(x=("x", x, {"units": "m"}), y=("y", y, {"units": "m"}))
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(base)
    assert model.scaling_.kind == "projected"
    a = model.predict(base)
    moved = base.assign_coords(x=base.x + 5e5, y=base.y + 9.4e6)  # a UTM-like offset
    b = model.predict(moved)
    np.testing.assert_allclose(a["mean"].values, b["mean"].values, atol=1e-4)
    np.testing.assert_allclose(a["std"].values, b["std"].values, atol=1e-4)
