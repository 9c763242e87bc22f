"""Prediction targets built from a grid: a finer grid over the same extent."""

from __future__ import annotations

import numpy as np
import xarray as xr

from geonp.errors import ConfigError
from geonp.features.coordinates import CoordinateError, CoordinateLayout


def refine_coordinate(values: np.ndarray, factor: int) -> np.ndarray:
    """Cell centres of a grid ``factor`` times finer, covering the same cells.

    A cell centred at c with spacing s covers [c - s/2, c + s/2]; it splits into
    ``factor`` cells centred at c - s/2 + (k + 1/2) s / factor. Works for
    descending coordinates (s < 0) too.
    """
    values = np.asarray(values, np.float64)
    if values.size < 2:
        raise CoordinateError("a coordinate needs at least two values to be refined (its spacing is unknown).")
    steps = np.diff(values)
    step = float(np.median(steps))
    if not np.allclose(steps, step, rtol=1e-3, atol=0):
        raise CoordinateError(
            "target=<factor> needs a regularly spaced grid, but the spacing varies between "
            f"{steps.min():g} and {steps.max():g}. Pass an explicit target grid instead (a DataArray or Dataset)."
        )
    offsets = (np.arange(factor) + 0.5) / factor - 0.5  # [factor] in units of the spacing
    return (values[:, None] + step * offsets[None, :]).reshape(-1)


def refined_grid(obj, layout: CoordinateLayout, factor) -> xr.Dataset:
    """A data-free Dataset on a grid ``factor`` times finer in y and x, keeping coordinate attrs."""
    if isinstance(factor, bool) or not float(factor).is_integer() or int(factor) < 1:
        raise ConfigError(f"target={factor!r}: a resolution factor must be a whole number >= 1 (e.g. 4 for a "
                          "4x finer grid); for other grids pass a DataArray/Dataset with the target coordinates.")
    factor = int(factor)
    coords = {}
    for name in layout.spatial:
        coord = obj[name]
        if coord.ndim != 1 or coord.dims[0] != name:
            raise CoordinateError(
                f"target=<factor> needs 1-D dimension coordinates; {name!r} has dims {coord.dims}. Pass an "
                "explicit target grid instead."
            )
        coords[name] = xr.DataArray(refine_coordinate(coord.values, factor), dims=name, attrs=dict(coord.attrs))
    for name, coord in obj.coords.items():
        if name not in coords and not set(coord.dims) & set(layout.spatial):
            coords[name] = coord
    return xr.Dataset(coords=coords, attrs=dict(obj.attrs))
