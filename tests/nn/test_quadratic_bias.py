"""The quadratic (anisotropic Gaussian) bias: folded into q k^T it equals the pair-by-pair bias."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geonp.nn import attention as attention_lib
from geonp.nn import bias as bias_lib
from geonp.nn import quadratic_bias as qb
from geonp.nn.models import BSATNPConfig, build_model, initial_params
from geonp.tasks.gp import GPTaskSampler, shift_batch

PLANE = bias_lib.CoordinateGroup("space", 2, init_length_scales=(0.2, 2.0))
SPHERE = bias_lib.CoordinateGroup("space", 2, "great_circle", init_length_scales=(0.2, 2.0), radius=6371.0 / 500)
TIME = bias_lib.CoordinateGroup("time", 1, init_length_scales=(0.5, 5.0))


def _perturbed(groups, heads, seed=0, size=0.3):
    params = qb.init_quadratic_bias(None, groups, heads)
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed), len(leaves))
    return jax.tree_util.tree_unflatten(tree, [x + size * jax.random.normal(k, x.shape) for x, k in zip(
        leaves, keys, strict=True)])


def _inputs(groups, seed=1, B=2, Nq=37, Nk=29, H=3, Dh=8):
    ks = jax.random.split(jax.random.PRNGKey(seed), 6)
    q, k, v = (jax.random.normal(kk, (B, n, H, Dh)) for kk, n in zip(ks[:3], (Nq, Nk, Nk), strict=True))
    raw = {}
    for i, g in enumerate(groups):
        x = jax.random.uniform(jax.random.fold_in(ks[3], i), (B, Nq + Nk, g.dim), minval=-2, maxval=2)
        raw[g.name] = x * jnp.array([4.0, 3.0]) + jnp.array([20.0, 45.0]) if g.metric == "great_circle" else x
    meta = bias_lib.prepare_metadata(groups, raw)
    qm = {n: m[:, :Nq] for n, m in meta.items()}
    km = {n: m[:, Nq:] for n, m in meta.items()}
    mask = jnp.arange(Nk)[None, :] < jnp.array([[Nk - 6], [Nk]])
    return q, k, v, qm, km, mask


@pytest.mark.slow
@pytest.mark.parametrize("groups", [(PLANE,), (SPHERE,), (PLANE, TIME)], ids=["plane", "sphere", "space-time"])
def test_folded_scan_equals_pairwise_dense_values_and_gradients(groups):
    params = _perturbed(groups, 3)
    q, k, v, qm, km, mask = _inputs(groups)
    reference_bias = functools.partial(qb.quadratic_bias, groups=groups)

    def dense(p, q, k, v):
        return attention_lib.dense_biased_attention(q, k, v, reference_bias, p, qm, km, mask)

    def folded(p, q, k, v):
        qf, kf = qb.fold(q, k, p, qm, km, mask, groups)
        return attention_lib.scan_biased_attention(qf, kf, v, bias_lib.no_bias, {}, qm, km, mask, 16, 8)

    np.testing.assert_allclose(folded(params, q, k, v), dense(params, q, k, v), atol=2e-5)
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
    g_dense = jax.grad(loss(dense), argnums=(0, 1, 2, 3))(params, q, k, v)
    g_fold = jax.grad(loss(folded), argnums=(0, 1, 2, 3))(params, q, k, v)
    for a, b in zip(jax.tree_util.tree_leaves(g_dense), jax.tree_util.tree_leaves(g_fold), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-4 * max(1.0, float(jnp.max(jnp.abs(a)))))


def test_initial_heads_are_isotropic_gaussians_at_log_spaced_scales():
    params = qb.init_quadratic_bias(None, (PLANE,), 4)
    x = jnp.zeros((1, 1, 2))
    for angle in (0.0, 0.7, 2.0):
        y = jnp.array([[[math.cos(angle), math.sin(angle)]]]) * 0.5
        bias = np.asarray(qb.quadratic_bias(params, {"space": x}, {"space": y}, (PLANE,)))[0, :, 0, 0]
        scales = np.geomspace(0.2, 2.0, 4)
        np.testing.assert_allclose(bias, -0.25 / (2 * scales**2), rtol=1e-5)


def test_anisotropic_head_reaches_further_along_one_axis_and_the_profile_takes_the_longest_reach():
    params = {"space": {"log_diag": jnp.log(jnp.array([[2.0, 0.5]])), "lower": jnp.zeros((1, 1))}}
    x = jnp.zeros((1, 1, 2))
    along = lambda y: float(qb.quadratic_bias(params, {"space": x}, {"space": jnp.array([[y]])}, (PLANE,))[  # noqa
        0, 0, 0, 0])
    assert along([1.0, 0.0]) == pytest.approx(-4.0)
    assert along([0.0, 1.0]) == pytest.approx(-0.25)
    np.testing.assert_allclose(qb.profile(params["space"], np.array([1.0, 2.0])), [[-0.25, -1.0]], rtol=1e-6)


def test_default_model_is_translation_invariant_and_scan_equals_dense():
    config = BSATNPConfig(num_blocks=2, width=16, num_heads=2, head_dim=8, ff_dim=32, q_block=16, k_block=16)
    assert config.bias == "quadratic"
    batch, _ = GPTaskSampler(num_context=(20, 40), num_target=30).sample(jax.random.PRNGKey(0), 2)
    params = initial_params(config)
    # perturb the bias so that it is anisotropic
    params = jax.tree_util.tree_map_with_path(
        lambda path, x: x + 0.2 if "lower" in jax.tree_util.keystr(path) else x, params)
    out = build_model(config).apply(params, *batch.model_inputs())
    shifted = build_model(config).apply(params, *shift_batch(batch, 10.0).model_inputs())
    dense = build_model(dataclasses.replace(config, attention="dense")).apply(params, *batch.model_inputs())
    np.testing.assert_allclose(shifted, out, atol=1e-4)
    np.testing.assert_allclose(dense, out, atol=1e-4)


def test_sphere_bias_is_invariant_to_rotating_the_globe():
    params = _perturbed((SPHERE,), 2)
    q, k, v, qm, km, mask = _inputs((SPHERE,))
    angle = 0.9
    rot = jnp.array([[math.cos(angle), 0.0, math.sin(angle)], [0.0, 1.0, 0.0],
                     [-math.sin(angle), 0.0, math.cos(angle)]])
    turn = lambda m: {"space": m["space"] @ rot.T}  # noqa: E731
    a = qb.quadratic_bias(params, qm, km, (SPHERE,))
    b = qb.quadratic_bias(params, turn(qm), turn(km), (SPHERE,))
    np.testing.assert_allclose(b, a, atol=1e-3 * float(jnp.max(jnp.abs(a))))


def test_old_configs_keep_the_per_head_rbf_bias():
    legacy = BSATNPConfig.from_dict({k: v for k, v in BSATNPConfig(bias="rbf").to_dict().items() if k != "bias"})
    assert legacy.bias == "rbf-per-head"
    assert BSATNPConfig(bias="rbf").bias == "rbf-per-head"
