"""Support: a model told that its context values are block means of a coarser grid (downscaling)."""

import jax
import numpy as np
import pytest
import xarray as xr

import geonp
from geonp.errors import ConfigError
from geonp.estimator.releases import pretrained
from geonp.features.support import SUPPORT, support_between
from geonp.features.tables import to_table
from geonp.tasks.fields import FieldTaskSampler
from geonp.testing import extended_release


def _grid(step, n, seed=0):
    lat = 50.0 + step * np.arange(n)
    lon = -5.0 + step * np.arange(n)
    values = np.random.default_rng(seed).normal(size=(n, n)).astype("float32")
    return xr.DataArray(values, dims=("latitude", "longitude"), coords={"latitude": lat, "longitude": lon},
                        name="t2m", attrs={"units": "K"})


def test_support_is_log2_of_the_context_cells_side_in_target_cells():
    coarse, fine = to_table(_grid(1.0, 6)), to_table(_grid(0.25, 24))
    assert support_between(coarse, fine) == pytest.approx(2.0)
    assert support_between(to_table(_grid(0.5, 6)), fine) == pytest.approx(1.0)
    assert support_between(fine, fine) == 0.0  # gap filling
    assert support_between(fine, coarse) == 0.0  # a coarser target is never a smaller footprint
    points = xr.Dataset({"t2m": ("site", np.ones(5))}, coords={"latitude": ("site", np.arange(5.0)),
                                                               "longitude": ("site", np.arange(5.0))})
    assert support_between(to_table(points, "t2m", spatial_dims=("latitude", "longitude")), fine) == 0.0


def test_coarse_field_tasks_carry_their_block_factor_and_others_none():
    sampler = FieldTaskSampler(num_context=48, num_target=16, min_context=8, grid_side=24)
    for seed in range(8):
        batch, info = sampler.sample(jax.random.PRNGKey(seed), 4)
        support = batch.meta_ctx[SUPPORT][..., 0]  # [B, Nc]
        for b, layout in enumerate(info.layout):
            real = support[b][batch.mask_ctx[b]]
            if layout == 2:  # coarse: one factor per task, 2x..4x
                assert np.unique(real).size == 1 and 1.0 <= real[0] <= 2.0
            else:
                assert np.all(real == 0.0)


def _support_blind(tmp_path):
    """The bundled field model with its support input's embedding row zeroed: it cannot tell block means."""
    assert pretrained("field-normal")[0].support
    return extended_release("field-normal", tmp_path / "blind", {}, rows={"support": 0.0})


def test_downscaling_tells_the_field_model_the_factor(tmp_path):
    coarse = _grid(0.5, 10, seed=1)
    model = geonp.pretrained("field-normal").fit(coarse, steps=0)
    # the network's own means (calibrated=False: no kriging blend, which on this smooth field takes over)
    told = model.predict(coarse, target=2, progress=False, calibrated=False)
    assert told.attrs["geonp_context_support"] == pytest.approx(1.0)
    blind = _support_blind(tmp_path).fit(coarse, steps=0).predict(coarse, target=2, progress=False, calibrated=False)
    assert float(np.abs(told["mean"] - blind["mean"]).max()) > 1e-3  # the factor reaches the tokens
    with pytest.warns(UserWarning, match="no gap to fill"):
        on_grid = model.predict(coarse, progress=False)  # the same grid: support 0
    assert on_grid.attrs["geonp_context_support"] == 0.0
    with pytest.raises(ConfigError, match="joint samples from block means"):
        model.predict(coarse, target=2, samples=2, joint=True, progress=False)


@pytest.mark.slow
def test_a_model_given_a_support_input_starts_as_it_was(tmp_path):
    coarse = _grid(0.5, 8, seed=4)
    before = geonp.pretrained("gp2d-normal").fit(coarse, steps=0).predict(coarse, target=2, progress=False)
    extended = extended_release("gp2d-normal", tmp_path, {"support": True}, 0.0).fit(coarse, steps=0)
    after = extended.predict(coarse, target=2, progress=False)
    assert after.attrs["geonp_context_support"] == pytest.approx(1.0)
    np.testing.assert_allclose(after["mean"], before["mean"], atol=1e-4)  # zero rows: the same function


def test_a_model_trained_with_far_context_predicts_with_it(tmp_path):
    rng = np.random.default_rng(2)
    field = _grid(0.1, 40, seed=3)
    gappy = field.where(rng.random(field.shape) < 0.6)
    far = geonp.pretrained("field-normal").fit(gappy, steps=0)  # trained with far context since its fifth session
    plain = extended_release("field-normal", tmp_path, {}, metadata={"far_context": 0}).fit(gappy, steps=0)
    assert far.scaling_.far_context == 64 and plain.scaling_.far_context == 0
    with_far, without = far.predict(gappy, progress=False), plain.predict(gappy, progress=False)
    assert "64 far" in with_far.attrs["geonp_context_rule"] and "far" not in without.attrs["geonp_context_rule"]
    assert float(np.abs(with_far["mean"] - without["mean"]).max()) > 1e-4  # other context, other predictions
