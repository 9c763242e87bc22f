"""Prevalence mapping from surveys: cross-validated against kriging, then mapped with exceedance.

    flow: prevalence
    surveys: ${GEONP_DATA}/disease_prevalence/gambia_villages.csv
    lon: lon
    lat: lat
    positives: n_positive
    examined: n_tested
    threshold: 0.3
    output: ../runs/prevalence-gambia

1. Leave-location-out cross-validation (``folds`` folds of locations, never splitting a
   location): geonp's bundled binomial model, calibrated without training, against ordinary
   kriging of the empirical logit (pykrige; exponential variogram fitted per fold) turned into
   the same logit-normal-binomial predictive, and (with GPBoost installed) binomial
   geostatistics, the model a statistician would fit (``geonp.apps.flows.survey_baselines``).
   Scores: log score, CRPS, 95% coverage of the counts and of the prevalence, n-weighted
   RMSE (``geonp.scoring.counts``).
2. A map: prevalence mean, 95% interval width and P(prevalence > threshold) on a grid
   (``grid`` cells per side over the surveys' extent, or the points of ``grid_csv``), written
   as netCDF and PNG.
3. With ``joint_samples: n``, region-level prevalence, the quantity programmes act on: the
   mean prevalence of each region (``regions``: a GeoJSON or shapefile of polygons in lon/lat,
   named by their ``region_name`` property; by default the area the surveys span, their
   convex hull) with its 95% interval and P(region mean > threshold), from ``n`` joint draws
   (:func:`geonp.aggregate`) at up to ``joint_points`` map points, weighted by the grid's
   ``weights`` column (e.g. population) when given. Written to ``regions.csv``.
4. With ``next_sites: n``, where to survey next: ``n`` map points chosen greedily by
   ``design_criterion`` (``variance``, ``exceedance`` of ``threshold``; :func:`geonp.design.next_sites`)
   among up to ``joint_points`` map points. Written to ``next_sites.csv``.

With ``covariates: [EVI, Temperature, ...]`` (columns of the surveys and of ``grid_csv``), a
model with covariate slots (``geonp.tasks.covariates``) conditions on them without training
(those that do not improve its leave-location-out score are left out: ``geonp.calibrate.covariates``),
and the kriging baseline becomes regression kriging on the same covariates; the joint draws
and the candidate sites of ``next_sites`` carry the grid's covariates too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from geonp.apps.flows.survey_baselines import binomial_glmm_latent, has_gpboost, kriging_latent
from geonp.apps.recipes import resolve, resolve_input
from geonp.errors import ConfigError
from geonp.features.tables import dataframe_to_dataset
from geonp.scoring.counts import LATENT_QUANTILES, count_scores, latent_from_quantiles


def read_surveys(path, lon: str, lat: str, positives: str, examined: str, covariates=()) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in (lon, lat, positives, examined, *covariates) if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: column(s) {missing} not found; it has {list(frame.columns)}.")
    return frame.rename(columns={lon: "lon", lat: "lat", positives: "positive", examined: "examined"})


def _dataset(frame: pd.DataFrame, covariates=()) -> xr.Dataset:
    return dataframe_to_dataset(frame[["lon", "lat", "positive", "examined", *covariates]], "location")


def geonp_latent(model, train: pd.DataFrame, test: pd.DataFrame):
    """(loc, scale) of the logit prevalence at ``test`` locations, conditioned on ``train`` (and the
    covariates the model was fitted with, ``model.covariates_``, at both)."""
    covariates = list(model.covariates_)
    target = dataframe_to_dataset(test[["lon", "lat", *covariates]], "point") if covariates else test[["lon", "lat"]]
    pred = model.predict(_dataset(train, covariates), target=target, quantiles=LATENT_QUANTILES, progress=False)
    loc, scale = latent_from_quantiles(pred["quantiles"].transpose("point", "quantile").values, "binomial", 1e-7)
    return loc, np.maximum(scale, 1e-3)


def cross_validate(model, frame: pd.DataFrame, folds: int = 10, seed: int = 0) -> dict:
    """Leave-location-out CV scores of geonp, kriging and (with GPBoost installed) binomial
    geostatistics, on the same folds, each with the model's covariates."""
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(frame)) % folds
    covariates = list(model.covariates_)
    methods = {"geonp": lambda a, b: geonp_latent(model, a, b),
               "kriging": lambda a, b: kriging_latent(a, b, covariates=covariates)}
    if has_gpboost():
        methods["binomial_glmm"] = lambda a, b: binomial_glmm_latent(a, b, covariates=covariates)
    out = {}
    for name, method in methods.items():
        loc, scale, started = np.zeros(len(frame)), np.zeros(len(frame)), time.perf_counter()
        for f in range(folds):
            loc[fold == f], scale[fold == f] = method(frame[fold != f], frame[fold == f])
        out[name] = count_scores(loc, scale, frame.positive.values, frame.examined.values)
        out[name]["seconds"] = round(time.perf_counter() - started, 2)
    return out


def prediction_grid(frame: pd.DataFrame, cells: int, grid_csv=None, lon: str = "lon", lat: str = "lat",
                    covariates=()):
    """Targets: the points of ``grid_csv`` (a covariate grid), else a regular lon/lat grid around the surveys."""
    if grid_csv is not None:
        grid = pd.read_csv(grid_csv)
        missing = [c for c in (lon, lat, *covariates) if c not in grid]
        if missing:
            raise ConfigError(f"{grid_csv}: needs column(s) {missing}; it has {list(grid.columns)}.")
        grid = grid.rename(columns={lon: "lon", lat: "lat"})
        if covariates:
            return dataframe_to_dataset(grid[["lon", "lat", *covariates]], "point")
        return grid[["lon", "lat"]]
    if covariates:
        raise ConfigError(f"covariates {list(covariates)} need a prediction grid that holds them: set grid_csv "
                          "to a table of points with lon, lat and those columns.")
    pad_x = 0.05 * float(np.ptp(frame.lon)) + 0.05
    pad_y = 0.05 * float(np.ptp(frame.lat)) + 0.05
    lons = np.linspace(frame.lon.min() - pad_x, frame.lon.max() + pad_x, cells)
    lats = np.linspace(frame.lat.min() - pad_y, frame.lat.max() + pad_y, max(8, int(cells * (np.ptp(frame.lat) + 2 *
                       pad_y) / (np.ptp(frame.lon) + 2 * pad_x))))
    return xr.Dataset(coords={"lat": ("lat", lats, {"units": "degrees_north"}),
                              "lon": ("lon", lons, {"units": "degrees_east"})})


def load_regions(path: Path, name: str | None) -> dict:
    """Polygons (lon/lat) by name from a GeoJSON FeatureCollection or a shapefile."""
    import shapely.geometry

    if not path.is_file():
        raise ConfigError(f"regions file {path} does not exist.")
    if path.suffix.lower() in (".geojson", ".json"):
        features = json.loads(path.read_text())["features"]
        records = [(f.get("properties") or {}, shapely.geometry.shape(f["geometry"])) for f in features]
    elif path.suffix.lower() == ".shp":
        from cartopy.io import shapereader

        records = [(r.attributes, r.geometry) for r in shapereader.Reader(str(path)).records()]
    else:
        raise ConfigError(f"regions {path}: expected a .geojson/.json FeatureCollection or a .shp shapefile.")
    if name is not None and any(name not in props for props, _ in records):
        raise ConfigError(f"regions {path}: region_name {name!r} is not a property of every region; properties: "
                          f"{sorted(records[0][0]) if records else []}.")
    return {(props[name] if name else i): geometry for i, (props, geometry) in enumerate(records)}


def region_prevalence(model, frame: pd.DataFrame, targets, grid_table, num_samples: int, max_points: int,
                      threshold: float, regions: dict | None, weights: str | None, seed: int = 0,
                      covariates=()) -> dict:
    """Region-mean prevalence with a 95% interval and P(mean > threshold), from joint draws.

    With ``covariates``, ``targets`` are the covariate grid's points (a Dataset along ``point``);
    the draws condition on the surveys with their covariates, as the map does.
    """
    import shapely

    import geonp

    covariates = list(covariates)
    targets = _grid_points_as_table(targets)
    if isinstance(targets, pd.DataFrame):
        if weights is not None and (grid_table is None or weights not in grid_table):
            raise ConfigError(f"weights={weights!r} must be a column of grid_csv.")
        # a random subset of the grid keeps the joint draws affordable
        table = _random_rows(targets.assign(_weight=grid_table[weights].to_numpy() if weights else 1.0),
                             max_points, seed)
        points = table[["lon", "lat", *covariates]].reset_index(drop=True)
        if covariates:
            points = dataframe_to_dataset(points, "point")
    else:
        if weights is not None:
            raise ConfigError("weights= needs a grid_csv holding that column (e.g. Population).")
        stride = max(1, int(np.ceil(np.sqrt(targets.lat.size * targets.lon.size / max_points))))
        points = targets.isel(lat=slice(None, None, stride), lon=slice(None, None, stride))
        table = None
    started = time.perf_counter()
    pred = model.predict(_dataset(frame, covariates), target=points, samples=num_samples, joint=True, seed=seed,
                         progress=False)
    seconds = time.perf_counter() - started
    weight = None
    if table is not None:
        weight = xr.DataArray(table["_weight"].to_numpy(np.float64), dims="point", name=weights or "equal")
    if regions is None:
        hull = shapely.MultiPoint(np.c_[frame.lon, frame.lat]).convex_hull.buffer(1e-6)
        regions = {"survey area": hull}
    out = geonp.aggregate(pred, regions, weights=weight, quantiles=(0.025, 0.5, 0.975), exceedance=[threshold])
    rows = [{"region": str(r), "mean": float(out["mean"].sel(region=r)),
             "q025": float(out["quantiles"].sel(region=r, quantile=0.025)),
             "q975": float(out["quantiles"].sel(region=r, quantile=0.975)),
             f"P(mean > {threshold:g})": float(out["exceedance"].sel(region=r).squeeze()),
             "points": int(out["cells"].sel(region=r))} for r in out.region.values]
    return {"draws": num_samples, "points": int(pred["mean"].size), "weights": weights or "equal",
            "seconds": round(seconds, 2), "table": rows}


def _candidate_sites(targets, max_points: int, seed: int, covariates=()) -> pd.DataFrame:
    """Up to ``max_points`` of the map's points (a random subset) as candidate survey sites (with their covariates)."""
    targets = _grid_points_as_table(targets)
    if isinstance(targets, pd.DataFrame):
        table = targets[["lon", "lat", *covariates]]
    else:
        lon, lat = np.meshgrid(targets.lon.values, targets.lat.values)
        table = pd.DataFrame({"lon": lon.ravel(), "lat": lat.ravel()})
    return _random_rows(table, max_points, seed)


def _grid_points_as_table(targets):
    """The covariate grid's points (a Dataset along ``point``, :func:`prediction_grid`) as a DataFrame; other
    targets (a DataFrame, a regular lon/lat grid) as they are."""
    if isinstance(targets, xr.Dataset) and "point" in targets.dims:
        return targets.to_dataframe().reset_index(drop=True)
    return targets


def _random_rows(table: pd.DataFrame, max_points: int, seed: int) -> pd.DataFrame:
    """Up to ``max_points`` rows of ``table``, drawn at random (seeded), in their original order."""
    rng = np.random.default_rng(seed)
    return table.iloc[np.sort(rng.choice(len(table), min(max_points, len(table)), replace=False))]


def _binomial_model(base: Path, model: str):
    """A bundled model by name, a saved model or a release folder (``train_bundled.py`` writes them)."""
    from geonp.estimator import resolve_model
    from geonp.estimator.releases import available

    return resolve_model(model if model in available() else resolve(base, model))


def run(base: Path, surveys: str, output: str, lon: str = "lon", lat: str = "lat", positives: str = "positive",
        examined: str = "examined", model: str = "prevalence-binomial", threshold: float = 0.3, folds: int = 10,
        grid: int = 96, grid_csv: str | None = None, grid_lon: str = "lon", grid_lat: str = "lat",
        title: str = "", seed: int = 0, joint_samples: int = 0, joint_points: int = 1024,
        regions: str | None = None, region_name: str | None = None, weights: str | None = None,
        next_sites: int = 0, design_criterion: str = "variance", covariates: list | None = None) -> dict:
    import geonp

    covariates = list(covariates or ())
    path = resolve_input(base, surveys, "survey")
    frame = read_surveys(path, lon, lat, positives, examined, covariates)
    out_dir = resolve(base, output)
    out_dir.mkdir(parents=True, exist_ok=True)
    np_model = _binomial_model(base, model).fit(_dataset(frame, covariates), "positive", trials="examined",
                                                covariates=covariates, steps=0)
    scores = cross_validate(np_model, frame, folds, seed)

    targets = prediction_grid(frame, grid, resolve(base, grid_csv) if grid_csv else None, grid_lon, grid_lat,
                              covariates)
    started = time.perf_counter()
    pred = np_model.predict(_dataset(frame, covariates), target=targets, quantiles=(0.025, 0.975),
                            exceedance=[threshold], progress=False)
    map_seconds = time.perf_counter() - started
    width = pred["quantiles"].sel(quantile=0.975) - pred["quantiles"].sel(quantile=0.025)
    pred["interval_width"] = width.assign_attrs(long_name="width of the 95% interval of prevalence", units="1")
    pred.attrs["title"] = title or f"prevalence of {positives} / {examined}"
    pred.to_netcdf(out_dir / "prevalence.nc")
    geonp.plot(pred, ["mean", "interval_width", "exceedance"], points=(frame.lon.values, frame.lat.values),
               path=out_dir / "prevalence.png", title=pred.attrs["title"])
    report = {"surveys": str(path.name), "locations": len(frame), "folds": folds, "cv": scores,
              "map_points": int(pred["mean"].size), "map_seconds": round(map_seconds, 2),
              "outputs": [str(out_dir / "prevalence.nc"), str(out_dir / "prevalence.png")]}
    if covariates:  # which covariates the model kept (geonp.calibrate.covariates), with every subset's score
        report["covariate_selection"] = np_model.history_[-1].get("covariate_selection")
    if joint_samples:
        grid_table = pd.read_csv(resolve(base, grid_csv)) if grid_csv else None
        report["regions"] = region_prevalence(
            np_model, frame, targets, grid_table, joint_samples, joint_points, threshold,
            load_regions(resolve(base, regions), region_name) if regions else None, weights, seed, covariates)
        pd.DataFrame(report["regions"]["table"]).to_csv(out_dir / "regions.csv", index=False)
        report["outputs"].append(str(out_dir / "regions.csv"))
    if next_sites:
        candidates = _candidate_sites(targets, joint_points, seed, covariates)
        chosen = geonp.design.next_sites(np_model, frame[["lon", "lat", "positive", "examined", *covariates]],
                                         candidates,
                                         next_sites, criterion=design_criterion, threshold=threshold)
        chosen.to_csv(out_dir / "next_sites.csv", index=False)
        report["next_sites"] = chosen[["lon", "lat", "order", "score"]].to_dict("records")
        report["outputs"].append(str(out_dir / "next_sites.csv"))
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report
