"""Tasks that look like real rasters: multi-scale, anisotropic fields seen through real gaps.

Every task draws its own field (a Gaussian process, so the exact posterior is known):

    f(x)   = sum_{c=1..C} a_c g_c(M_c x)                 C ~ U{components}
    g_c    ~ GP(0, k_c), unit variance and unit length      k_c ~ U{kernels}
    M_c    = diag(1 / l_c, 1 / (l_c rho_c)) R(theta_c)      l_c ~ LogU(lengthscale), rho_c ~ LogU(1, anisotropy),
                                                            theta_c ~ U(0, pi)
    a_c^2  ~ LogU(component_variance), then scaled so that sum_c a_c^2 = 1
    y      = f + noise, noise std = 1 / snr                 snr ~ LogU(snr)

Length scales run from a fraction of a grid cell to many times a task's extent
(so trends are in). Space is in model units, where observations have the
density that ``geonp.features.scaling.fit_space_unit`` gives a user's data
(``density`` = 512 points per 16 square units), so a task here and a tile at
prediction time look alike. Each task picks one layout:

    "gaps"       a grid with a fraction of its cells hidden in contiguous blobs (a smoothed
                 random field thresholded at a random quantile; blob sizes from one cell to a
                 third of the grid) or scattered at random
    "scattered"  irregular points (stations, surveys) at a density that varies by task
    "coarse"     block means of b x b cells (b in 2..4) as context, the fine cells as targets
                 (downscaling; the block mean is exact: the mean of the latent over its cells);
                 the batch tells a model so: ``meta_ctx["support"] = log2(b)`` (0 for the other layouts)

and then chooses context and targets as :func:`geonp.predict.context.neighbourhoods` does at
prediction time: a centre (inside a gap, for most gap tasks), the ``n`` observations nearest
to it (``n`` from tens up to ``num_context``) and the ``num_target`` cells nearest to it.
With ``far_fraction`` > 0, a full context gives that share of its slots to farther
observations (:mod:`geonp.features.far_context`), on a grid twice as wide to hold them.
With ``covariate_slots = K``, up to K covariates (:mod:`geonp.tasks.covariates`: smooth, rough or
noise fields, standardised over the observations; a coarse cell carries its block mean) add
``sum_j beta_j g_j(x_j)`` with ``beta_j ~ N(0, s_j^2)``: given the scales ``s_j`` the effects are Gaussian,
so the field plus effects is still a GP (kernel ``k + sum_j s_j^2 g_j g_j^T``) and the oracle stays exact.
Values are standardised by their context's mean and standard deviation, as prediction does
(``FeatureScaling.center = "task-scale"``); the exact GP posterior of every target, in the
same units, comes with the batch (:class:`FieldTaskInfo`), so the gap to the oracle is
measured on exactly these tasks.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, NamedTuple

import jax
import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist

from geonp.errors import ConfigError
from geonp.features.far_context import FAR_REACH, far_indices
from geonp.features.scaling import task_standardisation
from geonp.features.support import SUPPORT
from geonp.tasks import kernels
from geonp.tasks.batch import Batch

LAYOUTS = ("gaps", "scattered", "coarse")
FIELD_KERNELS = ("rbf", "matern12", "matern32", "matern52")


class FieldTaskInfo(NamedTuple):
    """Per task: layout index into :data:`LAYOUTS` ``[B]``, context size ``[B]``, whether each target is
    hidden (in a gap; False for coarse and scattered) ``[B, Nt]``, and the exact GP posterior
    mean and std ``[B, Nt, 1]`` in the batch's (standardised) units.

    The field each task drew, for breaking scores down by regime (``benchmarks/oracle_gap.py``):
    its signal-to-noise ratio ``[B]``, number of components ``[B]``, and of its dominant component (the
    one with the most variance) the kernel, an index into :data:`FIELD_KERNELS` ``[B]``, and the shorter
    length scale of its two axes ``[B]``, in model units."""

    layout: np.ndarray
    n_context: np.ndarray
    hidden: np.ndarray
    oracle_mean: np.ndarray
    oracle_std: np.ndarray
    snr: np.ndarray | None = None
    components: np.ndarray | None = None
    kernel: np.ndarray | None = None
    length_scale: np.ndarray | None = None


class _Field(NamedTuple):
    kernels: tuple
    transforms: tuple  # [2, 2] each: M_c
    variances: tuple  # a_c^2
    noise_std: float

    def dominant(self) -> tuple[str, float]:
        """Kernel and shorter axis length scale of the component with the most variance."""
        c = int(np.argmax(self.variances))
        return self.kernels[c], 1.0 / float(np.linalg.norm(self.transforms[c], 2))  # M_c's top singular value: 1/l_c


@dataclasses.dataclass(frozen=True)
class FieldTaskSampler:
    """Sampler of real-raster-like tasks. ``sample(key, batch_size)`` -> ``(Batch, FieldTaskInfo)``."""

    # exact symmetries of the task prior (geonp.training.reuse): isotropic, zero-mean
    symmetries: ClassVar[tuple[str, ...]] = ("dihedral", "sign")

    num_context: int = 512  # most context points per task (padding size)
    min_context: int = 16
    num_target: int = 256
    layouts: tuple[str, ...] = LAYOUTS
    layout_weights: tuple[float, ...] = (0.55, 0.25, 0.2)
    kernels: tuple[str, ...] = FIELD_KERNELS
    components: tuple[int, int] = (1, 3)
    lengthscale: tuple[float, float] = (0.05, 50.0)  # model units; a grid cell is ~0.1-0.18
    anisotropy: tuple[float, float] = (1.0, 4.0)
    component_variance: tuple[float, float] = (0.01, 1.0)
    snr: tuple[float, float] = (1.0, 1000.0)  # signal std / noise std
    density: float = 32.0  # observations per square model unit (512 in a 4 x 4 training task)
    observed_fraction: tuple[float, float] = (0.25, 0.95)  # of a gap task's grid (lower: the grid grows to hold
    # twice the context)
    grid_side: int = 64
    gap_centre_probability: float = 0.75  # gap tasks centred on a hidden cell
    coarse_factors: tuple[int, ...] = (2, 3, 4)
    coarse_cells: int = 1536  # fine cells behind a coarse task's context (the cost of its covariance)
    jitter: float = 1e-6
    far_fraction: float = 0.0  # of a full context given to far points (geonp.features.far_context); 0: none
    covariate_slots: int = 0  # K > 0: up to K covariates add effects beta_j g_j(x_j), beta_j ~ N(0, s_j^2)

    def __post_init__(self):
        unknown = set(self.layouts) - set(LAYOUTS)
        if unknown or not self.layouts or len(self.layout_weights) != len(self.layouts):
            raise ConfigError(f"layouts must be a non-empty subset of {LAYOUTS} with one weight each; got "
                              f"{self.layouts}, {self.layout_weights}.")
        bad_kernels = set(self.kernels) - set(FIELD_KERNELS)
        if bad_kernels or not self.kernels:
            raise ConfigError(f"unknown kernel(s) {sorted(bad_kernels)}; choose from {FIELD_KERNELS}.")
        if not 2 <= self.min_context <= self.num_context or self.num_target < 1:
            raise ConfigError(f"need 2 <= min_context <= num_context and num_target >= 1; got {self.min_context}, "
                              f"{self.num_context}, {self.num_target}.")
        for name in ("lengthscale", "anisotropy", "component_variance", "snr"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"{name} must be (low, high) with 0 < low <= high, got {(lo, hi)}.")
        if self.covariate_slots < 0:
            raise ConfigError(f"covariate_slots must be >= 0, got {self.covariate_slots}.")
        if not 0.0 <= self.far_fraction <= 0.5:
            raise ConfigError(f"far_fraction must be in [0, 0.5], got {self.far_fraction}.")
        if not 1 <= self.components[0] <= self.components[1]:
            raise ConfigError(f"components must be (min, max) with 1 <= min <= max, got {self.components}.")
        if not 0.0 < self.observed_fraction[0] <= self.observed_fraction[1] <= 1.0:
            raise ConfigError(f"observed_fraction must be (low, high) with 0 < low <= high <= 1, got "
                              f"{self.observed_fraction}.")

    # ------------------------------------------------------------------ sampling

    def sample(self, key, batch_size: int):
        rng = np.random.default_rng(_seed_words(key))
        tasks = [self.sample_task(rng) for _ in range(batch_size)]
        nc, nt, dx = self.num_context, self.num_target, 2 * self.covariate_slots
        covariates_ctx, covariates_tgt = np.zeros((batch_size, nc, dx), np.float32), np.zeros((batch_size, nt, dx))
        y_ctx = np.zeros((batch_size, nc, 1), np.float32)
        x_ctx = np.zeros((batch_size, nc, 2), np.float32)
        mask = np.zeros((batch_size, nc), bool)
        support = np.zeros((batch_size, nc, 1), np.float32)
        for b, t in enumerate(tasks):
            n = len(t["y_ctx"])
            y_ctx[b, :n, 0], x_ctx[b, :n], mask[b, :n] = t["y_ctx"], t["x_ctx"], True
            support[b, :n] = t["support"]
            if dx:
                covariates_ctx[b, :n], covariates_tgt[b] = t["covariates_ctx"], t["covariates_tgt"]
        stack = lambda name: np.stack([t[name] for t in tasks])  # noqa: E731
        batch = Batch(
            x_ctx=covariates_ctx, y_ctx=y_ctx, meta_ctx={"space": x_ctx, SUPPORT: support},
            mask_ctx=mask,
            x_tgt=covariates_tgt.astype(np.float32), y_tgt=stack("y_tgt")[..., None].astype(np.float32),
            meta_tgt={"space": stack("x_tgt").astype(np.float32)}, mask_tgt=np.ones((batch_size, nt), bool),
        )
        dominant = [t["field"].dominant() for t in tasks]  # (kernel, length scale) of each task's main component
        info = FieldTaskInfo(
            layout=np.array([LAYOUTS.index(t["layout"]) for t in tasks]),
            n_context=np.array([len(t["y_ctx"]) for t in tasks]), hidden=stack("hidden"),
            oracle_mean=stack("oracle_mean")[..., None], oracle_std=stack("oracle_std")[..., None],
            snr=np.array([1.0 / t["field"].noise_std for t in tasks]),
            components=np.array([len(t["field"].variances) for t in tasks]),
            kernel=np.array([FIELD_KERNELS.index(kernel) for kernel, _ in dominant]),
            length_scale=np.array([length for _, length in dominant]),
        )
        return batch, info

    def sample_task(self, rng: np.random.Generator) -> dict:
        """One task as a dict of numpy arrays (context and targets unpadded, standardised by the context), and
        the field it drew (``"field"``)."""
        weights = np.asarray(self.layout_weights) / sum(self.layout_weights)
        layout = self.layouts[rng.choice(len(self.layouts), p=weights)]
        field = self._draw_field(rng)
        # half the tasks condition on the full context, as every tile does at prediction; the rest on fewer
        full = rng.uniform() < 0.5
        n_context = self.num_context if full else round(_log_uniform(rng, self.min_context, self.num_context))
        # a full context gives some slots to far points, as prediction does for a model trained so (not for
        # block means, whose covariance grows with the cells behind each)
        far = round(self.far_fraction * n_context) if full and layout != "coarse" else 0
        x_obs, blocks, x_tgt, hidden = getattr(self, f"_{layout}")(rng, n_context, far)
        cov_oo, cov_ot, cov_tt = _covariances(field, x_obs, blocks, x_tgt)
        slots = {}
        if self.covariate_slots:  # the effects are Gaussian given their scales: the task stays a GP, the oracle exact
            slots, (g_o, g_t, variance) = self._covariates(rng, x_obs, blocks, x_tgt)
            cov_oo, cov_ot, cov_tt = (cov_oo + (g_o * variance) @ g_o.T, cov_ot + (g_o * variance) @ g_t.T,
                                      cov_tt + (g_t * variance) @ g_t.T)
        n_o = len(cov_oo)
        joint = np.block([[cov_oo + field.noise_std**2 * np.eye(n_o), cov_ot], [cov_ot.T, cov_tt]])
        chol = _cholesky(joint, self.jitter)
        z = rng.standard_normal(len(joint))
        values = chol @ z
        # exact posterior of the targets from the same factor: mean L_to z_o, covariance L_tt L_tt^T
        oracle_mean = chol[n_o:, :n_o] @ z[:n_o]
        oracle_std = np.sqrt(np.sum(chol[n_o:, n_o:] ** 2, axis=1))
        y_obs, y_tgt = values[:n_o], values[n_o:]
        offset, scale = (float(v[0]) for v in task_standardisation(y_obs[:, None], "task-scale"))
        origin = x_tgt.mean(axis=0)  # coordinates relative to the targets, as at prediction
        x_ctx = x_obs if blocks == 1 else x_obs.reshape(n_o, blocks, 2).mean(axis=1)
        return {
            "layout": layout, "x_ctx": x_ctx - origin, "y_ctx": (y_obs - offset) / scale,
            "support": 0.5 * np.log2(blocks),  # a block of b x b cells: log2(b) (geonp.features.support)
            "x_tgt": x_tgt - origin, "y_tgt": (y_tgt - offset) / scale, "hidden": hidden,
            "oracle_mean": (oracle_mean - offset) / scale, "oracle_std": oracle_std / scale, "field": field, **slots,
        }

    def _covariates(self, rng, x_obs, blocks: int, x_tgt):
        """Token columns of up to K covariates (:mod:`geonp.tasks.covariates`) at the context and the targets,
        and the effects' design: ``g_j(x_j)`` at the observations (block means) ``[n_o, K]`` and targets
        ``[Nt, K]``, and the effects' variances ``s_j^2`` ``[K]``."""
        key = jax.random.PRNGKey(int(rng.integers(2**31)))
        n, N = len(x_obs), len(x_obs) + len(x_tgt)
        size = -(-N // SLOT_BUCKET) * SLOT_BUCKET  # padded: a few compiled shapes for every task size
        points = np.zeros((size, 2), np.float32)
        points[:N] = np.concatenate([x_obs, x_tgt])
        columns, shaped, effect_scale = _draw_slots(self.covariate_slots, key, points, np.arange(size) < n)
        # to numpy before slicing: a jax slice to each task's own length would compile once per length
        columns, shaped = np.asarray(columns, np.float64)[:N], np.asarray(shaped, np.float64)[:N]
        block_mean = lambda a: a.reshape(-1, blocks, a.shape[-1]).mean(axis=1)  # noqa: E731  (a coarse cell's value)
        design = (block_mean(shaped[:n]), shaped[n:], np.asarray(effect_scale, np.float64) ** 2)
        return {"covariates_ctx": block_mean(columns[:n]), "covariates_tgt": columns[n:]}, design

    def _draw_field(self, rng) -> _Field:
        count = int(rng.integers(self.components[0], self.components[1] + 1))
        names, transforms, variances = [], [], []
        for _ in range(count):
            names.append(self.kernels[rng.integers(len(self.kernels))])
            length = _log_uniform(rng, *self.lengthscale)
            ratio = _log_uniform(rng, *self.anisotropy)
            angle = rng.uniform(0.0, np.pi)
            rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
            transforms.append(np.diag([1.0 / length, 1.0 / (length * ratio)]) @ rotation)
            variances.append(_log_uniform(rng, *self.component_variance))
        variances = np.asarray(variances) / np.sum(variances)
        return _Field(tuple(names), tuple(transforms), tuple(variances), 1.0 / _log_uniform(rng, *self.snr))

    # ------------------------------------------------------------------ layouts: (observed points, cells per
    # observation, targets [Nt, 2], hidden [Nt]); observed points are [n * cells, 2] (cells of each block together)

    def _gaps(self, rng, n_context, far=0):
        fraction = rng.uniform(*self.observed_fraction)
        # a grid that holds twice the context however sparse the observations, and with far context room for
        # points up to FAR_REACH x the near reach
        side = max(self.grid_side, int(np.ceil(np.sqrt(2.0 * self.num_context / fraction))))
        side = 2 * side if far else side
        spacing = np.sqrt(fraction / self.density)
        cells = _grid(side, spacing)  # [side^2, 2]
        if rng.uniform() < 0.8:  # contiguous blobs, from single cells to a third of the grid
            smooth = gaussian_filter(rng.standard_normal((side, side)), _log_uniform(rng, 0.7, side / 3), mode="wrap")
            observed = (smooth >= np.quantile(smooth, 1.0 - fraction)).reshape(-1)
        else:
            observed = rng.uniform(size=side * side) < fraction
        central = np.abs(cells).max(axis=1) <= spacing * side / 4
        candidates = np.flatnonzero(central & ~observed)
        if candidates.size == 0 or rng.uniform() > self.gap_centre_probability:
            candidates = np.flatnonzero(central)
        centre = cells[rng.choice(candidates)]
        distance = np.sum((cells - centre) ** 2, axis=1)
        obs_index = np.flatnonzero(observed)
        context = obs_index[np.argsort(distance[obs_index], kind="stable")[: n_context - far]]
        context = _with_far(cells, obs_index, context, centre, far, rng)
        targets = np.argsort(distance, kind="stable")[: self.num_target]
        return cells[context], 1, cells[targets], ~observed[targets]

    def _scattered(self, rng, n_context, far=0):
        density = self.density * _log_uniform(rng, 0.5, 2.0)
        half = np.sqrt(2.0 * self.num_context / density)  # a square holding twice the largest context
        if far:  # and room for points up to FAR_REACH x the near reach
            half = max(half, FAR_REACH * np.sqrt(n_context / (np.pi * density)))
        points = rng.uniform(-half, half, size=(int(4 * half * half * density), 2))
        index = np.arange(len(points))
        near = np.argsort(np.sum(points**2, axis=1), kind="stable")[: n_context - far]
        context = points[_with_far(points, index, near, np.zeros(2), far, rng)]
        # the targets of one prediction cell: the square around the centre holding half the context
        cell = 0.5 * np.sqrt(0.5 * n_context / density)
        targets = rng.uniform(-cell, cell, size=(self.num_target, 2))
        return context, 1, targets, np.zeros(self.num_target, bool)

    def _coarse(self, rng, n_context, far=0):
        factor = int(rng.choice(self.coarse_factors))
        coarse_spacing = np.sqrt(1.0 / self.density)
        fine = coarse_spacing / factor
        n_blocks = max(self.min_context, min(n_context, self.coarse_cells // factor**2))
        side = int(np.ceil(np.sqrt(n_blocks))) + 4
        centres = _grid(side, coarse_spacing)
        centre = rng.uniform(-0.5, 0.5, size=2) * coarse_spacing
        chosen = centres[np.argsort(np.sum((centres - centre) ** 2, axis=1), kind="stable")[:n_blocks]]
        offsets = _grid(factor, fine)  # the fine cells of one block, relative to its centre
        observed = (chosen[:, None, :] + offsets[None]).reshape(-1, 2)
        fine_cells = (centres[:, None, :] + offsets[None]).reshape(-1, 2)
        targets = fine_cells[np.argsort(np.sum((fine_cells - centre) ** 2, axis=1), kind="stable")[: self.num_target]]
        return observed, factor * factor, targets, np.zeros(self.num_target, bool)


# ---------------------------------------------------------------------- helpers


def _with_far(points, candidates, near, centre, far: int, rng) -> np.ndarray:
    """``near`` (indices into ``points``) plus up to ``far`` far observations among ``candidates``."""
    if not far:
        return near
    from scipy.spatial import cKDTree

    reach = float(np.sqrt(np.max(np.sum((points[near] - centre) ** 2, axis=1))))
    exclude = np.searchsorted(candidates, near)  # candidates are sorted indices; near is a subset of them
    chosen = far_indices(cKDTree(points[candidates]), centre, reach, far, rng, exclude)
    return np.concatenate([near, candidates[chosen]])


def _seed_words(key) -> list[int]:
    """A numpy seed from a jax PRNG key (or an int)."""
    if isinstance(key, int | np.integer):
        return [int(key)]
    import jax

    data = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return [int(w) for w in np.asarray(data).reshape(-1)]


SLOT_BUCKET = 512  # covariate fields are drawn for points padded to a multiple of this


@functools.partial(jax.jit, static_argnums=0)
def _draw_slots(slots: int, key, points, observed):
    """One task's covariate token columns ``[N, 2K]`` (values standardised over ``observed`` where in use, then
    the in-use flags), shaped ``g_j(x_j)`` ``[N, K]`` and effect scales ``[K]`` (:mod:`geonp.tasks.covariates`)."""
    from geonp.tasks import covariates as covariate_prior

    prior = covariate_prior.CovariatePrior(slots=slots)
    k_x, k_effect = jax.random.split(key)
    x, kinds = covariate_prior.draw_covariates(prior, k_x, points[None], observed[None])
    shaped, scale, used = covariate_prior.draw_effect_design(prior, k_effect, x, kinds)
    return covariate_prior.slot_columns(x, used)[0], shaped[0], scale[0]


def _log_uniform(rng, low, high) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _grid(side: int, spacing: float) -> np.ndarray:
    """``[side^2, 2]`` cell centres of a square grid centred on the origin."""
    axis = (np.arange(side) - (side - 1) / 2.0) * spacing
    gx, gy = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([gx.reshape(-1), gy.reshape(-1)], axis=-1)


def _kernel(field: _Field, a, b) -> np.ndarray:
    out = 0.0
    for name, transform, variance in zip(field.kernels, field.transforms, field.variances, strict=True):
        r = cdist(a @ transform.T, b @ transform.T)
        out = out + variance * kernels.of_distance(name, r)
    return out


def _covariances(field: _Field, x_obs, blocks: int, x_tgt):
    """Covariances of the observations (means over ``blocks`` cells each) and the target latents."""
    k_oo, k_ot, k_tt = _kernel(field, x_obs, x_obs), _kernel(field, x_obs, x_tgt), _kernel(field, x_tgt, x_tgt)
    if blocks > 1:
        n = len(x_obs) // blocks
        k_oo = k_oo.reshape(n, blocks, n, blocks).mean(axis=(1, 3))
        k_ot = k_ot.reshape(n, blocks, -1).mean(axis=1)
    return k_oo, k_ot, k_tt


def _cholesky(matrix, jitter: float) -> np.ndarray:
    eye = np.eye(len(matrix))
    for scale in (1.0, 10.0, 100.0, 1000.0):
        try:
            return np.linalg.cholesky(matrix + jitter * scale * eye)
        except np.linalg.LinAlgError:
            continue
    raise FloatingPointError("the task covariance is not positive definite even with added jitter.")
