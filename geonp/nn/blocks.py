"""Transformer pieces: biased multi-head attention, Deep Kernel Attention, feed-forward, Kernel Regression Block."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from geonp.nn import attention as attention_lib
from geonp.nn import bias as bias_lib
from geonp.nn import quadratic_bias
from geonp.nn import random_features as rf


def concat_points(trees: Sequence):
    """Concatenate pytrees of ``[B, N, ...]`` arrays along the point axis."""
    return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs, axis=1), *trees)


def query_key_heads(x_q, x_kv, num_heads: int, head_dim: int):
    """Linear query and key projections split into heads (call inside a compact module)."""
    q = nn.Dense(num_heads * head_dim, name="query")(x_q)
    k = nn.Dense(num_heads * head_dim, name="key")(x_kv)
    return (q.reshape(x_q.shape[:2] + (num_heads, head_dim)), k.reshape(x_kv.shape[:2] + (num_heads, head_dim)))


class BiasedMultiHeadAttention(nn.Module):
    """softmax(q k^T / sqrt(Dh) + bias(meta_q, meta_k)) v over H heads.

    The bias is one of the families of :func:`geonp.nn.bias.bias_family`
    (``"quadratic"`` BSA-TNP default, folded into q k^T; ``"rbf-per-head"``,
    ``"kernel"`` TNP-KR, ``"gaussian"``, ``"none"`` TNP-D); coordinates reach the
    model only through it. ``implementation`` is ``"scan"`` (constant memory)
    or ``"dense"`` (the O(Nq Nk) reference).
    """

    num_heads: int
    head_dim: int
    groups: tuple[bias_lib.CoordinateGroup, ...]
    implementation: str = "scan"
    q_block: int = 128
    k_block: int = 128
    bias: str = "quadratic"
    kernels: tuple[str, ...] = ()

    @nn.compact
    def __call__(self, x_q, x_kv, meta_q, meta_kv, key_mask):
        # x_q [B, Nq, D], x_kv [B, Nk, D], meta_* prepared metadata, key_mask [B, Nk]
        width, (B, Nq), H, Dh = x_q.shape[-1], x_q.shape[:2], self.num_heads, self.head_dim
        q, k = query_key_heads(x_q, x_kv, H, Dh)  # [B, Nq, H, Dh], [B, Nk, H, Dh]
        v = nn.Dense(H * Dh, name="value")(x_kv).reshape(k.shape)
        init_bias, bias_fn, _ = bias_lib.bias_family(self.bias, self.kernels)
        bias_params = self.param("distance_bias", lambda key: init_bias(key, self.groups, H))
        bias_fn = functools.partial(bias_fn, groups=self.groups)
        if self.bias in bias_lib.FOLDED:
            # [B, N, H, Dh + C + 1]: the bias rides in the q k^T product; v keeps Dh channels
            q, k = quadratic_bias.fold(q, k, bias_params, meta_q, meta_kv, key_mask, self.groups)
            bias_fn, bias_params = bias_lib.no_bias, {}
        attend = attention_lib.IMPLEMENTATIONS[self.implementation]
        kwargs = {"q_block": self.q_block, "k_block": self.k_block} if self.implementation == "scan" else {}
        out = attend(q, k, v, bias_fn, bias_params, meta_q, meta_kv, key_mask, **kwargs)  # [B, Nq, H, Dh]
        return nn.Dense(width, name="out")(out.reshape(B, Nq, H * Dh))  # [B, Nq, D]


def feature_coordinates(groups, meta, gamma_params):
    """Coordinates ``[B, N, C]`` in each group's distance units and gamma ``[H, C]`` per column.

    Great-circle groups use unit vectors times the radius: chord length, which is
    within 1% of the arc up to 0.49 rad (3,100 km on the Earth).
    """
    coords, gammas = [], []
    for g in groups:
        c = meta[g.name] * (g.radius if g.metric == "great_circle" else 1.0)
        gamma = jax.nn.softplus(gamma_params[g.name]["gamma_raw"])  # [H]
        coords.append(c)
        gammas.append(jnp.repeat(gamma[:, None], c.shape[-1], axis=1))
    return jnp.concatenate(coords, axis=-1), jnp.concatenate(gammas, axis=-1)


class DeepKernelAttention(nn.Module):
    """Deep Kernel Attention (TNP-KR): linear-cost attention with a distance bias.

    Queries and keys are linear projections, values a two-layer MLP of the
    tokens; the Gaussian distance bias ``-gamma_h d^2`` is folded into positive
    orthogonal random features (:mod:`geonp.nn.random_features`), and the
    output is layer-normalised per head instead of divided by the softmax
    denominator. Cost O((Nq + Nk) m Dh); the ``m`` features are fixed (a
    deterministic draw per layer, ``feature_seed``), so the model is a plain function.
    """

    num_heads: int
    head_dim: int
    groups: tuple[bias_lib.CoordinateGroup, ...]
    num_features: int = 64
    feature_seed: int = 0

    @nn.compact
    def __call__(self, x_q, x_kv, meta_q, meta_kv, key_mask):
        width, (B, Nq), H, Dh = x_q.shape[-1], x_q.shape[:2], self.num_heads, self.head_dim
        q, k = query_key_heads(x_q, x_kv, H, Dh)  # [B, Nq, H, Dh], [B, Nk, H, Dh]
        v = nn.Dense(H * Dh, name="value_out")(nn.gelu(nn.Dense(H * Dh, name="value_hidden")(x_kv)))
        v = v.reshape(k.shape)  # a two-layer value projection
        gamma_params = self.param("distance_bias", lambda key: bias_lib.init_gaussian_bias(key, self.groups, H))
        q_coords, gamma = feature_coordinates(self.groups, meta_q, gamma_params)  # [B, Nq, C], [H, C]
        k_coords, _ = feature_coordinates(self.groups, meta_kv, gamma_params)
        w = rf.orthogonal_gaussian(jax.random.PRNGKey(self.feature_seed), self.num_features, Dh + gamma.shape[-1])
        num, _ = rf.random_feature_attention(q, k, v, q_coords, k_coords, gamma, w, key_mask)  # [B, Nq, H, Dh]
        out = nn.LayerNorm(name="normaliser")(num)  # per head, over Dh: replaces the softmax denominator
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
    implementation: str = "scan"  # "scan", "dense" or "performer" (Deep Kernel Attention)
    q_block: int = 128
    k_block: int = 128
    bias: str = "quadratic"
    kernels: tuple[str, ...] = ()
    num_features: int = 64
    feature_seed: int = 0

    @nn.compact
    def __call__(self, ctx, tgt, meta_ctx, meta_tgt, mask_ctx):
        # ctx [B, Nc, D], tgt [B, Nt, D]
        if self.implementation == "performer":
            attend = DeepKernelAttention(self.num_heads, self.head_dim, self.groups, self.num_features,
                                         self.feature_seed, name="attention")
        else:
            attend = BiasedMultiHeadAttention(
                self.num_heads, self.head_dim, self.groups, self.implementation, self.q_block,
                self.k_block, self.bias, self.kernels, name="attention",
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
