"""Transformer pieces: biased multi-head attention, feed-forward, Kernel Regression Block."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from geonp.nn import attention as attention_lib
from geonp.nn import bias as bias_lib


def concat_points(trees: Sequence):
    """Concatenate pytrees of ``[B, N, ...]`` arrays along the point axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *trees)


class BiasedMultiHeadAttention(nn.Module):
    """softmax(q k^T / sqrt(Dh) + bias(meta_q, meta_k)) v over H heads.

    The bias is the RBF distance bias of :mod:`geonp.nn.bias`; coordinates
    reach the model only through it.
    """

    num_heads: int
    head_dim: int
    groups: tuple[bias_lib.CoordinateGroup, ...]
    implementation: str = "scan"
    q_block: int = 128
    k_block: int = 128

    @nn.compact
    def __call__(self, x_q, x_kv, meta_q, meta_kv, key_mask):
        # x_q [B, Nq, D], x_kv [B, Nk, D], meta_* prepared metadata, key_mask [B, Nk]
        width = x_q.shape[-1]
        B, Nq = x_q.shape[:2]
        Nk = x_kv.shape[1]
        H, Dh = self.num_heads, self.head_dim
        q = nn.Dense(H * Dh, name="query")(x_q).reshape(B, Nq, H, Dh)
        k = nn.Dense(H * Dh, name="key")(x_kv).reshape(B, Nk, H, Dh)
        v = nn.Dense(H * Dh, name="value")(x_kv).reshape(B, Nk, H, Dh)
        bias_params = self.param(
            "distance_bias", lambda key: bias_lib.init_rbf_bias(key, self.groups, H)
        )
        bias_fn = functools.partial(bias_lib.rbf_bias, groups=self.groups)
        if self.implementation == "scan":
            out = attention_lib.scan_biased_attention(
                q, k, v, bias_fn, bias_params, meta_q, meta_kv, key_mask,
                q_block=self.q_block, k_block=self.k_block,
            )
        else:
            out = attention_lib.dense_biased_attention(q, k, v, bias_fn, bias_params, meta_q, meta_kv, key_mask)
        return nn.Dense(width, name="out")(out.reshape(B, Nq, H * Dh))  # [B, Nq, D]


class FeedForward(nn.Module):
    hidden: int

    @nn.compact
    def __call__(self, x):
        width = x.shape[-1]
        return nn.Dense(width)(nn.gelu(nn.Dense(self.hidden)(x)))


class KernelRegressionBlock(nn.Module):
    """One Kernel Regression Block (pre-norm).

    Test tokens attend to context tokens, and context tokens to context
    tokens, through **one shared attention** (same projections, same bias
    parameters) and one shared feed-forward:

        c' = c + Attn(LN(c), LN(c)),     t' = t + Attn(LN(t), LN(c))
        c'' = c' + FF(LN(c')),           t'' = t' + FF(LN(t'))

    Test points never attend to each other, so they are independent given the
    context and the cost is O(nc^2 + nc nt). The last block passes
    ``update_context=False``: its context update would never be read.
    """

    num_heads: int
    head_dim: int
    ff_dim: int
    groups: tuple[bias_lib.CoordinateGroup, ...]
    update_context: bool = True
    implementation: str = "scan"
    q_block: int = 128
    k_block: int = 128

    @nn.compact
    def __call__(self, ctx, tgt, meta_ctx, meta_tgt, mask_ctx):
        # ctx [B, Nc, D], tgt [B, Nt, D]
        attend = BiasedMultiHeadAttention(
            self.num_heads, self.head_dim, self.groups, self.implementation, self.q_block,
            self.k_block, name="attention",
        )
        norm_attn = nn.LayerNorm(name="norm_attention")
        norm_ff = nn.LayerNorm(name="norm_feedforward")
        feed_forward = FeedForward(self.ff_dim, name="feedforward")

        kv = norm_attn(ctx)
        if self.update_context:
            # one call for both query sets: [ctx; tgt] attend to ctx
            tokens = jnp.concatenate([ctx, tgt], axis=1)  # [B, Nc + Nt, D]
            queries = jnp.concatenate([kv, norm_attn(tgt)], axis=1)
            meta_q = concat_points([meta_ctx, meta_tgt])
        else:
            tokens, queries, meta_q = tgt, norm_attn(tgt), meta_tgt
        tokens = tokens + attend(queries, kv, meta_q, meta_ctx, mask_ctx)
        tokens = tokens + feed_forward(norm_ff(tokens))
        if self.update_context:
            n_ctx = ctx.shape[1]
            return tokens[:, :n_ctx], tokens[:, n_ctx:]
        return ctx, tokens
