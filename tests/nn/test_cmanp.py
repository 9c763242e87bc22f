"""CMANP: the running-softmax state is exact, mergeable, and updates equal conditioning on everything."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from geonp.nn import cmanp
from geonp.nn.models import BSATNPConfig, build_model, initial_params
from geonp.tasks.gp import GPTaskSampler

CONFIG = BSATNPConfig(num_blocks=2, width=32, num_heads=2, head_dim=16, ff_dim=64, family="cmanp", bias="none",
                      embed_coordinates=True, num_latents=8, cmab_block=16)


def _qkv(seed, B=2, L=5, N=70, H=2, Dh=4):
    ks = jax.random.split(jax.random.PRNGKey(seed), 4)
    return (jax.random.normal(ks[0], (L, H, Dh)), jax.random.normal(ks[1], (B, N, H, Dh)),
            jax.random.normal(ks[2], (B, N, H, Dh)), jax.random.uniform(ks[3], (B, N)) > 0.2)


def test_running_state_equals_dense_softmax_attention():
    q, k, v, mask = _qkv(0)
    out = cmanp.finalise(cmanp.running_state(q, k, v, mask, block=16))  # [B, L, H, Dh]
    s = jnp.einsum("lhd,bnhd->bhln", q, k) / math.sqrt(q.shape[-1])
    p = jax.nn.softmax(jnp.where(mask[:, None, None, :], s, -jnp.inf), axis=-1)
    np.testing.assert_allclose(out, jnp.swapaxes(jnp.einsum("bhln,bnhd->bhld", p, v), 1, 2), atol=1e-5)


def test_merge_is_order_free_and_handles_empty_sides():
    q, k, v, mask = _qkv(1)
    a = cmanp.block_state(q, k[:, :30], v[:, :30], mask[:, :30])
    b = cmanp.block_state(q, k[:, 30:], v[:, 30:], mask[:, 30:])
    empty = cmanp.block_state(q, k[:, :5], v[:, :5], jnp.zeros((2, 5), bool))
    for x, y in zip(cmanp.merge(a, b), cmanp.merge(b, cmanp.merge(a, empty)), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(cmanp.finalise(empty)) == 0.0)


def _task(seed, n_ctx=90):
    batch, _ = GPTaskSampler(num_context=(n_ctx, n_ctx), num_target=40).sample(jax.random.PRNGKey(seed), 2)
    return batch


def test_incremental_updates_give_the_same_latents_and_predictions_as_all_at_once():
    batch = _task(0)
    model = build_model(CONFIG)
    params = initial_params(CONFIG, 1)
    # jitted: run op by op, the many small calls below would compile every primitive once per shape
    method = lambda name: jax.jit(functools.partial(model.apply, params, method=getattr(cmanp.CMANP, name)))  # noqa: E731
    condition, update, latents, query = map(method, ("condition", "update", "latents", "query"))

    def part(lo, hi):
        return (batch.x_ctx[:, lo:hi], batch.y_ctx[:, lo:hi], {k: v[:, lo:hi] for k, v in batch.meta_ctx.items()},
                batch.mask_ctx[:, lo:hi])

    at_once = condition(*part(0, 90))
    states = condition(*part(0, 7))
    for lo, hi in ((7, 40), (40, 41), (41, 90)):  # uneven pieces, one of a single point
        states = update(states, *part(lo, hi))
    for z_all, z_inc in zip(latents(at_once), latents(states), strict=True):
        np.testing.assert_allclose(z_inc, z_all, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(query(states, batch.x_tgt, batch.meta_tgt),
                               jax.jit(model.apply)(params, *batch.model_inputs()), rtol=1e-4, atol=1e-4)


def test_conditioning_never_materialises_latents_by_context():
    """Memory grows with the context only by its tokens, never by a [heads x latents] score column per point."""
    model = build_model(CONFIG.__class__(**{**CONFIG.__dict__, "num_latents": 256, "num_heads": 4}))
    params = initial_params(model.config, 0)
    fn = jax.jit(functools.partial(model.apply, params, method=cmanp.CMANP.condition))

    def temp_bytes(n):
        meta = {"space": jnp.linspace(0, 1, 2 * n).reshape(1, n, 2)}
        return fn.lower(jnp.zeros((1, n, 0)), jnp.zeros((1, n, 1)), meta, jnp.ones((1, n), bool)).compile() \
            .memory_analysis().temp_size_in_bytes

    per_point = (temp_bytes(16384) - temp_bytes(4096)) / (16384 - 4096)
    score_column = 4 * 4 * 256  # float32 [H=4, L=256]
    assert per_point < score_column / 2, (per_point, score_column)
