"""Small xarray fields and models shared by the accessor tests."""

import numpy as np
import pytest
import xarray as xr

import geonp
from geonp.testing import extended_release  # noqa: F401  (shared by the tests here)


def smooth_field(lat, lon, times=3, seed=0):
    """A smooth random field (sum of a few plane waves), K around 280, with CF attrs."""
    rng = np.random.default_rng(seed)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    data = []
    for _ in range(times):
        field = np.zeros_like(la)
        for _ in range(4):
            k = rng.normal(0, 12, size=2)
            field += np.cos(k[0] * la + k[1] * lo + rng.uniform(0, 2 * np.pi))
        data.append(280.0 + 2.0 * field)
    da = xr.DataArray(
        np.array(data, np.float32), dims=("time", "lat", "lon"),
        coords={"time": np.datetime64("2020-01-01T00", "ns") + np.arange(times) * np.timedelta64(6, "h"),
                "lat": ("lat", np.asarray(lat, float), {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", np.asarray(lon, float), {"units": "degrees_east", "standard_name": "longitude"})},
        name="t2m", attrs={"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"},
    )
    return da


def with_gaps(da, fraction=0.6, seed=1):
    keep = np.random.default_rng(seed).random(da.shape) > fraction
    return da.where(keep)


@pytest.fixture(scope="session")
def field():
    return smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25))  # 3 x 24 x 28


@pytest.fixture(scope="session")
def gappy(field):
    return with_gaps(field)


@pytest.fixture(scope="session")
def calibrated(gappy):
    """The bundled model calibrated on the gappy field (no training)."""
    return geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(gappy)


TINY = dict(num_blocks=2, width=16, num_heads=2, head_dim=8, ff_dim=32, window_points=64, max_context=48,
            num_target=32, batch_size=4, progress=False)


@pytest.fixture(scope="session")
def tiny(gappy):
    """A tiny model trained for a few steps (for fit/save/load mechanics, not accuracy)."""
    return geonp.NeuralProcess(steps=12, seed=3, **TINY).fit(gappy)
