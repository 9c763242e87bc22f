"""The BSA-TNP: invariances, independence of test points, scan = dense, configuration."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.nn import bias as bias_lib
from geonp.nn.models import BSATNP, BSATNPConfig, default_groups, initial_params
from geonp.tasks.gp import GPTaskSampler, shift_batch

SMALL = BSATNPConfig(num_blocks=2, width=32, num_heads=2, head_dim=16, ff_dim=64, q_block=32, k_block=32)


@pytest.fixture(scope="module")
def gp_batch():
    batch, _ = GPTaskSampler(num_context=(20, 60), num_target=50).sample(jax.random.PRNGKey(0), 3)
    return batch


@pytest.fixture(scope="module")
def params(gp_batch):
    return initial_params(SMALL, 1)


def _apply(config, params, batch):
    return np.asarray(jax.jit(BSATNP(config).apply)(params, *batch.model_inputs()))


def test_reference_size_has_about_half_a_million_parameters():
    config = BSATNPConfig(groups=default_groups(temporal=True))
    meta = {"space": jnp.zeros((1, 4, 2)), "time": jnp.zeros((1, 4, 1))}
    shapes = jax.eval_shape(BSATNP(config).init, jax.random.PRNGKey(0), jnp.zeros((1, 4, 0)),
                            jnp.zeros((1, 4, 1)), meta, jnp.ones((1, 4), bool), jnp.zeros((1, 4, 0)), meta)
    n = sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(shapes))
    assert 350_000 < n < 600_000
    block = shapes["params"]["block_0"]["attention"]["distance_bias"]
    # the quadratic bias: a lower-triangular 2 x 2 transform per head in space, a scale per head in time
    assert block["space"]["log_diag"].shape == (4, 2) and block["space"]["lower"].shape == (4, 1)
    assert block["time"]["log_diag"].shape == (4, 1) and "lower" not in block["time"]


def test_translation_invariance(gp_batch, params):
    out = _apply(SMALL, params, gp_batch)
    moved = _apply(SMALL, params, shift_batch(gp_batch, 10.0))
    # float32: coordinates near 10 carry ~1e-6 rounding, times head scales up to ~14 in the quadratic bias
    np.testing.assert_allclose(out, moved, atol=1e-4)


def test_embedding_coordinates_breaks_invariance_when_asked(gp_batch):
    config = dataclasses.replace(SMALL, embed_coordinates=True)
    p = initial_params(config, 1)
    out = _apply(config, p, gp_batch)
    moved = _apply(config, p, shift_batch(gp_batch, 10.0))
    assert np.max(np.abs(out - moved)) > 1e-3


def test_test_points_are_independent(gp_batch, params):
    """The prediction at a target does not depend on which other targets are asked for."""
    full = _apply(SMALL, params, gp_batch)
    sub = gp_batch._replace(x_tgt=gp_batch.x_tgt[:, 10:17], y_tgt=gp_batch.y_tgt[:, 10:17],
                            meta_tgt={"space": gp_batch.meta_tgt["space"][:, 10:17]},
                            mask_tgt=gp_batch.mask_tgt[:, 10:17])
    np.testing.assert_allclose(_apply(SMALL, params, sub), full[:, 10:17], atol=2e-5)


def test_padded_context_points_change_nothing(gp_batch, params):
    out = _apply(SMALL, params, gp_batch)
    garbage = gp_batch._replace(y_ctx=jnp.where(gp_batch.mask_ctx[..., None], gp_batch.y_ctx, 55.0),
                                meta_ctx={"space": jnp.where(gp_batch.mask_ctx[..., None],
                                                             gp_batch.meta_ctx["space"], -3.0)})
    np.testing.assert_allclose(_apply(SMALL, params, garbage), out, atol=2e-5)


def test_scan_and_dense_models_agree(gp_batch, params):
    dense = dataclasses.replace(SMALL, attention="dense")
    np.testing.assert_allclose(_apply(SMALL, params, gp_batch), _apply(dense, params, gp_batch), atol=2e-5)


def test_global_model_is_rotation_invariant():
    groups = (bias_lib.CoordinateGroup("space", 2, "great_circle", radius=6371.0 / 1000.0),)
    config = dataclasses.replace(SMALL, groups=groups)
    key = jax.random.split(jax.random.PRNGKey(4), 3)
    lonlat = jnp.stack([jax.random.uniform(key[0], (1, 40), minval=-180, maxval=180),
                        jax.random.uniform(key[1], (1, 40), minval=-80, maxval=80)], axis=-1)
    y = jax.random.normal(key[2], (1, 30, 1))
    mask = jnp.ones((1, 30), bool)
    x0 = jnp.zeros((1, 30, 0))
    params = initial_params(config, 0)
    f = jax.jit(BSATNP(config).apply)
    a = f(params, x0, y, {"space": lonlat[:, :30]}, mask, jnp.zeros((1, 10, 0)), {"space": lonlat[:, 30:]})
    rotated = lonlat.at[..., 0].add(200.0)  # crosses the date line; 0-360 and -180-180 mixed
    b = f(params, x0, y, {"space": rotated[:, :30]}, mask, jnp.zeros((1, 10, 0)), {"space": rotated[:, 30:]})
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


def test_config_round_trips_through_dict():
    config = BSATNPConfig(x_dim=2, groups=default_groups(temporal=True), likelihood={"name": "normal", "min_std": 0.01})
    again = BSATNPConfig.from_dict(config.to_dict())
    assert again == config
    assert again.likelihood.min_std == 0.01


@pytest.mark.parametrize("bad", [{"num_blocks": 0}, {"attention": "sparse"}, {"likelihood": "cauchy"},
                                 {"groups": ()}])
def test_bad_config_raises(bad):
    with pytest.raises(ConfigError):
        BSATNPConfig(**bad)


def test_unknown_config_field_says_to_upgrade():
    with pytest.raises(ConfigError, match="newer geonp"):
        BSATNPConfig.from_dict({**SMALL.to_dict(), "rotary": True})


@pytest.mark.parametrize("arch", ["tnp-kr", "dka", "tnp-d", "cmanp"])
def test_every_architecture_config_round_trips_through_json(arch):
    import json

    from geonp.estimator.estimator import ARCHITECTURES

    config = BSATNPConfig(**ARCHITECTURES[arch])
    again = BSATNPConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and hash(again) == hash(config)


def test_kernel_bias_model_is_translation_invariant_linear_kernel_included(gp_batch):
    config = dataclasses.replace(SMALL, bias="kernel")
    p = initial_params(config, 1)
    np.testing.assert_allclose(_apply(config, p, gp_batch), _apply(config, p, shift_batch(gp_batch, 10.0)), atol=5e-5)


@pytest.mark.parametrize("fields, message", [
    ({"attention": "performer"}, "set bias='gaussian'"),
    ({"bias": "none"}, "set embed_coordinates=True"),
    ({"family": "cmanp"}, "bias='none' and embed_coordinates=True"),
    ({"bias": "learned"}, "bias must be one of"),
    ({"bias": "kernel", "kernels": ("rbf", "spline")}, "kernels must be distinct names"),
])
def test_inconsistent_architecture_settings_are_explained(fields, message):
    with pytest.raises(ConfigError, match=message):
        BSATNPConfig(**fields)
