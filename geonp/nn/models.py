"""The BSA-TNP and its relatives: Transformer Neural Processes of Kernel Regression Blocks.

One config, :class:`BSATNPConfig`, describes every model of the family; its
fields pick the pieces (``geonp.NeuralProcess(arch=...)`` names the usual sets):

    bias       "quadratic" (BSA-TNP: anisotropic Gaussian per head, folded into q k^T),
               "rbf-per-head" (an RBF network per head, the first bundled models), "kernel" (TNP-KR),
               "gaussian" (DKA), "none" (TNP-D, CMANP)
    attention  "scan" (constant memory), "dense" (O(n^2) reference), "performer" (DKA, O(n m))
    family     "tnp" (this module's BSATNP) or "cmanp" (geonp.nn.cmanp.CMANP)

Tokens (coordinates are *not* in them; they act only through the attention bias):

    context point:  [1, encode(y), x_covariates, (support)]   (encode: the likelihood's, e.g. empirical logit)
    test point:     [0, 0,         x_covariates, (0)]

(support: log2 of a block mean's side in target cells, with ``support=True``; geonp.features.support)

(observation first, covariates last: a model warm-started from one without
covariates keeps its embedding rows, see ``geonp.training.warm_start``.)

    tokens -> embed -> KRB x L -> head -> likelihood parameters per test point
"""

from __future__ import annotations

import functools

import flax.linen as nn

from geonp.nn import bias as bias_lib
from geonp.nn import random_features
from geonp.nn.blocks import KernelRegressionBlock
from geonp.nn.cmanp import CMANP
from geonp.nn.config import (  # noqa: F401  (the config and tokens are part of this module's interface)
    QUADRATIC_SCALES,
    BSATNPConfig,
    context_features,
    default_groups,
    target_features,
)
from geonp.nn.covariate_trend import covariate_trend


def centre_on_context(groups, meta_ctx, meta_tgt, mask_ctx):
    """Euclidean groups shifted so the observed context's centroid is the origin (distances unchanged).

    The linear kernel of the TNP-KR bias is then translation invariant too.
    """
    ctx, tgt = dict(meta_ctx), dict(meta_tgt)
    for g in groups:
        if g.metric == "euclidean":
            c = random_features.masked_centroid(meta_ctx[g.name], mask_ctx)  # [B, 1, d]
            ctx[g.name], tgt[g.name] = meta_ctx[g.name] - c, meta_tgt[g.name] - c
    return ctx, tgt


class BSATNP(nn.Module):
    """Biased Scan Attention Transformer Neural Process (and, by config, B-TNP, TNP-KR, DKA, TNP-D)."""

    config: BSATNPConfig

    @nn.compact
    def __call__(self, x_ctx, y_ctx, meta_ctx, mask_ctx, x_tgt, meta_tgt):
        """Raw likelihood parameters ``[B, Nt, num_outputs * y_dim]`` at the test points.

        x_ctx ``[B, Nc, Dx]``, y_ctx ``[B, Nc, Dy]``, mask_ctx ``[B, Nc]`` (True = observed),
        x_tgt ``[B, Nt, Dx]``, meta_* ``{group: [B, N, d_group]}`` raw coordinates.
        """
        cfg = self.config
        trend_ctx = trend_tgt = None
        if cfg.covariate_trend:  # [B, Nc, 1], [B, Nt, 1]: the covariates' ridge fit to this task's context
            trend_ctx, trend_tgt = covariate_trend(cfg, x_ctx, y_ctx, mask_ctx, x_tgt)
        ctx_in = context_features(cfg, x_ctx, y_ctx, meta_ctx, mask_ctx, trend_ctx)  # [B, Nc, F]
        tgt_in = target_features(cfg, x_tgt, meta_tgt, trend_tgt)  # [B, Nt, F]
        if cfg.bias == "kernel":
            meta_ctx, meta_tgt = centre_on_context(cfg.groups, meta_ctx, meta_tgt, mask_ctx)
        meta_ctx_p = bias_lib.prepare_metadata(cfg.groups, meta_ctx)
        meta_tgt_p = bias_lib.prepare_metadata(cfg.groups, meta_tgt)

        embed = nn.Sequential([nn.Dense(cfg.width), nn.gelu, nn.Dense(cfg.width)], name="embed")
        ctx, tgt = embed(ctx_in), embed(tgt_in)  # [B, Nc, D], [B, Nt, D]

        for i in range(cfg.num_blocks):
            ctx, tgt = KernelRegressionBlock(
                cfg.num_heads, cfg.head_dim, cfg.ff_dim, cfg.groups,
                update_context=i < cfg.num_blocks - 1, implementation=cfg.attention,
                q_block=cfg.q_block, k_block=cfg.k_block, bias=cfg.bias, kernels=cfg.kernels,
                num_features=cfg.num_features, feature_seed=i, name=f"block_{i}",
            )(ctx, tgt, meta_ctx_p, meta_tgt_p, mask_ctx)

        return likelihood_head(cfg, tgt)


def likelihood_head(cfg: BSATNPConfig, tokens):
    """Raw likelihood parameters ``[B, N, outputs * y_dim]`` from final test tokens (call inside a compact module)."""
    h = nn.LayerNorm(name="norm_head")(tokens)
    h = nn.gelu(nn.Dense(cfg.width, name="head_hidden")(h))
    return nn.Dense(cfg.likelihood.num_outputs * cfg.y_dim, name="head_out")(h)


def build_model(config: BSATNPConfig) -> nn.Module:
    """The flax module a config describes: :class:`BSATNP` or :class:`geonp.nn.cmanp.CMANP`."""
    if config.family == "cmanp":
        return CMANP(config)
    return BSATNP(config)


def initial_params(config: BSATNPConfig, seed: int = 0):
    """A fresh parameter tree for ``config``, from ``jax.random.PRNGKey(seed)``.

    No parameter's shape depends on how many points a task has, so one probe task
    of 4 context and 4 target points serves; ``init`` runs jitted (one compilation
    instead of one per operation, several times faster than eager on a CPU).
    """
    import jax

    return _jitted_init(config)(jax.random.PRNGKey(seed), *probe_inputs(config))


def probe_inputs(config: BSATNPConfig, points: int = 4) -> tuple:
    """Model inputs of one task with ``points`` context and target points (zeros), for init and shapes."""
    import jax.numpy as jnp

    meta = {g.name: jnp.zeros((1, points, g.dim)) for g in config.groups}
    return (jnp.zeros((1, points, config.x_dim)), jnp.ones((1, points, config.y_columns)), meta,
            jnp.ones((1, points), bool), jnp.zeros((1, points, config.x_dim)), meta)


@functools.lru_cache(maxsize=16)
def _jitted_init(config: BSATNPConfig):
    import jax

    return jax.jit(build_model(config).init)
