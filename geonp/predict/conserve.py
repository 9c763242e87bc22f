"""Downscaling that keeps every coarse cell's mean (conservative downscaling).

A coarse grid's value is the field's mean over its cell (a block mean, a reanalysis or model
cell). When the targets are a finer grid nested in the context grid, each coarse cell ``c``
covers ``k_y x k_x`` target cells ``i`` and the fine field ``f`` satisfies

    sum_i w_i f_i / sum_i w_i = value_c                                               (1)

with ``w`` the cells' areas (``cos(latitude)`` on the sphere, 1 on a projected grid). A
predicted mean ``g`` need not satisfy (1): a model conditioned on block means reads them as
evidence about the field, not as constraints. :func:`conserve` moves ``g`` to a field that
satisfies (1) by a smooth correction:

    g' = g - S z,   z [Cy, Cx] such that  A (g - S z) = value                           (2)

``A``: the weighted block mean of (1) ``[Ty, Tx] -> [Cy, Cx]``; ``S``: cubic-spline
interpolation from the coarse cells' centres to the target cells ``[Cy, Cx] -> [Ty, Tx]``, so
the correction has no steps at the cells' edges (the pycnophylactic idea of Tobler, 1979,
with a spline in place of his smoothing). (2) is solved by the fixed-point iteration
``z <- z + (A(g - S z) - value)``, which converges because a smooth interpolant nearly keeps
block means (``A S`` is close to the identity); a last constant shift per cell makes (1) exact
to rounding. Cells whose value is missing, or which the target grid covers only in part,
are not constrained: they take a weighted average of their constrained neighbours' correction.

Where the truth satisfies (1), the constant shift alone is the orthogonal projection onto
the fields that satisfy it and never increases the squared error; the smooth correction
has no such guarantee but did better on every real case measured (benchmarks/RESULTS.md).
The shift moves a whole predictive distribution (mean, quantiles, samples) and leaves its
spread alone.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

MAX_ITERATIONS = 50
TOLERANCE = 1e-6  # stop when every cell's residual is below this fraction of the values' spread
_ALIGN = 1e-3  # relative tolerance on the spacing ratio and the cells' edges


@dataclasses.dataclass(frozen=True)
class Nesting:
    """How a target grid nests in a context grid, per axis (y, x).

    ``position``: each target row / column's centre in context-cell units (0 = the first context
    cell's centre); ``cell``: the index of the context cell containing it (-1 outside);
    ``factor``: target cells per context cell; ``complete``: context rows / columns that the
    target grid covers entirely.
    """

    position: tuple[np.ndarray, np.ndarray]  # [Ty], [Tx]
    cell: tuple[np.ndarray, np.ndarray]  # [Ty], [Tx] int
    factor: tuple[int, int]
    complete: tuple[np.ndarray, np.ndarray]  # [Cy], [Cx] bool


def _axis_nesting(coarse: np.ndarray, fine: np.ndarray):
    """``(position [T], cell [T], factor, complete [C])`` for one axis, or why it does not nest."""
    coarse, fine = np.asarray(coarse, np.float64), np.asarray(fine, np.float64)
    if coarse.size < 2 or fine.size < 2:
        return "a grid axis has fewer than two cells"
    steps_c, steps_f = np.diff(coarse), np.diff(fine)
    sc, sf = float(np.median(steps_c)), float(np.median(steps_f))
    if not (np.allclose(steps_c, sc, rtol=_ALIGN) and np.allclose(steps_f, sf, rtol=_ALIGN)):
        return "a grid is not regularly spaced"
    ratio = abs(sc / sf)  # either grid may run in descending order
    factor = int(round(ratio))
    if factor < 1 or abs(ratio - factor) > _ALIGN * factor:
        return f"the spacings' ratio is {ratio:.4g}, not a whole number"
    position = (fine - coarse[0]) / sc  # [T] in context cells from the first context cell's centre
    edge = position + 0.5  # from the first context cell's outer edge
    cell = np.floor(edge).astype(np.int64)  # a target centre lies 0.5/factor or more inside its cell
    place = (edge - cell) * factor - 0.5  # the target cell's place inside its context cell: 0 .. factor-1
    if np.max(np.abs(place - np.round(place))) > 10 * _ALIGN * factor:
        return "the target cells' edges do not fall on the context cells' edges"
    cell = np.where((cell >= 0) & (cell < coarse.size), cell, -1)
    counts = np.bincount(cell[cell >= 0], minlength=coarse.size)
    return position, cell, factor, counts == factor


def nesting(coarse_y, coarse_x, fine_y, fine_x) -> Nesting | str:
    """The :class:`Nesting` of a target grid in a context grid, or why there is none (a phrase)."""
    axes = [_axis_nesting(coarse_y, fine_y), _axis_nesting(coarse_x, fine_x)]
    for axis in axes:
        if isinstance(axis, str):
            return axis
    (py, cy, ky, fy), (px, cx, kx, fx) = axes
    if ky * kx < 2:
        return "the target grid is not finer than the context grid"
    if not (fy.any() and fx.any()):
        return "the target grid covers no context cell entirely"
    return Nesting(position=(py, px), cell=(cy, cx), factor=(ky, kx), complete=(fy, fx))


def _block_mean(field, weights, nest: Nesting, shape):
    """``A``: the weighted mean of ``field [Ty, Tx]`` over each context cell ``[Cy, Cx]``."""
    cy, cx = nest.cell
    inside = (cy[:, None] >= 0) & (cx[None, :] >= 0) & np.isfinite(field)
    index = np.where(inside, cy[:, None] * shape[1] + cx[None, :], 0)
    w = np.where(inside, weights, 0.0)
    total = np.bincount(index.ravel(), (w * np.where(inside, field, 0.0)).ravel(), shape[0] * shape[1])
    weight = np.bincount(index.ravel(), w.ravel(), shape[0] * shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return (total / weight).reshape(shape)


def _spline(z, grid):
    """``S``: cubic-spline interpolation of ``z [Cy, Cx]`` (at the context cells' centres) to the target cells
    at ``grid`` (their centres in context-cell units, ``np.meshgrid(*nest.position, indexing="ij")``)."""
    return ndimage.map_coordinates(z, grid, order=3, mode="nearest")


def _constrained(values, nest: Nesting):
    """``[Cy, Cx]`` the context cells whose mean is kept: a value, and every target cell inside the target grid."""
    fy, fx = nest.complete
    return np.isfinite(values) & fy[:, None] & fx[None, :]


def correction(mean, values, weights, nest: Nesting):
    """``S z + shift [Ty, Tx]``: what to subtract from ``mean`` so that its block means equal ``values``.

    ``values [Cy, Cx]``: the context cells' values (NaN: unconstrained); ``weights [Ty, Tx]``: areas.
    """
    shape = values.shape
    constrained = _constrained(values, nest)
    if not constrained.any():
        return np.zeros_like(mean)
    spread = float(np.nanstd(values[constrained])) or 1.0
    grid = np.meshgrid(*nest.position, indexing="ij")
    fill = _filler(constrained)

    def residual(field):
        r = _block_mean(field, weights, nest, shape) - values
        return np.where(constrained & np.isfinite(r), r, 0.0)

    z = np.zeros(shape)
    for _ in range(MAX_ITERATIONS):
        r = residual(mean - _spline(fill(z), grid))
        if np.max(np.abs(r)) < TOLERANCE * spread:
            break
        z += r
    smooth = _spline(fill(z), grid)
    r = residual(mean - smooth)  # the last, exact constant shift per cell
    (cy, cx) = nest.cell
    inside = (cy[:, None] >= 0) & (cx[None, :] >= 0)
    shift = np.where(inside, r[np.maximum(cy, 0)[:, None], np.maximum(cx, 0)[None, :]], 0.0)
    return smooth + shift


def _filler(constrained):
    """``fill(z)``: ``z [Cy, Cx]`` at the constrained cells; elsewhere a Gaussian-weighted average of the
    constrained cells nearby (widened until every cell has some), so that a missing cell follows its
    neighbours' correction instead of pulling the spline back to 0. Symmetric in the grid's directions: a
    flipped grid gets the flipped correction. The weights depend only on which cells are constrained, so
    they are computed once for every iteration of :func:`correction`."""
    if constrained.all():
        return lambda z: z
    weight = constrained.astype(np.float64)
    levels, todo, sigma = [], ~constrained, 1.0  # levels: (sigma, cells filled at it, their total weight)
    while todo.any():
        w = ndimage.gaussian_filter(weight, sigma, mode="constant")
        ok = todo & (w > 1e-3)
        levels.append((sigma, ok, w[ok]))
        todo &= ~ok
        if sigma > 4 * max(constrained.shape):  # no constrained cell anywhere near: no correction
            break
        sigma *= 4.0

    def fill(z):
        known = np.where(constrained, z, 0.0)
        out = known.copy()
        for level_sigma, ok, total in levels:
            out[ok] = ndimage.gaussian_filter(known, level_sigma, mode="constant")[ok] / total
        return out

    return fill


def area_weights(fine_y: np.ndarray, nx: int, geographic: bool) -> np.ndarray:
    """``[Ty, Tx]`` cell areas up to a constant: cos(latitude) on the sphere, 1 on a projected grid."""
    if geographic:
        w = np.cos(np.deg2rad(np.asarray(fine_y, np.float64)))
        return np.repeat(np.clip(w, 0.0, None)[:, None], nx, axis=1)
    return np.ones((np.size(fine_y), nx))


SHIFTED = ("mean", "quantiles", "samples")  # location variables a shift of the distribution moves


def conserve(prediction, context_values, y: str, x: str, geographic: bool):
    """``(prediction, status)``: ``prediction`` (a Dataset) with (1) made true on its target grid.

    ``context_values``: the context grid's values (a DataArray, NaN where missing) with the same
    non-spatial dimensions as ``prediction['mean']``; ``y``, ``x``: the spatial dimension names
    (latitude, longitude when ``geographic``). ``status`` is a sentence for the prediction's attrs;
    when the grids do not nest the prediction is returned unchanged and ``status`` says why
    (it starts with ``"not applied"``).
    """
    mean = prediction["mean"]
    for name, obj in (("target", mean), ("context", context_values)):
        if y not in obj.dims or x not in obj.dims:
            return prediction, f"not applied: the {name} is not a grid with dimensions ({y}, {x})"
    nest = nesting(context_values[y].values, context_values[x].values, mean[y].values, mean[x].values)
    if isinstance(nest, str):
        return prediction, f"not applied: {nest}"
    mean = mean.transpose(..., y, x)
    leading = [d for d in mean.dims if d not in (y, x)]
    if set(context_values.dims) != set(mean.dims):
        return prediction, (f"not applied: the context's dimensions {list(context_values.dims)} differ from the "
                            f"targets' {list(mean.dims)}")
    try:
        values = context_values.sel({d: mean[d] for d in leading if d in mean.coords and d in context_values.coords})
    except (KeyError, ValueError) as err:
        return prediction, f"not applied: the context's steps do not match the targets' ({err})"
    values = values.transpose(*leading, y, x).values
    field = np.asarray(mean.values, np.float64)
    weights = area_weights(mean[y].values, mean.sizes[x], geographic)
    shift = np.zeros_like(field)
    for index in np.ndindex(*field.shape[:-2]):
        shift[index] = correction(field[index], values[index], weights, nest)
    shift = mean.copy(data=shift.astype(mean.dtype))
    out = prediction.copy()
    for name in SHIFTED:
        if name in out:
            out[name] = (out[name] - shift).astype(out[name].dtype).assign_attrs(out[name].attrs)
    constrained = int(_constrained(values, nest).sum())
    ky, kx = nest.factor
    area = "area-weighted (cos latitude)" if geographic else "equal weights"
    return out, (f"the mean over each context cell ({ky} x {kx} target cells, {area}) equals its value: "
                 f"{constrained} cell-steps constrained by a smooth correction (geonp.predict.conserve)")
