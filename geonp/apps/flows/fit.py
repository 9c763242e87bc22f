"""Fit a NeuralProcess on a netCDF field (optionally with covariates from other files) and save it.

    flow: fit
    data: ${GEONP_DATA}/era5land_t2m_norway_krigr/CentralNorway.nc
    var: 2m_temperature
    covariates: {elevation: ${GEONP_DATA}/era5land_t2m_norway_krigr/Covariates_Train.nc}
    time_steps: [0, 1, 2]               # train on these; keep the rest for evaluation
    estimator: {pretrained: gp2d-normal, steps: 300}
    output: ../geonp/pretrained_models/t2m-elevation

Covariate files are matched to the data grid by nearest neighbour (they must cover it).
"""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import xarray as xr

from geonp.apps.recipes import resolve, resolve_input
from geonp.errors import ConfigError
from geonp.features.tables import DataError


def attach_covariate(data: xr.Dataset, path, name: str, variable: str | None = None) -> xr.Dataset:
    """``data`` with the covariate from ``path`` on its grid (nearest cell); an error if it does not cover it."""
    with xr.open_dataset(path) as source:
        var = variable or next(v for v in source.data_vars if v != "crs")
        cov = source[var].load()
    for dim in ("latitude", "longitude"):
        lo, hi = float(cov[dim].min()), float(cov[dim].max())
        step = float(np.abs(np.diff(cov[dim].values)).max()) if cov.sizes[dim] > 1 else 0.0
        outside = (data[dim] < lo - step / 2 - 1e-9) | (data[dim] > hi + step / 2 + 1e-9)
        if bool(outside.any()):
            raise DataError(f"covariate {name!r} ({Path(path).name}) spans {dim} {lo:.3f}..{hi:.3f} but the data "
                            f"reaches {float(data[dim].min()):.3f}..{float(data[dim].max()):.3f}; "
                            "use a covariate grid that covers the whole domain.")
    matched = cov.sel(latitude=data.latitude, longitude=data.longitude, method="nearest")
    return data.assign({name: matched.assign_coords(latitude=data.latitude, longitude=data.longitude)})


def run(base: Path, data: str, var: str, output: str, covariates: dict | None = None,
        time_steps: list | None = None, estimator: dict | None = None, description: str = "") -> dict:
    import geonp
    from geonp.apps.flows.pretrain import machine

    path = resolve_input(base, data, "data")
    ds = xr.open_dataset(path).load()
    if var not in ds:
        raise ConfigError(f"var={var!r} not in {path.name}; it has {list(ds.data_vars)}.")
    ds = ds[[var]]
    for name, cov_path in (covariates or {}).items():
        ds = attach_covariate(ds, resolve(base, cov_path), name)
    if time_steps is not None:
        ds = ds.isel(time=list(time_steps))
    model = geonp.NeuralProcess(**(estimator or {})).fit(ds, var, covariates=list(covariates or {}))
    model.save(resolve(base, output))
    history = model.history_
    report = {"description": description, "data": path.name, "var": var, "covariates": list(covariates or {}),
              "time_steps": time_steps, "steps": model.steps_trained_, "observations": model.n_observations_,
              "train_seconds": round(history[-1]["seconds"], 1) if history else 0.0, "machine": machine(),
              "python": platform.python_version(),
              "val_nll": [h["val_nll"] for h in history if "val_nll" in h][-1:] or None}
    (resolve(base, output) / "training.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report
