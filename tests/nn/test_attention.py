"""Scan (flash) biased attention against the dense reference: values, gradients, masks, edge cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from geonp.errors import GeonpError, InputShapeError, MetadataMismatchError
from geonp.nn.attention import (
    block_size_for,
    dense_biased_attention,
    padded_size,
    scan_biased_attention,
    tasks_per_tile,
)
from geonp.testing import random_attention_inputs

TOL = 1e-5


def _loss_and_grads(impl, q, k, v, params, q_meta, k_meta, bias_fn, mask, **kw):
    def loss(q, k, v, params, q_meta, k_meta):
        out = impl(q, k, v, bias_fn, params, q_meta, k_meta, mask, **kw)
        return jnp.sum(jnp.sin(out) * jnp.cos(0.3 * out)), out

    (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2, 3, 4, 5), has_aux=True)(
        q, k, v, params, q_meta, k_meta)
    return out, grads


def _max_err(a, b):
    return max(float(jnp.max(jnp.abs(x - y))) for x, y in zip(jax.tree_util.tree_leaves(a),
                                                            jax.tree_util.tree_leaves(b), strict=True))


def _max_rel_err(a, b):
    return max(float(jnp.max(jnp.abs(x - y)) / jnp.maximum(1.0, jnp.max(jnp.abs(x))))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


@pytest.mark.parametrize(
    "Nq, Nk, q_block, k_block",
    [(37, 53, 16, 16), (64, 64, 16, 32), (100, 17, 32, 16), (5, 200, 16, 64), (130, 130, 128, 128)],
)
def test_scan_matches_dense_values_and_gradients(Nq, Nk, q_block, k_block):
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(Nq + Nk, 2, Nq, Nk)
    mask = jax.random.uniform(jax.random.PRNGKey(Nq), (2, Nk)) > 0.3  # ragged context
    mask = mask.at[:, 0].set(True)
    dense, g_dense = _loss_and_grads(dense_biased_attention, q, k, v, params, qm, km, bias_fn, mask)
    scan, g_scan = _loss_and_grads(scan_biased_attention, q, k, v, params, qm, km, bias_fn, mask,
                                   q_block=q_block, k_block=k_block)
    assert float(jnp.max(jnp.abs(dense - scan))) <= TOL
    # gradients wrt q, k, v and the bias parameters: absolute 1e-5
    assert _max_err(g_dense[:4], g_scan[:4]) <= TOL
    # wrt the coordinates the gradients are O(10-100): 1e-5 relative to their size
    assert _max_rel_err(g_dense[4:], g_scan[4:]) <= TOL


@pytest.mark.parametrize("batch, tasks_per_group", [(4, 2), (3, 1), (6, 3)])
def test_tasks_walked_in_groups_match_dense_values_and_gradients(batch, tasks_per_group):
    """A tile budget smaller than the batch's tile splits the tasks into groups; nothing else changes."""
    Nq, Nk, q_block, k_block = 40, 24, 16, 16
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(batch, batch, Nq, Nk)
    heads = q.shape[2]
    budget = tasks_per_group * heads * q_block * k_block
    assert tasks_per_tile(batch, heads, q_block, k_block, budget) == tasks_per_group
    mask = jax.random.uniform(jax.random.PRNGKey(batch), (batch, Nk)) > 0.3
    mask = mask.at[:, 0].set(True)
    dense, g_dense = _loss_and_grads(dense_biased_attention, q, k, v, params, qm, km, bias_fn, mask)
    scan, g_scan = _loss_and_grads(scan_biased_attention, q, k, v, params, qm, km, bias_fn, mask,
                                   q_block=q_block, k_block=k_block, tile_budget=budget)
    assert float(jnp.max(jnp.abs(dense - scan))) <= TOL
    assert _max_err(g_dense[:3], g_scan[:3]) <= TOL
    # the bias parameters' gradient sums over every task (O(1-10)); groups change the order of that sum
    assert _max_rel_err(g_dense[3:], g_scan[3:]) <= TOL


def test_tasks_per_tile_divides_the_batch_and_fits_the_budget():
    assert tasks_per_tile(16, 4, 256, 512) == 2  # the training shape: 2 x 4 x 256 x 512 = 2^20 logits
    assert tasks_per_tile(1, 4, 256, 512) == 1
    assert tasks_per_tile(7, 4, 256, 512) == 1  # no divisor of 7 fits but 1
    assert tasks_per_tile(12, 1, 16, 16) == 12  # small tiles: every task in one


def test_no_mask_equals_all_true_mask():
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(0, 1, 20, 30)
    a = scan_biased_attention(q, k, v, bias_fn, params, qm, km, None, q_block=16, k_block=16)
    b = scan_biased_attention(q, k, v, bias_fn, params, qm, km, jnp.ones((1, 30), bool), q_block=16, k_block=16)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_masked_keys_are_ignored_whatever_their_values():
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(1, 1, 24, 40)
    mask = jnp.arange(40)[None] < 25
    out = scan_biased_attention(q, k, v, bias_fn, params, qm, km, mask, q_block=16, k_block=16)
    k2, v2 = k.at[:, 25:].set(1e3), v.at[:, 25:].set(-1e3)
    km2 = {n: m.at[:, 25:].set(7.0) for n, m in km.items()}
    out2 = scan_biased_attention(q, k2, v2, bias_fn, params, qm, km2, mask, q_block=16, k_block=16)
    np.testing.assert_allclose(np.asarray(out), np.asarray(out2), atol=1e-6)
    # and equal to attention over the 25 real keys only
    short = scan_biased_attention(q, k[:, :25], v[:, :25], bias_fn, params, qm,
                                  {n: m[:, :25] for n, m in km.items()}, None, q_block=16, k_block=16)
    np.testing.assert_allclose(np.asarray(out), np.asarray(short), atol=1e-6)


@pytest.mark.parametrize("impl", [dense_biased_attention, scan_biased_attention])
def test_fully_masked_row_gives_zeros_and_finite_gradients(impl):
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(2, 2, 10, 12)
    mask = jnp.ones((2, 12), bool).at[1].set(False)  # task 1 has no real key at all
    out, grads = _loss_and_grads(impl, q, k, v, params, qm, km, bias_fn, mask)
    assert np.all(np.isfinite(np.asarray(out)))
    np.testing.assert_array_equal(np.asarray(out[1]), 0.0)
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(grads))


def test_large_bias_stays_finite_and_matches_dense():
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(3, 1, 33, 47)
    huge = jax.tree_util.tree_map(lambda x: x, params)
    huge["space"]["amplitude"] = huge["space"]["amplitude"] * 0 + 2e3  # 5 basis x 2e3 = 1e4 at d = 0
    huge["time"]["amplitude"] = huge["time"]["amplitude"] * 0 - 3e3
    dense, g_dense = _loss_and_grads(dense_biased_attention, q, k, v, huge, qm, km, bias_fn, None)
    scan, g_scan = _loss_and_grads(scan_biased_attention, q, k, v, huge, qm, km, bias_fn, None,
                                   q_block=16, k_block=16)
    assert np.all(np.isfinite(np.asarray(scan)))
    assert all(np.all(np.isfinite(np.asarray(g))) for g in jax.tree_util.tree_leaves(g_scan))
    assert float(jnp.max(jnp.abs(dense - scan))) <= 1e-4


def test_block_sizes_bucket_small_inputs():
    assert block_size_for(1000, 128) == 128
    assert block_size_for(100, 128) == 128
    assert block_size_for(60, 128) == 64
    assert block_size_for(3, 128) == 16
    assert padded_size(300, 128) == 384
    # context sizes 129..256 all share one padded shape: one compilation
    assert {padded_size(n, block_size_for(n, 128)) for n in range(129, 257)} == {256}


def test_bad_inputs_raise_clear_errors():
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(4, 1, 8, 8)
    with pytest.raises(InputShapeError, match="rank 4"):
        scan_biased_attention(q[0], k, v, bias_fn, params, qm, km)
    with pytest.raises(InputShapeError, match="key_mask"):
        scan_biased_attention(q, k, v, bias_fn, params, qm, km, jnp.ones((1, 7), bool))
    with pytest.raises(MetadataMismatchError, match="one metadata row per point"):
        scan_biased_attention(q, k, v, bias_fn, params, {n: m[:, :5] for n, m in qm.items()}, km)
    with pytest.raises(MetadataMismatchError, match="floating point"):
        scan_biased_attention(q, k, v, bias_fn, params, {n: m.astype(jnp.int32) for n, m in qm.items()}, km)
    with pytest.raises(GeonpError, match="at least one"):
        scan_biased_attention(q, k[:, :0], v[:, :0], bias_fn, params, qm, {n: m[:, :0] for n, m in km.items()})


def test_scan_is_jittable_and_deterministic():
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(5, 2, 50, 70)
    f = jax.jit(lambda q, k, v: scan_biased_attention(q, k, v, bias_fn, params, qm, km, q_block=16, k_block=32))
    np.testing.assert_array_equal(np.asarray(f(q, k, v)), np.asarray(f(q, k, v)))


def _temp_bytes(fn, *args):
    analysis = jax.jit(fn).lower(*args).compile().memory_analysis()
    if analysis is None:
        pytest.skip("this backend gives no memory analysis")
    return analysis.temp_size_in_bytes


def test_scan_working_memory_does_not_grow_with_n_squared():
    """XLA's own count of temporary buffers (compile only, nothing timed)."""
    sizes = {}
    for n in (1024, 4096):
        q, k, v, qm, km, params, bias_fn = random_attention_inputs(0, 1, n, n, H=1, Dh=32)
        scan = lambda q, k, v: scan_biased_attention(q, k, v, bias_fn, params, qm, km, None, 256, 256)
        dense = lambda q, k, v: dense_biased_attention(q, k, v, bias_fn, params, qm, km, None)
        sizes[n] = (_temp_bytes(scan, q, k, v), _temp_bytes(dense, q, k, v))
    assert sizes[4096][1] >= 4096 * 4096 * 4  # dense holds at least one [n, n] float32 matrix
    assert sizes[4096][0] < sizes[4096][1] / 20
    assert sizes[4096][0] < 6 * sizes[1024][0]  # ~linear in n (16x would be quadratic)


def test_scan_gradient_working_memory_does_not_grow_with_n_squared():
    q, k, v, qm, km, params, bias_fn = random_attention_inputs(0, 1, 4096, 4096, H=1, Dh=32)

    def loss(q, k, v):
        return jnp.sum(scan_biased_attention(q, k, v, bias_fn, params, qm, km, None, 256, 256))

    grad_bytes = _temp_bytes(jax.grad(loss, argnums=(0, 1, 2)), q, k, v)
    assert grad_bytes < 4096 * 4096 * 4 / 10  # far below one [n, n] float32 matrix
