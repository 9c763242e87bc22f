"""Count data through the estimator: binomial surveys, categorical lattices, and their bad inputs."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geonp
from geonp.errors import ConfigError
from geonp.features.tables import DataError, dataframe_to_dataset
from geonp.testing import TINY


def survey(n=60, seed=0):
    """Villages on a lon/lat box with a smooth logit-prevalence surface and 10..80 examined each."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-16.5, -14.0, n), rng.uniform(13.0, 13.8, n)
    eta = -0.5 + 1.2 * np.sin(2.0 * lon) * np.cos(3.0 * lat)
    examined = rng.integers(10, 80, n)
    positive = rng.binomial(examined, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"lon": lon, "lat": lat, "positive": positive.astype(float), "examined": examined})


def as_ds(frame):
    return dataframe_to_dataset(frame, "village")


@pytest.fixture(scope="module")
def binomial_model():
    return geonp.NeuralProcess(likelihood="binomial", steps=6, seed=1, **TINY).fit(
        as_ds(survey()), "positive", trials="examined")


def test_binomial_predicts_prevalence_quantiles_and_exceedance(binomial_model, tmp_path):
    frame = survey()
    grid = xr.Dataset(coords={"lat": ("lat", np.linspace(13.0, 13.8, 9), {"units": "degrees_north"}),
                              "lon": ("lon", np.linspace(-16.5, -14.0, 11), {"units": "degrees_east"})})
    pred = binomial_model.predict(as_ds(frame), target=grid, quantiles=[0.1, 0.5, 0.9], exceedance=[0.2, 0.5],
                                  samples=3, progress=False)
    mean, q = pred["mean"].values, pred["quantiles"].transpose("quantile", ...).values
    assert np.all((mean > 0) & (mean < 1)) and np.all(pred["std"].values > 0)
    assert np.all(np.diff(q, axis=0) > 0)  # quantiles ordered
    exceed = pred["exceedance"].transpose("threshold", ...).values
    assert np.all((exceed >= 0) & (exceed <= 1)) and np.all(exceed[0] >= exceed[1])  # P(p>0.2) >= P(p>0.5)
    median_exceeds_half = q[1] > 0.5
    assert np.array_equal(median_exceeds_half, exceed[1] > 0.5)  # exact: the link is monotone
    assert pred["mean"].attrs["units"] == "1" and "prevalence" in pred["mean"].attrs["long_name"]
    assert "filled" not in pred
    binomial_model.save(tmp_path / "m")
    again = geonp.load(tmp_path / "m").predict(as_ds(frame), target=grid, progress=False)
    np.testing.assert_allclose(again["mean"].values, mean, rtol=1e-6)


def test_bad_surveys_give_clear_errors():
    model = geonp.NeuralProcess(likelihood="binomial", steps=1, **TINY)
    cases = {
        "cannot exceed": lambda f: f.assign(positive=f.examined + 1.0),
        "negative": lambda f: f.assign(positive=-f.positive),
        "whole numbers": lambda f: f.assign(positive=f.positive / f.examined),
        "at least one trial": lambda f: f.assign(examined=0 * f.examined),
        "'lon' has 1 NaN": lambda f: f.assign(lon=np.where(np.arange(len(f)) == 3, np.nan, f.lon)),
    }
    for message, corrupt in cases.items():
        with pytest.raises(geonp.GeonpError, match=message):
            model.fit(as_ds(corrupt(survey())), "positive", trials="examined")
    with pytest.raises(ConfigError, match="trials="):
        model.fit(as_ds(survey()), "positive")
    with pytest.raises(ConfigError, match="trials=/exposure="):
        geonp.NeuralProcess(steps=1, **TINY).fit(as_ds(survey()), "positive", trials="examined")


def test_rows_left_out_are_reported_not_silently_dropped(binomial_model):
    frame = survey()
    frame.loc[[2, 5], "examined"] = np.nan  # positives without the number examined
    with pytest.warns(UserWarning, match=r"left out 2 \(one of \['positive', 'examined'\] missing\)"):
        binomial_model.predict(as_ds(frame), progress=False)


def test_a_place_surveyed_twice_is_pooled_into_one_location_and_said_so(binomial_model):
    frame = survey()
    again = frame.iloc[:3].assign(positive=[1.0, 0.0, 2.0], examined=[5, 6, 7])  # three villages surveyed again
    twice = pd.concat([frame, again], ignore_index=True)
    pooled = frame.copy()
    pooled.loc[:2, "positive"] += [1.0, 0.0, 2.0]
    pooled.loc[:2, "examined"] += [5, 6, 7]
    target = frame[["lon", "lat"]].iloc[::7]
    with pytest.warns(UserWarning, match=r"3 survey row\(s\) share their coordinates.*'village': 60"):
        pred = binomial_model.predict(as_ds(twice), target=target, progress=False)
    expected = binomial_model.predict(as_ds(pooled), target=target, progress=False)
    np.testing.assert_allclose(pred["mean"].values, expected["mean"].values, rtol=1e-6)
    assert len(twice) == 63  # the input is not modified


def test_exceedance_needs_a_count_model(calibrated, gappy):
    with pytest.raises(ConfigError, match="exceedance"):
        calibrated.predict(gappy.isel(time=0), exceedance=[280.0])


def test_categorical_states_on_a_lattice():
    from geonp.tasks.epidemic import STATE_NAMES

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:24, 0:24]
    state = np.where(np.hypot(yy - 12, xx - 12) < 5, 1.0, np.where(np.hypot(yy - 12, xx - 12) < 9, 2.0, 0.0))
    observed = np.where(rng.random(state.shape) < 0.3, state, np.nan)
    da = xr.DataArray(observed, dims=("y", "x"), coords={"y": np.arange(24.0), "x": np.arange(24.0)}, name="state",
                      attrs={"flag_meanings": " ".join(STATE_NAMES)})
    model = geonp.NeuralProcess(likelihood={"name": "categorical", "num_classes": 3}, steps=4, **TINY).fit(da)
    pred = model.predict(da, progress=False)
    probs = pred["probs"].transpose("class", ...).values
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)
    assert list(pred["class"].values) == list(STATE_NAMES)
    assert set(np.unique(pred["mode"].values)) <= {0.0, 1.0, 2.0}
    with pytest.raises(DataError, match="class indices"):
        model.fit(da + 5)
    with pytest.raises(ConfigError, match="no quantiles"):
        model.predict(da, quantiles=[0.5])
