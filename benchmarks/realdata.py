"""Real rasters, real-looking gaps: geonp's default path against the classical methods, in one run.

    python benchmarks/realdata.py --quick     # a few fields per case (minutes)
    python benchmarks/realdata.py             # more fields per case

Built only from the shared samples (``../shared/data`` or ``$GEONP_DATA``):

* gap filling (``*-clouds``, ``*-random``) on ERA5 2 m temperature over the UK
  (0.25 deg, hours), ERA5-Land over central Norway (0.1 deg, days; the sea is
  missing already) and the global ERA5 ensemble (3 deg, 850 hPa temperature).
  Cloud masks are contiguous blobs: white noise smoothed at a random scale
  (from a few cells to a third of the domain) and thresholded at a random
  30-80% quantile; random masks hide 50% of the cells one by one. Scores are
  taken at the hidden cells that have a true value.
* downscaling (``*-down2x``, ``*-down4x``): block means of the fine field
  (2 x 2 or 4 x 4 cells, the coarse value at the block centre) back to the
  fine grid; Norway with elevation as the covariate (the accessor's default with
  ``covariates=["elevation"]``, or the ``--model``: its covariate slots zero-shot, or a model
  trained with elevation such as the bundled ``t2m-elevation``).

Methods, all in the same run on the same cells: ``geonp`` (the default path: a
DataArray's ``.np.predict`` with the bundled model, zero-shot), ``nearest``,
``idw10`` (inverse-distance average of the 10 nearest observations, power 2),
``bilinear`` and ``bicubic`` (downscaling; outside the coarse cell centres
the nearest value), ``bicubic_conserved`` (bicubic shifted to keep each coarse
cell's mean, as geonp's ``predict`` does by default: what that correction is
worth on its own), ``kriging`` (ordinary kriging, exponential variogram fitted
to the data; a random 1,500 of the observations where there are more) and
``gp_ml`` (a GP with Matern-3/2 kernel, constant mean and noise whose
hyperparameters maximise the marginal likelihood of up to 800 observations;
it then predicts from its 800 observations nearest each block of targets).
Distances: 3-D chord km everywhere (great-circle to within 1% up to ~3,000 km).

Metrics: RMSE, MAE, CRPS (Gaussian; a point method's CRPS is its MAE), 95%
coverage and interval score (probabilistic methods), seconds. Last line:
``{"cases": {"<case>": {"<method>": {"rmse":…, "mae":…, "crps":…, "cov95":…, "interval":…, "seconds":…}}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage, optimize
from scipy.spatial import cKDTree

Z95 = 1.959963984540054
MODEL = None  # --model: a bundled name or a release folder for the geonp method; None: the accessor's default


# --------------------------------------------------------------------------- data


def data_dir() -> Path:
    env = os.environ.get("GEONP_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def fields(quick: bool) -> dict:
    """``{name: list of 2-D DataArrays (latitude ascending, longitude)}`` and covariates."""
    base = data_dir()
    uk = xr.open_dataset(base / "era5_t2m_uk" / "era5_t2m_uk_2019-03_0p25deg.nc")["t2m"]
    uk = uk.sortby("latitude").sortby("longitude")
    hours = [0, 300, 600] if quick else [0, 100, 200, 300, 400, 500, 600, 700]
    norway = xr.open_dataset(base / "era5land_t2m_norway_krigr" / "CentralNorway.nc")["2m_temperature"]
    norway = norway.sortby("latitude").sortby("longitude")
    days = [0, 2] if quick else list(range(norway.sizes["time"]))
    glob = xr.open_dataset(base / "era5_ens_t_z_global_3deg" / "era5_ens_t_z_500_850hPa_3deg.nc")["t"]
    glob = glob.sel(isobaricInhPa=850).sortby("latitude")
    members = [(0, 0), (3, 2)] if quick else [(m, t) for m in (0, 3, 6) for t in (0, 2)]
    elevation = xr.open_dataset(base / "era5land_t2m_norway_krigr" / "Covariates_Train.nc")
    elevation = elevation[[v for v in elevation.data_vars if v != "crs"][0]].sortby("latitude").sortby("longitude")
    strip = lambda da: da.drop_vars([c for c in da.coords if c not in ("latitude", "longitude")])  # noqa: E731
    return {
        "uk": [strip(uk.isel(time=h)) for h in hours],
        "norway": [strip(norway.isel(time=d)) for d in days],
        "global": [strip(glob.isel(number=m, time=t)) for m, t in members],
        "norway_elevation": strip(elevation.interp(latitude=norway.latitude, longitude=norway.longitude,
                                                   method="nearest")),
    }


def cloud_mask(shape, rng) -> np.ndarray:
    """True = hidden: smoothed white noise above a random 30-80% quantile (blobs of random size)."""
    sigma = rng.uniform(1.0, max(1.5, min(shape) / 3.0) / 2.0)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return noise > np.quantile(noise, rng.uniform(0.3, 0.8))


def random_mask(shape, rng, fraction: float = 0.5) -> np.ndarray:
    return rng.random(shape) < fraction


def embed(lon, lat) -> np.ndarray:
    """3-D chord coordinates in km (geonp's own embedding): great-circle to within 1% up to ~3,000 km."""
    from geonp.features.tables import euclidean_embedding

    return euclidean_embedding("geographic", lon, lat)


# --------------------------------------------------------------------------- baselines


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


def conserved(mean: np.ndarray, coarse: xr.DataArray, fine: xr.DataArray) -> np.ndarray:
    """``mean`` on the fine grid shifted so that each coarse cell's (area-weighted) mean is kept,
    as geonp's ``predict(conserve="auto")`` does (:mod:`geonp.conservation`): the same correction
    applied to a baseline, to show what it is worth on its own."""
    from geonp import conservation

    nest = conservation.nesting(coarse.latitude.values, coarse.longitude.values, fine.latitude.values,
                                fine.longitude.values)
    weights = conservation.area_weights(fine.latitude.values, fine.sizes["longitude"], geographic=True)
    return mean - conservation.correction(mean, coarse.values, weights, nest)


# --------------------------------------------------------------------------- geonp


def geonp_gaps(field: xr.DataArray, hidden: np.ndarray):
    import geonp  # noqa: F401  (registers .np)

    masked = field.where(~hidden)
    pred = masked.np.predict(progress=False) if MODEL is None else _calibrated(masked).predict(masked, progress=False)
    return pred["mean"].values.ravel(), pred["std"].values.ravel()


def _calibrated(context, **fit_options):
    """The ``--model`` calibrated on ``context`` as the accessor calibrates its default (``fit(steps=0)``)."""
    import geonp

    return geonp.NeuralProcess(pretrained=MODEL, steps=0, progress=False).fit(context, **fit_options)


def _covariate_slots(model: str) -> int:
    """How many covariates ``model`` (a bundled name or a release folder) takes zero-shot."""
    from geonp.model_store import available, load_model, pretrained

    config = (pretrained(model) if model in available() else load_model(model))[0]
    return config.covariate_slots


def geonp_downscale(coarse: xr.DataArray, fine: xr.DataArray, covariate=None):
    import geonp

    if covariate is None:
        target = xr.Dataset(coords={"latitude": fine.latitude, "longitude": fine.longitude})
        pred = (coarse.np.predict(target=target, progress=False) if MODEL is None else
                _calibrated(coarse).predict(coarse, target=target, progress=False))
    else:
        # elevation zero-shot: the accessor's default with covariates= (the bundled field model's covariate
        # slots, kept or left out by held-out selection), or the --model's slots; --model t2m-elevation
        # uses the bundled model trained with elevation
        shipped = MODEL is not None and not _covariate_slots(MODEL)
        model = geonp.pretrained(MODEL) if shipped else None
        name = model.var_ if model is not None and model.is_fitted else "t2m"  # t2m-elevation ships its name
        ctx = coarse.to_dataset(name=name)
        ctx["elevation"] = covariate.coarsen(latitude=covariate.sizes["latitude"] // coarse.sizes["latitude"],
                                             longitude=covariate.sizes["longitude"] // coarse.sizes["longitude"],
                                             boundary="trim").mean().assign_coords(
            latitude=coarse.latitude, longitude=coarse.longitude)
        tgt = xr.Dataset({"elevation": covariate}, coords={"latitude": fine.latitude, "longitude": fine.longitude})
        if MODEL is None:
            pred = ctx.np.predict(target=tgt, var=name, covariates=["elevation"], progress=False)
        else:
            if not shipped:
                model = _calibrated(ctx, var=name, covariates=["elevation"])
            elif not model.is_fitted:
                model.fit(ctx, name, covariates=["elevation"], steps=0)
            pred = model.predict(ctx, target=tgt, progress=False)
    return pred["mean"].values.ravel(), pred["std"].values.ravel()


# --------------------------------------------------------------------------- scoring


def scores(mean, std, truth) -> dict:
    from geonp import metrics

    out = {"rmse": float(metrics.rmse(mean, truth)), "mae": float(metrics.mae(mean, truth))}
    if std is None:
        out["crps"] = out["mae"]
    else:
        std = np.maximum(std, 1e-9)
        out["crps"] = float(metrics.crps_gaussian(mean, std, truth))
        out["cov95"] = float(metrics.coverage(mean, std, truth, 0.95))
        lo, hi = mean - Z95 * std, mean + Z95 * std
        out["interval"] = float(np.mean((hi - lo) + 40.0 * np.maximum(lo - truth, 0)
                                        + 40.0 * np.maximum(truth - hi, 0)))
    return out


def run_method(fn, *args):
    started = time.perf_counter()
    mean, std = fn(*args)
    return np.asarray(mean, np.float64), None if std is None else np.asarray(std, np.float64), \
        time.perf_counter() - started


def gap_case(field_list, kind: str, seed: int, methods) -> dict:
    rng = np.random.default_rng(seed)
    totals: dict = {}
    for field in field_list:
        values = field.values
        lon, lat = np.meshgrid(field.longitude.values, field.latitude.values)
        pts = embed(lon.ravel(), lat.ravel())
        valid = np.isfinite(values.ravel())
        hidden = (cloud_mask(values.shape, rng) if kind == "clouds" else random_mask(values.shape, rng))
        hidden &= np.isfinite(values)
        if hidden.sum() < 5 or (valid & ~hidden.ravel()).sum() < 20:
            continue
        obs = valid & ~hidden.ravel()
        tgt = hidden.ravel()
        truth = values.ravel()[tgt]
        for name in methods:
            if name == "geonp":
                mean, std, sec = run_method(geonp_gaps, field, hidden)
                mean, std = mean[tgt], std[tgt]
            else:
                fn = {"nearest": nearest, "idw10": idw, "kriging": kriging, "gp_ml": gp_ml}[name]
                mean, std, sec = run_method(fn, pts[obs], values.ravel()[obs], pts[tgt])
            _accumulate(totals, name, scores(mean, std, truth), truth.size, sec)
    return _finish(totals)


def down_case(field_list, factor: int, methods, covariate=None) -> dict:
    totals: dict = {}
    for fine in field_list:
        ny, nx = (fine.sizes["latitude"] // factor) * factor, (fine.sizes["longitude"] // factor) * factor
        fine = fine.isel(latitude=slice(0, ny), longitude=slice(0, nx))
        coarse = fine.coarsen(latitude=factor, longitude=factor).mean()  # NaN where any fine cell is missing
        cov = None if covariate is None else covariate.sel(latitude=fine.latitude, longitude=fine.longitude)
        lon_c, lat_c = np.meshgrid(coarse.longitude.values, coarse.latitude.values)
        lon_f, lat_f = np.meshgrid(fine.longitude.values, fine.latitude.values)
        ok_c = np.isfinite(coarse.values.ravel())
        tgt = np.isfinite(fine.values.ravel())
        src, src_values = embed(lon_c.ravel(), lat_c.ravel())[ok_c], coarse.values.ravel()[ok_c]
        dst, truth = embed(lon_f.ravel(), lat_f.ravel())[tgt], fine.values.ravel()[tgt]
        for name in methods:
            if name == "geonp":
                mean, std, sec = run_method(geonp_downscale, coarse, fine, cov)
                mean, std = mean[tgt], std[tgt]
            elif name in ("bilinear", "bicubic", "bicubic_conserved"):
                method = "linear" if name == "bilinear" else "cubic"
                mean, std, sec = run_method(grid_interp, coarse, fine, method)
                # cubic splines cannot cross gaps: the nearest coarse value there
                fallback = nearest(src, src_values, embed(lon_f.ravel(), lat_f.ravel()))[0]
                mean = np.where(np.isfinite(mean), mean, fallback)
                if name == "bicubic_conserved":
                    mean = conserved(mean.reshape(fine.shape), coarse, fine).ravel()
                mean = mean[tgt]
            else:
                fn = {"nearest": nearest, "idw10": idw, "kriging": kriging, "gp_ml": gp_ml}[name]
                mean, std, sec = run_method(fn, src, src_values, dst)
            _accumulate(totals, name, scores(mean, std, truth), truth.size, sec)
    return _finish(totals)


def _accumulate(totals, name, s, n, seconds):
    row = totals.setdefault(name, {"n": 0, "seconds": 0.0, "sums": {}})
    row["n"] += n
    row["seconds"] += seconds
    for k, v in s.items():
        # RMSE pools squared errors; the rest are means over cells
        row["sums"][k] = row["sums"].get(k, 0.0) + (v**2 if k == "rmse" else v) * n


def _finish(totals) -> dict:
    out = {}
    for name, row in totals.items():
        r = {k: (np.sqrt(v / row["n"]) if k == "rmse" else v / row["n"]) for k, v in row["sums"].items()}
        r["seconds"] = row["seconds"]
        r["cells"] = row["n"]
        out[name] = {k: round(float(v), 4) if k != "cells" else int(v) for k, v in r.items()}
    return out


def large_raster_timing(seed: int = 0) -> dict:
    """End to end on a 300 x 500 raster, 70% observed, the rest in cloud gaps (calibration included).

    The field is synthetic (a smooth random field, the sum of 400 random plane waves with
    length scales from 5 to 100 cells, on a 1 km projected grid): the shared samples have no
    raster this large. Reports seconds and the process's peak resident memory.
    """
    import resource

    import geonp  # noqa: F401  (registers .np)

    rng = np.random.default_rng(seed)
    ny, nx = 300, 500
    yy, xx = np.meshgrid(np.arange(ny) * 1000.0, np.arange(nx) * 1000.0, indexing="ij")
    field = np.zeros((ny, nx))
    for scale in rng.uniform(5, 100, 400):
        k = rng.standard_normal(2) / (scale * 1000.0)
        field += np.cos(k[0] * yy + k[1] * xx + rng.uniform(0, 2 * np.pi)) * np.sqrt(scale / 50.0)
    field = 290.0 + 3.0 * field / field.std()
    hidden = cloud_mask((ny, nx), rng)
    while hidden.mean() > 0.32 or hidden.mean() < 0.28:  # 30% in clouds, as in the raster
        hidden = cloud_mask((ny, nx), rng)
    da = xr.DataArray(np.where(hidden, np.nan, field).astype(np.float32), dims=("y", "x"),
                      coords={"y": yy[:, 0], "x": xx[0]}, name="lst", attrs={"units": "K"})
    started = time.perf_counter()
    pred = (da.np.predict(crs="EPSG:3857", progress=False) if MODEL is None else
            _calibrated(da, crs="EPSG:3857").predict(da, progress=False))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    truth, mean, std = field[hidden], pred["mean"].values[hidden], pred["std"].values[hidden]
    return {"cells": ny * nx, "observed": int((~hidden).sum()), "targets": int(hidden.sum()),
            "seconds": round(seconds, 1), "peak_mb": round(peak_mb), **scores(mean, std, truth),
            "idw10_rmse": round(float(np.sqrt(np.mean((idw(np.stack([yy[~hidden], xx[~hidden]], -1), field[~hidden],
                                                           np.stack([yy[hidden], xx[hidden]], -1))[0]
                                                       - truth) ** 2))), 4),
            "calibration": pred.attrs.get("geonp_calibration_std_scale")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", default="", help="comma-separated subset of case names")
    parser.add_argument("--timing", action="store_true", help="only the 300 x 500 end-to-end timing")
    parser.add_argument("--model", help="geonp's model: a bundled name or a release folder (default: the "
                                        "accessor's default model)")
    parser.add_argument("--no-covariates", action="store_true",
                        help="Norway downscaling without elevation (geonp then uses the --model or its default)")
    parser.add_argument("--methods", default="", help="comma-separated subset of methods (default: all)")
    args = parser.parse_args()
    global MODEL
    MODEL = args.model
    if args.timing:
        result = large_raster_timing()
        print(json.dumps({"timing_300x500": result}))
        return
    if not data_dir().is_dir():
        raise SystemExit(f"shared data not found at {data_dir()}; set GEONP_DATA to the data folder.")
    data = fields(args.quick)
    only = [m for m in args.methods.split(",") if m]
    gap_methods = [m for m in ["geonp", "nearest", "idw10", "kriging", "gp_ml"] if not only or m in only]
    down_methods = [m for m in ["geonp", "nearest", "idw10", "bilinear", "bicubic", "bicubic_conserved", "kriging",
                                "gp_ml"]
                    if not only or m in only]
    cases = {}
    for name in ("uk", "norway", "global"):
        for kind in ("clouds", "random"):
            cases[f"{name}-{kind}"] = lambda n=name, k=kind: gap_case(data[n], k, 0, gap_methods)
        for factor in (2, 4):
            cov = data["norway_elevation"] if name == "norway" and not args.no_covariates else None
            cases[f"{name}-down{factor}x"] = lambda n=name, f=factor, c=cov: down_case(data[n], f, down_methods, c)
    wanted = [c for c in args.cases.split(",") if c] or list(cases)
    results = {}
    for case in wanted:
        started = time.perf_counter()
        results[case] = cases[case]()
        print(f"{case} ({time.perf_counter() - started:.0f} s)")
        for method, r in sorted(results[case].items(), key=lambda kv: kv[1]["rmse"]):
            extra = f" cov95 {r['cov95']:.3f} interval {r['interval']:.3f}" if "cov95" in r else ""
            print(f"    {method:<9} RMSE {r['rmse']:.4f} MAE {r['mae']:.4f} CRPS {r['crps']:.4f}{extra} "
                  f"{r['seconds']:.1f} s")
    print(json.dumps({"quick": args.quick, "cases": results}))


if __name__ == "__main__":
    main()
