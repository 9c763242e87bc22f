"""A model with a time group: time enters the bias (hours since a reference), tiles span time too."""

import cftime
import numpy as np
import pytest
import xarray as xr

import geonp
from geonp.testing import TINY


@pytest.fixture(scope="module")
def temporal_model(gappy):
    return geonp.NeuralProcess(temporal=True, steps=4, **TINY).fit(gappy)


def test_time_is_a_bias_group_with_a_fitted_unit(temporal_model):
    assert [g.name for g in temporal_model.config_.groups] == ["space", "time"]
    assert temporal_model.scaling_.time_unit == 6.0  # hours between steps


def test_temporal_prediction_tiles_time_and_matches_untiled(gappy, temporal_model):
    whole = temporal_model.predict(gappy, halo="all", time_tile=8, tile=64)
    tiled = temporal_model.predict(gappy, halo="all", time_tile=1, tile=9)
    assert whole["mean"].dims == gappy.dims
    xr.testing.assert_allclose(whole[["mean", "std"]], tiled[["mean", "std"]], atol=2e-4, rtol=1e-5)


def test_cftime_calendars_work(gappy, temporal_model):
    times = [cftime.DatetimeNoLeap(2020, 1, 1, 6 * i) for i in range(gappy.sizes["time"])]
    noleap = gappy.assign_coords(time=times)
    a = temporal_model.predict(gappy)
    b = temporal_model.predict(noleap)
    np.testing.assert_allclose(a["mean"].values, b["mean"].values, atol=1e-4)


def test_a_step_without_observations_warns(gappy, calibrated):
    holes = gappy.where(gappy.time != gappy.time[1])
    with pytest.warns(UserWarning, match="no observation"):
        pred = calibrated.predict(holes)
    assert np.isnan(pred["mean"].isel(time=1)).all() and np.isfinite(pred["mean"].isel(time=0)).all()
