"""Deep Kernel Attention: random-feature attention against exact Gaussian-biased attention."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geonp.nn import attention
from geonp.nn import bias as bias_lib
from geonp.nn import random_features as rf
from geonp.nn.models import BSATNPConfig, build_model, initial_params
from geonp.tasks.gp import GPTaskSampler, shift_batch

SPACE = (bias_lib.CoordinateGroup("space", 2, "euclidean", init_length_scales=(0.5, 2.0)),)


def _inputs(seed, B=2, Nq=40, Nk=60, H=2, Dh=8):
    ks = jax.random.split(jax.random.PRNGKey(seed), 5)
    q = 0.5 * jax.random.normal(ks[0], (B, Nq, H, Dh))
    k = 0.5 * jax.random.normal(ks[1], (B, Nk, H, Dh))
    v = jax.random.normal(ks[2], (B, Nk, H, Dh))
    # a patch one length scale across, away from the origin on purpose (the estimate centres it)
    xq = jax.random.uniform(ks[3], (B, Nq, 2), minval=-0.5, maxval=0.5) + 7.0
    xk = jax.random.uniform(ks[4], (B, Nk, 2), minval=-0.5, maxval=0.5) + 7.0
    return q, k, v, xq, xk


def _exact(q, k, v, xq, xk, gamma_params):
    bias_fn = functools.partial(bias_lib.gaussian_bias, groups=SPACE)
    return attention.dense_biased_attention(q, k, v, bias_fn, gamma_params, {"space": xq}, {"space": xk})


def _relative_error(m, seed):
    q, k, v, xq, xk = _inputs(seed)
    gamma_params = bias_lib.init_gaussian_bias(None, SPACE, 2)
    gamma = jnp.repeat(jax.nn.softplus(gamma_params["space"]["gamma_raw"])[:, None], 2, axis=1)
    w = rf.orthogonal_gaussian(jax.random.PRNGKey(100 + seed), m, 8 + 2)
    return float(_error_given_features(q, k, v, xq, xk, gamma, gamma_params, w))


@jax.jit  # one compiled program per feature count (eager, every operation compiled per shape: 3x slower)
def _error_given_features(q, k, v, xq, xk, gamma, gamma_params, w):
    num, den = rf.random_feature_attention(q, k, v, xq, xk, gamma, w)
    exact = _exact(q, k, v, xq, xk, gamma_params)
    return jnp.linalg.norm(num / den[..., None] - exact) / jnp.linalg.norm(exact)


def test_orthogonal_features_are_orthogonal_within_a_block_with_gaussian_lengths():
    w = np.asarray(rf.orthogonal_gaussian(jax.random.PRNGKey(0), 16, 16))
    gram = w @ w.T
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-4)
    lengths = np.linalg.norm(np.asarray(rf.orthogonal_gaussian(jax.random.PRNGKey(1), 4096, 8)), axis=1)
    assert abs(np.mean(lengths**2) - 8.0) < 0.4  # E|w|^2 = d for w ~ N(0, I_d)


@pytest.mark.slow
def test_approximation_error_falls_as_features_grow():
    errors = {m: np.mean([_relative_error(m, s) for s in range(3)]) for m in (16, 64, 256, 1024, 4096)}
    values = list(errors.values())
    assert all(a > b for a, b in zip(values, values[1:], strict=False)), errors
    assert values[-1] < 0.25 * values[0] and values[-1] < 0.1, errors  # Monte Carlo: about 1 / sqrt(m)


def test_masked_keys_are_ignored():
    q, k, v, xq, xk = _inputs(1)
    gamma = jnp.full((2, 2), 0.5)
    w = rf.orthogonal_gaussian(jax.random.PRNGKey(3), 64, 10)
    mask = jnp.arange(60)[None].repeat(2, 0) < 45
    num, den = rf.random_feature_attention(q, k, v, xq, xk, gamma, w, mask)
    junk = k.at[:, 45:].set(1e3), v.at[:, 45:].set(-1e3), xk.at[:, 45:].set(1e4)
    num2, den2 = rf.random_feature_attention(q, junk[0], junk[1], xq, junk[2], gamma, w, mask)
    np.testing.assert_allclose(num / den[..., None], num2 / den2[..., None], rtol=1e-5, atol=1e-6)


def test_dka_model_is_translation_invariant_and_needs_no_square_memory():
    config = BSATNPConfig(num_blocks=2, width=32, num_heads=2, head_dim=16, ff_dim=64, attention="performer",
                          bias="gaussian", num_features=32)
    batch, _ = GPTaskSampler(num_context=(20, 60), num_target=50).sample(jax.random.PRNGKey(0), 2)
    model = build_model(config)
    params = initial_params(config, 1)
    apply = jax.jit(model.apply)
    out = apply(params, *batch.model_inputs())
    moved = apply(params, *shift_batch(batch, 10.0).model_inputs())
    np.testing.assert_allclose(out, moved, atol=1e-3)

    def temp_bytes(n):
        x = jnp.zeros((1, n, 0))
        meta = {"space": jnp.linspace(0, 1, 2 * n).reshape(1, n, 2)}
        args = (x, jnp.zeros((1, n, 1)), meta, jnp.ones((1, n), bool), x, meta)
        compiled = jax.jit(functools.partial(model.apply, params)).lower(*args).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    small, large = temp_bytes(512), temp_bytes(4096)
    assert large < 12 * small  # linear (8x) plus slack; a quadratic one would be 64x
