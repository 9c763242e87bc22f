"""Biased attention: softmax(q k^T / sqrt(d) + bias) v, dense and tile by tile.

The bias between query i and key j is computed on the fly from per-point
metadata (coordinates, time, ...) by ``bias_fn(bias_params, q_meta, k_meta)``,
which returns a tile ``[B, H, Tq, Tk]`` from metadata tiles (pytrees whose
leaves are ``[B, Tq, ...]`` and ``[B, Tk, ...]``).

:func:`dense_biased_attention` materialises the full ``[B, H, Nq, Nk]`` logits
and is the reference. :func:`scan_biased_attention` never does: it walks over
query blocks (``lax.map``) and, inside, over key blocks (``lax.scan``), keeping
the running max ``m``, the running normaliser ``l`` and the output accumulator
``acc`` (FlashAttention), and its custom VJP recomputes the tiles in the
backward pass, so memory grows linearly with Nq + Nk, never with Nq * Nk.
On a CPU the tasks of a batch are walked in groups small enough for a tile to
stay in cache (:func:`tasks_per_tile`).

Shapes: q and k ``[B, Nq|Nk, H, Dh]``, v ``[B, Nk, H, Dv]`` (Dv = Dh unless the
bias is folded into q and k, see ``geonp.nn.quadratic_bias``), key_mask ``[B, Nk]``
(True where the key is a real, observed point). A query whose keys are all
masked gets a zero output (not NaN).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from geonp.errors import InputShapeError, MetadataMismatchError, describe_shape

BiasFn = Callable  # (bias_params, q_meta, k_meta) -> [B, H, Tq, Tk]


# --------------------------------------------------------------------------- checks


def _check_inputs(q, k, v, q_meta, k_meta, key_mask):
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise InputShapeError(
            f"attention expects q, k, v of rank 4 [batch, points, heads, head_dim]; got "
            f"q {describe_shape(q)}, k {describe_shape(k)}, v {describe_shape(v)}. "
            "Reshape projections to [B, N, H, Dh] before calling."
        )
    B, Nq, H, Dh = q.shape
    if k.shape[0] != B or k.shape[2:] != (H, Dh) or v.shape[:3] != k.shape[:3]:
        raise InputShapeError(
            f"k must be [B={B}, Nk, H={H}, Dh={Dh}] like q and v [B={B}, Nk, H={H}, Dv]; got "
            f"k {describe_shape(k)}, v {describe_shape(v)}."
        )
    if Nq == 0 or k.shape[1] == 0:
        raise InputShapeError(
            f"attention needs at least one query and one key point; got Nq={Nq}, Nk={k.shape[1]}."
        )
    Nk = k.shape[1]
    for name, meta, n in (("q_meta", q_meta, Nq), ("k_meta", k_meta, Nk)):
        for leaf in jax.tree_util.tree_leaves(meta):
            if leaf.shape[:2] != (B, n):
                raise MetadataMismatchError(
                    f"{name} leaf has shape {describe_shape(leaf)} but must start with "
                    f"[B={B}, N={n}] to match its points. Pass one metadata row per point."
                )
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise MetadataMismatchError(
                    f"{name} leaf has dtype {leaf.dtype}; metadata must be floating point. "
                    "Convert coordinates with .astype('float32')."
                )
    if jax.tree_util.tree_structure(q_meta) != jax.tree_util.tree_structure(k_meta):
        raise MetadataMismatchError(
            "q_meta and k_meta must have the same structure (same coordinate groups); got "
            f"{jax.tree_util.tree_structure(q_meta)} and {jax.tree_util.tree_structure(k_meta)}."
        )
    if key_mask is not None and key_mask.shape != (B, Nk):
        raise InputShapeError(
            f"key_mask must be [B={B}, Nk={Nk}] (True for real keys); got {describe_shape(key_mask)}."
        )


# --------------------------------------------------------------------------- dense reference


def dense_biased_attention(q, k, v, bias_fn: BiasFn, bias_params, q_meta, k_meta, key_mask=None):
    """Reference biased attention, materialising ``[B, H, Nq, Nk]``. Returns ``[B, Nq, H, Dh]``."""
    _check_inputs(q, k, v, q_meta, k_meta, key_mask)
    scale = 1.0 / math.sqrt(q.shape[-1])
    s = jnp.einsum("bqhd,bkhd->bhqk", q, k) * scale + bias_fn(bias_params, q_meta, k_meta)
    if key_mask is not None:
        s = jnp.where(key_mask[:, None, None, :], s, -jnp.inf)
    m = jnp.max(s, axis=-1, keepdims=True)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    p = jnp.exp(s - m)  # [B, H, Nq, Nk]
    l = jnp.sum(p, axis=-1, keepdims=True)
    p = p / jnp.where(l > 0, l, 1.0)
    return jnp.einsum("bhqk,bkhd->bqhd", p, v)


# --------------------------------------------------------------------------- tiling helpers


def block_size_for(n: int, block: int, minimum: int = 16) -> int:
    """Tile size for n points: ``block``, or the next power of two >= n when n is smaller.

    Padding n to a multiple of this size means a model sees only a few distinct
    shapes as context sizes vary, so jit does not recompile for every size.
    """
    if n >= block:
        return block
    return max(minimum, 1 << max(n - 1, 0).bit_length())


def padded_size(n: int, block: int) -> int:
    return -(-n // block) * block


def _pad_points(x, n_pad: int):
    """Pad axis 1 to n_pad by repeating the last point (keeps metadata in range)."""
    extra = n_pad - x.shape[1]
    if extra == 0:
        return x
    widths = [(0, 0)] * x.ndim
    widths[1] = (0, extra)
    return jnp.pad(x, widths, mode="edge")


def _to_blocks(x, block: int):
    """``[B, N, ...]`` -> ``[N / block, B, block, ...]``."""
    B, N = x.shape[:2]
    x = x.reshape((B, N // block, block) + x.shape[2:])
    return jnp.moveaxis(x, 1, 0)


def _from_blocks(x):
    """``[nb, B, block, ...]`` -> ``[B, nb * block, ...]``."""
    x = jnp.moveaxis(x, 0, 1)
    return x.reshape((x.shape[0], x.shape[1] * x.shape[2]) + x.shape[3:])


def _tree_blocks(tree, block):
    return jax.tree_util.tree_map(lambda x: _to_blocks(x, block), tree)


def _tree_unblocks(tree):
    return jax.tree_util.tree_map(_from_blocks, tree)


# --------------------------------------------------------------------------- the tile


def _tile_logits(bias_fn, bias_params, qi, kj, qmi, kmj, maskj, scale):
    """Logits of one tile ``[B, H, tq, tk]``, -inf where the key is masked."""
    s = jnp.einsum("bqhd,bkhd->bhqk", qi, kj) * scale + bias_fn(bias_params, qmi, kmj)
    return jnp.where(maskj[:, None, None, :] > 0, s, -jnp.inf)


# --------------------------------------------------------------------------- forward


def _flash_forward(bias_fn, q_block, k_block, q, k, v, bias_params, q_meta, k_meta, key_mask):
    """Returns out ``[B, Nq, H, Dh]`` and the log-sum-exp ``[B, H, Nq]`` (+inf on empty rows)."""
    B, Nq, H, Dh = q.shape
    Dv = v.shape[-1]
    scale = 1.0 / math.sqrt(Dh)
    k_blocks = (_to_blocks(k, k_block), _to_blocks(v, k_block), _tree_blocks(k_meta, k_block),
                _to_blocks(key_mask, k_block))

    def one_query_block(args):
        qi, qmi = args  # [B, tq, H, Dh], metadata tile

        def over_keys(carry, kv):
            m, l, acc = carry  # [B, H, tq], [B, H, tq], [B, H, tq, Dh]
            kj, vj, kmj, maskj = kv
            s = _tile_logits(bias_fn, bias_params, qi, kj, qmi, kmj, maskj, scale)
            m_new = jnp.maximum(m, jnp.max(s, axis=-1))
            m_safe = jnp.where(jnp.isfinite(m_new), m_new, 0.0)  # all keys masked so far
            p = jnp.exp(s - m_safe[..., None])  # [B, H, tq, tk]
            rescale = jnp.exp(m - m_safe)  # 0 when m = -inf
            l = l * rescale + jnp.sum(p, axis=-1)
            acc = acc * rescale[..., None] + jnp.einsum("bhqk,bkhd->bhqd", p, vj.astype(p.dtype))
            return (m_new, l, acc), None

        tq = qi.shape[1]
        acc_dtype = jnp.promote_types(q.dtype, jnp.float32)  # accumulate bf16 inputs in float32
        init = (
            jnp.full((B, H, tq), -jnp.inf, acc_dtype),
            jnp.zeros((B, H, tq), acc_dtype),
            jnp.zeros((B, H, tq, Dv), acc_dtype),
        )
        (m, l, acc), _ = lax.scan(over_keys, init, k_blocks)
        nonempty = l > 0
        out = acc / jnp.where(nonempty, l, 1.0)[..., None]  # [B, H, tq, Dh]
        lse = jnp.where(nonempty, jnp.where(jnp.isfinite(m), m, 0.0) + jnp.log(jnp.where(nonempty, l, 1.0)),
                        jnp.inf)
        return jnp.swapaxes(out, 1, 2).astype(q.dtype), lse  # [B, tq, H, Dv], [B, H, tq]

    out_b, lse_b = lax.map(one_query_block, (_to_blocks(q, q_block), _tree_blocks(q_meta, q_block)))
    out = _from_blocks(out_b)  # [B, Nq, H, Dv]
    lse = jnp.moveaxis(lse_b, 0, 2).reshape(B, H, Nq)  # [nq, B, H, tq] -> [B, H, Nq]
    return out, lse


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _flash(bias_fn, q_block, k_block, q, k, v, bias_params, q_meta, k_meta, key_mask):
    return _flash_forward(bias_fn, q_block, k_block, q, k, v, bias_params, q_meta, k_meta, key_mask)[0]


def _flash_fwd(bias_fn, q_block, k_block, q, k, v, bias_params, q_meta, k_meta, key_mask):
    out, lse = _flash_forward(bias_fn, q_block, k_block, q, k, v, bias_params, q_meta, k_meta, key_mask)
    return out, (q, k, v, bias_params, q_meta, k_meta, key_mask, out, lse)


# --------------------------------------------------------------------------- backward


def _flash_bwd(bias_fn, q_block, k_block, residuals, d_out):
    """Recompute each tile's probabilities P = exp(S - lse) and accumulate the gradients.

    With dP = dO V^T and D = rowsum(dO * O): dS = P * (dP - D), then
    dQ = dS K / sqrt(d), dK = dS^T Q / sqrt(d), dV = P^T dO, and the bias
    parameters and metadata receive the VJP of bias_fn applied to dS.
    Outer scan over key blocks (dK, dV accumulate in the inner carry), inner
    scan over query blocks (dQ is emitted per tile and summed by the outer carry).
    """
    q, k, v, bias_params, q_meta, k_meta, key_mask, out, lse = residuals
    B, Nq, H, Dh = q.shape
    scale = 1.0 / math.sqrt(Dh)
    delta = jnp.einsum("bqhd,bqhd->bhq", d_out, out)  # D: [B, H, Nq]

    def heads_blocks(x):  # [B, H, Nq] -> [nq, B, H, tq]
        return jnp.moveaxis(x.reshape(B, H, Nq // q_block, q_block), 2, 0)

    q_side = (_to_blocks(q, q_block), _to_blocks(d_out, q_block), heads_blocks(lse),
              heads_blocks(delta), _tree_blocks(q_meta, q_block))
    k_side = (_to_blocks(k, k_block), _to_blocks(v, k_block), _tree_blocks(k_meta, k_block),
              _to_blocks(key_mask, k_block))

    zeros_like = functools.partial(jax.tree_util.tree_map, jnp.zeros_like)

    def one_key_block(outer, kv):
        dq_acc, dqm_acc, dparams_acc = outer
        kj, vj, kmj, maskj = kv

        def over_queries(inner, qs):
            dk, dv, dkm, dparams = inner
            qi, doi, lsei, deltai, qmi = qs

            def logits(params, qm, km):
                return _tile_logits(bias_fn, params, qi, kj, qm, km, maskj, scale)

            s, logits_vjp = jax.vjp(logits, bias_params, qmi, kmj)  # [B, H, tq, tk]
            p = jnp.exp(s - lsei[..., None])
            dv = dv + jnp.einsum("bhqk,bqhd->bkhd", p, doi)
            dp = jnp.einsum("bqhd,bkhd->bhqk", doi, vj)
            ds = p * (dp - deltai[..., None])
            dqi = jnp.einsum("bhqk,bkhd->bqhd", ds, kj) * scale
            dk = dk + jnp.einsum("bhqk,bqhd->bkhd", ds, qi) * scale
            # the bias enters the logits additively, so its cotangent is dS as well
            d_params, dqmi, dkm_t = logits_vjp(ds)
            dkm = jax.tree_util.tree_map(jnp.add, dkm, dkm_t)
            dparams = jax.tree_util.tree_map(jnp.add, dparams, d_params)
            return (dk, dv, dkm, dparams), (dqi, dqmi)

        inner0 = (jnp.zeros_like(kj), jnp.zeros_like(vj), zeros_like(kmj), dparams_acc)
        (dk, dv, dkm, dparams_acc), (dq_tiles, dqm_tiles) = lax.scan(over_queries, inner0, q_side)
        dq_acc = dq_acc + dq_tiles
        dqm_acc = jax.tree_util.tree_map(jnp.add, dqm_acc, dqm_tiles)
        return (dq_acc, dqm_acc, dparams_acc), (dk, dv, dkm)

    outer0 = (jnp.zeros_like(q_side[0]), zeros_like(q_side[4]), zeros_like(bias_params))
    (dq_b, dqm_b, d_params), (dk_b, dv_b, dkm_b) = lax.scan(one_key_block, outer0, k_side)
    return (_from_blocks(dq_b), _from_blocks(dk_b), _from_blocks(dv_b), d_params,
            _tree_unblocks(dqm_b), _tree_unblocks(dkm_b), jnp.zeros_like(key_mask))


_flash.defvjp(_flash_fwd, _flash_bwd)


# --------------------------------------------------------------------------- public scan version


TILE_LOGITS_BUDGET = 1 << 20
"""Logits per tile (4 MB in float32): tasks are grouped so a tile ``[b, H, tq, tk]`` stays within it.

A tile that holds every task of a training batch (16 x 4 heads x 256 x 512 = 33 MB) overflows the
CPU's last-level cache, and every pass over it (max, exp, sum, the two matmuls, and again in the
backward pass) goes to memory; tiles of two such tasks stay in cache. Forward and backward of one
training-shaped call: 201 -> 137 ms on 2 cores (benchmarks/RESULTS.md, issue 11). CPU only: an
accelerator needs every task of the batch at once to keep its cores busy, so there the budget is off.
"""


def tasks_per_tile(batch: int, heads: int, tq: int, tk: int, budget: int = TILE_LOGITS_BUDGET) -> int:
    """The largest divisor of ``batch`` whose tile ``[b, heads, tq, tk]`` fits in ``budget`` logits (at least 1)."""
    fit = max(1, budget // max(1, heads * tq * tk))
    return max(b for b in range(1, min(batch, fit) + 1) if batch % b == 0)


def scan_biased_attention(q, k, v, bias_fn: BiasFn, bias_params, q_meta, k_meta, key_mask=None,
                          q_block: int = 512, k_block: int = 512, tile_budget: int | None = None):
    """Biased attention in constant memory per tile. Same result as :func:`dense_biased_attention`.

    Args:
        q: ``[B, Nq, H, Dh]`` queries; k, v: ``[B, Nk, H, Dh]``.
        bias_fn: ``(bias_params, q_meta_tile, k_meta_tile) -> [B, H, tq, tk]``; must be a
            static (hashable) function of its arguments.
        bias_params: pytree of arrays (differentiable).
        q_meta, k_meta: pytrees of floating arrays ``[B, N, ...]`` (differentiable).
        key_mask: ``[B, Nk]`` bool, True for real keys; None means all keys are real.
        q_block, k_block: tile sizes; inputs are padded to tile multiples (smaller
            inputs to the next power of two) so that few distinct shapes are compiled.
        tile_budget: logits per tile (None: :data:`TILE_LOGITS_BUDGET` on a CPU, the whole
            batch on an accelerator); the batch is walked in groups of :func:`tasks_per_tile`
            tasks so that a tile stays in cache.

    Returns:
        ``[B, Nq, H, Dh]``.
    """
    _check_inputs(q, k, v, q_meta, k_meta, key_mask)
    B, Nq, H = q.shape[:3]
    Nk = k.shape[1]
    tq, tk = block_size_for(Nq, q_block), block_size_for(Nk, k_block)
    nq_pad, nk_pad = padded_size(Nq, tq), padded_size(Nk, tk)
    mask = jnp.ones((B, Nk), q.dtype) if key_mask is None else key_mask.astype(q.dtype)
    pad_q = lambda x: _pad_points(x, nq_pad)  # noqa: E731
    pad_k = lambda x: _pad_points(x, nk_pad)  # noqa: E731
    inputs = (pad_q(q), pad_k(k), pad_k(v), jax.tree_util.tree_map(pad_q, q_meta),
              jax.tree_util.tree_map(pad_k, k_meta),
              jnp.pad(mask, ((0, 0), (0, nk_pad - Nk))))  # padded keys are masked out

    def attend(group):
        q_, k_, v_, q_meta_, k_meta_, mask_ = group
        return _flash(bias_fn, tq, tk, q_, k_, v_, bias_params, q_meta_, k_meta_, mask_)

    if tile_budget is None:
        tile_budget = TILE_LOGITS_BUDGET if jax.default_backend() == "cpu" else B * H * tq * tk
    b = tasks_per_tile(B, H, tq, tk, tile_budget)
    if b == B:
        out = attend(inputs)
    else:  # [B, ...] -> [B / b, b, ...], one group of tasks after another
        groups = jax.tree_util.tree_map(lambda x: x.reshape((B // b, b) + x.shape[1:]), inputs)
        out = lax.map(attend, groups)
        out = out.reshape((B,) + out.shape[2:])
    return out[:, :Nq]


IMPLEMENTATIONS = {"scan": scan_biased_attention, "dense": dense_biased_attention}
