"""predict() on a finer nested grid keeps every context cell's mean (geonp.predict.conserve)."""

import numpy as np
import pandas as pd
import pytest

from geonp.errors import ConfigError
from geonp.testing import smooth_field


def _area_block_means(fine, factor):
    weights = np.cos(np.deg2rad(fine["lat"])) * (fine * 0 + 1)
    return (fine * weights).coarsen(lat=factor, lon=factor).sum() / weights.coarsen(lat=factor, lon=factor).sum()


def test_downscaled_field_keeps_each_coarse_cell_mean_and_is_closer_to_the_truth(calibrated):
    truth = smooth_field(np.arange(50.0625, 56, 0.125), np.arange(-3.9375, 3, 0.125), times=1, seed=5).isel(time=0)
    coarse = _area_block_means(truth, 4).assign_attrs(truth.attrs).rename(truth.name)
    kept = coarse.np.predict(target=4, model=calibrated, quantiles=[0.1, 0.9], samples=3)
    free = coarse.np.predict(target=4, model=calibrated, quantiles=[0.1, 0.9], samples=3, conserve=False)
    assert "equals its value" in kept.attrs["geonp_conservation"]
    assert "geonp_conservation" not in free.attrs
    np.testing.assert_allclose(_area_block_means(kept["mean"], 4), coarse, atol=2e-3)  # float32 outputs
    rmse = lambda p: float(np.sqrt(((p["mean"] - truth.values) ** 2).mean()))  # noqa: E731
    assert rmse(kept) < 0.9 * rmse(free)
    # the whole distribution moves with the mean; its spread is the model's
    shift = kept["mean"] - free["mean"]
    np.testing.assert_allclose(kept["quantiles"] - free["quantiles"], shift.broadcast_like(kept["quantiles"]),
                               atol=1e-3)
    np.testing.assert_allclose(kept["samples"] - free["samples"], shift.broadcast_like(kept["samples"]), atol=1e-3)
    np.testing.assert_allclose(kept["std"], free["std"])
    assert kept["mean"].attrs["units"] == "K"


def test_conservation_says_when_it_cannot_apply(gappy, calibrated):
    one = gappy.isel(time=0)
    lazy = one.np.predict(target=2, model=calibrated, lazy=True)
    assert lazy.attrs["geonp_conservation"].startswith("not applied: the prediction is lazy")
    points = pd.DataFrame({"lat": [51.1, 53.3], "lon": [-3.3, 0.1]})
    assert one.np.predict(target=points, model=calibrated).attrs["geonp_conservation"].startswith("not applied")
    with pytest.raises(ConfigError, match="cannot be kept.*not a grid"):
        one.np.predict(target=points, model=calibrated, conserve=True)
    fine = one.np.predict(target=2, model=calibrated)
    off_grid = fine[[]].assign_coords(lat=fine.lat + 0.03, lon=fine.lon)  # 2x finer, edges off the coarse ones
    assert "edges" in one.np.predict(target=off_grid, model=calibrated).attrs["geonp_conservation"]
    with pytest.raises(ConfigError, match="edges"):
        one.np.predict(target=off_grid, model=calibrated, conserve=True)
    with pytest.raises(ConfigError, match="target=None predicts the context's own cells"):
        one.np.predict(model=calibrated, conserve=True)
    with pytest.raises(ConfigError, match="conserve='maybe'"):
        one.np.predict(target=2, model=calibrated, conserve="maybe")
