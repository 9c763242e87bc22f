"""Find the spatial and time coordinates of an xarray object, check them, turn them into bias features.

Detection order (like rioxarray): an explicit override, then CF metadata
(``standard_name``, ``axis``, ``units``, via cf_xarray), then common names.
The result says whether space is geographic (longitude/latitude in degrees,
compared by great-circle distance) or projected (x/y in metres, Euclidean).

Nothing here keeps state or modifies the input object.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from geonp.errors import CoordinateError

LATITUDE_NAMES = ("latitude", "lat", "nav_lat", "rlat")
LONGITUDE_NAMES = ("longitude", "lon", "long", "nav_lon", "rlon")
Y_NAMES = ("y", "northing", "projection_y_coordinate")
X_NAMES = ("x", "easting", "projection_x_coordinate")
TIME_NAMES = ("time", "t", "date", "valid_time", "datetime")

LATITUDE_UNITS = ("degrees_north", "degree_north", "degree_n", "degrees_n", "degreen", "degreesn")
LONGITUDE_UNITS = ("degrees_east", "degree_east", "degree_e", "degrees_e", "degreee", "degreese")


@dataclasses.dataclass(frozen=True)
class CoordinateLayout:
    """Names of the coordinates that become bias features.

    ``kind`` is ``"geographic"`` (y = latitude, x = longitude, degrees) or
    ``"projected"`` (y, x in the units of ``crs``, metres by default).
    """

    kind: str
    y: str
    x: str
    time: str | None = None
    crs: str | None = None

    @property
    def spatial(self) -> tuple[str, str]:
        return (self.y, self.x)


def _first(candidates, available):
    lowered = {name.lower(): name for name in available}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    return None


def _by_cf(obj, key: str):
    """Name of the coordinate cf_xarray maps to ``key`` (``latitude``, ``X``, ``T`` ...), if exactly one."""
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    mapping = {**obj.cf.coordinates, **obj.cf.axes}
    names = [n for n in mapping.get(key, []) if n in obj.coords]
    return names[0] if len(names) == 1 else None


def _by_units(obj, units: tuple[str, ...]):
    hits = [n for n, c in obj.coords.items() if str(c.attrs.get("units", "")).lower().replace(" ", "") in units]
    return hits[0] if len(hits) == 1 else None


def _crs_of(obj) -> str | None:
    """A CRS string from a rioxarray-style ``spatial_ref``/``crs`` variable or ``crs`` attribute, if any."""
    for name in ("spatial_ref", "crs"):
        if name in obj.coords or (isinstance(obj, xr.Dataset) and name in obj.data_vars):
            attrs = obj[name].attrs
            for key in ("crs_wkt", "spatial_ref"):
                if key in attrs:
                    return str(attrs[key])
    crs = obj.attrs.get("crs")
    return str(crs) if crs is not None else None


def find_coordinates(obj, spatial_dims: tuple[str, str] | None = None, time_dim: str | None = None,
                     crs: str | None = None) -> CoordinateLayout:
    """Locate the (y, x) and time coordinates of ``obj``.

    Args:
        obj: an ``xr.DataArray`` or ``xr.Dataset``.
        spatial_dims: override as ``(y_name, x_name)``, e.g. ``("lat", "lon")`` or ``("y", "x")``.
        time_dim: override for the time coordinate; ``None`` finds it if there is one.
        crs: projected coordinates' CRS (anything pyproj understands); implies ``kind="projected"``.
    """
    names = list(obj.coords)
    if crs is not None:
        parsed = parse_crs(crs)
        if parsed.is_geographic:  # e.g. EPSG:4326: longitude/latitude in degrees after all
            crs = None
            if spatial_dims is not None:
                y, x = spatial_dims
                time_found = time_dim if time_dim is not None else _find_time(obj, names)
                check = find_coordinates(obj, spatial_dims, time_found)
                return CoordinateLayout("geographic", y, x, check.time, None)
        else:
            crs = parsed.to_string()
    if spatial_dims is not None:
        if len(spatial_dims) != 2:
            raise CoordinateError(f"spatial_dims must be (y, x), got {spatial_dims!r}.")
        missing = [n for n in spatial_dims if n not in obj.coords]
        if missing:
            raise CoordinateError(
                f"spatial_dims {tuple(spatial_dims)} name coordinate(s) {missing} that the object does not "
                f"have; its coordinates are {names}."
            )
        y, x = spatial_dims
        geographic = crs is None and (_looks_like_latitude(obj[y]) or y.lower() in LATITUDE_NAMES)
        kind = "geographic" if geographic else "projected"
    else:
        lat = _by_cf(obj, "latitude") or _by_units(obj, LATITUDE_UNITS) or _first(LATITUDE_NAMES, names)
        lon = _by_cf(obj, "longitude") or _by_units(obj, LONGITUDE_UNITS) or _first(LONGITUDE_NAMES, names)
        if lat and lon and crs is None:
            kind, y, x = "geographic", lat, lon
        else:
            y = _by_cf(obj, "Y") or _first(Y_NAMES, names)
            x = _by_cf(obj, "X") or _first(X_NAMES, names)
            kind = "projected"
            if not (y and x):
                raise CoordinateError(
                    f"cannot find spatial coordinates among {names}: expected latitude/longitude (CF "
                    "standard_name or units degrees_north/degrees_east, or names lat/lon) or projected y/x. "
                    "Pass spatial_dims=('y_name', 'x_name'), or rename: obj.rename({'a': 'lat', 'b': 'lon'})."
                )
    if time_dim is None:
        time_dim = _find_time(obj, names)
    elif time_dim not in obj.coords:
        raise CoordinateError(f"time_dim={time_dim!r} is not a coordinate; coordinates are {names}.")
    if kind == "projected" and crs is None:
        crs = _crs_of(obj)
    return CoordinateLayout(kind, y, x, time_dim, crs)


def _find_time(obj, names):
    time_dim = _by_cf(obj, "T") or _by_cf(obj, "time") or _first(TIME_NAMES, names)
    return time_dim if time_dim is not None and _is_time_like(obj[time_dim]) else None


def parse_crs(crs):
    """A ``pyproj.CRS`` from anything pyproj understands, or a :class:`CoordinateError` saying so."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        return CRS.from_user_input(crs)
    except CRSError as err:
        raise CoordinateError(f"crs={crs!r} is not a coordinate reference system pyproj understands ({err}). "
                              "Pass an EPSG code like 'EPSG:32633', a PROJ string or WKT.") from None


def _looks_like_latitude(coord) -> bool:
    return str(coord.attrs.get("units", "")).lower().replace(" ", "") in LATITUDE_UNITS or \
        coord.attrs.get("standard_name") == "latitude"


def _is_time_like(coord) -> bool:
    values = coord.values
    if np.issubdtype(values.dtype, np.datetime64) or np.issubdtype(values.dtype, np.timedelta64):
        return True
    if values.dtype == object and values.size and hasattr(values.flat[0], "calendar"):
        return True  # cftime dates
    return np.issubdtype(values.dtype, np.number) and "since" in str(coord.attrs.get("units", ""))


def check_coordinates(obj, layout: CoordinateLayout) -> None:
    """Raise :class:`CoordinateError` for empty, non-numeric, non-finite, duplicated or non-monotonic
    coordinates, or bad latitudes."""
    for name in layout.spatial:
        _check_spatial_values(obj[name], name, layout)
    for name in [layout.y, layout.x] + ([layout.time] if layout.time else []):
        coord = obj[name]
        values = coord.values
        if np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
            raise CoordinateError(
                f"coordinate {name!r} has {int(np.isnan(values).sum())} NaN value(s); every grid point needs "
                f"a location. Drop them first: obj.dropna({name!r}) or obj.sel({name}=obj[{name!r}].notnull())."
            )
        if coord.ndim == 1 and name in obj.dims and coord.size > 1:
            if np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.datetime64):
                steps = np.diff(values)
                zero = np.zeros((), steps.dtype)
                monotonic = (steps > zero).all() or (steps < zero).all()
                if not monotonic and layout.kind == "geographic" and name == layout.x:
                    # a grid may cross the date line (179, -180, -179): monotonic once steps wrap
                    steps = (steps + 180.0) % 360.0 - 180.0
                if (steps == zero).any():
                    raise CoordinateError(
                        f"coordinate {name!r} has duplicated values; each grid line must be unique. "
                        f"Remove duplicates: obj.drop_duplicates({name!r})."
                    )
                if not ((steps > zero).all() or (steps < zero).all()):
                    raise CoordinateError(
                        f"coordinate {name!r} is not monotonic (neither increasing nor decreasing). "
                        f"Sort it first: obj.sortby({name!r})."
                    )
    if layout.kind == "geographic":
        lat = obj[layout.y].values
        if np.nanmax(np.abs(lat)) > 90.0:
            raise CoordinateError(
                f"latitude {layout.y!r} has values beyond +-90 degrees (max |lat| = {np.nanmax(np.abs(lat))}). "
                "Is it projected? Pass crs=... with spatial_dims=('y', 'x')."
            )


def _check_spatial_values(coord, name: str, layout: CoordinateLayout) -> None:
    """A spatial coordinate must hold real numbers (not text, dates, booleans or complex), at least one, finite."""
    dtype = coord.dtype
    unit = "degrees" if layout.kind == "geographic" else "metres (or the units of crs=)"
    if np.issubdtype(dtype, np.bool_) or np.issubdtype(dtype, np.complexfloating) or \
            not np.issubdtype(dtype, np.number):
        raise CoordinateError(
            f"coordinate {name!r} has dtype {dtype}; a spatial coordinate must hold real numbers ({unit}). "
            f"Convert it, e.g. obj.assign_coords({name}=obj[{name!r}].astype(float)), or point spatial_dims= "
            "at the right coordinates."
        )
    if coord.size == 0:
        empty = [d for d in coord.dims if coord.sizes[d] == 0]
        raise CoordinateError(
            f"coordinate {name!r} is empty (dimension(s) {empty} have size 0): there is no point to use. "
            "Check the selection (an .isel/.sel that kept nothing) or the table's rows."
        )
    values = np.asarray(coord.values)
    infinite = np.isinf(values)
    if infinite.any():
        raise CoordinateError(
            f"coordinate {name!r} has {int(infinite.sum())} infinite value(s); every point needs a finite "
            f"location in {unit}. Drop or fix them, e.g. obj.sel({name}=np.isfinite(obj[{name!r}]))."
        )


def hours_since(values, reference=None) -> tuple[np.ndarray, object]:
    """Times (numpy datetime64 or cftime objects) as float hours since ``reference`` (default: the first)."""
    values = np.asarray(values)
    if values.dtype == object:  # cftime: subtracting dates of one calendar gives timedeltas
        ref = values.flat[0] if reference is None else reference
        hours = np.array([(v - ref).total_seconds() / 3600.0 for v in values.flat]).reshape(values.shape)
        return hours, ref
    if np.issubdtype(values.dtype, np.datetime64):
        ref = values.flat[0] if reference is None else np.datetime64(reference)
        return ((values - ref) / np.timedelta64(1, "s")).astype(np.float64) / 3600.0, ref
    raise CoordinateError(f"time values of dtype {values.dtype} are not dates; decode them with "
                          "xr.decode_cf(obj) or pass time_dim=None.")


def wrap_longitude(lon):
    """Longitudes in [-180, 180): 0..360 and -180..180 inputs give the same points."""
    return (np.asarray(lon, np.float64) + 180.0) % 360.0 - 180.0


def local_km(lon0: float, lat0: float):
    """A pyproj transformer from lon/lat to km in an azimuthal-equidistant plane centred on (lon0, lat0)."""
    from pyproj import Transformer

    return Transformer.from_crs("EPSG:4326", f"+proj=aeqd +lat_0={lat0} +lon_0={lon0} +units=km", always_xy=True)
