"""Downscaling: predict a fine grid from a coarse one, scored on the fine cells against interpolation and kriging.

    flow: downscale
    fine: ${GEONP_DATA}/era5_t2m_uk/era5_t2m_uk_2019-03_0p25deg.nc     # truth on the fine grid
    coarse: ${GEONP_DATA}/era5_t2m_uk/era5_t2m_uk_2019-03_1deg_coarsened.nc
    var: t2m
    times: 24                     # evenly spaced time steps scored (or time_steps: [3, 4])
    output: ../runs/downscale-uk-1deg

Without a ``coarse`` file the fine field is block-averaged by ``coarsen`` cells.
With ``covariate`` (e.g. elevation on the fine grid) the model takes it as a token
input (the coarse grid gets its block average). Methods, all in one run on the same
cells (those where every method has a value): geonp (a bundled model, calibrated
without training, or a model name/path that carries its own normalisation), bilinear
and cubic interpolation (``xarray.interp``), ordinary kriging (pykrige, exponential
variogram fitted per time step, in local km). Scores: RMSE, MAE, CRPS (Gaussian for
geonp and kriging; equal to the MAE for the deterministic interpolators), 95% coverage.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from geonp.apps.recipes import resolve, resolve_input
from geonp.errors import ConfigError
from geonp.estimator import resolve_model
from geonp.estimator.releases import available
from geonp.features.coordinates import local_km
from geonp.scoring import metrics


def _standard(ds: xr.Dataset) -> xr.Dataset:
    ds = ds.rename({k: v for k, v in {"valid_time": "time"}.items() if k in ds.dims})
    return ds.sortby("latitude").sortby("longitude")


def kriging(coarse: xr.DataArray, fine: xr.DataArray):
    """Ordinary kriging of one field from the coarse cells to the fine ones: mean, std ``[lat, lon]``."""
    from pykrige.ok import OrdinaryKriging

    to_km = local_km(float(coarse.longitude.mean()), float(coarse.latitude.mean()))
    lon_c, lat_c = np.meshgrid(coarse.longitude.values, coarse.latitude.values)
    ok_c = np.isfinite(coarse.values)
    xs, ys = to_km.transform(lon_c[ok_c], lat_c[ok_c])
    lon_f, lat_f = np.meshgrid(fine.longitude.values, fine.latitude.values)
    xt, yt = to_km.transform(lon_f.ravel(), lat_f.ravel())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ok = OrdinaryKriging(xs, ys, coarse.values[ok_c], variogram_model="exponential")
        mean, var = ok.execute("points", xt, yt)
    shape = lon_f.shape
    return np.asarray(mean).reshape(shape), np.sqrt(np.maximum(np.asarray(var), 1e-12)).reshape(shape)


def _interpolate(coarse: xr.DataArray, fine: xr.DataArray, method: str) -> xr.DataArray:
    """xarray ``interp`` on the grid; with gaps (sea cells) the cubic spline cannot be fitted, so scattered
    cubic interpolation of the valid cells (Clough-Tocher, scipy ``griddata``) stands in for it."""
    if method == "linear" or not bool(coarse.isnull().any()):
        return coarse.interp(latitude=fine.latitude, longitude=fine.longitude, method=method)
    from scipy.interpolate import griddata

    glon, glat = np.meshgrid(coarse.longitude.values, coarse.latitude.values)
    flon, flat = np.meshgrid(fine.longitude.values, fine.latitude.values)
    steps = [coarse.isel(time=i) for i in range(coarse.sizes["time"])] if "time" in coarse.dims else [coarse]
    out = []
    for field in steps:
        v = field.transpose("latitude", "longitude").values
        ok = np.isfinite(v)
        out.append(griddata((glon[ok], glat[ok]), v[ok], (flon, flat), method="cubic"))
    dims = (("time",) if "time" in coarse.dims else ()) + ("latitude", "longitude")
    data = np.stack(out) if "time" in coarse.dims else out[0]
    return xr.DataArray(data, dims=dims, coords={d: fine[d] for d in dims})


def _scores(mean, std, truth, mask) -> dict:
    m, y = mean[mask], truth[mask]
    out = {"rmse": metrics.rmse(m, y), "mae": metrics.mae(m, y)}
    if std is None:
        out["crps"] = out["mae"]
    else:
        out["crps"] = metrics.crps_gaussian(m, std[mask], y)
        out["coverage_95"] = metrics.coverage(m, std[mask], y, 0.95)
    return {k: round(float(v), 4) for k, v in out.items()}


def run(base: Path, fine: str, output: str, var: str, coarse: str | None = None, coarsen: int = 4,
        covariate: str | None = None, covariate_var: str | None = None, times: int = 24,
        time_steps: list | None = None, model: str = "gp2d-normal",
        kriging_baseline: bool = True, title: str = "", plot: bool = True) -> dict:
    import geonp

    fine_ds = _standard(xr.open_dataset(resolve_input(base, fine, "fine")))
    if var not in fine_ds:
        raise ConfigError(f"var={var!r} not in {fine}; it has {list(fine_ds.data_vars)}.")
    truth = fine_ds[var]
    if "time" in truth.dims and time_steps is not None:
        truth = truth.isel(time=list(time_steps))
    elif "time" in truth.dims:
        step = max(1, truth.sizes["time"] // max(1, times))
        truth = truth.isel(time=slice(0, step * times, step))
    covariates = []
    if covariate:
        cov = _standard(xr.open_dataset(resolve_input(base, covariate, "covariate")))
        name = covariate_var or next(iter(v for v in cov.data_vars if v != "crs"))
        elev = cov[name].interp(latitude=truth.latitude, longitude=truth.longitude, method="nearest")
        covariates = ["elevation"]
    if coarse:
        coarse_da = _standard(xr.open_dataset(resolve_input(base, coarse, "coarse")))[var]
        if "time" in truth.dims:
            coarse_da = coarse_da.sel(time=truth.time)
    else:
        coarse_da = truth.coarsen(latitude=coarsen, longitude=coarsen, boundary="trim").mean()
    context = coarse_da.to_dataset(name=var)
    target = xr.Dataset(coords={"latitude": truth.latitude, "longitude": truth.longitude})
    if covariates:
        context["elevation"] = elev.coarsen(latitude=coarsen, longitude=coarsen, boundary="trim").mean() \
            .interp(latitude=coarse_da.latitude, longitude=coarse_da.longitude, method="nearest")
        target["elevation"] = elev

    started = time.perf_counter()
    np_model = resolve_model(model if model in available() else resolve(base, model))
    if not np_model.is_fitted:  # a bundled model without its own normalisation: calibrate, no training
        np_model.fit(context, var, covariates=covariates, steps=0)
    pred = np_model.predict(context, target=target, progress=False)
    np_seconds = time.perf_counter() - started
    pred = pred.transpose(*truth.dims)

    results = {"geonp": (pred["mean"].values, pred["std"].values, np_seconds)}
    for method in ("linear", "cubic"):
        started = time.perf_counter()
        interp = _interpolate(coarse_da, truth, method)
        results[f"{'bilinear' if method == 'linear' else 'bicubic'}"] = (
            interp.transpose(*truth.dims).values, None, time.perf_counter() - started)
    if kriging_baseline:
        started = time.perf_counter()
        fields = [kriging(coarse_da.isel(time=i) if "time" in coarse_da.dims else coarse_da,
                          truth.isel(time=i) if "time" in truth.dims else truth)
                  for i in range(truth.sizes.get("time", 1))]
        mean, std = (np.stack(a) for a in zip(*fields, strict=True))
        if "time" not in truth.dims:
            mean, std = mean[0], std[0]
        results["kriging"] = (mean, std, time.perf_counter() - started)
    mask = np.isfinite(truth.values)
    for mean, _, _ in results.values():
        mask &= np.isfinite(mean)
    report = {"fine": Path(fine).name, "coarse": Path(coarse).name if coarse else f"fine block-averaged x{coarsen}",
              "var": var, "time_steps": int(truth.sizes.get("time", 1)), "cells_scored": int(mask.sum()),
              "covariates": covariates, "model": model, "methods": {}}
    for name, (mean, std, seconds) in results.items():
        report["methods"][name] = {**_scores(mean, std, truth.values, mask), "seconds": round(seconds, 2)}
    out_dir = resolve(base, output)
    out_dir.mkdir(parents=True, exist_ok=True)
    pred["truth"] = truth.assign_attrs(long_name=f"{truth.attrs.get('long_name', var)} (fine-grid truth)")
    pred["error"] = (pred["mean"] - truth).assign_attrs(long_name="geonp mean minus truth",
                                                         units=truth.attrs.get("units", ""))
    pred.to_netcdf(out_dir / "downscaled.nc")
    if plot:
        geonp.plot(pred, ["truth", "mean", "std", "error"], path=out_dir / "downscaled.png",
                   title=title or f"{var}: {report['coarse']} -> {report['fine']}")
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report
