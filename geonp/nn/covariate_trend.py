"""The covariates' linear trend, fitted in context: regression kriging's first step as a token feature.

A model that learns covariate effects in context (:mod:`geonp.tasks.covariates`) must, from the
tokens alone, do what a geostatistician does first: regress the observations on the covariates.
Attention can learn that, slowly. This module does it exactly, per task, and hands the network
the answer as one more token column, so the network only has to learn how far to trust it:

    z_i      = first encoded column of observation i   (normal: y, binomial: empirical logit
                                                        log((k + 1/2) / (n - k + 1/2)), poisson: log rate)
    [c, b]   = argmin_{c, b}  sum_{i in context} (z_i - c - x_i . b)^2 + RIDGE |b|^2      x_i [K]
    trend_i  = x_i . b                                  every context and target token, [B, N, 1]

``x`` are the covariate values (for a slot model, the ``K`` value columns; unused slots are zero,
so the ridge keeps their coefficient at zero). The intercept is free (not penalised) and left out
of the trend: the level of the field is the network's business, as without covariates.
Pure function of the context: no parameters, translation invariant, differentiable.
"""

from __future__ import annotations

import jax.numpy as jnp

RIDGE = 1.0  # in units of squared covariate std (covariates are standardised over the data): ~1 point's worth


def trend_columns(cfg) -> int:
    """How many of the covariate columns are values the trend regresses on (slot models: the first K)."""
    return cfg.covariate_slots or cfg.x_dim


def covariate_trend(cfg, x_ctx, y_ctx, mask_ctx, x_tgt):
    """``(trend_ctx [B, Nc, 1], trend_tgt [B, Nt, 1])``: each point's covariates times the context's ridge fit."""
    K = trend_columns(cfg)
    real = mask_ctx[..., None]  # [B, Nc, 1]
    z = jnp.where(real, cfg.likelihood.encode(jnp.where(real, y_ctx, 1.0)), 0.0)[..., :1]  # [B, Nc, 1]
    x = jnp.where(real, x_ctx[..., :K], 0.0)  # [B, Nc, K]
    design = jnp.concatenate([real.astype(x.dtype), x], axis=-1)  # [B, Nc, 1 + K]: intercept, covariates
    gram = jnp.einsum("bni,bnj->bij", design, design)  # [B, 1 + K, 1 + K]
    penalty = jnp.diag(jnp.concatenate([jnp.full((1,), 1e-6), jnp.full((K,), RIDGE)])).astype(gram.dtype)
    rhs = jnp.einsum("bni,bno->bio", design, z)  # [B, 1 + K, 1]
    coef = jnp.linalg.solve(gram + penalty, rhs)[:, 1:]  # [B, K, 1], the intercept dropped
    return jnp.where(real, x @ coef, 0.0), x_tgt[..., :K] @ coef
