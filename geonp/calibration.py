"""Uncertainty calibrated on the user's own data: hold out cells in the data's own gap shapes, predict them.

``fit`` (also with ``steps=0``) calls :func:`calibrate` on a gridded Gaussian
field. ``max_fields`` times (on as many different fields -- time steps,
members ... -- as the data have, several masks on one field when fewer) it hides
observed cells under the data's own missing-value pattern, shifted by a
random offset so that the gap shapes land on observed ground (where the data
have no gaps at all: blobs of smoothed noise), keeping whole gaps until about
a quarter of the observed cells are held out (more would leave the held-out
cells with sparser context than the real gaps have) and only gaps ringed by
observations, as real gaps are (:func:`ringed_by_observations`),
predicts the hidden cells from the rest exactly as ``predict`` would, and
compares the truth with the predictive distribution.

The calibration depends on how far a target lies from its nearest observation
(:class:`SpreadCalibration`): a model can be well calibrated at a gap's edge
and badly overconfident deep inside it, and there its own spread says little
about its error (it misses variation on scales larger than its context). So
the calibrated standard deviation is

    std_cal(d) = sqrt((a(d) * std)^2 + (tau(d) * s)^2)    d: distance to the nearest observation,
                                                         s: std of the observations conditioned on

with ``a(d)`` a factor on the model's own spread (below 1 where the model is
underconfident) and ``tau(d)`` the spread it misses, added in quadrature, in
units of the standard deviation of the observations each target is conditioned
on (so a field, or a tile, twice as variable gets twice the spread). The
held-out cells are split into up to ``MAX_BINS`` bins
of their distance to the nearest remaining observation (at least ``MIN_BIN``
cells each); in a bin whose intervals already cover 95%, ``a`` shrinks them to
95% and ``tau = 0``; otherwise ``a = 1`` and ``tau`` is the smallest spread that
makes the bin's 95% intervals cover 95%. A second candidate is a factor alone
(``tau = 0``, ``a`` the bin's 95% factor); the one with the lower held-out
negative log likelihood is kept (the floor wins where the model's spread does not track its error, the
factor where it does, e.g. on a smooth GP field). Both are then made non-decreasing with
distance (weighted isotonic regression: farther from data is never more
certain) and interpolated linearly between the bins' median distances
(constant beyond the first and last). Because the held-out cells are the
data's own gap shapes, their distances span those of the real gaps. (A single
factor on the model's spread, the first version, matched coverage but made
deep-gap intervals ~3x too wide in CRPS on a 300 x 500 cloud-gapped raster.)

The calibration scales ``std``, every quantile's distance from the mean and
the samples' spread by ``std_cal / std``. The spread calibration does not move the mean; the
kriging blend learned on the same held-out cells does (:mod:`geonp.local_kriging`: each
neighbourhood also kriged, blended in by distance to data, ``calibration_["kriging"]``), and the
spread is calibrated on the blended mean's errors. It is
stored with the model (``calibration_["by_distance"]``, distances in km on the
sphere or CRS units, ``tau`` in context standard deviations) and reported, with the
held-out scores before and after it, in the model's ``calibration_`` and
``history_`` and in every prediction's attrs; ``calibration_["std_scale"]`` is
the median of ``std_cal / std`` over the held-out cells.

Not calibrated (``calibration_["status"]`` says why): count likelihoods
(binomial, Poisson, categorical), point (survey) data, and data with fewer
than ``MIN_HELD_OUT`` cells that can be held out with context left to predict them.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.optimize import brentq, isotonic_regression
from scipy.stats import norm

MIN_HELD_OUT = 30
MIN_BIN = 250  # held-out cells per distance bin (fewer: the 95% quantile is too noisy to split on)
MAX_BINS = 8
Z95 = float(norm.ppf(0.975))


@dataclasses.dataclass(frozen=True)
class SpreadCalibration:
    """``std_cal = sqrt((a(d) std)^2 + (tau(d) s)^2)``, ``d`` a target's distance to its nearest observation,
    ``s`` the std of the observations it was conditioned on.

    ``distance`` (increasing; km on the sphere, CRS units when projected) are the knots of
    ``scale`` (``a``) and ``floor`` (``tau``, in context standard deviations); between knots both are linear,
    beyond them constant. The default changes nothing.
    """

    distance: tuple[float, ...] = (0.0,)
    scale: tuple[float, ...] = (1.0,)
    floor: tuple[float, ...] = (0.0,)
    growth: float = 0.0  # d tau / d distance beyond the last knot (the knots' mean slope)
    ceiling: float = 0.0  # ... up to the spread of the data themselves

    def std(self, std, distance, unit=1.0) -> np.ndarray:
        """The calibrated std of targets with model std ``std`` at ``distance``; ``tau`` is in units of
        ``unit``, the std of the observations each target was conditioned on (same shapes)."""
        distance = np.asarray(distance, np.float64)
        a = np.interp(distance, self.distance, self.scale)
        tau = np.interp(distance, self.distance, self.floor)
        if self.growth > 0:  # deeper into gaps than any held-out cell: the error keeps growing
            beyond = np.minimum(self.floor[-1] + self.growth * (distance - self.distance[-1]),
                                max(self.ceiling, self.floor[-1]))
            tau = np.where(distance > self.distance[-1], beyond, tau)
        return np.sqrt((a * np.asarray(std, np.float64)) ** 2 + (tau * np.asarray(unit, np.float64)) ** 2)

    @property
    def is_identity(self) -> bool:
        return all(a == 1.0 for a in self.scale) and all(t == 0.0 for t in self.floor)

    def to_dict(self) -> dict:
        return {"distance": list(self.distance), "scale": list(self.scale), "floor": list(self.floor),
                "growth": self.growth, "ceiling": self.ceiling}

    @classmethod
    def from_calibration(cls, calibration: dict | None) -> SpreadCalibration:
        """From a model's ``calibration_`` (a lone ``std_scale``, from before the distance bins: constant)."""
        calibration = calibration or {}
        table = calibration.get("by_distance")
        if table:
            return cls(*(tuple(float(v) for v in table[k]) for k in ("distance", "scale", "floor")),
                       growth=float(table.get("growth", 0.0)), ceiling=float(table.get("ceiling", 0.0)))
        return cls(scale=(float(calibration.get("std_scale", 1.0)),))


def gap_masks(observed: np.ndarray, missing_patterns: list, rng, count: int) -> tuple[list, str]:
    """``count`` boolean masks (True = hold out) over observed cells, and how they were made.

    ``missing_patterns`` are the missing-value masks of the data's fields; a
    pattern rolled by a random offset puts the data's own gap shapes on
    observed cells. Where the data have (almost) no gaps, smoothed-noise blobs.
    """
    shape = observed.shape
    usable = [m for m in missing_patterns if 0.02 <= m.mean() <= 0.9]
    masks = []
    for _ in range(count):
        if usable:
            pattern = usable[rng.integers(len(usable))]
            shift = (int(rng.integers(shape[0])), int(rng.integers(shape[1])))
            hidden = np.roll(pattern, shift, axis=(0, 1)) & observed
        else:
            sigma = rng.uniform(1.0, max(1.5, min(shape) / 6.0))
            noise = smoothed_noise(shape, sigma, rng)
            hidden = (noise > np.quantile(noise, rng.uniform(0.5, 0.8))) & observed
        masks.append(whole_gaps_up_to(hidden, HELD_OUT_FRACTION * observed.sum(), rng))
    return masks, "shifted missing-value pattern" if usable else "blobs"


def smoothed_noise(shape: tuple[int, int], sigma: float, rng) -> np.ndarray:
    """White noise ``[ny, nx]`` smoothed by a Gaussian of ``sigma`` cells, periodic at the edges.

    Filtered in the Fourier domain: the cost does not grow with ``sigma`` (a direct filter of a
    1024 x 1024 grid at sigma 170 took 0.7 s, this 0.01-0.06 s; the two agree to 1e-3 of the std).
    """
    spectrum = np.fft.rfft2(rng.standard_normal(shape))
    return np.fft.irfft2(ndimage.fourier_gaussian(spectrum, sigma, n=shape[1]), s=shape)


def ringed_by_observations(hidden: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The held-out gaps that touch no missing cell, as every real gap is ringed by observations.

    A shifted gap that lands against a real one joins it: its cells sit in a bigger hole than
    their distance to the data says, and the calibration learns too wide a spread (cov95 0.98 on a
    300 x 500 cloud-gapped raster). Where fewer than ``RINGED_MIN`` of the held-out cells are in
    ringed gaps (data so cloudy that every gap meets another), all are kept.
    """
    eight = np.ones((3, 3), bool)
    labels, count = ndimage.label(hidden, structure=eight)
    if count == 0:
        return hidden
    against_missing = ndimage.binary_dilation(~observed, structure=eight) & hidden
    ringed = hidden & ~np.isin(labels, np.unique(labels[against_missing]))
    return ringed if ringed.sum() >= RINGED_MIN * hidden.sum() else hidden


RINGED_MIN = 0.25
HELD_OUT_FRACTION = 0.25  # of the observed cells: holding out more would thin the context below the real one


def whole_gaps_up_to(hidden: np.ndarray, limit: float, rng) -> np.ndarray:
    """Whole connected gaps of ``hidden``, in random order, until about ``limit`` cells are held out.

    A gap is kept or dropped whole, so the held-out shapes stay the data's own
    (a scattered pattern is thinned cell by cell, a cloud keeps its extent).
    """
    labels, count = ndimage.label(hidden, structure=np.ones((3, 3)))
    if count == 0 or hidden.sum() <= limit:
        return hidden
    sizes = np.bincount(labels.ravel())[1:]
    keep, total = [], 0
    for gap in rng.permutation(count):
        if total >= limit:
            break
        keep.append(gap + 1)
        total += sizes[gap]
    return np.isin(labels, keep)


def scale_from_errors(z: np.ndarray) -> float:
    """The std factor that makes the central 95% interval cover 95% of ``z = (y - mean) / std``."""
    return float(np.quantile(np.abs(z), 0.95) / Z95)


def floor_from_errors(error: np.ndarray, std: np.ndarray) -> float:
    """The smallest ``tau`` with which ``sqrt(std^2 + tau^2)`` intervals cover 95% of ``error`` (0 if they do)."""
    error = np.abs(error)
    covered = lambda tau: float(np.mean(error <= Z95 * np.sqrt(std**2 + tau**2))) - 0.95  # noqa: E731
    if covered(0.0) >= 0:
        return 0.0
    return float(brentq(covered, 0.0, float(error.max()) / Z95 + 1e-12, xtol=1e-6 * float(error.max())))


def fit_by_distance(error: np.ndarray, std: np.ndarray, distance: np.ndarray,
                    ceiling: float = 0.0) -> SpreadCalibration:
    """:class:`SpreadCalibration` of held-out cells: their errors ``y - mean``, model std, distances ``[N]``,
    all three in the units ``tau`` is to be in (divide by each cell's context std first).

    ``ceiling``: the spread of the data in those units; beyond the farthest held-out cells ``tau``
    keeps growing at the knots' mean slope up to it.
    """
    knots, factors, scales, floors, counts = [], [], [], [], []
    for inside in distance_groups(distance, int(np.clip(error.size // MIN_BIN, 1, MAX_BINS))):
        e, s = error[inside], std[inside]
        knots.append(float(np.median(distance[inside])))
        factors.append(scale_from_errors(e / s))
        scales.append(min(1.0, factors[-1]))
        floors.append(floor_from_errors(e, s) if scales[-1] == 1.0 else 0.0)
        counts.append(inside.size)
    monotone = lambda v: isotonic_regression(v, weights=counts, increasing=True).x  # noqa: E731
    knots = tuple(round(k, 6) for k in knots)
    floors = monotone(floors)
    growth = (floors[-1] - floors[0]) / (knots[-1] - knots[0]) if len(knots) > 1 else 0.0
    with_floor = SpreadCalibration(knots, tuple(round(float(a), 4) for a in monotone(scales)),
                                   tuple(round(float(t), 6) for t in floors), growth=float(f"{growth:.6g}"),
                                   ceiling=round(float(ceiling), 6))
    factor_only = SpreadCalibration(knots, tuple(round(float(a), 4) for a in monotone(factors)),
                                    tuple(0.0 for _ in knots))
    # the form that scores better on the held-out cells (log score): a floor where the model's spread
    # does not track its error (deep gaps), a factor where it does
    def nll(c):
        sd = c.std(std, distance)
        return float(np.mean(0.5 * (error / sd) ** 2 + np.log(sd)))

    return min((with_floor, factor_only), key=nll)


def distance_groups(distance: np.ndarray, bins: int) -> list:
    """Indices of ``distance`` in up to ``bins`` groups of about equal size, by increasing distance.

    Equal distances (a grid has many) stay in one group, and no group is smaller than ``MIN_BIN / 2``,
    so the groups' medians increase strictly.
    """
    order = np.argsort(distance, kind="stable")
    d, n = distance[order], distance.size
    cuts = [0]
    for b in range(1, bins):
        cut = int(np.searchsorted(d, d[int(b * n / bins)], side="left"))
        if cut - cuts[-1] >= MIN_BIN // 2 and n - cut >= MIN_BIN // 2:
            cuts.append(cut)
    cuts.append(n)
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def summarise(mean, std, truth) -> dict:
    from geonp import metrics

    return {"rmse": round(float(metrics.rmse(mean, truth)), 5),
            "crps": round(float(metrics.crps_gaussian(mean, std, truth)), 5),
            "cov95": round(float(metrics.coverage(mean, std, truth, 0.95)), 4)}


def held_out_sample(where: np.ndarray, shape: tuple[int, int], count: int, rng, block: int = 1) -> np.ndarray:
    """``count`` of the held-out cells ``where`` (flat indices into a grid of ``shape``): at random, or
    (``block`` > 1) in whole ``block x block`` squares taken in random order, so that they share
    neighbourhoods and cost far fewer model calls."""
    if block <= 1:
        return rng.choice(where, size=count, replace=False)
    rows, cols = np.unravel_index(where, shape)
    square = (rows // block) * (shape[1] // block + 1) + cols // block
    squares, of_cell = np.unique(square, return_inverse=True)
    rank = rng.permutation(squares.size)[of_cell.reshape(-1)]
    return where[np.argsort(rank, kind="stable")[:count]]


def neighbourhood_side(context: np.ndarray, count: int) -> int:
    """The side, in grid cells, of a square holding about ``count / 2`` of the observed cells ``context``.

    Prediction by count groups targets into cells of about this side, each conditioned on the same
    ``count`` nearest observations (:func:`geonp.tiling.neighbourhoods`): held-out cells taken in such
    squares cost one model call per square, where scattered ones cost one each (on a 1024 x 1024 grid
    with 10% observed, 3,000 scattered held-out cells took ~450 calls per mask).
    """
    density = max(float(context.mean()), 1e-9)
    return max(1, int(np.sqrt(count / 2.0 / density)))


def calibrate(model, data: xr.DataArray, spatial_dims: tuple[str, str], covariates: dict,
              max_fields: int = 4, max_targets: int = 3000, seed: int = 0, block: int | str = "neighbourhood",
              cache: dict | None = None) -> dict:
    """Hold out cells of ``data`` (a gridded field, any extra dims are fields) and fit ``std_scale``.

    ``model`` is a fitted :class:`geonp.NeuralProcess` (its ``calibration_`` is not used here);
    ``covariates`` maps names to DataArrays on the same grid; ``spatial_dims`` are the grid's (y, x) dims;
    ``block``: above ``max_targets`` held-out cells per mask, keep them in whole squares of this side
    (:func:`held_out_sample`), by default about the side of the cells that prediction conditions on the
    same nearest observations (:func:`neighbourhood_side`), so that they cost few model calls;
    ``cache``: a dict shared by calls on the same data, so that a mask already predicted with the same
    normalisation (e.g. by ``trend="auto"``'s comparison; the masks of one seed come in the same order)
    is not predicted again.
    """
    ydim, xdim = spatial_dims
    others = [d for d in data.dims if d not in spatial_dims]
    stacked = data.transpose(*others, ydim, xdim)
    fields = stacked.values.reshape((-1,) + stacked.shape[-2:])
    observed_all = np.isfinite(fields)
    rng = np.random.default_rng(seed)
    order = [i for i in rng.permutation(len(fields)) if observed_all[i].sum() >= 2 * MIN_HELD_OUT][:max_fields]
    if not order:
        return {"status": "not calibrated: too few observations to hold any out", "std_scale": 1.0}
    order = [order[k % len(order)] for k in range(max_fields)]  # few fields: several masks on each
    masks, how = gap_masks(observed_all[order[0]], [~o for o in observed_all], rng, len(order))
    lat, lon = np.meshgrid(data[ydim].values, data[xdim].values, indexing="ij")
    means, stds, truths, distances, units, krigeds = [], [], [], [], [], []
    for i, hidden in zip(order, masks, strict=True):
        observed = observed_all[i]
        hidden = ringed_by_observations(hidden & observed, observed)
        if hidden.sum() < 5 or (observed & ~hidden).sum() < 2:
            continue
        where = np.flatnonzero(hidden.ravel())
        if where.size > max_targets:
            side = neighbourhood_side(observed & ~hidden, model.max_context) if block == "neighbourhood" else block
            where = held_out_sample(where, hidden.shape, max_targets, rng, side)
        index = np.unravel_index(i, stacked.shape[:-2]) if others else ()
        field = stacked[dict(zip(others, index, strict=True))] if others else stacked
        key = (str(model.scaling_), tuple(covariates), i, hidden.tobytes(), where.tobytes())
        channels = None if cache is None else cache.get(key)
        if channels is None:
            masked = field.where(~xr.DataArray(hidden, dims=(ydim, xdim)))
            context = masked.to_dataset(name=str(data.name or "value"))
            points = xr.Dataset(coords={ydim: ("point", lat.ravel()[where]), xdim: ("point", lon.ravel()[where])})
            for name, cov in covariates.items():
                context[name] = cov
                points[name] = ("point", np.asarray(cov.transpose(ydim, xdim).values).ravel()[where])
            with warnings.catch_warnings():  # what fit has warned about already, or will at predict
                warnings.filterwarnings("ignore", message=".*(from any observation|infinite)", category=UserWarning)
                pred = model.predict(context, target=points, progress=False, calibrated=False, distance=True,
                                     spatial_dims=tuple(spatial_dims))
            channels = tuple(np.asarray(pred[v]).ravel() if v in pred else np.full(where.size, np.nan)
                             for v in ("mean", "std", "distance_to_data", "context_std", "kriging_mean"))
            if cache is not None:
                cache[key] = channels
        mean, std, distance, unit, kriged = channels
        truth = field.values.ravel()[where]
        ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
        krigeds.append(kriged[ok])
        means.append(mean[ok])
        stds.append(std[ok])
        truths.append(truth[ok])
        distances.append(distance[ok])
        units.append(unit[ok])
    held_out = sum(m.size for m in means)
    if held_out < MIN_HELD_OUT:
        return {"status": f"not calibrated: only {held_out} cells could be held out (need {MIN_HELD_OUT})",
                "std_scale": 1.0}
    mean, std, truth, distance, unit, kriged = (np.concatenate(a) for a in (means, stds, truths, distances, units,
                                                                              krigeds))
    unit = np.where(unit > 0, unit, 1.0)
    blended, kriging = blend_kriging(model, mean, kriged, truth, distance, unit)
    ceiling = float(np.sqrt(np.mean([np.nanvar(fields[i]) for i in set(order)])) / np.median(unit))
    spread = fit_by_distance((truth - blended) / unit, std / unit, distance, ceiling)
    calibrated = spread.std(std, distance, unit)
    # the network's own mean with a spread calibrated on its errors: what fit's choices of drift and covariates
    # compare (they shape what the network sees; the kriging blend is learned on top of them)
    network = (fit_by_distance((truth - mean) / unit, std / unit, distance, ceiling).std(std, distance, unit)
               if kriging else calibrated)
    return {"status": "calibrated", "std_scale": round(float(np.median(calibrated / std)), 4),
            "by_distance": spread.to_dict(), "held_out_cells": int(held_out), "fields": len(set(order)),
            "masks": len(means), "mask_shapes": how, **({"kriging": kriging} if kriging else {}),
            "before": summarise(mean, std, truth), "after": summarise(blended, calibrated, truth),
            "network": summarise(mean, network, truth)}


def blend_kriging(model, mean, kriged, truth, distance, unit) -> tuple[np.ndarray, dict | None]:
    """The held-out cells' blended means and the model's kriging (:mod:`geonp.local_kriging`) with the blend
    weights learned on them, with its held-out RMSE beside the network's and kriging's alone; ``(mean, None)``
    when the model has no kriging kernel."""
    from geonp.local_kriging import LocalKriging, fit_weights

    kernel = LocalKriging.from_calibration(getattr(model, "calibration_", None))
    usable = np.isfinite(kriged)
    if kernel is None or not usable.any():
        return mean, None
    kriged = np.where(usable, kriged, mean)  # no kriging there: the network's mean
    groups = distance_groups(distance, int(np.clip(mean.size // MIN_BIN, 1, MAX_BINS)))
    knots, weights = fit_weights((truth - mean) / unit, (truth - kriged) / unit, distance, groups)
    kernel = dataclasses.replace(kernel, distance=knots, weight=weights)
    blended = mean + kernel.weights(distance) * (kriged - mean)
    rmse = lambda m: round(float(np.sqrt(np.mean((m - truth) ** 2))), 5)  # noqa: E731
    return blended, {**kernel.to_dict(), "held_out_rmse": {"network": rmse(mean), "kriging": rmse(kriged),
                                                           "blended": rmse(blended)}}
