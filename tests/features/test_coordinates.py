"""Finding and checking spatial/time coordinates, over many layouts (hypothesis)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from geonp.errors import GeonpError
from geonp.features.coordinates import (
    CoordinateError,
    check_coordinates,
    find_coordinates,
    hours_since,
    wrap_longitude,
)

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

LAT_STYLES = [("lat", {}), ("latitude", {}), ("nav_lat", {}), ("phi", {"standard_name": "latitude"}),
              ("gridlat", {"units": "degrees_north"})]
LON_STYLES = [("lon", {}), ("longitude", {}), ("long", {}), ("lam", {"standard_name": "longitude"}),
              ("gridlon", {"units": "degrees_east"})]


@settings(max_examples=40, deadline=None)
@given(
    lat_style=st.sampled_from(LAT_STYLES), lon_style=st.sampled_from(LON_STYLES),
    with_time=st.booleans(), order=st.permutations([0, 1, 2]),
    descending_lat=st.booleans(), lon_360=st.booleans(),
    ny=st.integers(2, 6), nx=st.integers(2, 6),
)
def test_geographic_layouts_are_found_in_any_order(lat_style, lon_style, with_time, order, descending_lat,
                                                   lon_360, ny, nx):
    (lat_name, lat_attrs), (lon_name, lon_attrs) = lat_style, lon_style
    lat = np.linspace(-30, 40, ny)[::-1 if descending_lat else 1]
    lon = np.linspace(100, 300, nx) if lon_360 else np.linspace(-60, 60, nx)
    coords = {lat_name: (lat_name, lat, lat_attrs), lon_name: (lon_name, lon, lon_attrs)}
    dims = [lat_name, lon_name]
    if with_time:
        coords["time"] = ("time", pd.date_range("2020-01-01", periods=3, freq="6h"))
        dims.append("time")
    dims = [dims[i] for i in order if i < len(dims)]
    da = xr.DataArray(np.zeros([len(coords[d][1]) for d in dims]), dims=dims, coords=coords)
    before = da.copy(deep=True)
    layout = find_coordinates(da)
    assert (layout.kind, layout.y, layout.x) == ("geographic", lat_name, lon_name)
    assert layout.time == ("time" if with_time else None)
    check_coordinates(da, layout)
    xr.testing.assert_identical(da, before)  # never modified


def test_projected_with_override_and_crs():
    da = xr.DataArray(np.zeros((3, 4)), dims=("northing_m", "easting_m"),
                      coords={"northing_m": [0.0, 1e3, 2e3], "easting_m": [0.0, 1e3, 2e3, 3e3]})
    with pytest.raises(CoordinateError, match="spatial_dims"):
        find_coordinates(da)
    layout = find_coordinates(da, spatial_dims=("northing_m", "easting_m"), crs="EPSG:32628")
    assert layout.kind == "projected" and layout.crs == "EPSG:32628"


def test_override_naming_a_missing_coordinate():
    da = xr.DataArray(np.zeros((2, 2)), dims=("lat", "lon"), coords={"lat": [0, 1.0], "lon": [0, 1.0]})
    with pytest.raises(CoordinateError, match=r"coordinates are \['lat', 'lon'\]"):
        find_coordinates(da, spatial_dims=("y", "x"))
    with pytest.raises(CoordinateError, match="time_dim"):
        find_coordinates(da, time_dim="when")


@pytest.mark.parametrize(
    "lat, message",
    [([0.0, 1.0, 1.0, 2.0], "duplicated"), ([0.0, 2.0, 1.0, 3.0], "not monotonic"),
     ([0.0, np.nan, 1.0, 2.0], "NaN"), ([0.0, 50.0, 100.0, 150.0], "beyond")],
)
def test_bad_coordinates(lat, message):
    da = xr.DataArray(np.zeros((4, 2)), dims=("lat", "lon"), coords={"lat": lat, "lon": [0.0, 1.0]})
    with pytest.raises(CoordinateError, match=message) as info:
        check_coordinates(da, find_coordinates(da))
    assert isinstance(info.value, GeonpError)


def test_time_in_hours_numpy_and_cftime():
    hours, ref = hours_since(pd.date_range("2019-03-01", periods=3, freq="30min").values)
    np.testing.assert_allclose(hours, [0.0, 0.5, 1.0])
    noleap = xr.date_range("2001-02-27", periods=3, freq="D", calendar="noleap", use_cftime=True)
    hours, _ = hours_since(np.asarray(noleap))
    np.testing.assert_allclose(hours, [0.0, 24.0, 48.0])  # no 29 Feb in a noleap calendar
    with pytest.raises(CoordinateError, match="not dates"):
        hours_since(np.array(["a", "b"]))


def test_longitude_conventions_agree():
    np.testing.assert_allclose(wrap_longitude([350.0, 10.0, 180.0, -180.0]), [-10.0, 10.0, -180.0, -180.0])


@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not present")
@pytest.mark.parametrize("path", ["era5_t2m_uk/era5_t2m_uk_2019-03_0p25deg.nc",
                                  "era5land_t2m_norway_krigr/CentralNorway.nc",
                                  "era5_ens_t_z_global_3deg/era5_ens_t_z_500_850hPa_3deg.nc"])
def test_real_era5_files(path):
    with xr.open_dataset(SHARED / path) as ds:
        layout = find_coordinates(ds)
        check_coordinates(ds, layout)
    assert (layout.kind, layout.y, layout.x, layout.time) == ("geographic", "latitude", "longitude", "time")


def test_crs_is_parsed_by_pyproj():
    import numpy as np
    import pytest
    import xarray as xr

    from geonp.features.coordinates import CoordinateError, find_coordinates

    da = xr.DataArray(np.zeros((3, 4)), dims=("a", "b"), coords={"a": np.arange(3.0), "b": np.arange(4.0)})
    assert find_coordinates(da, ("a", "b"), crs="EPSG:32633").crs.startswith("EPSG:32633")
    assert find_coordinates(da, ("a", "b"), crs="EPSG:4326").kind == "geographic"
    with pytest.raises(CoordinateError, match="pyproj"):
        find_coordinates(da, ("a", "b"), crs="not-a-crs")
