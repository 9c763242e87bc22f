"""Real rasters, real-looking gaps: geonp's default path, stage by stage, against the classical methods.

    python -m benchmarks.realdata --quick     # a few fields per case, without pykrige's kriging
    python -m benchmarks.realdata             # more fields per case, every method
    python -m benchmarks.realdata --quick --methods geonp,geonp_network --cases uk-clouds

Built only from the shared samples (``../shared/data`` or ``$GEONP_DATA``):

* gap filling on ERA5 2 m temperature over the UK (0.25 deg, hours), ERA5-Land over central
  Norway (0.1 deg, days; the sea is missing already) and the global ERA5 ensemble (3 deg,
  850 hPa temperature). Masks: ``clouds`` (white noise smoothed at a random scale, from a few
  cells to a sixth of the domain, above a random 30-80% quantile), ``bigclouds`` (blobs from a
  sixth to half the domain, 40-60% hidden: gaps many cells deep), ``random`` (50% of the cells
  one by one) and ``seamask`` (Norway's own sea, a real missing pattern, laid onto the UK and
  global fields). Scores are taken at the hidden cells that have a true value.
* downscaling (``*-down2x``, ``*-down4x``): block means of the fine field (2 x 2 or 4 x 4 cells,
  the coarse value at the block centre) back to the fine grid; Norway with elevation as the
  covariate (the accessor's default with ``covariates=["elevation"]``, or the ``--model``).

Methods, all in the same run on the same cells: ``geonp`` (the default path: the accessor's
bundled model calibrated by ``fit(steps=0, target=...)``, then ``predict``; its seconds include
the fit), ``geonp_network`` (the network alone: ``calibrated=False, conserve=False``) and one
``geonp_no_<stage>`` per post-hoc stage (``predict(without=[stage])``: blend, spread, drift,
conservation), all from the same fitted model; and the baselines of ``benchmarks/_baselines.py``:
``nearest``, ``idw10``, ``bilinear``/``bicubic``/``bicubic_conserved`` (downscaling),
``kriging`` (pykrige, exponential variogram), ``gp_ml`` (Matern-3/2 GP by maximum likelihood)
and ``vecchia_gp`` (GPBoost's Vecchia GP with a linear trend, Matérn smoothness chosen by
likelihood: what a statistician would fit; ``pip install -e ".[bench]"``, skipped without it).
Distances: 3-D chord km everywhere (great-circle to within 1% up to ~3,000 km).

Metrics: RMSE, MAE, CRPS (Gaussian; a point method's CRPS is its MAE), 95% coverage and
interval score (probabilistic methods), seconds; RMSE and coverage by distance from the data
(0-1.5, 1.5-3, 3-6, 6-12, 12-25, 25+ cells of the context grid); for ``geonp``, the held-out
RMSE its calibration reported beside the RMSE at the real targets (both pooled over fields).
Last line: ``{"cases": {"<case>": {"<method>": {"rmse":…, "by_distance": {…}, …}}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree

from benchmarks._baselines import gp_ml, grid_interp, has_gpboost, idw, kriging, nearest, vecchia_gp

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


def conserved(mean: np.ndarray, coarse: xr.DataArray, fine: xr.DataArray) -> np.ndarray:
    """``mean`` on the fine grid shifted so that each coarse cell's (area-weighted) mean is kept,
    as geonp's ``predict(conserve="auto")`` does (:mod:`geonp.predict.conserve`): the same correction
    applied to a baseline, to show what it is worth on its own."""
    from geonp.predict import conserve as conservation

    nest = conservation.nesting(coarse.latitude.values, coarse.longitude.values, fine.latitude.values,
                                fine.longitude.values)
    weights = conservation.area_weights(fine.latitude.values, fine.sizes["longitude"], geographic=True)
    return mean - conservation.correction(mean, coarse.values, weights, nest)


# --------------------------------------------------------------------------- geonp

# the post-hoc stages of predict, each switched off alone (predict(without=...)): what each is worth
STAGES = ("blend", "spread", "drift", "conservation")
VARIANTS = ("geonp_network",) + tuple(f"geonp_no_{stage}" for stage in STAGES)
FIT_STEPS, FIT_BUDGET = 500, 300.0  # geonp_fitted: fit(time_budget=300), the documented call on a laptop CPU


def _model(context, target, **fit_options):
    """The model the accessor's default path uses (the bundled default, calibrated on ``context`` for
    ``target`` by ``fit(steps=0)``), or the ``--model`` calibrated the same way."""
    from geonp.estimator import resolve_model
    from geonp.xr.accessor import default_model

    model = resolve_model(MODEL or default_model(target, fit_options.get("covariates", ())), progress=False)
    if not model.is_fitted:
        model.fit(context, target=target, steps=0, **fit_options)
    return model


def geonp_variants(context, target, wanted, fit_options=None, predict_options=None) -> dict:
    """``{method: (mean, std, seconds, attrs)}`` for ``geonp`` (the default path, fit included in its
    seconds) and the ``wanted`` of :data:`VARIANTS`, all from one fitted model."""
    import geonp

    started = time.perf_counter()
    model = _model(context, target, **(fit_options or {}))
    fitted = time.perf_counter() - started
    out = {}
    if "geonp_fitted" in wanted:  # fit on the data (fine-tuning the bundled model), then the default predict
        started = time.perf_counter()
        tuned = geonp.NeuralProcess(progress=False, steps=FIT_STEPS, time_budget=FIT_BUDGET).fit(
            context, target=target, **(fit_options or {}))
        pred = tuned.predict(context, target=target, progress=False, **(predict_options or {}))
        out["geonp_fitted"] = (pred["mean"].values.ravel(), pred["std"].values.ravel(),
                               time.perf_counter() - started, dict(pred.attrs))
    for method in ("geonp",) + tuple(v for v in VARIANTS if v in wanted):
        started = time.perf_counter()
        options = dict(predict_options or {})
        if method == "geonp_network":  # the network alone: every post-hoc stage off
            options.update(calibrated=False, conserve=False)
        elif method.startswith("geonp_no_"):
            options["without"] = (method.removeprefix("geonp_no_"),)
        pred = model.predict(context, target=target, progress=False, **options)
        seconds = time.perf_counter() - started + (fitted if method == "geonp" else 0.0)
        out[method] = (pred["mean"].values.ravel(), pred["std"].values.ravel(), seconds, dict(pred.attrs))
    return out


def geonp_downscale_variants(coarse: xr.DataArray, fine: xr.DataArray, wanted, covariate=None) -> dict:
    """:func:`geonp_variants` for downscaling ``coarse`` to the grid of ``fine`` (with ``covariate``:
    elevation, the accessor's default with ``covariates=["elevation"]``, or the ``--model``)."""
    if covariate is None:
        target = xr.Dataset(coords={"latitude": fine.latitude, "longitude": fine.longitude})
        return geonp_variants(coarse, target, wanted)
    name = "t2m"
    if MODEL is not None:  # a model trained with elevation ships its variable's name
        from geonp.estimator import resolve_model

        shipped = resolve_model(MODEL)
        name = shipped.var_ if shipped.is_fitted else name
    ctx = coarse.to_dataset(name=name)
    ctx["elevation"] = covariate.coarsen(latitude=covariate.sizes["latitude"] // coarse.sizes["latitude"],
                                         longitude=covariate.sizes["longitude"] // coarse.sizes["longitude"],
                                         boundary="trim").mean().assign_coords(
        latitude=coarse.latitude, longitude=coarse.longitude)
    target = xr.Dataset({"elevation": covariate}, coords={"latitude": fine.latitude, "longitude": fine.longitude})
    return geonp_variants(ctx, target, wanted, fit_options={"var": name, "covariates": ["elevation"]})


# --------------------------------------------------------------------------- scoring

DISTANCE_BINS = (0.0, 1.5, 3.0, 6.0, 12.0, 25.0, np.inf)  # cells from the nearest observation


def scores(mean, std, truth) -> dict:
    from geonp.scoring import metrics

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


def bin_label(lo: float, hi: float) -> str:
    return f"{lo:g}+" if np.isinf(hi) else f"{lo:g}-{hi:g}"


class Scoreboard:
    """Every method's predictions at one case's targets, pooled over its fields, scored at the end:
    overall and by distance from the data (:data:`DISTANCE_BINS`, in the context grid's cells).
    With ``keep_parts`` (the release gate), each method's result also holds its ``_parts``: per field,
    ``(mean, std, truth, cells)``."""

    keep_parts = False

    def __init__(self):
        self.rows: dict = {}

    def add(self, method: str, mean, std, truth, cells, seconds: float, held_out_rmse: float | None = None):
        row = self.rows.setdefault(method, {"parts": [], "seconds": 0.0, "held_out": []})
        row["parts"].append((np.asarray(mean, np.float64), None if std is None else np.asarray(std, np.float64),
                             np.asarray(truth, np.float64), np.asarray(cells, np.float64)))
        row["seconds"] += seconds
        if held_out_rmse is not None:  # the calibration's own estimate of this field's error, beside the truth
            row["held_out"].append((float(held_out_rmse), float(np.sqrt(np.mean((mean - truth) ** 2)))))

    def result(self) -> dict:
        out = {}
        for method, row in self.rows.items():
            mean, truth, cells = (np.concatenate([p[i] for p in row["parts"]]) for i in (0, 2, 3))
            std = None if row["parts"][0][1] is None else np.concatenate([p[1] for p in row["parts"]])
            r = {k: round(v, 4) for k, v in scores(mean, std, truth).items()}
            r.update(seconds=round(row["seconds"], 1), cells=int(truth.size))
            bins = {}
            for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:], strict=True):
                inside = (cells >= lo) & (cells < hi)
                if inside.any():
                    b = scores(mean[inside], None if std is None else std[inside], truth[inside])
                    bins[bin_label(lo, hi)] = {"share": round(float(inside.mean()), 4), "rmse": round(b["rmse"], 4),
                                               **({"cov95": round(b["cov95"], 4)} if "cov95" in b else {})}
            r["by_distance"] = bins
            if row["held_out"]:
                held, real = np.array(row["held_out"]).T
                r["held_out_rmse"] = round(float(np.sqrt(np.mean(held**2))), 4)
                r["target_rmse_of_fields"] = round(float(np.sqrt(np.mean(real**2))), 4)
            if self.keep_parts:
                r["_parts"] = row["parts"]
            out[method] = r
        return out


def run_method(fn, *args):
    started = time.perf_counter()
    mean, std = fn(*args)
    return np.asarray(mean, np.float64), None if std is None else np.asarray(std, np.float64), \
        time.perf_counter() - started


BASELINES = {"nearest": nearest, "idw10": idw, "kriging": kriging, "gp_ml": gp_ml, "vecchia_gp": vecchia_gp}


def resized_mask(mask: np.ndarray, shape) -> np.ndarray:
    """A mask laid onto a grid of ``shape`` by nearest cell: one field's own missing pattern on another."""
    rows = np.minimum((np.arange(shape[0]) + 0.5) * mask.shape[0] / shape[0], mask.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * mask.shape[1] / shape[1], mask.shape[1] - 1).astype(int)
    return mask[np.ix_(rows, cols)]


def big_cloud_mask(shape, rng) -> np.ndarray:
    """True = hidden: blobs from a sixth to half the domain (gaps many cells deep), 40-60% hidden."""
    sigma = rng.uniform(min(shape) / 12.0, min(shape) / 6.0)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return noise > np.quantile(noise, rng.uniform(0.4, 0.6))


def gap_case(field_list, kind: str, seed: int, methods, sea: np.ndarray | None = None) -> dict:
    """Hide cells of each field (``kind``: clouds, bigclouds, random, or seamask: ``sea`` laid onto the
    field) and score every method at the hidden cells that have a true value."""
    rng = np.random.default_rng(seed)
    board = Scoreboard()
    for field in field_list:
        values = field.values
        lon, lat = np.meshgrid(field.longitude.values, field.latitude.values)
        pts = embed(lon.ravel(), lat.ravel())
        valid = np.isfinite(values.ravel())
        masks = {"clouds": cloud_mask, "bigclouds": big_cloud_mask, "random": random_mask,
                 "seamask": lambda shape, _: resized_mask(sea, shape)}
        hidden = masks[kind](values.shape, rng) & np.isfinite(values)
        if hidden.sum() < 5 or (valid & ~hidden.ravel()).sum() < 20:
            continue
        obs = valid & ~hidden.ravel()
        tgt = hidden.ravel()
        truth = values.ravel()[tgt]
        cells = ndimage.distance_transform_edt(~obs.reshape(values.shape)).ravel()[tgt]
        if any(m.startswith("geonp") for m in methods):
            for name, (mean, std, sec, attrs) in geonp_variants(field.where(~hidden), None, methods).items():
                if name in methods:
                    board.add(name, mean[tgt], std[tgt], truth, cells, sec,
                              attrs.get("geonp_calibration_held_out_rmse_after") if name == "geonp" else None)
        for name in (m for m in methods if m in BASELINES):
            mean, std, sec = run_method(BASELINES[name], pts[obs], values.ravel()[obs], pts[tgt])
            board.add(name, mean, std, truth, cells, sec)
    return board.result()


def down_case(field_list, factor: int, methods, covariate=None) -> dict:
    board = Scoreboard()
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
        # distance in coarse cells: fine-grid indices of the observed coarse centres
        rows, cols = np.unravel_index(np.flatnonzero(ok_c), coarse.shape)
        centres = np.column_stack([rows * factor + (factor - 1) / 2, cols * factor + (factor - 1) / 2])
        fine_index = np.column_stack(np.unravel_index(np.flatnonzero(tgt), fine.shape))
        cells = cKDTree(centres).query(fine_index)[0] / factor
        if any(m.startswith("geonp") for m in methods):
            for name, (mean, std, sec, attrs) in geonp_downscale_variants(coarse, fine, methods, cov).items():
                if name in methods:
                    board.add(name, mean[tgt], std[tgt], truth, cells, sec,
                              attrs.get("geonp_calibration_held_out_rmse_after") if name == "geonp" else None)
        for name in methods:
            if name in ("bilinear", "bicubic", "bicubic_conserved"):
                method = "linear" if name == "bilinear" else "cubic"
                mean, std, sec = run_method(grid_interp, coarse, fine, method)
                # cubic splines cannot cross gaps: the nearest coarse value there
                fallback = nearest(src, src_values, embed(lon_f.ravel(), lat_f.ravel()))[0]
                mean = np.where(np.isfinite(mean), mean, fallback)
                if name == "bicubic_conserved":
                    mean = conserved(mean.reshape(fine.shape), coarse, fine).ravel()
                board.add(name, mean[tgt], std, truth, cells, sec)
            elif name in BASELINES:
                mean, std, sec = run_method(BASELINES[name], src, src_values, dst)
                board.add(name, mean, std, truth, cells, sec)
    return board.result()


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
            _model(da, None, crs="EPSG:3857").predict(da, progress=False))
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    truth, mean, std = field[hidden], pred["mean"].values[hidden], pred["std"].values[hidden]
    return {"cells": ny * nx, "observed": int((~hidden).sum()), "targets": int(hidden.sum()),
            "seconds": round(seconds, 1), "peak_mb": round(peak_mb), **scores(mean, std, truth),
            "idw10_rmse": round(float(np.sqrt(np.mean((idw(np.stack([yy[~hidden], xx[~hidden]], -1), field[~hidden],
                                                           np.stack([yy[hidden], xx[hidden]], -1))[0]
                                                       - truth) ** 2))), 4),
            "calibration": pred.attrs.get("geonp_calibration_std_scale")}


def case_runners(data: dict, gap_methods, down_methods, covariates: bool = True) -> dict:
    """``{case: run()}`` for every gap and downscaling case of ``data`` (:func:`fields`), each run scoring the
    given methods; Norway's downscaling with elevation unless ``covariates`` is False."""
    sea = ~np.isfinite(data["norway"][0].values)  # Norway's sea: one real field's missing pattern, on others
    cases = {}
    for name in ("uk", "norway", "global"):
        for kind in ("clouds", "bigclouds", "random") + (("seamask",) if name != "norway" else ()):
            cases[f"{name}-{kind}"] = lambda n=name, k=kind: gap_case(data[n], k, 0, gap_methods, sea)
        for factor in (2, 4):
            cov = data["norway_elevation"] if name == "norway" and covariates else None
            cases[f"{name}-down{factor}x"] = lambda n=name, f=factor, c=cov: down_case(data[n], f, down_methods, c)
    return cases


def main():
    global FIT_BUDGET, MODEL
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--cases", default="", help="comma-separated subset of case names")
    parser.add_argument("--timing", action="store_true", help="only the 300 x 500 end-to-end timing")
    parser.add_argument("--model", help="geonp's model: a bundled name or a release folder (default: the "
                                        "accessor's default model)")
    parser.add_argument("--no-covariates", action="store_true",
                        help="Norway downscaling without elevation (geonp then uses the --model or its default)")
    parser.add_argument("--methods", default="", help="comma-separated subset of methods (default: all but "
                                                      "geonp_fitted, and with --quick also without kriging)")
    parser.add_argument("--fit-budget", type=float, default=FIT_BUDGET,
                        help="seconds of fitting per field for geonp_fitted (default: 300)")
    args = parser.parse_args()
    MODEL = args.model
    if args.timing:
        result = large_raster_timing()
        print(json.dumps({"timing_300x500": result}))
        return
    if not data_dir().is_dir():
        raise SystemExit(f"shared data not found at {data_dir()}; set GEONP_DATA to the data folder.")
    data = fields(args.quick)
    only = [m for m in args.methods.split(",") if m]
    vecchia = ["vecchia_gp"] if has_gpboost() else []
    if not vecchia:
        print("vecchia_gp skipped: GPBoost is not installed (pip install -e '.[bench]')")
    FIT_BUDGET = args.fit_budget
    # by default, every method but geonp_fitted (five minutes of fitting a field: ask for it by name); --quick
    # also leaves out pykrige's kriging (two minutes a case, and weaker than the Vecchia GP and gp_ml beside it)
    left_out = {"geonp_fitted"} | ({"kriging"} if args.quick else set())
    gap_methods = [m for m in ["geonp", *VARIANTS, "geonp_fitted", "nearest", "idw10", "kriging", "gp_ml", *vecchia]
                   if m in only or (not only and m not in left_out)]
    down_methods = [m for m in ["geonp", *VARIANTS, "geonp_fitted", "nearest", "idw10", "bilinear", "bicubic",
                                "bicubic_conserved", "kriging", "gp_ml", *vecchia]
                    if m in only or (not only and m not in left_out)]
    cases = case_runners(data, gap_methods, down_methods, covariates=not args.no_covariates)
    wanted = [c for c in args.cases.split(",") if c] or list(cases)
    results = {}
    for case in wanted:
        started = time.perf_counter()
        results[case] = cases[case]()
        print(f"{case} ({time.perf_counter() - started:.0f} s)")
        print_case(results[case])
    print(json.dumps({"quick": args.quick, "cases": results}))


def print_case(result: dict) -> None:
    """One line per method (best RMSE first), then RMSE by distance from the data."""
    for method, r in sorted(result.items(), key=lambda kv: kv[1]["rmse"]):
        extra = f" cov95 {r['cov95']:.3f} interval {r['interval']:.3f}" if "cov95" in r else ""
        honest = (f" held-out RMSE {r['held_out_rmse']:.3f} (real {r['target_rmse_of_fields']:.3f})"
                  if "held_out_rmse" in r else "")
        print(f"    {method:<22} RMSE {r['rmse']:.4f} MAE {r['mae']:.4f} CRPS {r['crps']:.4f}{extra} "
              f"{r['seconds']:.1f} s{honest}")
    labels = [bin_label(lo, hi) for lo, hi in zip(DISTANCE_BINS[:-1], DISTANCE_BINS[1:], strict=True)]
    labels = [b for b in labels if any(b in r["by_distance"] for r in result.values())]
    first = next(iter(result.values()))["by_distance"]
    print("    RMSE by cells from data  " + " ".join(f"{b:>8}" for b in labels))
    print("    share of targets         " + " ".join(f"{first.get(b, {}).get('share', 0):8.3f}" for b in labels))
    for method, r in result.items():
        row = " ".join(f"{r['by_distance'][b]['rmse']:8.3f}" if b in r["by_distance"] else " " * 8 for b in labels)
        print(f"    {method:<24} {row}")


if __name__ == "__main__":
    main()
