"""Two-dimensional Gaussian-process tasks for meta-training and evaluation.

Every task draws its own hyperparameters (not one per batch):

    kernel      ~ Uniform{rbf, matern12, matern32, matern52, periodic}
    lengthscale ~ Beta(3, 7)          (periodic: 0.5 + 2 * Beta(3, 7), period ~ U(0.5, 1.5));
                  log-uniform over ``lengthscale_range`` where that is set
    noise std   ~ U(noise_std)        (observation noise on context values)
    n_context   ~ U{num_context}      (padded to the maximum, with a mask)
    x           ~ U(domain)           for context and target points; with probability
                                      ``clustered_share`` a task's sites are clustered instead:
                                      2-12 cluster centres ~ U(domain), sites Gaussian around
                                      them (spread 1-15% of the domain, log-uniform), and each
                                      target from the clusters or U(domain) with equal odds

Context values carry observation noise; target values are noise-free (up to a
``jitter`` of variance 1e-5 that keeps the Cholesky stable; the oracle uses the
same jitter, so it stays exact for the generative model).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, NamedTuple

import jax
import jax.numpy as jnp

from geonp.errors import ConfigError
from geonp.features.support import SUPPORT
from geonp.tasks import kernels
from geonp.tasks.batch import Batch


class GPHyperparameters(NamedTuple):
    """Per-task hyperparameters ``[B]`` (the kernel as an index into :data:`kernels.KERNELS`)."""

    kernel: object
    lengthscale: object
    period: object
    noise_std: object
    jitter: float


@dataclasses.dataclass(frozen=True)
class GPTaskSampler:
    """Sampler of 2-D GP regression tasks. ``sample(key, batch_size)`` -> (Batch, GPHyperparameters)."""

    # exact symmetries of the task prior (geonp.training.reuse): isotropic, zero-mean
    symmetries: ClassVar[tuple[str, ...]] = ("dihedral", "sign")

    kernels: tuple[str, ...] = kernels.KERNELS
    lengthscale_beta: tuple[float, float] = (3.0, 7.0)
    domain: tuple[float, float] = (-2.0, 2.0)
    num_context: tuple[int, int] = (128, 512)
    num_target: int = 1024
    noise_std: tuple[float, float] = (0.05, 0.15)
    jitter: float = 1e-5
    lengthscale_range: tuple[float, float] | None = None  # (low, high): log-uniform instead of the Beta
    clustered_share: float = 0.0  # share of tasks whose sites are clustered (surveys of villages, schools)

    def __post_init__(self):
        unknown = set(self.kernels) - set(kernels.KERNELS)
        if unknown or not self.kernels:
            raise ConfigError(f"unknown kernel(s) {sorted(unknown)}; choose from {kernels.KERNELS}.")
        lo, hi = self.num_context
        if not (1 <= lo <= hi) or self.num_target < 1:
            raise ConfigError(
                f"num_context must be (min, max) with 1 <= min <= max and num_target >= 1; got "
                f"{self.num_context}, {self.num_target}."
            )
        if not self.domain[0] < self.domain[1]:
            raise ConfigError(f"domain must be (low, high) with low < high, got {self.domain}.")
        if self.lengthscale_range is not None and not (0 < self.lengthscale_range[0] <= self.lengthscale_range[1]):
            raise ConfigError(f"lengthscale_range must be (low, high) with 0 < low <= high, got "
                              f"{self.lengthscale_range}.")
        if not 0.0 <= self.clustered_share <= 1.0:
            raise ConfigError(f"clustered_share must be a share in [0, 1], got {self.clustered_share}.")

    def scaled(self, factor: float) -> GPTaskSampler:
        """The same process on a domain ``factor`` times wider, at the same point density."""
        centre = 0.5 * (self.domain[0] + self.domain[1])
        half = 0.5 * (self.domain[1] - self.domain[0]) * factor
        area = factor**2
        return dataclasses.replace(
            self, domain=(centre - half, centre + half),
            num_context=(int(self.num_context[0] * area), int(self.num_context[1] * area)),
            num_target=int(self.num_target * area),
        )

    def sample(self, key, batch_size: int):
        # The joint Cholesky runs in float64: smooth kernels (long periodic or RBF
        # length scales) over 1000+ points are too ill-conditioned for float32.
        with jax.enable_x64(True):
            batch, hyper = _sample(self, key, batch_size)
        to_f32 = lambda x: x.astype(jnp.float32) if jnp.issubdtype(x.dtype, jnp.floating) else x  # noqa: E731
        return jax.tree_util.tree_map(to_f32, batch), hyper._replace(
            lengthscale=to_f32(hyper.lengthscale), period=to_f32(hyper.period), noise_std=to_f32(hyper.noise_std)
        )


def shift_batch(batch: Batch, offset: float) -> Batch:
    """The same tasks with every spatial coordinate moved by ``offset`` (e.g. [-2,2]^2 -> [8,12]^2)."""
    move = lambda meta: {k: v if k == SUPPORT else v + offset for k, v in meta.items()}  # noqa: E731
    return batch._replace(meta_ctx=move(batch.meta_ctx), meta_tgt=move(batch.meta_tgt))


def _unit_covariance(kernel_index, a, b, lengthscale, period, names):
    return kernels.selected_covariance(kernel_index, a, b, lengthscale, period, names, xp=jnp)


MAX_CLUSTERS = 12


def _clustered_sites(sampler: GPTaskSampler, key, uniform, n_ctx_max: int):
    """With probability ``clustered_share``, sites ``[N, 2]`` in Gaussian clusters around 2..12 centres
    (every context site, each target with odds 1/2); otherwise the ``uniform`` sites as they are."""
    lo, hi = sampler.domain
    k_n, k_centre, k_which, k_spread, k_offset, k_task, k_target = jax.random.split(key, 7)
    n_points = uniform.shape[0]
    n_clusters = jax.random.randint(k_n, (), 2, MAX_CLUSTERS + 1)
    centres = jax.random.uniform(k_centre, (MAX_CLUSTERS, 2), minval=lo, maxval=hi)
    which = jax.random.randint(k_which, (n_points,), 0, n_clusters)
    spread = (hi - lo) * jnp.exp(jax.random.uniform(k_spread, (), minval=jnp.log(0.01), maxval=jnp.log(0.15)))
    clustered = jnp.clip(centres[which] + spread * jax.random.normal(k_offset, (n_points, 2)), lo, hi)
    from_clusters = jnp.concatenate([jnp.ones((n_ctx_max,), bool),
                                     jax.random.bernoulli(k_target, 0.5, (n_points - n_ctx_max,))])
    use = (jax.random.uniform(k_task, ()) < sampler.clustered_share) & from_clusters
    return jnp.where(use[:, None], clustered, uniform)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _sample(sampler: GPTaskSampler, key, batch_size: int):
    n_ctx_max, n_tgt = sampler.num_context[1], sampler.num_target
    lo, hi = sampler.domain
    names = sampler.kernels

    def one_task(key):
        k_kern, k_ls, k_per, k_noise, k_n, k_x, k_z = jax.random.split(key, 7)
        kernel_index = jax.random.randint(k_kern, (), 0, len(names))
        if sampler.lengthscale_range is None:
            ls = jax.random.beta(k_ls, *sampler.lengthscale_beta)
        else:
            low, high = sampler.lengthscale_range
            ls = jnp.exp(jax.random.uniform(k_ls, (), minval=jnp.log(low), maxval=jnp.log(high)))
        is_periodic = jnp.array([n == "periodic" for n in names])[kernel_index]
        ls = jnp.where(is_periodic, 0.5 + 2.0 * ls, ls)
        period = jax.random.uniform(k_per, (), minval=0.5, maxval=1.5)
        noise = jax.random.uniform(k_noise, (), minval=sampler.noise_std[0], maxval=sampler.noise_std[1])
        n_ctx = jax.random.randint(k_n, (), sampler.num_context[0], sampler.num_context[1] + 1)

        x = jax.random.uniform(k_x, (n_ctx_max + n_tgt, 2), minval=lo, maxval=hi)
        if sampler.clustered_share > 0:  # (a separate key: tasks without clustering are drawn as before)
            x = _clustered_sites(sampler, jax.random.fold_in(k_x, 1), x, n_ctx_max)
        cov = _unit_covariance(kernel_index, x, x, ls, period, names)
        diag = jnp.concatenate([jnp.full((n_ctx_max,), noise**2), jnp.full((n_tgt,), sampler.jitter)])
        chol = jnp.linalg.cholesky(cov + jnp.diag(diag))
        values = chol @ jax.random.normal(k_z, (n_ctx_max + n_tgt,))
        mask_ctx = jnp.arange(n_ctx_max) < n_ctx
        return (x[:n_ctx_max], values[:n_ctx_max, None], mask_ctx, x[n_ctx_max:], values[n_ctx_max:, None],
                kernel_index, ls, period, noise)

    x_c, y_c, m_c, x_t, y_t, kern, ls, per, noise = jax.vmap(one_task)(jax.random.split(key, batch_size))
    empty = lambda n: jnp.zeros((batch_size, n, 0))  # noqa: E731  (no covariates)
    batch = Batch(
        x_ctx=empty(n_ctx_max), y_ctx=y_c, meta_ctx={"space": x_c}, mask_ctx=m_c,
        x_tgt=empty(n_tgt), y_tgt=y_t, meta_tgt={"space": x_t}, mask_tgt=jnp.ones((batch_size, n_tgt), bool),
    )
    return batch, GPHyperparameters(kern, ls, per, noise, sampler.jitter)
