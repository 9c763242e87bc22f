"""``geonp.aggregate``: weighted region means of joint draws, against sums written out by hand."""

import numpy as np
import pytest
import shapely
import xarray as xr

import geonp
from geonp.errors import ConfigError, MetadataMismatchError


def draws(num=50, seed=0, joint=True, projected=False):
    """A prediction-like Dataset: ``samples`` [sample, lat, lon] with known values."""
    rng = np.random.default_rng(seed)
    lat, lon = np.linspace(-10, 10, 6), np.linspace(30, 45, 8)
    values = rng.normal(0.3, 0.1, (num, 6, 8))
    dims = ("sample", "y", "x") if projected else ("sample", "lat", "lon")
    coords = ({"y": ("y", lat * 1e4, {"units": "m"}), "x": ("x", lon * 1e4, {"units": "m"})} if projected else
              {"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})})
    samples = xr.DataArray(values, dims=dims, coords=coords, attrs={"units": "1", "long_name": "prevalence"})
    pred = xr.Dataset({"samples": samples, "mean": samples.mean("sample")})
    pred.attrs["geonp_samples"] = "joint" if joint else "marginal"
    return pred


def test_label_raster_with_population_weights_matches_the_weighted_sums():
    pred = draws()
    labels = xr.zeros_like(pred["mean"], dtype=np.int64)
    labels[:, 4:] = 1
    labels[0, 0] = -1  # outside every region
    labels.attrs.update(flag_values=[0, 1], flag_meanings="west east")
    population = xr.DataArray(np.arange(48.0).reshape(6, 8) + 1, dims=("lat", "lon"), coords=pred["mean"].coords)
    out = geonp.aggregate(pred, labels, weights=population, exceedance=[0.3], fraction_above=[0.4])
    assert list(out.region.values) == ["west", "east"]
    s, w, lab = pred["samples"].values, population.values, labels.values
    for r in (0, 1):
        inside = lab == r
        expected = (s[:, inside] * w[inside]).sum(-1) / w[inside].sum()
        np.testing.assert_allclose(out["samples"].sel(region=out.region[r]).values, expected, rtol=1e-12)
        np.testing.assert_allclose(float(out["exceedance"][r, 0]), np.mean(expected > 0.3))
        share = ((s[:, inside] > 0.4) * w[inside]).sum(-1) / w[inside].sum()
        np.testing.assert_allclose(out["fraction_above"][r, 0].values, share)
        assert int(out["cells"][r]) == inside.sum()
    assert out["quantiles"].sizes["quantile"] == 3 and out["mean"].attrs["units"] == "1"
    assert bool((out["quantiles"][:, 0] < out["mean"]).all() & (out["mean"] < out["quantiles"][:, 2]).all())


def test_polygons_equal_the_label_raster_and_default_to_cell_area():
    pred = draws()
    west = shapely.box(29, -11, 38.5, 11)  # the first 4 longitudes (30 ... 36.4)
    east = shapely.box(38.5, -11, 46, 11)
    by_polygon = geonp.aggregate(pred, {"west": west, "east": east})
    labels = xr.zeros_like(pred["mean"], dtype=np.int64)
    labels[:, 4:] = 1
    by_label = geonp.aggregate(pred, labels)
    np.testing.assert_allclose(by_polygon["samples"].values, by_label["samples"].values, rtol=1e-12)
    area = np.cos(np.deg2rad(pred.lat.values))[:, None] * np.ones(8)
    s = pred["samples"].values
    expected = (s[:, :, :4] * area[:, :4]).sum((1, 2)) / area[:, :4].sum()
    np.testing.assert_allclose(by_polygon["samples"].sel(region="west").values, expected, rtol=1e-12)
    # longitudes 0..360 against polygons in -180..180
    shifted = pred.assign_coords(lon=pred.lon + 360.0)
    np.testing.assert_allclose(geonp.aggregate(shifted, {"west": west})["mean"].values,
                               by_polygon["mean"].sel(region=["west"]).values)


def test_projected_grid_and_a_time_dimension():
    pred = draws(projected=True)
    pred = xr.concat([pred, pred + 1.0], dim="time").assign_coords(time=[0, 1])
    pred.attrs["geonp_samples"] = "joint"
    pred["samples"].attrs.update(units="degC")
    out = geonp.aggregate(pred, [shapely.box(0, -2e5, 1e7, 2e5)])
    assert set(out["mean"].dims) == {"region", "time"}
    np.testing.assert_allclose(out["mean"].sel(time=1) - out["mean"].sel(time=0), 1.0, rtol=1e-12)


def test_marginal_samples_warn_and_bad_regions_say_what_to_do():
    with pytest.warns(UserWarning, match="joint=True"):
        geonp.aggregate(draws(joint=False), [shapely.box(29, -11, 46, 11)])
    pred = draws()
    with pytest.raises(ConfigError, match="samples=200, joint=True"):
        geonp.aggregate(pred.drop_vars("samples"), [shapely.box(29, -11, 46, 11)])
    with pytest.raises(ConfigError, match="shapely"):
        geonp.aggregate(pred, {"a": [(0, 0), (1, 1)]})
    labels = xr.zeros_like(pred["mean"], dtype=np.int64).assign_coords(lat=pred.lat + 0.5)
    with pytest.raises(MetadataMismatchError, match="reindex_like"):
        geonp.aggregate(pred, labels)
    with pytest.warns(UserWarning, match="no predicted cell"):
        out = geonp.aggregate(pred, {"far": shapely.box(100, 50, 110, 60)})
    assert np.isnan(out["mean"].values).all()
