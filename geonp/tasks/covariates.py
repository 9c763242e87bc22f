"""Covariates of any meaning, for models that learn their effects in context (zero-shot).

A model with ``K`` covariate slots is meta-trained on tasks whose latent is

    latent(s) = spatial field(s) + sum_{j < n} beta_j g_j(x_j(s))          n ~ U{0..K} covariates in use

so that, given a few hundred surveys, it infers the effects from the data it
conditions on, as a geostatistician fits a linear predictor beside the field.
Per task and slot, every quantity is drawn afresh:

    x_j     a random field over the task's points: smooth (Gaussian spectrum), rough
            (Cauchy spectrum, Matern-1/2-like) or pure noise (independent per point);
            random Fourier features, ``FEATURES`` of them. Standardised over the task's
            context points, as ``fit`` standardises a user's covariates over the data.
    beta_j  0 for noise covariates and with probability ``null_probability`` for the
            others (covariates that carry nothing); else N(0, 1) * effect_scale, with
            effect_scale ~ LogU(effect_scale), in latent units (logit for prevalence)
    g_j     x, or with probability ``nonlinear_probability`` x + a (x^2 - 1), a ~ U(-0.5, 0.5)

The Gaussian field prior (:mod:`geonp.tasks.fields`) draws ``beta_j ~ N(0, s_j^2)`` from the same
scales (:func:`draw_effect_design`), which keeps its tasks Gaussian processes. A model with
``covariate_trend`` also sees the covariates' ridge fit to each task's context (:mod:`geonp.nn.covariate_trend`).

Tokens see ``[x_0 .. x_{K-1}, used_0 .. used_{K-1}]`` (``2K`` columns; unused slots
are 0 with ``used = 0``), the layout :meth:`geonp.features.scaling.FeatureScaling.scale_covariates`
gives a user's 0..K covariates. Shapes: points ``[B, N, 2]``, covariates ``[B, N, K]``,
``used`` ``[B, K]``, effect ``[B, N, 1]``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

FEATURES = 64  # random Fourier features per covariate field
KINDS = ("smooth", "rough", "noise")


@dataclasses.dataclass(frozen=True)
class CovariatePrior:
    """How a task's covariates and their effects are drawn (see the module docstring)."""

    slots: int = 4
    kind_weights: tuple[float, float, float] = (0.5, 0.3, 0.2)  # smooth, rough, noise
    smooth_lengthscale: tuple[float, float] = (0.2, 4.0)  # model units (a training task spans 4)
    rough_lengthscale: tuple[float, float] = (0.05, 1.0)
    null_probability: float = 0.25
    effect_scale: tuple[float, float] = (0.2, 1.5)
    nonlinear_probability: float = 0.25


def draw_covariates(prior: CovariatePrior, key, points, context_mask):
    """Covariates ``[B, N, K]`` at ``points`` ``[B, N, 2]``, standardised over the real context points.

    ``context_mask`` ``[B, N]`` marks the points whose mean and std define the standardisation
    (context points; targets are standardised with the same numbers). Returns ``(x, kinds [B, K])``.
    """
    B, N, _ = points.shape
    K = prior.slots
    k_kind, k_ls, k_freq, k_phase, k_noise = jax.random.split(key, 5)
    kinds = jax.random.choice(k_kind, len(KINDS), (B, K), p=jnp.asarray(prior.kind_weights))
    smooth_ls = _log_uniform(k_ls, (B, K), *prior.smooth_lengthscale)
    rough_ls = _log_uniform(jax.random.fold_in(k_ls, 1), (B, K), *prior.rough_lengthscale)
    gaussian = jax.random.normal(k_freq, (B, K, FEATURES, 2))
    cauchy = jax.random.cauchy(jax.random.fold_in(k_freq, 1), (B, K, FEATURES, 2))
    frequencies = jnp.where((kinds == 1)[..., None, None], cauchy / rough_ls[..., None, None],
                            gaussian / smooth_ls[..., None, None])  # [B, K, F, 2]
    phases = jax.random.uniform(k_phase, (B, K, FEATURES), maxval=2 * jnp.pi)
    angles = jnp.einsum("bnd,bkfd->bnkf", points, frequencies) + phases[:, None]  # [B, N, K, F]
    fields = jnp.sqrt(2.0 / FEATURES) * jnp.cos(angles).sum(-1)  # [B, N, K], unit variance
    noise = jax.random.normal(k_noise, (B, N, K))
    x = jnp.where((kinds == 2)[:, None, :], noise, fields)
    w = context_mask[..., None].astype(x.dtype)  # [B, N, 1]
    count = jnp.maximum(w.sum(1, keepdims=True), 1.0)
    mean = (x * w).sum(1, keepdims=True) / count
    std = jnp.sqrt(((x - mean) ** 2 * w).sum(1, keepdims=True) / count)
    return (x - mean) / jnp.maximum(std, 1e-6), kinds


def draw_effect_design(prior: CovariatePrior, key, x, kinds):
    """Each slot's shaped covariate ``g_j(x_j)`` ``[B, N, K]``, effect scale ``[B, K]`` (0 where the slot is unused
    or carries nothing) and the slots in use ``[B, K]``: the effects are ``beta_j ~ N(0, scale_j^2)``."""
    B, _, K = x.shape
    k_n, k_null, _, k_scale, k_nl, k_a = jax.random.split(key, 6)
    n_used = jax.random.randint(k_n, (B, 1), 0, K + 1)
    used = jnp.arange(K)[None, :] < n_used  # the first n slots, as a user's covariates fill them
    carries = (kinds != 2) & (jax.random.uniform(k_null, (B, K)) >= prior.null_probability)
    scale = jnp.broadcast_to(_log_uniform(k_scale, (B, 1), *prior.effect_scale), (B, K))
    curved = jax.random.uniform(k_nl, (B, K)) < prior.nonlinear_probability
    a = jax.random.uniform(k_a, (B, K), minval=-0.5, maxval=0.5)
    shaped = jnp.where(curved[:, None, :], x + a[:, None, :] * (x**2 - 1.0), x)  # [B, N, K]
    return shaped, jnp.where(used & carries, scale, 0.0), used


def draw_effects(prior: CovariatePrior, key, x, kinds):
    """The covariates' contribution to the latent ``[B, N, 1]`` and the slots in use ``[B, K]``."""
    B, _, K = x.shape
    shaped, scale, used = draw_effect_design(prior, key, x, kinds)
    beta = jax.random.normal(jax.random.split(key, 6)[2], (B, K)) * scale
    return jnp.sum(shaped * beta[:, None, :], axis=-1, keepdims=True), used


def slot_columns(x, used):
    """Token columns ``[B, N, 2K]``: the covariates where in use (else 0), then the in-use flags."""
    flags = jnp.broadcast_to(used[:, None, :], x.shape).astype(x.dtype)
    return jnp.concatenate([x * flags, flags], axis=-1)


def _log_uniform(key, shape, low, high):
    return jnp.exp(jax.random.uniform(key, shape, minval=jnp.log(low), maxval=jnp.log(high)))
