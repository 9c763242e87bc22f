"""A model with covariate slots takes 0..K covariates of any meaning without retraining."""

import warnings

import numpy as np
import pandas as pd
import pytest

from geonp.errors import ConfigError
from geonp.features.tables import dataframe_to_dataset
from geonp.testing import extended_release

SLOTS = {"x_dim": 8, "covariate_slots": 4, "covariate_trend": True}


def _surveys(n=60, seed=0):
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-16.5, -14.0, n), rng.uniform(13.0, 13.8, n)
    examined = rng.integers(10, 60, n).astype(float)
    frame = pd.DataFrame({"lon": lon, "lat": lat, "examined": examined, "elevation": 20 + 30 * lon - 5 * lat,
                          "ndvi": rng.uniform(0.2, 0.8, n),
                          "positive": rng.binomial(examined.astype(int), 0.3).astype(float)})
    return dataframe_to_dataset(frame, "site")


def test_zero_to_k_covariates_pass_through_the_slots(tmp_path):
    surveys = _surveys()
    target = surveys.drop_vars(["positive", "examined"]).isel(site=slice(0, 15))
    # the covariate and trend rows zero: the model without covariates exactly, whatever the bundled release has
    plain = extended_release("prevalence-binomial", tmp_path, SLOTS, 0.0, rows={"covariates": 0.0, "trend": 0.0})
    reference = plain.fit(surveys, "positive", trials="examined", steps=0).predict(surveys, target)
    plain.fit(surveys, "positive", trials="examined", covariates=["elevation", "ndvi"], steps=0)
    assert plain.scaling_.covariate_slots == 4
    np.testing.assert_allclose(plain.predict(surveys, target)["mean"], reference["mean"], atol=1e-5)
    for rows in ({"covariates": 0.3, "trend": 0.0}, {"covariates": 0.0, "trend": 0.5}):
        weighted = extended_release("prevalence-binomial", tmp_path, SLOTS, 0.0, rows=rows)
        weighted.set_params(select_covariates=False)  # the plumbing, not whether elevation helps these surveys
        weighted.fit(surveys, "positive", trials="examined", steps=0)  # no covariate: no slot value, no trend
        np.testing.assert_allclose(weighted.predict(surveys, target)["mean"], reference["mean"], atol=1e-5)
        weighted.fit(surveys, "positive", trials="examined", covariates=["elevation"], steps=0)
        moved = weighted.predict(surveys, target)
        assert float(np.abs(moved["mean"] - reference["mean"]).max()) > 1e-3, rows  # the covariate reaches the tokens
    too_many = surveys.assign(a=surveys["ndvi"] * 2, b=surveys["ndvi"] * 3, c=surveys["ndvi"] ** 2)
    with pytest.raises(ConfigError, match="at most K=4 covariates"):
        plain.fit(too_many, "positive", trials="examined", covariates=["elevation", "ndvi", "a", "b", "c"], steps=0)


def test_selection_keeps_an_informative_covariate_and_ignores_noise(tmp_path):
    import geonp

    rng = np.random.default_rng(3)
    n = 150
    lon, lat = rng.uniform(30.0, 32.0, n), rng.uniform(-5.0, -3.0, n)
    w, b = rng.normal(size=(20, 2)), rng.uniform(0, 2 * np.pi, 20)
    signal = np.sqrt(2 / 20) * np.cos(np.c_[lon, lat] @ w.T + b).sum(1)  # a smooth covariate, degrees ~1
    examined = rng.integers(30, 80, n).astype(float)
    positive = rng.binomial(examined.astype(int), 1 / (1 + np.exp(-(-0.5 + 1.5 * signal)))).astype(float)
    surveys = dataframe_to_dataset(pd.DataFrame({"lon": lon, "lat": lat, "positive": positive, "examined": examined,
                                                 "signal": signal, "noise": rng.normal(size=n)}), "site")
    model = geonp.pretrained("prevalence-binomial")
    with pytest.warns(UserWarning, match=r"\['noise'\] did not improve"):
        model.fit(surveys, "positive", trials="examined", covariates=["signal", "noise"], steps=0)
    selection = model.history_[-1]["covariate_selection"]
    assert model.covariates_ignored_ == ("noise",) and selection["kept"] == ["signal"]
    assert set(selection["scores"]) == {"signal + noise", "signal", "noise", "none"}
    assert selection["scores"]["signal"] > selection["scores"]["none"] + 0.05  # the covariate carries the field
    target = surveys.drop_vars(["positive", "examined"]).isel(site=slice(0, 20))
    pred = model.predict(surveys, target)
    assert pred.attrs["geonp_covariates_ignored"] == "noise"
    # ignored is ignored: any values of the noise covariate give the same prediction
    shuffled = target.assign(noise=target["noise"] * -3.0 + 7.0)
    np.testing.assert_allclose(model.predict(surveys.assign(noise=surveys["noise"] * 0.5), shuffled)["mean"],
                               pred["mean"], atol=1e-6)
    model.save(tmp_path / "selected")
    assert geonp.load(tmp_path / "selected").covariates_ignored_ == ("noise",)
    everything = geonp.pretrained("prevalence-binomial").set_params(select_covariates=False)
    everything.fit(surveys, "positive", trials="examined", covariates=["signal", "noise"], steps=0)
    assert everything.covariates_ignored_ == () and "covariate_selection" not in everything.history_[-1]


def test_selection_on_a_grid_scores_every_subset_by_calibrated_crps(tmp_path):
    import xarray as xr

    from geonp.testing import smooth_field

    t2m = smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25), times=2)
    rng = np.random.default_rng(4)
    ds = xr.Dataset({"t2m": t2m.where(rng.random(t2m.shape) > 0.4)})
    ds["noise"] = (("lat", "lon"), rng.normal(size=t2m.shape[1:]))
    # covariate rows that matter: a covariate of pure noise moves the predictions, and costs
    model = extended_release("field-normal", tmp_path, SLOTS, rows={"covariates": 0.5})
    with pytest.warns(UserWarning, match=r"\['noise'\] did not improve the model's held-out CRPS"):
        model.fit(ds, "t2m", covariates=["noise"], steps=0)
    selection = model.history_[-1]["covariate_selection"]
    assert selection["kept"] == [] and set(selection["scores"]) == {"noise", "none"}
    assert selection["scores"]["none"] < selection["scores"]["noise"]
    assert model.calibration_["network"]["crps"] == selection["scores"]["none"]  # the kept subset's calibration
    assert model.covariates_ignored_ == ("noise",)


def test_accessor_progress_false_quiets_the_calibration_of_covariate_subsets(capsys):
    import xarray as xr

    from geonp.testing import smooth_field

    t2m = smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25), times=1).isel(time=0)
    rng = np.random.default_rng(5)
    ds = xr.Dataset({"t2m": t2m.where(rng.random(t2m.shape) > 0.4)})
    ds["elevation"] = (("lat", "lon"), rng.normal(size=t2m.shape))
    with warnings.catch_warnings():  # which subset wins is not the point here
        warnings.simplefilter("ignore")
        ds.np.predict(var="t2m", covariates=["elevation"], progress=False)
    assert "calibrating" not in capsys.readouterr().err
