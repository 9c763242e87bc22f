"""The BSA-TNP: a Transformer Neural Process of Kernel Regression Blocks with biased scan attention.

Tokens (coordinates are *not* in them; they act only through the attention bias):

    context point:  [1, encode(y), x_covariates]     (encode: the likelihood's, e.g. empirical logit)
    test point:     [0, 0,         x_covariates]

(observation first, covariates last: a model warm-started from one without
covariates keeps its embedding rows, see ``geonp.training.warm_start``.)

    tokens -> embed -> KRB x L -> head -> likelihood parameters per test point
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import flax.linen as nn
import jax.numpy as jnp

from geonp.errors import ConfigError, reject_unknown_fields
from geonp.nn import bias as bias_lib
from geonp.nn import likelihoods
from geonp.nn.blocks import KernelRegressionBlock


def default_groups(spatial_dim: int = 2, temporal: bool = False, spatial_metric: str = "euclidean"):
    groups = [bias_lib.CoordinateGroup("space", spatial_dim, spatial_metric, num_basis=5)]
    if temporal:
        groups.append(bias_lib.CoordinateGroup("time", 1, "euclidean", num_basis=3))
    return tuple(groups)


@dataclasses.dataclass(frozen=True)
class BSATNPConfig:
    """Hyperparameters of a BSA-TNP. Defaults are the reference sizes (about 0.5M parameters)."""

    x_dim: int = 0  # covariates per point (elevation, ...), embedded in the tokens
    y_dim: int = 1  # output dimensions per point (a binomial observation (k, n) is one output of 2 columns)
    groups: tuple[bias_lib.CoordinateGroup, ...] = default_groups()
    num_blocks: int = 6
    width: int = 64
    num_heads: int = 4
    head_dim: int = 32
    ff_dim: int = 256
    likelihood: likelihoods.Normal = likelihoods.Normal()  # any head from geonp.nn.likelihoods
    attention: str = "scan"  # "scan" (constant memory) or "dense" (reference)
    q_block: int = 128
    k_block: int = 128
    embed_coordinates: bool = False  # also put raw coordinates in the tokens (breaks invariance)

    def __post_init__(self):
        checks = {
            "num_blocks": self.num_blocks >= 1, "width": self.width >= 1,
            "num_heads": self.num_heads >= 1, "head_dim": self.head_dim >= 1,
            "ff_dim": self.ff_dim >= 1, "y_dim": self.y_dim >= 1, "x_dim": self.x_dim >= 0,
            "q_block": self.q_block >= 1, "k_block": self.k_block >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"BSATNPConfig: {', '.join(bad)} out of range; sizes must be positive "
                              "(x_dim may be 0).")
        if self.attention not in ("scan", "dense"):
            raise ConfigError(f"attention must be 'scan' or 'dense', got {self.attention!r}.")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(f"coordinate groups need distinct names and at least one group; got {names}.")
        # accept a name or dict too, so BSATNPConfig(likelihood="normal") works
        object.__setattr__(self, "likelihood", likelihoods.get_likelihood(self.likelihood))

    @property
    def y_columns(self) -> int:
        """Columns of an observation ``y``: output dims x the likelihood's columns (2 for (k, n))."""
        return self.y_dim * self.likelihood.observation_columns

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["groups"] = [g.to_dict() for g in self.groups]
        d["likelihood"] = self.likelihood.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> BSATNPConfig:
        d = dict(d)
        reject_unknown_fields(cls, d, "BSATNPConfig")
        d["groups"] = tuple(bias_lib.CoordinateGroup.from_dict(g) for g in d.get("groups", ()))
        return cls(**d)


class BSATNP(nn.Module):
    """Biased Scan Attention Transformer Neural Process."""

    config: BSATNPConfig

    @nn.compact
    def __call__(self, x_ctx, y_ctx, meta_ctx, mask_ctx, x_tgt, meta_tgt):
        """Raw likelihood parameters ``[B, Nt, num_outputs * y_dim]`` at the test points.

        x_ctx ``[B, Nc, Dx]``, y_ctx ``[B, Nc, Dy]``, mask_ctx ``[B, Nc]`` (True = observed),
        x_tgt ``[B, Nt, Dx]``, meta_* ``{group: [B, N, d_group]}`` raw coordinates.
        """
        cfg = self.config
        head = cfg.likelihood
        meta_ctx_p = bias_lib.prepare_metadata(cfg.groups, meta_ctx)
        meta_tgt_p = bias_lib.prepare_metadata(cfg.groups, meta_tgt)

        real = mask_ctx[..., None]
        # padded context values never leak in (and a valid dummy keeps log/logit encodings finite)
        y_enc = jnp.where(real, head.encode(jnp.where(real, y_ctx, 1.0)), 0.0)  # [B, Nc, E * Dy]
        ctx_parts = [jnp.ones_like(y_enc[..., :1]), y_enc, x_ctx.astype(y_enc.dtype)]  # [B, Nc, 1 + E*Dy + Dx]
        n_tgt = x_tgt.shape[:2]
        tgt_parts = [jnp.zeros(n_tgt + (1,), y_enc.dtype), jnp.zeros(n_tgt + (y_enc.shape[-1],), y_enc.dtype),
                     x_tgt.astype(y_enc.dtype)]
        if cfg.embed_coordinates:
            ctx_parts += [meta_ctx[g.name] for g in cfg.groups]
            tgt_parts += [meta_tgt[g.name] for g in cfg.groups]
        embed = nn.Sequential([nn.Dense(cfg.width), nn.gelu, nn.Dense(cfg.width)], name="embed")
        ctx = embed(jnp.concatenate(ctx_parts, axis=-1))  # [B, Nc, D]
        tgt = embed(jnp.concatenate(tgt_parts, axis=-1))  # [B, Nt, D]

        for i in range(cfg.num_blocks):
            ctx, tgt = KernelRegressionBlock(
                cfg.num_heads, cfg.head_dim, cfg.ff_dim, cfg.groups,
                update_context=i < cfg.num_blocks - 1, implementation=cfg.attention,
                q_block=cfg.q_block, k_block=cfg.k_block, name=f"block_{i}",
            )(ctx, tgt, meta_ctx_p, meta_tgt_p, mask_ctx)

        h = nn.LayerNorm(name="norm_head")(tgt)
        h = nn.gelu(nn.Dense(cfg.width, name="head_hidden")(h))
        return nn.Dense(head.num_outputs * cfg.y_dim, name="head_out")(h)
