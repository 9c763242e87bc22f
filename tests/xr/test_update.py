"""``condition`` / ``update`` / ``predict(target=...)``: adding observations equals conditioning on all at once."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geonp
from geonp.errors import ConfigError
from geonp.features.tables import dataframe_to_dataset


def test_point_surveys_updated_in_two_batches_predict_as_all_at_once():
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-16.5, -14.0, 50), rng.uniform(13.0, 13.8, 50)
    examined = rng.integers(10, 60, 50).astype(float)
    frame = pd.DataFrame({"lon": lon, "lat": lat, "examined": examined,
                          "positive": rng.binomial(examined.astype(int), 0.3).astype(float)})
    model = geonp.pretrained("prevalence-binomial", progress=False).fit(
        dataframe_to_dataset(frame, "site"), "positive", trials="examined", steps=0)
    target = pd.DataFrame({"lon": np.linspace(-16.4, -14.1, 12), "lat": np.full(12, 13.4)})
    with pytest.raises(ConfigError, match="condition"):
        model.predict(target=target)
    all_at_once = model.predict(dataframe_to_dataset(frame, "site"), target)
    as_sites = lambda f: dataframe_to_dataset(f, "site")  # noqa: E731
    for first, second in ((frame.iloc[:30], frame.iloc[30:]), (as_sites(frame.iloc[:30]), as_sites(frame.iloc[30:]))):
        updated = model.condition(first).update(second).predict(target=target)
        np.testing.assert_allclose(updated["mean"].values, all_at_once["mean"].values, rtol=1e-6)
        np.testing.assert_allclose(updated["std"].values, all_at_once["std"].values, rtol=1e-6)
    with pytest.raises(ConfigError, match="kind"):
        model.condition(frame).update(dataframe_to_dataset(frame, "site"))


def test_a_grid_updated_with_new_cells_predicts_as_the_merged_grid():
    lat, lon = np.linspace(50, 52, 12), np.linspace(-2, 1, 14)
    field = np.sin(lon[None, :] * 2) + np.cos(lat[:, None] * 3)
    coords = {"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"})}
    full = xr.DataArray(field, dims=("lat", "lon"), coords=coords, name="t2m", attrs={"units": "K"})
    rng = np.random.default_rng(1)
    first_mask, new_mask = rng.random(field.shape) < 0.3, rng.random(field.shape) < 0.2
    first, new = full.where(first_mask), full.where(new_mask & ~first_mask)
    model = geonp.pretrained("gp2d-normal", progress=False).fit(first)
    updated = model.condition(first).update(new).predict()
    merged = model.predict(full.where(first_mask | new_mask))
    np.testing.assert_allclose(updated["mean"].values, merged["mean"].values, rtol=1e-6)
    assert int(updated.attrs["geonp_context_points"]) == int((first_mask | new_mask).sum())
