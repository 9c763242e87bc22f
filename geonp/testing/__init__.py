"""Helpers for tests and benchmarks: small xarray fields, a tiny model's settings, random attention inputs,
bundled models given new inputs, GP reference grids."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import numpy as np
import xarray as xr
from scipy.linalg import cho_factor, cho_solve

from geonp.nn import bias as bias_lib
from geonp.tasks import kernels

# A tiny model trained for a few steps: for fit/save/load mechanics, not accuracy.
TINY = dict(num_blocks=2, width=16, num_heads=2, head_dim=8, ff_dim=32, window_points=64, max_context=48,
            num_target=32, batch_size=4, progress=False)


def smooth_field(lat, lon, times=3, seed=0) -> xr.DataArray:
    """A smooth random field (sum of a few plane waves), K around 280, with CF attrs: ``[time, lat, lon]``."""
    rng = np.random.default_rng(seed)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    data = []
    for _ in range(times):
        field = np.zeros_like(la)
        for _ in range(4):
            k = rng.normal(0, 12, size=2)
            field += np.cos(k[0] * la + k[1] * lo + rng.uniform(0, 2 * np.pi))
        data.append(280.0 + 2.0 * field)
    return xr.DataArray(
        np.array(data, np.float32), dims=("time", "lat", "lon"),
        coords={"time": np.datetime64("2020-01-01T00", "ns") + np.arange(times) * np.timedelta64(6, "h"),
                "lat": ("lat", np.asarray(lat, float), {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", np.asarray(lon, float), {"units": "degrees_east", "standard_name": "longitude"})},
        name="t2m", attrs={"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"},
    )


def with_gaps(da: xr.DataArray, fraction: float = 0.6, seed: int = 1) -> xr.DataArray:
    """``da`` with a random ``fraction`` of its cells missing."""
    keep = np.random.default_rng(seed).random(da.shape) > fraction
    return da.where(keep)


SPACE_TIME = (
    bias_lib.CoordinateGroup("space", 2, "euclidean", num_basis=5),
    bias_lib.CoordinateGroup("time", 1, "euclidean", num_basis=3),
)


def random_attention_inputs(seed, B, Nq, Nk, H=2, Dh=8, groups=SPACE_TIME, amplitude_std=1.0):
    """q, k, v ``[B, N, H, Dh]``, metadata on [-2, 2], random bias parameters and the bias function."""
    ks = jax.random.split(jax.random.PRNGKey(seed), 6)
    q = jax.random.normal(ks[0], (B, Nq, H, Dh))
    k = jax.random.normal(ks[1], (B, Nk, H, Dh))
    v = jax.random.normal(ks[2], (B, Nk, H, Dh))
    q_meta = {g.name: jax.random.uniform(jax.random.fold_in(ks[3], i), (B, Nq, g.dim), minval=-2, maxval=2)
              for i, g in enumerate(groups)}
    k_meta = {g.name: jax.random.uniform(jax.random.fold_in(ks[4], i), (B, Nk, g.dim), minval=-2, maxval=2)
              for i, g in enumerate(groups)}
    params = bias_lib.init_rbf_bias(ks[5], groups, H, amplitude_mean=0.0, amplitude_std=amplitude_std)
    bias_fn = functools.partial(bias_lib.rbf_bias, groups=groups)
    return q, k, v, q_meta, k_meta, params, bias_fn


def extended_release(name, folder, changes: dict, new_rows: float = 0.0, metadata: dict | None = None,
                     rows: dict | None = None):
    """A bundled model given new token inputs (``changes`` to its config, e.g. ``{"support": True}``), saved
    under ``folder``: its new embedding rows are zero (the same function) or ``new_rows`` (so they matter);
    ``metadata`` updates its config.json metadata (e.g. a context rule); ``rows`` sets the embedding rows of
    named token inputs (:func:`geonp.nn.config.token_layout`, e.g. ``{"covariates": 0.0}``), whether or not
    the bundled model had them already."""
    from geonp.estimator.estimator import NeuralProcess
    from geonp.estimator.releases import pretrained, save_model
    from geonp.nn.config import token_layout, token_width
    from geonp.nn.models import initial_params
    from geonp.training.warm_start import embedding_kernel_path, transplant, with_token_layout

    config, params, meta = pretrained(name)
    extended = dataclasses.replace(config, **changes)
    moved = with_token_layout(params, config, extended)  # every input's rows where the new layout puts it
    params, report = transplant(moved, initial_params(extended), zero_new=True)
    if report["partial"] or report["fresh"]:  # only the token embedding's inputs may change
        raise ValueError(f"{changes} changed more than the token embedding's inputs: {report}.")
    old_layout, layout = token_layout(config), token_layout(extended)
    kernel = embedding_kernel_path(params, token_width(extended))
    added = [slice(layout[k].start + (old_layout[k].stop - old_layout[k].start if k in old_layout else 0),
                   layout[k].stop) for k in layout]  # rows of inputs (or columns of one) the release lacked

    def set_rows(path, leaf):
        leaf = np.array(leaf)
        if jax.tree_util.keystr(path) == kernel:
            for block in added:
                leaf[block] = new_rows
            for input_name, value in (rows or {}).items():
                leaf[layout[input_name]] = value
        return leaf

    named = [f"{k}{v}" for k, v in {**(metadata or {}), **(rows or {})}.items()]
    path = folder / f"{name}-{'-'.join([*changes, *named])}-{new_rows}"
    save_model(path, extended, jax.tree_util.tree_map_with_path(set_rows, params),
               {**json.loads(json.dumps(meta)), **(metadata or {})})
    return NeuralProcess(pretrained=str(path), likelihood=extended.likelihood.to_dict(), steps=0)


# --------------------------------------------------------------------------- GP reference grids: a field whose
# exact posterior is known (an RBF GP of length scale LENGTHSCALE_KM, noise NOISE), for the accessor's end-to-end
# checks and the joint-draw benchmark

LENGTHSCALE_KM, NOISE = 6.0, 0.1


def gp_grid(size=32, fraction=0.35, seed=0):
    rng = np.random.default_rng(seed)
    axis = np.arange(size) * 1000.0  # metres
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    points = np.stack([xx.ravel(), yy.ravel()], -1) / 1000.0  # km
    cov = kernels.covariance("rbf", points, points, LENGTHSCALE_KM) + 1e-6 * np.eye(len(points))
    truth = np.linalg.cholesky(cov) @ rng.normal(size=len(points))
    seen = rng.random(len(points)) < fraction
    observed = np.where(seen, truth + NOISE * rng.normal(size=len(points)), np.nan)
    coords = {"y": ("y", axis, {"units": "m"}), "x": ("x", axis, {"units": "m"})}
    da = xr.DataArray(observed.reshape(size, size) * 3.0 + 15.0, dims=("y", "x"), coords=coords, name="z",
                      attrs={"units": "degC"})  # user units: scale 3, offset 15
    return da, truth, seen, points


def posterior_covariance(points, seen):
    """Exact posterior covariance of noisy observations at the unobserved cells."""
    xc, xt = points[seen], points[~seen]
    k_tc = kernels.covariance("rbf", xt, xc, LENGTHSCALE_KM)
    k_cc = kernels.covariance("rbf", xc, xc, LENGTHSCALE_KM) + NOISE**2 * np.eye(len(xc))
    return (kernels.covariance("rbf", xt, xt, LENGTHSCALE_KM) - k_tc @ np.linalg.solve(k_cc, k_tc.T)
            + NOISE**2 * np.eye(len(xt)))


def quadrant_weights(size, seen):
    """``[4, N]`` weights of the mean of each quadrant's unobserved cells."""
    ii, jj = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    quadrant = ((ii.ravel() >= size // 2) * 2 + (jj.ravel() >= size // 2))[~seen]
    return np.stack([(quadrant == q) / (quadrant == q).sum() for q in range(4)])


def region_variance_ratios(draws, cov, weights):
    """Variance of each region's mean over the draws ``[S, N]``, over the exact one."""
    return np.array([np.var(draws @ w) / (w @ cov @ w) for w in weights])


def exact_gp_conditional(context, values, targets, key):
    """Independent draws at the targets given each context set: the exact GP's marginals."""
    xc, xt = context["embedding"], targets["embedding"]
    factor = cho_factor(kernels.covariance("rbf", xc, xc, LENGTHSCALE_KM) + NOISE**2 * np.eye(len(xc)), lower=True)
    k_tc = kernels.covariance("rbf", xt, xc, LENGTHSCALE_KM)
    mean = k_tc @ cho_solve(factor, values[..., 0].T)  # [nt, B]
    var = 1.0 + NOISE**2 - np.einsum("ij,ji->i", k_tc, cho_solve(factor, k_tc.T))
    z = np.asarray(jax.random.normal(key, mean.shape))
    return (mean + np.sqrt(np.maximum(var, 0.0))[:, None] * z).T[..., None]
