"""Region-level summaries from joint samples: district means with intervals, exceedance, area above a threshold.

    pred = model.predict(grid, samples=200, joint=True)
    districts = geonp.aggregate(pred, regions=label_raster, weights=population)
    districts["mean"], districts["quantiles"], districts["exceedance"]

For every draw ``s`` of the field and every region ``r`` with weights ``w`` (population,
or cell area by default):

    m_rs = sum_i w_i y_is / sum_i w_i            (the region's weighted mean in draw s)

and the region's summary is taken over the draws: mean, std, quantiles, ``P(m_r > t)``.
With ``fraction_above=t``, also ``a_rs = sum_i w_i [y_is > t] / sum_i w_i``, the
(population) share of the region above ``t`` in draw ``s``. These are functions of many
points at once, so they need draws that are coherent across points
(``predict(..., joint=True)``); independent marginal draws make a region's mean far
too certain.

Regions are an integer label raster on the prediction's grid (negative or NaN: no
region; names from ``flag_meanings``) or polygons: a dict of name to shapely geometry, a
list of geometries, or any table with a ``geometry`` column (a GeoDataFrame), in the
prediction's coordinates (longitude/latitude degrees, or the grid's CRS). Polygon
membership uses :func:`shapely.contains_xy` at cell centres.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from geonp import options
from geonp.errors import ConfigError, MetadataMismatchError, warn
from geonp.features.coordinates import find_coordinates


def aggregate(pred: xr.Dataset, regions, weights: xr.DataArray | None = None, *,
              quantiles: Sequence[float] = (0.025, 0.5, 0.975), exceedance: Sequence[float] = (),
              fraction_above: Sequence[float] = (), names: str | None = None) -> xr.Dataset:
    """Weighted region means of the draws in ``pred["samples"]``, summarised per region.

    Args:
        pred: a prediction with ``samples`` (``predict(..., samples=n, joint=True)``).
        regions: an integer label raster on ``pred``'s grid, or polygons (see the module docstring).
        weights: a raster on the same grid (population, ...); ``None``: cell area (``cos(latitude)``
            on a longitude/latitude grid, equal on a projected one). NaN weights count as zero.
        quantiles: probabilities of the region-mean quantiles.
        exceedance: thresholds ``t``: adds ``exceedance`` = P(region mean > t).
        fraction_above: thresholds ``t``: adds ``fraction_above``, the weighted share of the region
            above ``t`` in every draw (``(out.fraction_above > 0.1).mean("sample")`` is the probability
            that more than 10% of the region lies above ``t``).
        names: with a table of polygons, the column holding the region names.

    Returns:
        An ``xr.Dataset`` with a ``region`` dimension (plus ``pred``'s other dims, e.g. time):
        ``samples`` (region mean per draw), ``mean``, ``std``, ``quantiles``, ``cells`` (cells per
        region) and, when asked, ``exceedance`` and ``fraction_above``.
    """
    if "samples" not in pred or "sample" not in pred["samples"].dims:
        raise ConfigError("aggregate needs draws of the field: predict(..., samples=200, joint=True) first.")
    if pred.attrs.get("geonp_samples") != "joint":
        warn("these samples are independent per point (predict(..., joint=False)): region means from "
             "them are far too certain. Predict with joint=True for region-level intervals.")
    if not isinstance(pred, xr.Dataset):
        raise ConfigError(f"pred must be the xr.Dataset that predict(..., samples=n, joint=True) returns; got "
                          f"{type(pred).__name__}.")
    quantiles = options.probabilities(quantiles, "quantiles")
    exceedance, fraction_above = options.numbers(exceedance, "exceedance"), options.numbers(fraction_above,
                                                                                              "fraction_above")
    samples = pred["samples"]
    layout = find_coordinates(pred)
    space = _space_dims(samples, layout)
    membership, region_names = _membership(pred, samples, layout, space, regions, names)  # [region, *space]
    weight = _weights(pred, samples, layout, space, weights)  # [*space]
    valid = samples.notnull().all("sample")
    w = (membership * weight * valid).astype(np.float64)  # [region, *space, (task dims)]
    total = w.sum(space)
    others = [d for d in total.dims if d != "region"]
    smallest = (total.min(others) if others else total).values  # [region]
    empty = [str(n) for n, t in zip(region_names, smallest, strict=True) if not t > 0]
    if empty:
        warn(f"{len(empty)} region(s) hold no predicted cell with positive weight (e.g. {empty[:3]}); "
             "their summaries are NaN. Check that the regions overlap the prediction's grid and "
             "coordinates.")
    filled = samples.fillna(0.0)
    means = xr.dot(filled, w, dim=space) / total.where(total > 0)  # [sample, region, ...]
    value_attrs = {k: v for k, v in samples.attrs.items() if k in ("units", "standard_name")}
    label = samples.attrs.get("long_name", "the predicted field")
    out = xr.Dataset(coords={"region": np.asarray(region_names)})
    out["samples"] = means.transpose("region", ..., "sample").assign_attrs(
        value_attrs, long_name=f"weighted region mean of {label}, per draw")
    out["mean"] = means.mean("sample").assign_attrs(value_attrs, long_name=f"region mean of {label}")
    out["std"] = means.std("sample").assign_attrs(value_attrs, long_name="standard deviation of the region mean")
    if quantiles:
        with warnings.catch_warnings():  # an empty region's NaN quantiles were warned about above
            warnings.simplefilter("ignore", RuntimeWarning)
            q = means.quantile(list(quantiles), dim="sample").transpose("region", ..., "quantile")
        out["quantiles"] = q.assign_attrs(value_attrs, long_name="quantiles of the region mean")
    thresholds = tuple(float(t) for t in exceedance)
    if thresholds:
        above = xr.concat([(means > t).where(means.notnull()).mean("sample") for t in thresholds],
                          dim=xr.DataArray(list(thresholds), dims="threshold", name="threshold"))
        out["exceedance"] = above.transpose("region", ..., "threshold").assign_attrs(
            units="1", long_name="P(region mean > threshold)")
    cut = tuple(float(t) for t in fraction_above)
    if cut:
        shares = xr.concat([xr.dot((filled > t).astype(np.float64), w, dim=space) / total.where(total > 0)
                            for t in cut], dim=xr.DataArray(list(cut), dims="fraction_threshold"))
        out["fraction_above"] = shares.transpose("region", ..., "fraction_threshold", "sample").assign_attrs(
            units="1", long_name="weighted share of the region above the threshold, per draw")
    out["cells"] = (membership.sum(space)).astype(np.int64).assign_attrs(long_name="grid cells in the region")
    out.attrs.update({"geonp_aggregate_weights": "cell area" if weights is None else str(weights.name or "given"),
                      "geonp_aggregate_draws": int(samples.sizes["sample"]),
                      "geonp_samples": pred.attrs.get("geonp_samples", "unknown")})
    return out


def _space_dims(samples: xr.DataArray, layout) -> list[str]:
    """The dimensions that span space: the grid's (y, x) or the point dimension of a site table."""
    grid = [d for d in (layout.y, layout.x) if d in samples.dims]
    if len(grid) == 2:
        return grid
    point_dims = set(samples[layout.y].dims) | set(samples[layout.x].dims)
    if len(point_dims) == 1:
        return list(point_dims)
    raise MetadataMismatchError(f"cannot tell which dimensions of the samples {list(samples.dims)} span space "
                                f"(coordinates {layout.y!r}, {layout.x!r}).")


def _cell_centres(pred, samples, layout, space):
    y, x = xr.broadcast(pred[layout.y], pred[layout.x])
    y, x = y.transpose(*space), x.transpose(*space)
    return x, y


def _membership(pred, samples, layout, space, regions, names) -> tuple[xr.DataArray, list]:
    """``[region, *space]`` boolean membership, and the region names."""
    if isinstance(regions, xr.DataArray):
        return _label_membership(samples, space, regions)
    geometries = _geometries(regions, names)
    import shapely

    x, y = _cell_centres(pred, samples, layout, space)
    xv, yv = x.values, y.values
    masks = []
    for geometry in geometries.values():
        inside = shapely.contains_xy(geometry, xv, yv)
        if layout.kind == "geographic":  # polygons in -180..180 against a 0..360 grid (or the reverse)
            inside |= shapely.contains_xy(geometry, (xv + 180.0) % 360.0 - 180.0, yv)
            inside |= shapely.contains_xy(geometry, xv % 360.0, yv)
        masks.append(inside)
    coords = {d: pred[d] for d in space if d in pred.coords}
    member = xr.DataArray(np.stack(masks), dims=("region", *space), coords=coords)
    return member, list(geometries)


def _label_membership(samples, space, labels: xr.DataArray) -> tuple[xr.DataArray, list]:
    labels = _on_prediction_grid(labels, samples, space, "the region labels", "labels")
    values = labels.values
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise ConfigError(f"region labels must be integers (negative or NaN: no region); got {values.dtype}.")
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    if np.any(finite != np.round(finite)):
        raise ConfigError("region labels must be whole numbers (one integer per region).")
    ids = np.unique(finite[finite >= 0]).astype(np.int64)
    if ids.size == 0:
        raise ConfigError("the region labels hold no region (every label is negative or NaN).")
    flags = str(labels.attrs.get("flag_meanings", "")).split()
    flag_values = np.asarray(labels.attrs.get("flag_values", np.arange(len(flags)))).tolist()
    lookup = dict(zip(flag_values, flags, strict=False)) if len(flags) == len(flag_values) else {}
    region_names = [lookup.get(int(i), int(i)) for i in ids]
    member = xr.concat([labels == i for i in ids], dim="region").transpose("region", *space)
    return member.drop_vars([c for c in member.coords if c not in member.dims and c not in labels.coords],
                            errors="ignore"), region_names


def _geometries(regions, names) -> dict:
    """Region name -> shapely geometry from a dict, a list, or a table with a ``geometry`` column."""
    import shapely

    if isinstance(regions, Mapping):
        geometries = dict(regions)
    elif hasattr(regions, "geometry"):  # a GeoDataFrame (or any table with a geometry column)
        if names is not None and names not in getattr(regions, "columns", ()):
            raise ConfigError(f"names={names!r} is not a column of the regions table; its columns are "
                              f"{list(getattr(regions, 'columns', []))}. Pass the column holding the region names "
                              "(or names=None to use the index).")
        labels = list(regions[names]) if names is not None else list(regions.index)
        geometries = dict(zip(labels, list(regions.geometry), strict=True))
    elif isinstance(regions, shapely.Geometry):
        geometries = {0: regions}
    elif isinstance(regions, Sequence) and not isinstance(regions, str):
        geometries = dict(enumerate(regions))
    else:
        raise ConfigError(f"regions must be an integer label raster (xr.DataArray), a dict of name -> shapely "
                          f"geometry, a list of geometries or a table with a geometry column; got "
                          f"{type(regions).__name__}.")
    bad = [k for k, g in geometries.items() if not isinstance(g, shapely.Geometry)]
    if bad:
        raise ConfigError(f"region(s) {bad[:3]} are not shapely geometries; build them with shapely.geometry."
                          "shape(geojson) or shapely.Polygon(coordinates).")
    if not geometries:
        raise ConfigError("regions is empty: pass at least one polygon.")
    return geometries


def _weights(pred, samples, layout, space, weights) -> xr.DataArray:
    if weights is None:
        if layout.kind == "geographic":
            _, lat = _cell_centres(pred, samples, layout, space)
            return np.cos(np.deg2rad(lat)).clip(min=0.0).drop_vars(
                [c for c in lat.coords if c not in space], errors="ignore")
        return xr.ones_like(samples.isel(sample=0, drop=True)).isel(
            {d: 0 for d in samples.dims if d not in space and d != "sample"}, drop=True)
    if not isinstance(weights, xr.DataArray):
        raise ConfigError(f"weights must be an xr.DataArray on the prediction's grid; got {type(weights).__name__}.")
    weights = _on_prediction_grid(weights, samples, space, "the weights", "weights")
    if not (np.issubdtype(weights.dtype, np.number) and not np.issubdtype(weights.dtype, np.complexfloating)):
        raise ConfigError(f"weights must hold real numbers (a population or an area); got dtype {weights.dtype}.")
    if bool((weights < 0).any()):
        raise ConfigError("weights must be >= 0 (a population or an area).")
    if bool(np.isinf(weights).any()):
        raise ConfigError(f"weights hold {int(np.isinf(weights).sum())} infinite value(s); a weight must be a finite "
                          "population or area. Fix them, or set them to NaN (counted as zero).")
    return weights.fillna(0.0)


def _on_prediction_grid(array: xr.DataArray, samples: xr.DataArray, space, what: str, name: str) -> xr.DataArray:
    """``array`` checked to lie on the prediction's grid: its spatial dims, the same coordinates exactly."""
    missing = [d for d in space if d not in array.dims]
    if missing:
        raise MetadataMismatchError(f"{what} have dims {list(array.dims)}; they need the prediction's spatial dims "
                                    f"{space}. Put them on the prediction's grid.")
    try:
        array, _ = xr.align(array, samples.isel(sample=0, drop=True), join="exact")
    except ValueError as error:
        raise MetadataMismatchError(f"the coordinates of {what} differ from the prediction's grid ({error}); regrid "
                                    f"them first (e.g. {name}.reindex_like(pred, method='nearest')).") from None
    return array
