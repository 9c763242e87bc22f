"""Sparse point data (surveys): DataFrames and Datasets with a site dimension, to and from grids."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geonp
from geonp.testing import TINY

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "disease_prevalence"


def survey(n=300, seed=0):
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(-8, -2, n), rng.uniform(30, 38, n)
    value = np.sin(lat) + np.cos(0.7 * lon)
    return pd.DataFrame({"Lat": lat, "Long": lon, "value": value + 0.05 * rng.normal(size=n)}), (lat, lon, value)


def test_fit_on_points_and_predict_a_grid():
    frame, _ = survey()
    before = frame.copy()
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(frame, var="value")
    assert model.scaling_.kind == "geographic"
    grid = xr.Dataset(coords={"lat": np.arange(-7.5, -2.5, 0.5), "lon": np.arange(31.0, 37.0, 0.5)})
    pred = model.predict(frame, target=grid)
    pd.testing.assert_frame_equal(frame, before)
    assert pred["mean"].dims == ("lat", "lon")
    truth = np.sin(grid.lat) + np.cos(0.7 * grid.lon)
    assert float(np.abs(pred["mean"] - truth).mean()) < 0.2


def test_site_dataset_to_points_and_training_on_points():
    frame, (lat, lon, value) = survey(seed=1)
    sites = xr.Dataset({"value": ("site", frame["value"].to_numpy())},
                       coords={"lat": ("site", lat), "lon": ("site", lon), "site": np.arange(len(lat))})
    model = geonp.NeuralProcess(steps=3, **TINY).fit(sites, var="value")
    new = pd.DataFrame({"latitude": [-5.0, -3.0], "longitude": [33.0, 35.0]})
    pred = model.predict(sites, target=new)
    assert pred["mean"].dims == ("point",) and np.isfinite(pred["std"]).all()
    fill = model.predict(sites.assign(value=sites.value.where(sites.site % 5 != 0)))
    assert fill["filled"].dims == ("site",) and np.isfinite(fill["filled"]).all()


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared survey data not present")
def test_gambia_villages_prevalence_by_cross_validation():
    villages = pd.read_csv(SHARED / "gambia_villages.csv")
    rng = np.random.default_rng(0)
    held = rng.random(len(villages)) < 0.2
    train = villages.assign(prevalence=villages.prevalence.where(~held))
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(train[["lat", "lon", "prevalence"]],
                                                                      var="prevalence")
    pred = model.predict(train[["lat", "lon", "prevalence"]])
    err = np.abs(pred["mean"].values[held] - villages.prevalence.values[held])
    baseline = np.abs(train.prevalence.mean() - villages.prevalence.values[held])
    assert err.mean() < baseline.mean()  # neighbours inform better than the overall mean
