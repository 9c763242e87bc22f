"""Kriging on each neighbourhood beside the network, blended into its mean by distance to data.

Attention is a kernel smoother: near the data it cannot do the linear solve that makes a
Gaussian process precise there (on real rasters, a GP fitted by maximum likelihood is 17-20%
more precise than the bundled model within 1.5 cells of an observation; deeper in gaps the
network, which sees the gap's whole rim and far context, is better). So prediction also
kriges each neighbourhood's own context (the very points the network conditions on, in the
same standardised units ``z``):

    m_k(x*) = k(x*, X) [K(X, X) + eta I]^-1 z          K: Matérn correlation of length scale ``ell``

about the neighbourhood's mean (simple kriging, ``trend=0``), or about a plane (universal kriging,
``trend=1``: what a statistician's GP with a linear trend does):

    m_k(x*) = f(x*) b + k(x*, X) [K(X, X) + eta I]^-1 (z - F b)

with ``F = [1, u, v]`` the plane along the neighbourhood's two main axes and ``b`` its generalised least
squares fit. Simple kriging 3-12 cells into a gap falls back to the neighbourhood mean; the plane
carries the gradient on. ``fit`` fits both kernels and keeps the one whose blend does better on the
held-out cells (:func:`geonp.calibrate.calibration.choose_kriging`): the plane is kept on 10 of 13 UK
and Norway fields of the real-data benchmark and the mean on 4 of 6 global 3-degree fields, where a
neighbourhood spans a fifth of the globe and a plane forced on them cost 1.5-4% (benchmarks/RESULTS.md,
stop 44). It then blends it into the network's mean ``m_n`` with a weight that
depends on how far the target lies from its nearest observation:

    m(x*) = m_n(x*) + w(d) (m_k(x*) - m_n(x*))          0 <= w(d) <= 1, non-increasing in d

The kernel's smoothness, ``ell`` and ``eta`` are fitted once per dataset by the likelihood of a few
neighbourhoods of the data (:func:`fit_kernel`; the amplitude is profiled out, since the mean does not
depend on it; with the plane, the restricted likelihood of its residuals). The weights are learned with the spread
calibration, on the same held-out cells in the data's own gap shapes (:func:`fit_weights`,
called by :func:`geonp.calibrate.calibration.calibrate`): in each distance bin, the least-squares weight
of the two means on the held-out truth, clipped to [0, 1] and made non-increasing with distance.
Where kriging does not help, the weights are 0 and the network's mean is kept. The spread stays
the network's, calibrated on the blended mean's errors (blending in kriging's own std lowered the
CRPS but undercovered near block means and scattered gaps: benchmarks/RESULTS.md, stop 32).
"""

from __future__ import annotations

import dataclasses
import functools
import threading

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve, solve_triangular
from scipy.optimize import isotonic_regression
from scipy.spatial import cKDTree
from scipy.spatial.distance import cdist

from geonp.errors import ConfigError
from geonp.tasks.kernels import of_distance

KERNELS = ("matern12", "matern32", "matern52")
LENGTH_SCALES = np.geomspace(0.5, 300.0, 14)  # in units of the median spacing between observations
NOISE_RATIOS = (1e-4, 1e-3, 1e-2, 0.03, 0.1, 0.3)  # noise variance / signal variance
JITTER = 1e-6
MAX_POINTS = 256  # kriged per neighbourhood: the nearest to its targets (a solve costs the cube of this)
FIT_SETS = 4  # neighbourhoods whose likelihood chooses the kernel
FIT_POINTS = 200  # observations in each


@functools.cache
def _blas():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # created on first use: after numpy and scipy have loaded their BLAS


_LIMIT = threading.Lock()
_LIMITED = {"count": 0, "limiter": None}  # dask runs tiles in threads: the first in limits, the last out restores


def one_blas_thread(fn):
    """Run ``fn`` with BLAS on one thread: these solves are small, and a multi-threaded BLAS beside jax's
    spinning worker threads made each 600 x 600 Cholesky take 0.5 s instead of 1-2 ms on 2 cores.
    Counted across threads, so the user's own BLAS threads are restored once no solve is running."""

    @functools.wraps(fn)
    def wrapped(*args, **kwargs):
        with _LIMIT:
            if _LIMITED["count"] == 0:
                _LIMITED["limiter"] = _blas().limit(limits=1, user_api="blas")
            _LIMITED["count"] += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with _LIMIT:
                _LIMITED["count"] -= 1
                if _LIMITED["count"] == 0:
                    _LIMITED["limiter"].restore_original_limits()

    return wrapped


@dataclasses.dataclass(frozen=True)
class LocalKriging:
    """A kriging kernel (in standardised units) and blend weights by distance to data.

    ``distance`` (increasing; km on the sphere, CRS units when projected) are the knots of ``weight``;
    between knots it is linear, below the first constant, and never above :meth:`explained` (the share of
    the target's variance its nearest observation explains). ``reach`` is the farthest distance the held-out
    cells that learned the weights covered: from the last knot the weight falls linearly to 0 there, and
    stays 0 beyond (a learned weight is never extrapolated: deeper in gaps than any held-out cell, the
    network's own mean). Without knots the blend weight is 0 everywhere.
    """

    kernel: str = "matern32"
    length_scale: float = 1.0
    noise: float = 1e-2
    distance: tuple[float, ...] = ()
    weight: tuple[float, ...] = ()
    reach: float = np.inf
    trend: int = 0  # 1: a plane along the neighbourhood's main axes (universal kriging); 0: its mean alone

    def __post_init__(self):
        if self.kernel not in KERNELS:
            raise ConfigError(f"kriging kernel {self.kernel!r} is not one of {KERNELS}.")
        if not (self.length_scale > 0 and np.isfinite(self.length_scale) and self.noise >= 0
                and np.isfinite(self.noise) and self.reach > 0):
            raise ConfigError(f"kriging length_scale ({self.length_scale}) and reach ({self.reach}) must be > 0 "
                              f"and noise ({self.noise}) >= 0, all finite but reach.")
        if self.trend not in (0, 1):
            raise ConfigError(f"kriging trend must be 0 (the neighbourhood mean) or 1 (a plane); got {self.trend!r}.")
        if len(self.distance) != len(self.weight) or not np.all(np.isfinite(self.distance)) or \
                np.any(np.diff(self.distance) <= 0) or not all(0.0 <= w <= 1.0 for w in self.weight):
            raise ConfigError("kriging blend knots must be increasing finite distances, one weight in [0, 1] each; "
                              f"got distance={list(self.distance)}, weight={list(self.weight)}.")

    @property
    def blends(self) -> bool:
        return any(w > 0 for w in self.weight)

    def weights(self, distance, explained=None) -> np.ndarray:
        """``w(d)`` at each of ``distance``; with a plane and each target's ``explained`` share of variance
        (:meth:`predict`), capped by that share instead of :meth:`explained`."""
        distance = np.asarray(distance, np.float64)
        if not self.distance:
            return np.zeros_like(distance)
        cap = self.explained(distance) if not self.trend or explained is None else np.nan_to_num(explained)
        weight = np.minimum(np.interp(distance, self.distance, self.weight), cap)
        if np.isfinite(self.reach):  # from the last knot (the farthest bin's median) down to 0 at the reach
            last = self.distance[-1]
            taper = np.clip((self.reach - distance) / max(self.reach - last, 1e-12), 0.0, 1.0)
            weight = np.where(distance > self.reach, 0.0, np.where(distance > last, weight * taper, weight))
        return weight

    def explained(self, distance) -> np.ndarray:
        """``rho(d)^2``: the share of a target's variance its nearest observation explains under the kernel,
        the cap on the blend weight about the mean. Kriging far from every observation extrapolates the kernel
        towards the neighbourhood mean, where the network reads the gap's whole rim and far context: on real
        gaps 6-25 cells deep a weight learned nearer the rim cost 2-7% RMSE (benchmarks/RESULTS.md, stop 34).
        About a plane, the cap is each target's own share (:meth:`predict`), which also falls as the plane
        is extrapolated."""
        return of_distance(self.kernel, np.asarray(distance, np.float64) / self.length_scale) ** 2

    def mean(self, points_ctx, z_ctx, points_tgt) -> np.ndarray:
        """The kriging mean ``[Nt]`` alone (:meth:`predict`)."""
        return self.predict(points_ctx, z_ctx, points_tgt)[0]

    @one_blas_thread
    def predict(self, points_ctx, z_ctx, points_tgt) -> tuple[np.ndarray, np.ndarray]:
        """The kriging mean ``[Nt]`` (about the neighbourhood's mean, or with ``trend`` a plane) at ``points_tgt``
        ``[Nt, E]`` from ``z_ctx`` ``[Nc]`` at ``points_ctx`` ``[Nc, E]`` (embedding units; ``z`` centred, as the
        network sees each neighbourhood). Of a larger context, the ``MAX_POINTS`` nearest to the targets' centre
        and each target's own 4 nearest are kriged (the far ones barely weigh: the screening effect). NaN where
        the system cannot be solved.

        Also ``explained [Nt]``: the share of each target's prior variance the kriging explains,
        ``1 - var / prior``, in [0, 1]. About a plane the variance includes the plane's own uncertainty,
        ``var = 1 - k' K^-1 k + u' (F' K^-1 F)^-1 u`` with ``u = f - F' K^-1 k``, so the share falls to 0 as the
        plane is extrapolated far beyond the neighbourhood; about the mean it is ``k' K^-1 k``."""
        cross = cdist(points_tgt, points_ctx)  # [Nt, Nc]
        if len(points_ctx) > MAX_POINTS:  # the points nearest the targets' centre, and each target's own 4
            keep = np.zeros(len(points_ctx), bool)
            centre = cdist(points_tgt.mean(axis=0, keepdims=True), points_ctx)[0]
            keep[np.argpartition(centre, MAX_POINTS - 1)[:MAX_POINTS]] = True
            keep[np.argpartition(cross, min(3, cross.shape[1] - 1), axis=1)[:, :4].ravel()] = True
            points_ctx, z_ctx, cross = points_ctx[keep], np.asarray(z_ctx)[keep], cross[:, keep]
        system = of_distance(self.kernel, cdist(points_ctx, points_ctx) / self.length_scale)
        system[np.diag_indices_from(system)] += self.noise + JITTER
        try:
            factor = cho_factor(system, lower=True, overwrite_a=True, check_finite=False)
        except LinAlgError:
            return np.full(len(points_tgt), np.nan), np.zeros(len(points_tgt))
        z = np.asarray(z_ctx, np.float64)
        level = np.zeros(len(points_tgt))
        k_cross = of_distance(self.kernel, cross / self.length_scale)  # [Nt, Nc]
        whitened = solve_triangular(factor[0], k_cross.T, lower=True, check_finite=False)  # L^-1 k  [Nc, Nt]
        explained = np.sum(whitened**2, axis=0)  # k' K^-1 k  [Nt]
        if self.trend:  # the plane by generalised least squares, kriging its residuals
            basis, at = plane_basis(points_ctx, points_tgt)  # [Nc, 3], [Nt, 3]
            coef, solved, normal = gls_plane(factor, basis, z)  # [3], K^-1 F [Nc, 3], F' K^-1 F [3, 3]
            z, level = z - basis @ coef, at @ coef
            excess = at - k_cross @ solved  # u = f - F' K^-1 k  [Nt, 3]
            explained = explained - np.einsum("tp,tp->t", excess, np.linalg.solve(normal, excess.T).T)
        weights = cho_solve(factor, z, check_finite=False)
        return level + k_cross @ weights, np.clip(explained, 0.0, 1.0)

    def to_dict(self) -> dict:
        return {"kernel": self.kernel, "length_scale": self.length_scale, "noise": self.noise,
                "distance": list(self.distance), "weight": list(self.weight),
                **({"reach": self.reach} if np.isfinite(self.reach) else {}), "trend": self.trend}

    @classmethod
    def from_calibration(cls, calibration: dict | None) -> LocalKriging | None:
        """From a model's ``calibration_["kriging"]``; None where there is none (fitted before it existed)."""
        table = (calibration or {}).get("kriging")
        if not table:
            return None
        return cls(str(table["kernel"]), float(table["length_scale"]), float(table["noise"]),
                   tuple(float(d) for d in table.get("distance", ())), tuple(float(w) for w in table.get("weight", ())),
                   float(table.get("reach", np.inf)), int(table.get("trend", 0)))  # saved before planes: 0


def neighbourhood_sets(points: list, values: list, rng, count: int = FIT_SETS, size: int = FIT_POINTS) -> list:
    """``count`` neighbourhoods ``(points [n, E], z [n])`` of the fields ``points[i]``, ``values[i]``: the ``size``
    observations nearest to a random observation, standardised by their own mean and std as the network's."""
    sets = []
    usable = [i for i, v in enumerate(values) if len(v) >= 8]
    for k in range(count if usable else 0):
        i = usable[k % len(usable)]
        p, v = points[i], np.asarray(values[i], np.float64)
        near = cKDTree(p).query(p[rng.integers(len(p))], k=min(size, len(p)))[1]
        z = v[near] - v[near].mean()
        if z.std() > 0:
            sets.append((p[near], z / z.std()))
    return sets


def plane_basis(points_ctx, points_tgt) -> tuple[np.ndarray, np.ndarray]:
    """``[1, u, v]`` at the context ``[Nc, 3]`` and the targets ``[Nt, 3]``: ``u, v`` along the context's two
    main axes (a plane on the sphere's chord embedding, or the projected plane), centred on the context and
    scaled by its spread, so that the least squares below are well conditioned."""
    centre = points_ctx.mean(axis=0)
    _, spread, axes = np.linalg.svd(points_ctx - centre, full_matrices=False)
    scale = spread[:2] / np.sqrt(len(points_ctx))
    axes = axes[:2].T / np.where(scale > 0, scale, 1.0)  # [E, 2]
    return (np.column_stack([np.ones(len(points_ctx)), (points_ctx - centre) @ axes]),
            np.column_stack([np.ones(len(points_tgt)), (points_tgt - centre) @ axes]))


def gls_plane(factor, basis, z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generalised least squares fit of ``basis`` F ``[n, p]`` to ``z [n]`` for the Cholesky ``factor`` of
    ``K``: ``(b [p], K^-1 F [n, p], F' K^-1 F [p, p])``, ``b = (F' K^-1 F)^-1 F' K^-1 z``. The normal matrix is
    ridged a little: a neighbourhood along a line leaves one axis unresolved."""
    solved = cho_solve(factor, basis, check_finite=False)  # [n, p]
    normal = basis.T @ solved
    normal[np.diag_indices_from(normal)] += 1e-8 * max(float(np.trace(normal)), 1e-12)
    return np.linalg.solve(normal, solved.T @ z), solved, normal


@one_blas_thread
def fit_kernel(sets: list, trend: int = 1) -> LocalKriging | None:
    """The kernel, length scale and noise ratio with the highest profile likelihood summed over ``sets``
    (restricted to the residuals of the plane with ``trend``; a grid search: robust, and cheap on
    neighbourhoods of a few hundred points). None without sets."""
    if not sets:
        return None
    distances = [cdist(p, p) for p, _ in sets]
    bases = [plane_basis(p, p[:1])[0] if trend else None for p, _ in sets]
    spacing = float(np.median([np.median(np.sort(d, axis=1)[:, 1]) for d in distances]))
    spacing = spacing if spacing > 0 else 1.0
    best, best_nll = None, np.inf
    for kernel in KERNELS:
        for ell in LENGTH_SCALES * spacing:
            corr = [of_distance(kernel, d / ell) for d in distances]
            for eta in NOISE_RATIOS:
                nll = sum(_profile_nll(c, eta, z, f) for c, (_, z), f in zip(corr, sets, bases, strict=True))
                if nll < best_nll:
                    best, best_nll = LocalKriging(kernel, round(float(ell), 6), eta, trend=trend), nll
    return best


def _profile_nll(corr, eta: float, z, basis=None) -> float:
    """Negative log likelihood of ``z`` under ``s^2 (corr + eta I)`` with ``s^2`` at its maximum; with a
    ``basis`` ``[n, p]``, the restricted likelihood of the residuals of its generalised least squares fit."""
    try:
        factor = cho_factor(corr + (eta + JITTER) * np.eye(len(z)), lower=True, check_finite=False)
    except LinAlgError:
        return np.inf
    n, logdet = len(z), float(np.log(np.diag(factor[0])).sum())
    if basis is not None:
        coef, _, normal = gls_plane(factor, basis, z)
        residual = z - basis @ coef
        sign, logdet_normal = np.linalg.slogdet(normal)
        if sign <= 0:
            return np.inf
        n, z, logdet = n - basis.shape[1], residual, logdet + 0.5 * logdet_normal
    quad = float(z @ cho_solve(factor, z, check_finite=False))
    return 0.5 * n * np.log(max(quad, 1e-300) / n) + logdet


MIN_BIN = 100  # held-out cells per distance bin of the weights (a least-squares weight needs fewer than a quantile)
CLEAR_GAIN = 1.0  # standard errors (over gap squares) by which the blend must lower a bin's squared error to keep
# its weight: 2 dropped gains of 15% near the data on UK cloud gaps (in-sample gain 24.6, SE 19.1)


def fit_weights(error_network, error_kriging, distance, groups: list, cluster=None, fold=None) -> tuple[tuple, tuple]:
    """Blend weight knots ``(distance, weight)`` from held-out cells.

    ``error_network = truth - m_n``, ``error_kriging = truth - m_k`` (same units), ``distance`` to the
    nearest observation, ``groups``: index arrays of cells by increasing distance
    (:func:`geonp.calibrate.spread.distance_groups`), ``cluster``: each cell's error cluster (cells of one
    gap share their errors), ``fold``: 0 or 1 per cell (held-out masks apart). In each group the weight
    minimising the squared error of ``m_n + w (m_k - m_n)``, clipped to [0, 1], is kept only where the
    gain in squared error is ``CLEAR_GAIN`` standard error above 0 (over the clusters, at least 3 of
    them) and, with folds, where the weight learned on each fold also lowers the other fold's error
    (cross-fitted: the gain must hold where the gaps lie elsewhere); the network is the default, and a
    stage earns its place on evidence. Then non-increasing with distance (weighted isotonic).
    """
    cluster = np.arange(distance.size) if cluster is None else np.asarray(cluster)  # None: independent cells
    knots, weights, counts = [], [], []
    for inside in groups:
        en, step = error_network[inside], error_network[inside] - error_kriging[inside]  # step: m_k - m_n
        w = least_squares_weight(en, step)
        clear = clear_gain(en**2 - (en - w * step) ** 2, cluster[inside])
        if clear and fold is not None:
            a, b = fold[inside] == 0, fold[inside] == 1
            if a.any() and b.any():  # each fold's weight on the other fold's cells
                cross = (np.sum(en[b] ** 2 - (en[b] - least_squares_weight(en[a], step[a]) * step[b]) ** 2)
                         + np.sum(en[a] ** 2 - (en[a] - least_squares_weight(en[b], step[b]) * step[a]) ** 2))
                clear = cross > 0
        weights.append(w if clear else 0.0)
        knots.append(round(float(np.median(distance[inside])), 6))
        counts.append(inside.size)
    weights = isotonic_regression(weights, weights=counts, increasing=False).x
    return tuple(knots), tuple(round(float(w), 4) for w in weights)


def least_squares_weight(error_network, step) -> float:
    """The ``w`` in [0, 1] minimising ``sum (error_network - w step)^2`` (0 without a step)."""
    power = float(np.sum(step**2))
    return float(np.clip(np.sum(step * error_network) / power, 0.0, 1.0)) if power > 0 else 0.0


def clear_gain(gain: np.ndarray, cluster: np.ndarray, threshold: float = CLEAR_GAIN) -> bool:
    """Whether the summed ``gain`` is ``threshold`` standard errors above 0, the gains summed per cluster
    being the independent units (a cluster-robust standard error)."""
    _, of = np.unique(cluster, return_inverse=True)
    per = np.bincount(of.reshape(-1), weights=gain)
    if per.size < 3:
        return False
    total = float(per.sum())
    se = float(np.sqrt(per.size / (per.size - 1) * np.sum((per - per.mean()) ** 2)))
    return total > threshold * se
