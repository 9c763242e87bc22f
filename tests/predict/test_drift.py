"""The field's large-scale drift: chosen on held-out cells, taken out before the model, added back after."""

import numpy as np
import pytest
import xarray as xr

import geonp
from geonp.errors import ConfigError
from geonp.estimator import releases as model_store
from geonp.features import tables as tables_lib
from geonp.testing import TINY


def _bowl(shift=0.0, seed=0):
    """A projected 40 x 40 field (5 km cells): a strong quadratic bowl plus small local waves, a big gap inside."""
    rng = np.random.default_rng(seed)
    x = np.arange(40) * 5.0 + shift
    y = np.arange(40) * 5.0 - shift
    xx, yy = np.meshgrid(x - x.mean(), y - y.mean())
    detail = sum(0.3 * np.cos(rng.normal(0, 0.15) * xx + rng.normal(0, 0.15) * yy + rng.uniform(0, 6.3))
                 for _ in range(6))
    truth = 280.0 + 0.004 * (xx**2 + yy**2) + detail
    gap = (np.abs(xx) < 45) & (np.abs(yy) < 45)  # 18 x 18 cells hidden in the middle of the bowl
    da = xr.DataArray(truth, dims=("y", "x"), coords={"y": y, "x": x}, name="lst", attrs={"units": "K"})
    return da.where(~gap), truth, gap


def test_auto_finds_the_drift_that_fills_a_gap_across_the_large_scale_structure(tmp_path):
    data, truth, gap = _bowl()
    flat = geonp.NeuralProcess(pretrained="field-normal", steps=0, progress=False, trend=0).fit(data, crs="EPSG:3857")
    auto = geonp.NeuralProcess(pretrained="field-normal", steps=0, progress=False).fit(data, crs="EPSG:3857")
    chosen = auto.calibration_["trend"]
    assert chosen["degree"] == 2 and set(chosen["crps_by_degree"]) == {"0", "2"}
    assert auto.history_[-1]["calibration"]["trend"] == chosen
    pred, flat_pred = auto.predict(data, progress=False), flat.predict(data, progress=False)
    rmse = lambda p: float(np.sqrt(np.mean((p["mean"].values - truth)[gap] ** 2)))  # noqa: E731
    # the bowl's floor is 4 K below its rim: without the drift the gap is filled at the rim's level
    assert rmse(pred) < 0.5 * rmse(flat_pred)
    assert pred.attrs["geonp_trend_degree"] == 2 and flat_pred.attrs["geonp_trend_degree"] == 0
    auto.save(tmp_path / "m")
    again = geonp.load(tmp_path / "m").predict(data, progress=False)
    np.testing.assert_allclose(again["mean"], pred["mean"], rtol=1e-6)


def test_the_drift_keeps_predictions_translation_invariant():
    data, _, _ = _bowl()
    moved, _, _ = _bowl(shift=3.0e4)
    model = geonp.NeuralProcess(pretrained="field-normal", steps=0, progress=False, trend=2).fit(data, crs="EPSG:3857")
    a = model.predict(data, progress=False, calibrated=False)
    b = model.predict(moved, progress=False, calibrated=False)
    # equal to float32 rounding: the bowl spans 76 K, and over its 1,600 cells the largest difference is ~2e-3 K
    # (p99 3e-4 K; it moves with each release's weights); a real dependence on position would be of the
    # field's own scale (0.1-4 K)
    np.testing.assert_allclose(a["mean"].values, b["mean"].values, atol=5e-3)
    np.testing.assert_allclose(a["std"].values, b["std"].values, atol=5e-3)
    assert np.nanpercentile(np.abs(a["mean"].values - b["mean"].values), 99) < 1e-3


def test_a_bad_trend_says_what_is_allowed():
    data, _, _ = _bowl()
    with pytest.raises(ConfigError, match="trend must be 'auto' or a polynomial degree"):
        geonp.NeuralProcess(pretrained="field-normal", steps=0, trend=3).fit(data, crs="EPSG:3857")
    config = model_store.pretrained("prevalence-binomial")[0]
    with pytest.raises(ConfigError, match="Use trend=0"):
        geonp.NeuralProcess(trend=1)._fixed_trend(config.likelihood, config)


def test_training_with_a_fixed_drift_samples_its_windows_from_the_residuals():
    data, _, _ = _bowl()
    raw = geonp.NeuralProcess(trend=0, **TINY)
    with_drift = geonp.NeuralProcess(trend=2, **TINY)
    spread = {}
    for name, model in (("raw", raw), ("drift", with_drift)):
        model.set_params(steps=2).fit(data, crs="EPSG:3857")
        assert model.scaling_.trend_degree == (2 if name == "drift" else 0)
        table = tables_lib.to_table(data, None, (), None, None, "EPSG:3857")
        observed = tables_lib.require_observations(table, "the data")
        sampler = model._patch_sampler(table, observed, model.scaling_, [0])
        spread[name] = float(np.std(np.concatenate(sampler.values)))
    assert spread["drift"] < 0.5 * spread["raw"]  # the bowl is taken out before the windows are cut
