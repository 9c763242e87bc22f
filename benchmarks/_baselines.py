"""The classical methods every accuracy benchmark runs beside geonp, in one place.

Each takes observations ``values [N]`` at ``src [N, E]`` and targets ``dst [M, E]`` in a Euclidean
embedding (3-D chord km on the sphere, CRS units when projected) and returns ``(mean [M], std [M] or
None)``: a point method has no spread.

* ``nearest``, ``idw`` (inverse-distance weighting of the 10 nearest, power 2);
* ``kriging``: ordinary kriging, exponential variogram fitted by pykrige (a random 1,500 observations);
* ``gp_ml``: a Matérn-3/2 GP, constant mean, hyperparameters by maximum marginal likelihood on 800
  observations, predicting from the 800 nearest each block of targets;
* ``vecchia_gp``: what a statistician would fit to a large raster: a Vecchia-approximated GP
  (GPBoost, ``gp_approx="vecchia"``, 30 neighbours) with a linear trend in the coordinates, Matérn
  smoothness the best of 1/2, 3/2, 5/2 by likelihood on a subsample, then range, variance and nugget
  by maximum likelihood on up to ``max_points`` observations. GPBoost is a benchmark extra
  (``pip install -e ".[bench]"``); without it the method is skipped;
* ``grid_interp``: xarray's bilinear / bicubic interpolation of a coarse grid (downscaling).
"""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import xarray as xr
from scipy import ndimage, optimize
from scipy.spatial import cKDTree


def nearest(src, values, dst):
    return values[cKDTree(src).query(dst, k=1)[1]], None


def idw(src, values, dst, k: int = 10, power: float = 2.0):
    dist, idx = cKDTree(src).query(dst, k=min(k, len(src)))
    w = 1.0 / np.maximum(dist, 1e-9) ** power
    return (w * values[idx]).sum(-1) / w.sum(-1), None


def kriging(src, values, dst, max_points: int = 1500, seed: int = 0):
    """Ordinary kriging with an exponential variogram (pykrige) in 3-D chord km, one value per location.

    Above ``max_points`` observations, kriging uses a random subsample of that many
    (pykrige's local-neighbourhood mode took 456 s for one Norway case on 2 cores).
    """
    from pykrige.ok3d import OrdinaryKriging3D

    src = np.column_stack([src, np.zeros((len(src), 3 - src.shape[1]))]) if src.shape[1] < 3 else src
    dst = np.column_stack([dst, np.zeros((len(dst), 3 - dst.shape[1]))]) if dst.shape[1] < 3 else dst
    # one value per location: on a global grid a pole row is one point repeated, which makes the kriging
    # system singular (without this, 9e4 K errors on the global cases)
    src, inverse = np.unique(np.round(src, 6), axis=0, return_inverse=True)
    values = np.bincount(inverse.reshape(-1), weights=values) / np.bincount(inverse.reshape(-1))
    if len(src) > max_points:
        pick = np.random.default_rng(seed).choice(len(src), size=max_points, replace=False)
        src, values = src[pick], values[pick]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = OrdinaryKriging3D(src[:, 0], src[:, 1], src[:, 2], values, variogram_model="exponential")
        mean, var = ok.execute("points", dst[:, 0], dst[:, 1], dst[:, 2])
    return np.asarray(mean), np.sqrt(np.maximum(np.asarray(var), 1e-12))


def _matern32(d, ls):
    r = np.sqrt(3.0) * d / ls
    return (1.0 + r) * np.exp(-r)


def gp_ml(src, values, dst, subsample: int = 800, seed: int = 0):
    """Matern-3/2 GP, hyperparameters by maximum marginal likelihood on a subsample; local prediction."""
    from scipy.linalg import cho_factor, cho_solve
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(src), size=min(subsample, len(src)), replace=False)
    xs, ys = src[pick], values[pick]
    mu0, sd0 = ys.mean(), ys.std() + 1e-9
    d = cdist(xs, xs)
    spread = np.median(d[d > 0]) if (d > 0).any() else 1.0

    def nll(theta):
        amp, ls, noise = np.exp(theta)
        k = amp * _matern32(d, ls) + (noise + 1e-6) * np.eye(len(xs))
        try:
            c = cho_factor(k, lower=True)
        except np.linalg.LinAlgError:
            return 1e10
        r = (ys - mu0) / sd0
        return 0.5 * r @ cho_solve(c, r) + np.log(np.diag(c[0])).sum()

    best = optimize.minimize(nll, np.log([1.0, spread / 4, 0.01]), method="L-BFGS-B",
                             bounds=[(-5, 5), (np.log(spread / 1000), np.log(spread * 10)), (-12, 2)])
    amp, ls, noise = np.exp(best.x)
    tree = cKDTree(src)
    mean, std = np.empty(len(dst)), np.empty(len(dst))
    for block in np.array_split(np.arange(len(dst)), max(1, len(dst) // 200)):
        near = np.unique(tree.query(dst[block], k=min(subsample, len(src)))[1][:, :8].ravel())
        near = np.unique(np.concatenate([near, tree.query(dst[block].mean(0), k=min(subsample, len(src)))[1]]))
        xc, yc = src[near], (values[near] - mu0) / sd0
        k = amp * _matern32(cdist(xc, xc), ls) + (noise + 1e-6) * np.eye(len(xc))
        c = cho_factor(k, lower=True)
        ks = amp * _matern32(cdist(dst[block], xc), ls)
        mean[block] = ks @ cho_solve(c, yc)
        var = amp - np.einsum("ij,ji->i", ks, cho_solve(c, ks.T)) + noise
        std[block] = np.sqrt(np.maximum(var, 1e-12))
    return mu0 + sd0 * mean, sd0 * std


def has_gpboost() -> bool:
    return importlib.util.find_spec("gpboost") is not None


VECCHIA_NEIGHBOURS = 30
SHAPES = (0.5, 1.5, 2.5)


def vecchia_gp(src, values, dst, max_points: int = 20000, shape_points: int = 3000, seed: int = 0):
    """A Vecchia GP with a linear trend in the coordinates, fitted by maximum likelihood (GPBoost).

    The Matérn smoothness is the best of :data:`SHAPES` by the likelihood of ``shape_points``
    observations; range, variance and nugget are then fitted on up to ``max_points`` observations,
    which it conditions on. Returns ``(mean, std)``, the std including the nugget (a new observation's).
    """
    import gpboost as gpb

    rng = np.random.default_rng(seed)
    centre, scale = src.mean(0), max(float(src.std()), 1e-9)
    unit = lambda p: (p - centre) / scale  # noqa: E731 (a well-conditioned trend and range)
    design = lambda p: np.column_stack([np.ones(len(p)), unit(p)])  # noqa: E731
    mu, sd = float(values.mean()), float(values.std()) or 1.0
    z = (values - mu) / sd

    def fitted(index, shape):
        model = gpb.GPModel(gp_coords=unit(src[index]), cov_function="matern", cov_fct_shape=shape,
                            gp_approx="vecchia", num_neighbors=VECCHIA_NEIGHBOURS, likelihood="gaussian",
                            seed=seed)
        model.fit(y=z[index], X=design(src[index]), params={"trace": False})
        return model

    def subsample(n):
        return np.sort(rng.choice(len(src), size=n, replace=False)) if len(src) > n else np.arange(len(src))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small = subsample(shape_points)
        likelihoods = {shape: fitted(small, shape).get_current_neg_log_likelihood() for shape in SHAPES}
        model = fitted(subsample(max_points), min(likelihoods, key=likelihoods.get))
        pred = model.predict(gp_coords_pred=unit(dst), X_pred=design(dst), predict_var=True, predict_response=True)
    mean = np.asarray(pred["mu"], np.float64)
    std = np.sqrt(np.maximum(np.asarray(pred["var"], np.float64), 1e-12))
    return mu + sd * mean, sd * std


def grid_interp(coarse: xr.DataArray, fine: xr.DataArray, method: str):
    """xarray interpolation of the coarse grid onto the fine one; the nearest value outside the coarse centres.

    Splines cannot cross gaps (the sea in Norway): missing coarse cells take their nearest valid value first.
    """
    missing = ~np.isfinite(coarse.values)
    if missing.any():
        nearest_index = ndimage.distance_transform_edt(missing, return_distances=False, return_indices=True)
        coarse = coarse.copy(data=coarse.values[tuple(nearest_index)])
    out = coarse.interp(latitude=fine.latitude, longitude=fine.longitude, method=method).values
    near = coarse.interp(latitude=fine.latitude, longitude=fine.longitude, method="nearest",
                         kwargs={"fill_value": None}).values
    out = np.where(np.isfinite(out), out, near)
    return out.ravel(), None
