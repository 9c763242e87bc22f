"""``geonp.design.next_sites``: sites chosen with fantasised observations improve the map more than random ones."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geonp
from geonp.design import next_sites
from geonp.errors import ConfigError
from geonp.features.tables import dataframe_to_dataset

LON, LAT = (-16.5, -14.0), (13.0, 13.8)


def truth_logit(lon, lat):
    return -0.8 + 1.4 * np.sin(2.2 * lon + 0.5) * np.cos(3.0 * lat)


def surveys(lon, lat, rng, examined=50):
    p = 1 / (1 + np.exp(-truth_logit(lon, lat)))
    return pd.DataFrame({"lon": lon, "lat": lat, "positive": rng.binomial(examined, p).astype(float),
                         "examined": np.full(len(lon), float(examined))})


def map_crps(model, frame, grid_lon, grid_lat, rng):
    """Mean sample CRPS of the prevalence map against the true prevalence."""
    target = pd.DataFrame({"lon": grid_lon, "lat": grid_lat})
    pred = model.predict(dataframe_to_dataset(frame, "site"), target=target, samples=64, progress=False)
    draws = pred["samples"].transpose("sample", ...).values  # [S, P]
    truth = 1 / (1 + np.exp(-truth_logit(grid_lon, grid_lat)))
    spread = np.abs(draws[:, None] - draws[None]).mean((0, 1))
    return float((np.abs(draws - truth).mean(0) - 0.5 * spread).mean())


@pytest.mark.slow
def test_designed_sites_reduce_the_map_crps_more_than_random_sites():
    gains = []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        # the first surveys cover the western third only; candidates span the whole country
        first = surveys(rng.uniform(LON[0], -15.7, 30), rng.uniform(*LAT, 30), rng)
        candidates = pd.DataFrame({"lon": rng.uniform(*LON, 120), "lat": rng.uniform(*LAT, 120)})
        grid_lon, grid_lat = (a.ravel() for a in np.meshgrid(np.linspace(*LON, 24), np.linspace(*LAT, 8)))
        model = geonp.pretrained("prevalence-binomial", progress=False).fit(
            dataframe_to_dataset(first, "site"), "positive", trials="examined", steps=0)
        chosen = next_sites(model, first, candidates, n=8, criterion="variance")
        assert list(chosen["order"]) == list(range(1, 9)) and chosen.index.is_unique
        at_random = candidates.iloc[rng.choice(len(candidates), 8, replace=False)]
        scores = {}
        for name, sites in (("design", chosen), ("random", at_random)):
            new = surveys(sites.lon.to_numpy(), sites.lat.to_numpy(), np.random.default_rng(100 + seed))
            scores[name] = map_crps(model, pd.concat([first, new]), grid_lon, grid_lat, np.random.default_rng(7))
        gains.append(scores["random"] - scores["design"])
    # measured gains 0.0028, 0.0041, 0.0014 in CRPS (2026-11-24); 0.0091, 0.0106, -0.0104 with the release of
    # stop 42 and the variance of the logit (the prevalence-scale variance sent 2 of 8 sites to the data's edge)
    print("CRPS gains of designed over random sites", np.round(gains, 4))
    assert np.mean(gains) > 0 and sum(g > 0 for g in gains) >= 2, gains


def test_exceedance_and_integrated_criteria_and_bad_arguments():
    rng = np.random.default_rng(0)
    first = surveys(rng.uniform(*LON, 25), rng.uniform(*LAT, 25), rng)
    candidates = pd.DataFrame({"lon": rng.uniform(*LON, 30), "lat": rng.uniform(*LAT, 30)})
    model = geonp.pretrained("prevalence-binomial", progress=False).fit(
        dataframe_to_dataset(first, "site"), "positive", trials="examined", steps=0)
    by_threshold = next_sites(model, first, candidates, n=2, criterion="exceedance", threshold=0.3)
    assert (by_threshold["score"] <= 0.25 + 1e-9).all()  # p (1 - p)
    targets = pd.DataFrame({"lon": np.linspace(*LON, 20), "lat": np.full(20, 13.4)})
    by_map = next_sites(model, first, candidates, n=2, criterion="integrated", targets=targets, shortlist=3)
    assert len(by_map) == 2 and (by_map["score"] < 0).all()
    with pytest.raises(ConfigError, match="threshold="):
        next_sites(model, first, candidates, n=2, criterion="exceedance")
    with pytest.raises(ConfigError, match="criterion="):
        next_sites(model, first, candidates, n=2, criterion="entropy")
    with pytest.raises(ConfigError, match="lack column"):
        next_sites(model, first, candidates.rename(columns={"lat": "y"}), n=2)


def test_gridded_field_sites_go_into_the_gap():
    lat, lon = np.linspace(50, 52, 16), np.linspace(-2, 1, 20)
    field = np.sin(lon[None, :] * 2) + np.cos(lat[:, None] * 3)
    observed = np.where(lon[None, :] < -0.5, field, np.nan)  # the eastern part is a gap
    da = xr.DataArray(observed, dims=("lat", "lon"), name="t2m", attrs={"units": "K"},
                      coords={"lat": ("lat", lat, {"units": "degrees_north"}),
                              "lon": ("lon", lon, {"units": "degrees_east"})})
    model = geonp.pretrained("gp2d-normal", progress=False).fit(da)
    candidates = pd.DataFrame({"lat": np.repeat(lat[::3], 5), "lon": np.tile(lon[::4], 6)})
    chosen = next_sites(model, da, candidates, n=3)
    assert (chosen["lon"] > -0.5).all(), chosen
