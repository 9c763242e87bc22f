"""The scikit-learn contract of geonp.NeuralProcess: fit -> self, predict, save/load, errors."""

import json

import numpy as np
import pytest
import xarray as xr

import geonp
from geonp.errors import CheckpointError, ConfigError
from geonp.testing import TINY


def test_accessor_is_registered_on_both_types(field):
    assert hasattr(field, "np") and hasattr(field.to_dataset(), "np")


def test_predict_before_fit_says_how_to_fix(gappy):
    with pytest.raises(geonp.NotFittedError, match="call fit"):
        geonp.NeuralProcess().predict(gappy)


def test_params_round_trip_and_repr():
    model = geonp.NeuralProcess(steps=7, width=32)
    assert model.get_params()["steps"] == 7
    assert model.set_params(steps=9) is model and model.steps == 9
    assert "steps=9" in repr(model) and "width=32" in repr(model)
    with pytest.raises(ConfigError, match="unknown NeuralProcess parameter"):
        model.set_params(stepz=1)


def test_fit_returns_self_with_fitted_attributes(tiny):
    assert tiny.is_fitted and tiny.steps_trained_ == 12
    assert tiny.var_ == "t2m" and tiny.covariates_ == ()
    assert tiny.scaling_.kind == "geographic" and tiny.scaling_.space_unit > 0
    assert abs(tiny.scaling_.value_mean[0] - 280.0) < 2.0
    assert tiny.history_ and np.isfinite(tiny.history_[-1]["train_nll"])


def test_the_fitted_state_is_one_frozen_record_that_a_failed_fit_leaves_as_it_was(gappy):
    import copy
    import dataclasses

    model = copy.deepcopy(geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(gappy))
    state = model.state_
    assert model.scaling_ is state.scaling and model.calibration_ is state.calibration
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.var = "other"
    with pytest.raises(AttributeError):
        model.scaling_ = state.scaling  # what fit learned is never set piece by piece
    with pytest.raises(geonp.GeonpError):
        model.fit(gappy.where(False))  # no observations
    assert model.state_ is state  # the failed fit changed nothing
    assert np.isfinite(model.predict(gappy, progress=False)["mean"].values).all()


def test_fit_is_seeded(gappy):
    a = geonp.NeuralProcess(steps=3, seed=5, **TINY).fit(gappy)
    b = geonp.NeuralProcess(steps=3, seed=5, **TINY).fit(gappy)
    leaves = lambda m: [np.asarray(x) for x in __import__("jax").tree_util.tree_leaves(m.params_)]  # noqa: E731
    for x, y in zip(leaves(a), leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


def test_early_stopping_stops_and_keeps_the_best(gappy):
    model = geonp.NeuralProcess(steps=400, seed=1, patience=1, learning_rate=3e-2, **TINY).fit(gappy)
    validated = [h["val_nll"] for h in model.history_ if "val_nll" in h]
    assert model.steps_trained_ < 400 and len(validated) >= 2


def test_save_load_reproduces_predictions(tiny, gappy, tmp_path):
    before = tiny.predict(gappy.isel(time=0))
    tiny.save(tmp_path / "model")
    loaded = geonp.load(tmp_path / "model")
    assert loaded.scaling_ == tiny.scaling_ and loaded.get_params() == tiny.get_params()
    after = loaded.predict(gappy.isel(time=0))
    xr.testing.assert_allclose(before[["mean", "std"]], after[["mean", "std"]])


def test_load_rejects_raw_weights_and_other_versions(tmp_path, tiny):
    from geonp.estimator.releases import PRETRAINED_DIR

    with pytest.raises(CheckpointError, match="fit\\(data, steps=0\\)"):
        geonp.load(PRETRAINED_DIR / "gp2d-normal")
    path = tiny.save(tmp_path / "m")
    header = json.loads((path / "config.json").read_text())
    header["format_version"] = 99
    (path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="version"):
        geonp.load(path)
    (path / "params.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        geonp.load(path)


def test_accessor_fit_splits_estimator_and_data_arguments(gappy):
    model = gappy.to_dataset().np.fit(var="t2m", pretrained="gp2d-normal", steps=0)
    assert isinstance(model, geonp.NeuralProcess) and model.var_ == "t2m"
    with pytest.raises(ConfigError, match="unknown argument"):
        gappy.np.fit(stepz=3)


def test_pretrained_with_other_covariates_is_refused(gappy):
    ds = gappy.to_dataset().assign(elevation=gappy.isel(time=0, drop=True) * 0 + 100.0)
    with pytest.raises(ConfigError, match="covariate"):
        geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(ds, var="t2m", covariates=["elevation"])


def test_covariates_are_fitted_scaled_and_required_at_targets(gappy):
    elevation = xr.DataArray(np.random.default_rng(0).uniform(0, 800, gappy.shape[1:]), dims=("lat", "lon"),
                             coords={"lat": gappy.lat, "lon": gappy.lon}, attrs={"units": "m"})
    ds = gappy.to_dataset().assign(elevation=elevation)
    model = geonp.NeuralProcess(steps=2, **TINY).fit(ds, var="t2m", covariates=["elevation"])
    assert model.scaling_.covariate_names == ("elevation",)
    assert 300 < model.scaling_.covariate_mean[0] < 500
    pred = model.predict(ds)  # covariates at every grid cell
    assert np.isfinite(pred["mean"]).all()
    fine = elevation.interp(lat=np.arange(50.0, 55.0, 0.125), lon=np.arange(-4.0, 2.0, 0.125))
    pred = model.predict(ds, target=fine.to_dataset(name="elevation"))
    assert pred["mean"].sizes == {"time": 3, "lat": fine.sizes["lat"], "lon": fine.sizes["lon"]}
    from geonp.errors import MetadataMismatchError

    with pytest.raises(MetadataMismatchError, match="covariates"):
        model.predict(ds, target=2)
    with pytest.raises(MetadataMismatchError, match="elevation"):
        model.predict(ds, target=fine.to_dataset(name="height"))


def test_space_unit_comes_from_single_fields_not_stacked_time_steps(field):
    one = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(field.isel(time=0)).scaling_.space_unit
    many = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(field).scaling_.space_unit
    assert many == pytest.approx(one, rel=0.1)


def test_warnings_about_the_data_point_at_the_users_own_call(gappy):
    import warnings

    field = gappy.isel(time=[0]).copy()
    field.values[0, 0, 0] = np.inf
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0, progress=False).fit(field)
        model.predict(field, progress=False)
        field.np.predict(model="gp2d-normal", progress=False)  # the accessor's fit and predict, a call deeper
    infinite = [w for w in caught if "infinite value" in str(w.message)]
    assert len(infinite) == 4 and all(w.filename == __file__ for w in infinite)  # fit's, then predict's
