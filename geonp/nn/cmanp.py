"""CMANP: the Constant Memory Attentive Neural Process, built from Constant Memory Attention Blocks.

The only operation that touches the context is a cross-attention from a fixed
set of learned latents ``L_B [L, D]`` to the context tokens. With the running
softmax of FlashAttention its result is a sum over context points of a
mergeable state per latent and head,

    m = max_j s_j,   l = sum_j exp(s_j - m),   acc = sum_j exp(s_j - m) v_j,

so it is computed block by block in constant memory, and new points are
**added** by merging their state into the old one: O(new points) time, no
revisit of old data (:func:`merge`). Everything after that acts on L latents
only. One CMAB (pre-norm, residual):

    h = L_B + CrossAttn(LN(L_B), LN(context));  h = h + FF(h);  h = h + SelfAttn(h);  h = h + FF(h)
    z = z + CrossAttn(LN(z), LN(h));            z = z + FF(z);  z = z + SelfAttn(z);  z = z + FF(z)

``z`` starts at learned latents ``L_I`` and passes through the blocks; block i
yields ``z_i``. The decoder's test tokens cross-attend to ``z_i`` in its
layer i. Coordinates are embedded in the tokens (latents have no position),
so a CMANP is not translation invariant. Memory O(L (D + block)) per task
beyond the inputs; time O(N L).

    states  = model.apply(p, x_c, y_c, meta_c, mask_c, method=CMANP.condition)
    states  = model.apply(p, states, x_new, y_new, meta_new, mask_new, method=CMANP.update)
    raw     = model.apply(p, states, x_t, meta_t, method=CMANP.query)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from geonp.nn.blocks import FeedForward
from geonp.nn.config import BSATNPConfig, context_features, target_features


class SoftmaxState(NamedTuple):
    """Running softmax of fixed queries over a growing set of keys: m, l ``[B, H, L]``, acc ``[B, H, L, Dh]``."""

    m: jax.Array
    l: jax.Array  # noqa: E741  (the paper's name)
    acc: jax.Array


def block_state(q, k, v, mask) -> SoftmaxState:
    """State of queries q ``[L, H, Dh]`` over one block of keys k, v ``[B, n, H, Dh]`` (mask ``[B, n]``)."""
    s = jnp.einsum("lhd,bnhd->bhln", q, k) / math.sqrt(q.shape[-1])
    s = jnp.where(mask[:, None, None, :], s, -jnp.inf)
    m = jnp.max(s, axis=-1)  # [B, H, L]
    p = jnp.exp(s - jnp.where(jnp.isfinite(m), m, 0.0)[..., None])
    return SoftmaxState(m, jnp.sum(p, axis=-1), jnp.einsum("bhln,bnhd->bhld", p, v))


def merge(a: SoftmaxState, b: SoftmaxState) -> SoftmaxState:
    """The state over the union of two key sets (associative and commutative)."""
    m = jnp.maximum(a.m, b.m)
    m_safe = jnp.where(jnp.isfinite(m), m, 0.0)
    wa, wb = jnp.exp(a.m - m_safe), jnp.exp(b.m - m_safe)  # 0 for an empty side
    return SoftmaxState(m, a.l * wa + b.l * wb, a.acc * wa[..., None] + b.acc * wb[..., None])


def empty_state(batch: int, q) -> SoftmaxState:
    L, H, Dh = q.shape
    return SoftmaxState(jnp.full((batch, H, L), -jnp.inf, q.dtype), jnp.zeros((batch, H, L), q.dtype),
                        jnp.zeros((batch, H, L, Dh), q.dtype))


def running_state(q, k, v, mask, block: int, state: SoftmaxState | None = None) -> SoftmaxState:
    """Fold keys into ``state`` ``block`` points at a time (``lax.scan``): constant memory in the number of keys."""
    B, n = k.shape[:2]
    state = empty_state(B, q) if state is None else state
    if n == 0:
        return state
    block = min(block, n)
    n_pad = -(-n // block) * block
    pad = ((0, 0), (0, n_pad - n), (0, 0), (0, 0))
    k, v = jnp.pad(k, pad), jnp.pad(v, pad)
    mask = jnp.pad(mask, ((0, 0), (0, n_pad - n)))
    blocks = [jnp.moveaxis(x.reshape((B, n_pad // block, block) + x.shape[2:]), 1, 0) for x in (k, v, mask)]

    def step(carry, kvm):
        return merge(carry, block_state(q, *kvm)), None

    state, _ = jax.lax.scan(step, state, tuple(blocks))
    return state


def finalise(state: SoftmaxState):
    """Attention output ``[B, L, H, Dh]`` (zeros where no key was seen)."""
    out = state.acc / jnp.where(state.l > 0, state.l, 1.0)[..., None]
    return jnp.swapaxes(out, 1, 2)


class MultiHeadAttention(nn.Module):
    """Plain pre-norm multi-head attention with a residual: ``x + Attn(LN(x), LN(context))``."""

    num_heads: int
    head_dim: int

    @nn.compact
    def __call__(self, x, context, mask=None):
        attend = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, qkv_features=self.num_heads * self.head_dim,
                                                 out_features=x.shape[-1], name="attention")
        return x + attend(nn.LayerNorm(name="norm_q")(x), nn.LayerNorm(name="norm_kv")(context), mask=mask)


class Residual(nn.Module):
    """``x + FF(LN(x))``."""

    hidden: int

    @nn.compact
    def __call__(self, x):
        return x + FeedForward(self.hidden, name="feedforward")(nn.LayerNorm(name="norm")(x))


class ConstantMemoryAttentionBlock(nn.Module):
    """One CMAB: its context cross-attention is a mergeable :class:`SoftmaxState`; the rest acts on latents."""

    num_latents: int
    num_heads: int
    head_dim: int
    ff_dim: int
    width: int
    block: int

    def setup(self):
        H, Dh = self.num_heads, self.head_dim
        self.latents = self.param("latents", nn.initializers.normal(1.0), (self.num_latents, self.width))  # L_B
        self.norm_latents = nn.LayerNorm()
        self.norm_context = nn.LayerNorm()
        self.query = nn.Dense(H * Dh)
        self.key = nn.Dense(H * Dh)
        self.value = nn.Dense(H * Dh)
        self.cross_out = nn.Dense(self.width)
        self.context_ff = Residual(self.ff_dim)
        self.context_self = MultiHeadAttention(H, Dh)
        self.context_ff2 = Residual(self.ff_dim)
        self.latent_cross = MultiHeadAttention(H, Dh)
        self.latent_ff = Residual(self.ff_dim)
        self.latent_self = MultiHeadAttention(H, Dh)
        self.latent_ff2 = Residual(self.ff_dim)

    def _queries(self):
        return self.query(self.norm_latents(self.latents)).reshape(self.num_latents, self.num_heads, self.head_dim)

    def state(self, tokens, mask, previous: SoftmaxState | None = None) -> SoftmaxState:
        """Fold context tokens ``[B, n, D]`` (mask ``[B, n]``) into the running cross-attention state."""
        B, n = tokens.shape[:2]
        kv = self.norm_context(tokens)
        k = self.key(kv).reshape(B, n, self.num_heads, self.head_dim)
        v = self.value(kv).reshape(B, n, self.num_heads, self.head_dim)
        return running_state(self._queries(), k, v, mask, self.block, previous)

    def __call__(self, state: SoftmaxState, z):
        """Next latents ``[B, L, D]`` from the context state and the incoming latents z ``[B, L, D]``."""
        B = z.shape[0]
        attended = finalise(state).reshape(B, self.num_latents, self.num_heads * self.head_dim)
        h = self.latents[None] + self.cross_out(attended)  # [B, L, D]
        h = self.context_ff(h)
        h = self.context_ff2(self.context_self(h, h))
        z = self.latent_ff(self.latent_cross(z, h))
        return self.latent_ff2(self.latent_self(z, z))


class CMANP(nn.Module):
    """Constant Memory Attentive Neural Process; same call signature as :class:`geonp.nn.models.BSATNP`."""

    config: BSATNPConfig

    def setup(self):
        cfg = self.config
        self.embed = nn.Sequential([nn.Dense(cfg.width), nn.gelu, nn.Dense(cfg.width)])
        self.initial_latents = self.param("initial_latents", nn.initializers.normal(1.0),
                                          (cfg.num_latents, cfg.width))  # L_I
        self.blocks = [ConstantMemoryAttentionBlock(cfg.num_latents, cfg.num_heads, cfg.head_dim, cfg.ff_dim,
                                                    cfg.width, cfg.cmab_block) for _ in range(cfg.num_blocks)]
        self.decoder_cross = [MultiHeadAttention(cfg.num_heads, cfg.head_dim) for _ in range(cfg.num_blocks)]
        self.decoder_ff = [Residual(cfg.ff_dim) for _ in range(cfg.num_blocks)]
        self.norm_head = nn.LayerNorm()
        self.head_hidden = nn.Dense(cfg.width)
        self.head_out = nn.Dense(cfg.likelihood.num_outputs * cfg.y_dim)

    def condition(self, x_ctx, y_ctx, meta_ctx, mask_ctx, states=None) -> list[SoftmaxState]:
        """One :class:`SoftmaxState` per block from the context (or added to ``states``)."""
        tokens = self.embed(context_features(self.config, x_ctx, y_ctx, meta_ctx, mask_ctx))  # [B, Nc, D]
        states = states or [None] * len(self.blocks)
        return [block.state(tokens, mask_ctx, s) for block, s in zip(self.blocks, states, strict=True)]

    def update(self, states, x_new, y_new, meta_new, mask_new) -> list[SoftmaxState]:
        """Add new context points: O(new points), the old ones are never revisited."""
        return self.condition(x_new, y_new, meta_new, mask_new, states)

    def latents(self, states) -> list:
        """The latents ``z_i [B, L, D]`` of every block."""
        B = states[0].m.shape[0]
        z = jnp.broadcast_to(self.initial_latents[None], (B,) + self.initial_latents.shape)
        out = []
        for block, state in zip(self.blocks, states, strict=True):
            z = block(state, z)
            out.append(z)
        return out

    def query(self, states, x_tgt, meta_tgt):
        """Raw likelihood parameters ``[B, Nt, num_outputs * y_dim]`` at the test points."""
        t = self.embed(target_features(self.config, x_tgt, meta_tgt))  # [B, Nt, D]
        for z, cross, ff in zip(self.latents(states), self.decoder_cross, self.decoder_ff, strict=True):
            t = ff(cross(t, z))
        h = nn.gelu(self.head_hidden(self.norm_head(t)))
        return self.head_out(h)

    def __call__(self, x_ctx, y_ctx, meta_ctx, mask_ctx, x_tgt, meta_tgt):
        return self.query(self.condition(x_ctx, y_ctx, meta_ctx, mask_ctx), x_tgt, meta_tgt)
