"""The accessor on the real shared samples (skipped cleanly when ../shared/data is absent)."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import geonp  # noqa: F401  (registers .np)
from geonp.testing import TINY

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
UK = DATA / "era5_t2m_uk" / "era5_t2m_uk_2019-03_0p25deg.nc"
NORWAY = DATA / "era5land_t2m_norway_krigr"


@pytest.mark.skipif(not UK.is_file(), reason="shared ERA5 UK sample not present")
def test_era5_gap_filling_beats_nearest_neighbour():
    from scipy.interpolate import griddata

    with xr.open_dataset(UK) as ds:
        truth = ds["t2m"].isel(time=[0, 12]).load()
    gappy = truth.where(np.random.default_rng(0).random(truth.shape) > 0.7)
    pred = gappy.np.predict()  # zero-shot bundled model
    assert pred["mean"].attrs["units"] == "K"
    missing = gappy.isnull()
    rmse = float(np.sqrt(((pred["mean"] - truth) ** 2).where(missing).mean()))
    lat, lon = np.meshgrid(truth.latitude, truth.longitude, indexing="ij")
    errors = []
    for t in range(2):
        seen = ~missing.values[t]
        nearest = griddata((lat[seen], lon[seen]), gappy.values[t][seen], (lat, lon), method="nearest")
        errors.append((nearest - truth.values[t])[~seen])
    rmse_nearest = float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
    print(f"ERA5 UK, 70% missing: RMSE {rmse:.3f} K vs nearest neighbour {rmse_nearest:.3f} K")
    assert rmse < rmse_nearest, (rmse, rmse_nearest)


@pytest.mark.skipif(not NORWAY.is_dir(), reason="shared ERA5-Land Norway sample not present")
def test_norway_with_elevation_fits_and_downscales_to_the_1km_grid():
    with xr.open_dataset(NORWAY / "CentralNorway.nc") as t2m, \
            xr.open_dataset(NORWAY / "Covariates_Train.nc") as train, \
            xr.open_dataset(NORWAY / "Covariates_Target.nc") as target:
        ds = xr.Dataset({"t2m": t2m["2m_temperature"].load(),
                         "elevation": train["Covariates_Train"].load()})
        fine = target["Covariates_Target"].isel(latitude=slice(200, 240), longitude=slice(300, 350)).load()
    model = ds.np.fit(var="t2m", covariates=["elevation"], steps=3, **TINY)  # latitude descends, sea is NaN
    assert model.scaling_.covariate_names == ("elevation",)
    pred = ds.np.predict(target=fine.rename("elevation"), model=model)
    assert pred["mean"].dims == ("time", "latitude", "longitude")
    assert pred["mean"].shape == (5, 40, 50) and np.isfinite(pred["mean"]).all()
    assert pred["mean"].attrs["units"] == "K"
