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
    model.condition(frame).fit(dataframe_to_dataset(frame, "site"), "positive", trials="examined", steps=0)
    with pytest.raises(ConfigError, match="condition"):  # a new fit forgets what the old one was conditioned on
        model.predict(target=target)


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


def test_cmanp_folds_only_the_new_points_into_its_conditioned_state(field, monkeypatch):
    from geonp.predict import streaming
    from geonp.testing import TINY, with_gaps

    obs = with_gaps(field.isel(time=0), fraction=0.5)
    model = obs.np.fit(arch="cmanp", **{**TINY, "steps": 2, "batch_size": 2, "window_points": 96, "max_context": 96})
    rng = np.random.default_rng(3)
    split = rng.random(obs.shape)
    first, second, third = (obs.where((split >= lo) & (split < hi)) for lo, hi in ((0, 0.5), (0.5, 0.8), (0.8, 1)))
    folded = []
    real_fold = streaming.fold
    monkeypatch.setattr(streaming, "fold", lambda *a: folded.append(len(a[-1])) or real_fold(*a))

    stepwise = model.condition(first).update(second).update(third)
    n = [int(d.notnull().sum()) for d in (first, second, third)]
    assert folded == n  # each update folds its own points only, never the earlier ones
    (state,) = model.stream_.values()
    assert state.points == sum(n)
    pred = stepwise.predict()
    assert pred.attrs["geonp_context_rule"].startswith("all, folded")

    # all observations folded at once, in the frame the first ones set, predict the same
    from geonp.predict import conditioning

    labels, parts, _ = conditioning.stream_parts(model, obs)
    at_once = streaming.fold(model.config_, model.params_, model.scaling_,
                             streaming.TaskState(state.frame, None, 0), parts["space"][0], None,
                             parts["covariates"][0], parts["values"][0])
    model.stream_ = {labels[0]: at_once}
    np.testing.assert_allclose(model.predict()["mean"].values, pred["mean"].values, rtol=1e-5, atol=1e-4)
    # condition() on the merged data starts afresh (its own frame) and holds every point
    model.condition(obs)
    assert model.stream_[labels[0]].points == sum(n)

    # a correction of an observed cell re-folds the task whole, in the same frame
    folded.clear()
    corrected = first.where(first.isnull(), first + 1.0)
    frame = model.condition(first).stream_[labels[0]].frame
    model.update(corrected)
    assert folded == [n[0], n[0]] and model.stream_[labels[0]].frame is frame
