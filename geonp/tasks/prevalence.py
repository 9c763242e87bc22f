"""Prevalence-survey tasks: a Gaussian-process surface through a logit link, observed by binomial surveys.

Per task (every quantity drawn per task, the GP's own kernel and length scale as in :mod:`geonp.tasks.gp`):

    f(s)            ~ GP(0, k) + nugget             (village-level variation, at context and targets alike:
                                                     a held-out village is a village, not the smooth surface)
    logit prevalence  eta(s) = mu + sigma * f(s),   mu ~ U(logit_mean), sigma ~ U(logit_scale)
    examined        n = max(1, round(c exp(U(-w, w))))   per surveyed location, around the task's
                                                     typical size c ~ logU(trials), w ~ U(trials_spread);
                                                     n = 1 everywhere in a share ``binary_share`` of tasks
    positives       k ~ Binomial(n, sigmoid(eta))   (context and targets alike)

The prior covers what binomial geostatistics finds in real survey sets (``benchmarks/_surveys.py``,
RESULTS.md, stop 42): ranges from the site spacing to the whole region (Tanzania's ~0.2 of its
extent, Gambia's ~0.07), logit standard deviations up to ~3 and village nuggets up to half of it,
mean prevalence from ~3% (Tanzania) to ~40% (Gambia), 1 to several hundred examined, sites
clustered (villages, schools) or spread, and binary maps (one examined per point).

Observations are ``y = (k, n)``; the model learns the predictive distribution
of the prevalence surface from sparse surveys of varied sizes. With
``covariate_slots = K``, up to K covariates of random kinds add their effects to
the logit and enter the tokens (:mod:`geonp.tasks.covariates`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from geonp.errors import ConfigError
from geonp.tasks import covariates as covariate_prior
from geonp.tasks.gp import GPTaskSampler

# ranges from a site spacing to trends (log-uniform, domain [-2, 2]); half the tasks' sites clustered;
# the village nugget up to 0.8 of the surface's standard deviation
SURVEY_GP = GPTaskSampler(num_context=(16, 384), num_target=256, noise_std=(0.02, 0.8),
                          lengthscale_range=(0.05, 4.0), clustered_share=0.5)


@dataclasses.dataclass(frozen=True)
class BinomialSurveySampler:
    """``sample(key, batch_size) -> (Batch, GPHyperparameters)`` with ``y = (positives, examined)``."""

    # exact symmetries of the task prior (geonp.training.reuse): isotropic; counts are never negated
    symmetries: ClassVar[tuple[str, ...]] = ("dihedral",)

    gp: GPTaskSampler = SURVEY_GP
    logit_mean: tuple[float, float] = (-5.0, 3.0)  # prevalence ~0.7% .. 95% at the centre of the surface
    logit_scale: tuple[float, float] = (0.2, 4.0)
    trials: tuple[float, float] = (1.0, 300.0)  # a task's typical number examined per location, log-uniform
    trials_spread: tuple[float, float] = (0.0, 1.2)  # log spread of the examined around it, per location
    binary_share: float = 0.15  # tasks of one examined per point (binary maps)
    covariate_slots: int = 0  # K > 0: up to K covariates with effects on the logit (geonp.tasks.covariates)

    def __post_init__(self):
        if not (1 <= self.trials[0] <= self.trials[1]):
            raise ConfigError(f"trials must be (min, max) with 1 <= min <= max, got {self.trials}.")
        if self.covariate_slots < 0:
            raise ConfigError(f"covariate_slots must be >= 0, got {self.covariate_slots}.")
        if not (0 < self.logit_scale[0] <= self.logit_scale[1]):
            raise ConfigError(f"logit_scale must be positive (min, max), got {self.logit_scale}.")
        if not (0 <= self.trials_spread[0] <= self.trials_spread[1]) or not 0 <= self.binary_share <= 1:
            raise ConfigError(f"trials_spread must be (min, max) with 0 <= min <= max and binary_share in [0, 1]; "
                              f"got {self.trials_spread}, {self.binary_share}.")

    def sample(self, key, batch_size: int):
        k_gp, k_mu, k_sigma, k_n, k_y, k_nug = jax.random.split(key, 6)
        batch, hyper = self.gp.sample(k_gp, batch_size)
        nugget = hyper.noise_std[:, None, None] * jax.random.normal(k_nug, batch.y_tgt.shape)
        batch = batch._replace(y_tgt=batch.y_tgt + nugget)  # the GP sampler's targets are noise-free
        mu = jax.random.uniform(k_mu, (batch_size, 1, 1), minval=self.logit_mean[0], maxval=self.logit_mean[1])
        sigma = jax.random.uniform(k_sigma, (batch_size, 1, 1), minval=self.logit_scale[0],
                                   maxval=self.logit_scale[1])
        effects = (jnp.zeros_like(batch.y_ctx), jnp.zeros_like(batch.y_tgt))
        if self.covariate_slots:
            batch, effects = self._with_covariates(jax.random.fold_in(key, 7), batch)
        typical, spread, binary = self._survey_sizes(k_n, batch_size)
        observed = []
        for side, (values, k_side) in enumerate(zip((batch.y_ctx, batch.y_tgt), jax.random.split(k_y), strict=True)):
            jitter = jax.random.uniform(jax.random.fold_in(k_n, side), values.shape, minval=-1.0, maxval=1.0)
            n = jnp.maximum(jnp.round(jnp.exp(typical + spread * jitter)), 1.0)
            n = jnp.where(binary, 1.0, n)
            k = jax.random.binomial(k_side, n, jax.nn.sigmoid(mu + sigma * values + effects[side]))
            observed.append(jnp.concatenate([k, n], axis=-1).astype(jnp.float32))
        return batch._replace(y_ctx=observed[0], y_tgt=observed[1]), hyper

    def _survey_sizes(self, key, batch_size: int):
        """Per task ``[B, 1, 1]``: the log typical number examined, its per-location log spread, binary or not."""
        k_typical, k_spread, k_binary = jax.random.split(jax.random.fold_in(key, 11), 3)
        shape = (batch_size, 1, 1)
        typical = jax.random.uniform(k_typical, shape, minval=jnp.log(self.trials[0]), maxval=jnp.log(self.trials[1]))
        spread = jax.random.uniform(k_spread, shape, minval=self.trials_spread[0], maxval=self.trials_spread[1])
        return typical, spread, jax.random.bernoulli(k_binary, self.binary_share, shape)

    def _with_covariates(self, key, batch):
        """The batch with ``2K`` covariate columns, and the covariates' logit effects at context and targets."""
        prior = covariate_prior.CovariatePrior(slots=self.covariate_slots)
        nc = batch.y_ctx.shape[1]
        points = jnp.concatenate([batch.meta_ctx["space"], batch.meta_tgt["space"]], axis=1)  # [B, Nc + Nt, 2]
        standardise_on = jnp.concatenate([batch.mask_ctx, jnp.zeros_like(batch.mask_tgt)], axis=1)
        k_x, k_effect = jax.random.split(key)
        x, kinds = covariate_prior.draw_covariates(prior, k_x, points, standardise_on)
        effect, used = covariate_prior.draw_effects(prior, k_effect, x, kinds)
        columns = covariate_prior.slot_columns(x, used)  # [B, Nc + Nt, 2K]
        batch = batch._replace(x_ctx=columns[:, :nc], x_tgt=columns[:, nc:])
        return batch, (effect[:, :nc], effect[:, nc:])
