"""Uncertainty calibrated on the user's own data: hold out cells in the data's own gap shapes, predict them.

``fit`` (also with ``steps=0``) calls :func:`calibrate` on a gridded Gaussian
field. For up to ``max_fields`` fields (time steps, members ...) it hides
observed cells under the data's own missing-value pattern, shifted by a
random offset so that the gap shapes land on observed ground (where the data
have no gaps at all: blobs of smoothed noise), keeping whole gaps until about
a quarter of the observed cells are held out (more would leave the held-out
cells with sparser context than the real gaps have),
predicts the hidden cells from the rest exactly as ``predict`` would, and
compares the truth with the predictive distribution.

The calibration is one number, ``std_scale``: the factor on the predictive
standard deviation that makes the held-out 95% intervals cover 95%
(``quantile(|z|, 0.95) / 1.96`` of the standardised errors ``z``). It scales
``std``, every quantile's distance from the mean and the samples' spread; the
mean is not changed. It is stored with the
model and reported, with the held-out scores before and after it, in the
model's ``calibration_`` and ``history_`` and in every prediction's attrs.

Not calibrated (``calibration_["status"]`` says why): count likelihoods
(binomial, Poisson, categorical), point (survey) data, and data with fewer
than ``MIN_HELD_OUT`` cells that can be held out with context left to predict them.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.stats import norm

MIN_HELD_OUT = 30
Z95 = float(norm.ppf(0.975))


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
            noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
            hidden = (noise > np.quantile(noise, rng.uniform(0.5, 0.8))) & observed
        masks.append(whole_gaps_up_to(hidden, HELD_OUT_FRACTION * observed.sum(), rng))
    return masks, "shifted missing-value pattern" if usable else "blobs"


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


def summarise(mean, std, truth, scale: float = 1.0) -> dict:
    from geonp import metrics

    std = std * scale
    return {"rmse": round(float(metrics.rmse(mean, truth)), 5),
            "crps": round(float(metrics.crps_gaussian(mean, std, truth)), 5),
            "cov95": round(float(metrics.coverage(mean, std, truth, 0.95)), 4)}


def calibrate(model, data: xr.DataArray, spatial_dims: tuple[str, str], covariates: dict,
              max_fields: int = 4, max_targets: int = 3000, seed: int = 0) -> dict:
    """Hold out cells of ``data`` (a gridded field, any extra dims are fields) and fit ``std_scale``.

    ``model`` is a fitted :class:`geonp.NeuralProcess` (its ``calibration_`` is not used here);
    ``covariates`` maps names to DataArrays on the same grid; ``spatial_dims`` are the grid's (y, x) dims.
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
    masks, how = gap_masks(observed_all[order[0]], [~o for o in observed_all], rng, len(order))
    lat, lon = np.meshgrid(data[ydim].values, data[xdim].values, indexing="ij")
    z, means, stds, truths = [], [], [], []
    for i, hidden in zip(order, masks, strict=True):
        observed = observed_all[i]
        hidden = hidden & observed
        if hidden.sum() < 5 or (observed & ~hidden).sum() < 2:
            continue
        where = np.flatnonzero(hidden.ravel())
        if where.size > max_targets:
            where = rng.choice(where, size=max_targets, replace=False)
        index = np.unravel_index(i, stacked.shape[:-2]) if others else ()
        field = stacked[dict(zip(others, index, strict=True))] if others else stacked
        masked = field.where(~xr.DataArray(hidden, dims=(ydim, xdim)))
        context = masked.to_dataset(name=str(data.name or "value"))
        points = xr.Dataset(coords={ydim: ("point", lat.ravel()[where]), xdim: ("point", lon.ravel()[where])})
        for name, cov in covariates.items():
            context[name] = cov
            points[name] = ("point", np.asarray(cov.transpose(ydim, xdim).values).ravel()[where])
        with warnings.catch_warnings():  # what fit has warned about already, or will at predict
            warnings.filterwarnings("ignore", message=".*(from any observation|infinite)", category=UserWarning)
            pred = model.predict(context, target=points, progress=False, calibrated=False,
                                 spatial_dims=tuple(spatial_dims))
        mean, std = np.asarray(pred["mean"]).ravel(), np.asarray(pred["std"]).ravel()
        truth = field.values.ravel()[where]
        ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
        means.append(mean[ok])
        stds.append(std[ok])
        truths.append(truth[ok])
        z.append((truth[ok] - mean[ok]) / std[ok])
    z = np.concatenate(z) if z else np.zeros(0)
    if z.size < MIN_HELD_OUT:
        return {"status": f"not calibrated: only {z.size} cells could be held out (need {MIN_HELD_OUT})",
                "std_scale": 1.0}
    mean, std, truth = (np.concatenate(a) for a in (means, stds, truths))
    scale = scale_from_errors(z)
    return {"status": "calibrated", "std_scale": round(scale, 4), "held_out_cells": int(z.size),
            "fields": len(means), "masks": how, "before": summarise(mean, std, truth),
            "after": summarise(mean, std, truth, scale)}
