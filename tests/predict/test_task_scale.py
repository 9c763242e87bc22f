"""A model trained on context-standardised tasks sees every tile in the same units; targets beyond the data warn."""

import jax
import numpy as np
import pytest

import geonp
from geonp.estimator.releases import save_model
from geonp.nn.models import BSATNPConfig, initial_params
from geonp.tasks.fields import FieldTaskSampler
from geonp.testing import smooth_field


@pytest.fixture(scope="module")
def task_scale_release(tmp_path_factory):
    """A small untrained network released as the field model is: ``center`` = task-scale."""
    config = BSATNPConfig(num_blocks=2, width=16, num_heads=2, head_dim=8, ff_dim=32)
    batch, _ = FieldTaskSampler(num_context=32, min_context=8, num_target=8).sample(0, 2)
    params = initial_params(config, 1)
    path = tmp_path_factory.mktemp("release") / "field-tiny"
    save_model(path, config, jax.tree_util.tree_map(np.asarray, params), {"center": "task-scale"})
    return str(path)


def test_each_tile_is_standardised_by_its_context(task_scale_release):
    base = smooth_field(np.arange(50.0, 54.0, 0.25), np.arange(-3.0, 1.0, 0.25), times=2)
    keep = np.random.default_rng(0).random(base.shape[1:]) > 0.4
    data = base.copy(data=np.stack([base[0], 5.0 * base[0] - 1200.0])).where(keep)  # same field, other amplitude
    # no drift: a quadratic takes almost all of this smooth field, and the first field's residual falls under
    # the standardisation's floor (CONTEXT_STD_FLOOR) where the second's, 5x larger, does not
    model = geonp.NeuralProcess(pretrained=task_scale_release, steps=0, max_context=24, trend=0).fit(data)
    assert model.scaling_.center == "task-scale"
    pred = model.predict(data, progress=False)
    first, second = pred.isel(time=0), pred.isel(time=1)
    np.testing.assert_allclose(second["mean"], 5.0 * first["mean"] - 1200.0, rtol=1e-5, atol=2e-3)
    np.testing.assert_allclose(second["std"], 5.0 * first["std"], rtol=1e-3)  # float32


@pytest.mark.slow
def test_targets_beyond_the_data_are_warned_about_and_counted():
    field = smooth_field(np.arange(44.0, 56.0, 0.25), np.arange(-6.0, 6.0, 0.25), times=1)  # 48 x 48
    context = field.copy()
    context[:, :, 24:] = np.nan  # the eastern half (6 degrees) has no observation at all
    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(context)
    with pytest.warns(UserWarning, match="farther than .* from any observation"):
        pred = model.predict(context, progress=False)
    far = pred.attrs["geonp_far_from_data"]
    assert 0 < far < field.size / 2
    assert pred.attrs["geonp_far_from_data_units"] == "km"
    near = model.predict(context, target=field.isel(lon=slice(0, 24)), progress=False)
    assert near.attrs["geonp_far_from_data"] == 0
