"""Gridded or point data as a rectangle of tasks x points, and back.

Every input (a gridded ``DataArray``, a ``Dataset`` with covariates, a survey
``DataFrame``, a ``Dataset`` with a ``site`` dimension) becomes a
:class:`PointTable`: ``T`` tasks of ``P`` points each. The spatial dimensions
(and, for a model with a time group, time) are the points; every other
dimension (time for a space-only model, ensemble member, level) indexes
independent tasks. Predictions come back in the same rectangle and are put
back on the template's dimensions and coordinates.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from geonp.errors import DataError, InputShapeError, MetadataMismatchError
from geonp.features.coordinates import (
    LATITUDE_NAMES,
    LONGITUDE_NAMES,
    TIME_NAMES,
    X_NAMES,
    Y_NAMES,
    CoordinateError,
    CoordinateLayout,
    check_coordinates,
    find_coordinates,
    hours_since,
)
from geonp.nn.bias import EARTH_RADIUS_KM


@dataclasses.dataclass
class PointTable:
    """``T`` tasks x ``P`` points, with what the model needs per point (NaN value = not observed).

    ``x, y`` ``[T, P]``: longitude/latitude (degrees) or projected x/y;
    ``hours`` ``[T, P]`` or None; ``values`` ``[T, P, Dy]`` or None (targets);
    ``covariates`` ``[T, P, Dx]``; ``template`` the DataArray whose dims and
    coords the points came from (``task_dims + point_dims``).
    """

    layout: CoordinateLayout
    task_dims: tuple[str, ...]
    point_dims: tuple[str, ...]
    x: np.ndarray
    y: np.ndarray
    hours: np.ndarray | None
    values: np.ndarray | None
    covariates: np.ndarray
    template: xr.DataArray
    time_reference: object = None
    original_dims: tuple[str, ...] = ()

    @property
    def num_tasks(self) -> int:
        return self.x.shape[0]

    @property
    def task_labels(self) -> list[tuple]:
        """One tuple of coordinate values per task (for matching context and target tasks)."""
        if not self.task_dims:
            return [()]
        index = [self.template[d].values if d in self.template.coords else np.arange(self.template.sizes[d])
                 for d in self.task_dims]
        grid = np.meshgrid(*index, indexing="ij")
        return list(zip(*(g.ravel().tolist() for g in grid), strict=True))

    def observed(self) -> np.ndarray:
        """``[T, P]`` True where every value and covariate is finite."""
        ok = np.isfinite(self.x) & np.isfinite(self.y)
        if self.values is not None:
            ok &= np.isfinite(self.values).all(axis=-1)
        if self.covariates.shape[-1]:
            ok &= np.isfinite(self.covariates).all(axis=-1)
        return ok


def euclidean_embedding(kind: str, x, y) -> np.ndarray:
    """Points in a Euclidean space where nearby distances are true distances (km on the sphere)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if kind == "geographic":
        lon, lat = np.deg2rad(x), np.deg2rad(y)
        return EARTH_RADIUS_KM * np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], -1)
    return np.stack([x, y], axis=-1)


# --------------------------------------------------------------------------- inputs


def dataframe_to_dataset(frame: pd.DataFrame, point_dim: str = "point") -> xr.Dataset:
    """A survey table as a Dataset along ``point_dim`` with its coordinate columns as coordinates."""
    if not isinstance(frame, pd.DataFrame):
        raise InputShapeError(f"expected a pandas DataFrame, got {type(frame).__name__}.")
    known = {n.lower() for n in LATITUDE_NAMES + LONGITUDE_NAMES + X_NAMES + Y_NAMES + TIME_NAMES}
    table = frame.reset_index(drop=True)
    ds = xr.Dataset({str(c): (point_dim, table[c].to_numpy()) for c in table.columns},
                    coords={point_dim: np.arange(len(table))})
    return ds.set_coords([str(c) for c in table.columns if str(c).lower() in known])


def as_dataset(data, var: str | Sequence[str] | None = None) -> tuple[xr.Dataset, list[str]]:
    """Any supported input as a Dataset plus the names of its value variables."""
    if isinstance(data, pd.DataFrame):
        data = dataframe_to_dataset(data)
    if isinstance(data, xr.DataArray):
        name = data.name if data.name is not None else "value"
        names = [str(name)]
        data = data.to_dataset(name=names[0])
        if var is not None and [var] != names and list(np.atleast_1d(var)) != names:
            raise DataError(f"var={var!r} but the DataArray is named {names[0]!r}; omit var for a DataArray.")
        return data, names
    if not isinstance(data, xr.Dataset):
        raise InputShapeError(
            f"expected an xarray DataArray or Dataset or a pandas DataFrame, got {type(data).__name__}."
        )
    if var is None:
        candidates = [n for n, v in data.data_vars.items() if v.ndim >= 1 and np.issubdtype(v.dtype, np.number)]
        if len(candidates) != 1:
            raise DataError(f"the Dataset has variables {list(data.data_vars)}; say which one to model with "
                            "var='name' (and covariates=[...] for the inputs).")
        return data, [str(candidates[0])]
    names = [str(v) for v in np.atleast_1d(var)]
    missing = [n for n in names if n not in data.data_vars]
    if missing:
        raise DataError(f"variable(s) {missing} not in the Dataset; it has {list(data.data_vars)}.")
    return data, names


def point_dims_of(obj, layout: CoordinateLayout, temporal: bool) -> tuple[str, ...]:
    """Dims that index points: those of the spatial coordinates (and time for a temporal model)."""
    dims = []
    for name in layout.spatial:
        dims += [d for d in obj[name].dims if d not in dims]
    if not dims:
        raise CoordinateError(
            f"spatial coordinates {layout.spatial} are scalars; a neural process needs points spread in space."
        )
    if temporal:
        if layout.time is None:
            raise CoordinateError("the model has a time group but the data has no time coordinate; pass "
                                  "time_dim='name' or use a space-only model.")
        dims += [d for d in obj[layout.time].dims if d not in dims]
    return tuple(dims)


def to_table(data, var=None, covariates: Sequence[str] = (), spatial_dims=None, time_dim=None, crs=None,
             temporal: bool = False, need_values: bool = True, layout: CoordinateLayout | None = None,
             time_reference=None, task_dims: Sequence[str] = ()) -> PointTable:
    """Flatten ``data`` into a :class:`PointTable` (the input object is not modified).

    With ``need_values=False`` (prediction targets) only coordinates and
    covariates are read; the points span the spatial dims, the covariates'
    dims and those of ``task_dims`` the data has.
    """
    if need_values:
        ds, names = as_dataset(data, var)
    else:
        if isinstance(data, pd.DataFrame):
            data = dataframe_to_dataset(data)
        ds = data.to_dataset(name="_target") if isinstance(data, xr.DataArray) else data
        names = []
    if layout is None:
        layout = find_coordinates(ds, spatial_dims, time_dim, crs)
    else:
        missing = [n for n in (*layout.spatial, *([layout.time] if layout.time else [])) if n not in ds.coords]
        if missing:
            raise MetadataMismatchError(
                f"the data lacks coordinate(s) {missing} that the model was fitted with "
                f"({layout.kind} {layout.spatial}); rename them to match."
            )
    check_coordinates(ds, layout)
    covariates = [str(c) for c in covariates]
    missing = [c for c in covariates if c not in ds.data_vars and c not in ds.coords]
    if missing:
        raise MetadataMismatchError(
            f"covariate(s) {missing} not found; the data has {list(ds.data_vars)}. The model needs every "
            f"covariate it was fitted with ({covariates}) on the same points as the target."
        )

    point_dims = point_dims_of(ds, layout, temporal)
    if need_values:
        template = ds[names[0]]
        extra = [d for d in point_dims if d not in template.dims]
        if extra:
            template = template.expand_dims({d: ds.sizes[d] for d in extra})
    else:
        dims = [d for d in task_dims if d in ds.dims]
        for c in covariates:
            dims += [d for d in ds[c].dims if d not in dims and d not in point_dims]
        template = _coordinate_template(ds, layout, dims + [d for d in point_dims if d not in dims])
    table_task_dims = tuple(d for d in template.dims if d not in point_dims)
    original_dims = tuple(template.dims)
    template = template.transpose(*table_task_dims, *point_dims)
    shape = (int(np.prod([template.sizes[d] for d in table_task_dims], dtype=int)),
             int(np.prod([template.sizes[d] for d in point_dims], dtype=int)))

    def flat(array_like, what):
        arr = array_like
        stray = [d for d in arr.dims if d not in template.dims]
        if stray:
            raise InputShapeError(f"{what} has dimension(s) {stray} that {template.name or 'the data'} does not "
                                  f"have ({list(template.dims)}); select or reduce them first.")
        return np.asarray(arr.broadcast_like(template).transpose(*template.dims).values).reshape(shape)

    x = flat(ds[layout.x], f"coordinate {layout.x!r}").astype(np.float64)
    y = flat(ds[layout.y], f"coordinate {layout.y!r}").astype(np.float64)
    hours = None
    if temporal:
        times = flat(ds[layout.time], f"coordinate {layout.time!r}")
        hours, time_reference = hours_since(times, time_reference)
    values = None
    if need_values:
        columns = []
        for name in names:
            v = ds[name]
            _check_real(v, f"variable {name!r}")
            columns.append(flat(v, f"variable {name!r}").astype(np.float64))
        values = np.stack(columns, axis=-1)
    cov = []
    for c in covariates:
        _check_real(ds[c], f"covariate {c!r}")
        cov.append(flat(ds[c], f"covariate {c!r}").astype(np.float64))
    cov_array = np.stack(cov, axis=-1) if cov else np.zeros(shape + (0,))
    return PointTable(layout, table_task_dims, point_dims, x, y, hours, values, cov_array, template,
                      time_reference, original_dims)


def _check_real(array, what: str) -> None:
    """Values must be real numbers or booleans: not text, dates, durations or complex numbers."""
    dtype = array.dtype
    if np.issubdtype(dtype, np.timedelta64) or np.issubdtype(dtype, np.datetime64):
        raise DataError(f"{what} holds {dtype} (dates or durations); expected real numbers. Convert it to a "
                        "number in the unit you mean, e.g. da / np.timedelta64(1, 'D') for days.")
    if np.issubdtype(dtype, np.complexfloating):
        raise DataError(f"{what} is complex ({dtype}); a neural process models real numbers. Model the real "
                        "and imaginary parts (or abs and angle) as separate variables.")
    if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
        raise DataError(f"{what} has dtype {dtype}; expected numbers. Convert it with .astype(float) (or decode "
                        "it) first.")


def _coordinate_template(ds: xr.Dataset, layout: CoordinateLayout, dims) -> xr.DataArray:
    """A data-free DataArray on ``dims``, carrying the Dataset's coordinates (for targets)."""
    sizes = {d: ds.sizes[d] for d in dims}
    coords = {n: c for n, c in ds.coords.items() if set(c.dims) <= set(dims)}
    return xr.DataArray(np.broadcast_to(np.float32(0), tuple(sizes.values())), dims=tuple(sizes), coords=coords)


def covariate_alignment_hint(missing: int, total: int) -> str:
    """A sentence for warnings where most points lack a covariate: the usual cause is misaligned coordinates."""
    if total == 0 or missing <= total / 2:
        return ""
    return (" Most points lack it: a covariate assigned from another file (ds['elevation'] = other) is reindexed "
            "to this grid by xarray and gets NaN wherever the coordinates differ, even by rounding; align it "
            "first, e.g. other.interp_like(ds, method='nearest') or other.assign_coords(latitude=ds.latitude, "
            "longitude=ds.longitude).")


def require_observations(table: PointTable, what: str = "the data") -> np.ndarray:
    """The observed mask, with a clear error when nothing at all is observed."""
    observed = table.observed()
    if not observed.any():
        names = table.template.name or "the variable"
        valued = int(np.isfinite(table.values).any(axis=-1).sum()) if table.values is not None else 0
        if valued and table.covariates.shape[-1]:
            raise DataError(f"{what} has no observed value with every covariate: {valued} point(s) have a value "
                            f"of {names} but each lacks a covariate (NaN).{covariate_alignment_hint(valued, valued)}")
        raise DataError(f"{what} has no observed value: every value of {names} (or a covariate) is NaN. A "
                        "neural process needs observations to condition on; check the selection or the fill value.")
    return observed


def observed_by_task(table, observed, scaling, tasks, temporal: bool) -> dict:
    """Per task, the observed points as model inputs: lists of ``[n, ...]`` arrays.

    ``embedding`` is Euclidean in km (geographic) or CRS units, for neighbourhood queries;
    ``space``/``time`` are the bias features; covariates and values are standardised.
    """
    parts = {k: [] for k in ("embedding", "space", "time", "hours", "covariates", "values")}
    for t in tasks:
        m = observed[t]
        x, y = table.x[t, m], table.y[t, m]
        parts["embedding"].append(euclidean_embedding(scaling.kind, x, y))
        parts["space"].append(scaling.space_features(x, y))
        parts["hours"].append(table.hours[t, m] if table.hours is not None else None)
        parts["time"].append(scaling.time_features(table.hours[t, m]) if temporal else None)
        parts["covariates"].append(scaling.scale_covariates(table.covariates[t, m]))
        parts["values"].append(scaling.scale_values(table.values[t, m]))
    return parts
