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
kriging blend learned on the same held-out cells does (:mod:`geonp.calibrate.kriging`: each
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
from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy import ndimage

from geonp.calibrate import held_out
from geonp.calibrate.spread import MAX_BINS, distance_groups, fit_by_distance
from geonp.predict.channels import kriging_names

MIN_HELD_OUT = 30


def summarise(mean, std, truth) -> dict:
    from geonp.scoring import metrics

    return {"rmse": round(float(metrics.rmse(mean, truth)), 5),
            "crps": round(float(metrics.crps_gaussian(mean, std, truth)), 5),
            "cov95": round(float(metrics.coverage(mean, std, truth, 0.95)), 4)}


TARGET_SAMPLE = 20_000  # target distances kept to match the held-out cells to
MIN_CANDIDATES = 1500  # hidden cells to draw the matched ones from: on small grids, masks are added up to ...
MAX_MASKS = 12  # ... this many
CLUSTER_SIDE = 8  # cells: held-out errors farther apart than this are taken as independent


@dataclasses.dataclass
class HeldOutDraw:
    """The masks of held-out gaps drawn on a gridded field (:func:`draw_held_out`): ``stacked`` the data as
    ``[*others, y, x]``, ``fields`` its values ``[F, ny, nx]``, ``candidates`` per mask ``(field, labels, where,
    distance, priority, cluster)``, the targets' distances they are matched to, and the draw's random state."""

    stacked: xr.DataArray
    others: list
    fields: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    candidates: list
    target_distance: np.ndarray
    matched_to: str
    rng: np.random.Generator
    order: list
    mask_shapes: str = ""

    def field(self, i: int) -> xr.DataArray:
        """Field ``i`` of the data (one time step, member ...), as ``[y, x]``."""
        if not self.others:
            return self.stacked
        index = np.unravel_index(i, self.stacked.shape[:-2])
        return self.stacked[dict(zip(self.others, index, strict=True))]

    def covariates_of(self, i: int, covariates: dict) -> dict:
        """``covariates`` on field ``i``, each ``[y, x]``: one with the data's extra dims (a covariate that
        changes with time) is taken at the field's index along them; one without is the same on every field."""
        index = dict(zip(self.others, np.unravel_index(i, self.stacked.shape[:-2]), strict=True)) if self.others else {}
        spatial = self.stacked.dims[-2:]
        return {name: cov.isel({d: k for d, k in index.items() if d in cov.dims}).transpose(*spatial)
                for name, cov in covariates.items()}


def draw_held_out(model, data: xr.DataArray, spatial_dims: tuple[str, str], max_fields: int = 4, seed: int = 0,
                  block: int | str = "neighbourhood", target_distance: np.ndarray | None = None) -> HeldOutDraw | str:
    """Masks of the data's own gap shapes laid on observed cells, with each hidden cell's distance to the data
    left (:mod:`geonp.calibrate.held_out`); a phrase saying why when none can be drawn."""
    from geonp.features.tables import euclidean_embedding

    ydim, xdim = spatial_dims
    others = [d for d in data.dims if d not in spatial_dims]
    stacked = data.transpose(*others, ydim, xdim)
    fields = stacked.values.reshape((-1,) + stacked.shape[-2:])
    observed_all = np.isfinite(fields)
    rng = np.random.default_rng(seed)
    order = [i for i in rng.permutation(len(fields)) if observed_all[i].sum() >= 2 * MIN_HELD_OUT][:max_fields]
    if not order:
        return "too few observations to hold any out"
    # few fields: several masks on each; a small grid: more masks, until enough cells can be held out
    order = [order[k % len(order)] for k in range(max(max_fields, MAX_MASKS))]
    masks, how = held_out.gap_masks(observed_all[order[0]], [~o for o in observed_all], rng, len(order))
    lat, lon = np.meshgrid(data[ydim].values, data[xdim].values, indexing="ij")
    points = euclidean_embedding(model.scaling_.kind, lon.ravel(), lat.ravel())  # [ny * nx, E]
    matched_to = "the targets given to fit"
    if target_distance is None:
        target_distance = held_out.missing_cell_distances(points, observed_all[sorted(set(order))], TARGET_SAMPLE,
                                                          np.random.default_rng(seed))
        matched_to = "the data's missing cells" if target_distance.size else "none (no missing cells, no targets)"
    candidates = []
    for k, (i, mask) in enumerate(zip(order, masks, strict=True)):
        if k >= max_fields and sum(c[2].size for c in candidates) >= MIN_CANDIDATES:
            break
        candidate = _candidate(model, observed_all[i], mask, points, block, rng)
        candidates += [(i, *candidate)] if candidate else []
    if not candidates:
        return "the data's gaps are larger than the observed area can host as held-out gaps"
    return HeldOutDraw(stacked, others, fields, lat, lon, candidates, target_distance, matched_to, rng, order, how)


class ScoredGaps(NamedTuple):
    """One mask's scored cells: ``mask`` its index among the draw's candidates, ``field`` the field it lies on,
    ``hidden [ny, nx]`` the gaps scored, whole (the mask's others stay observed), ``where [n]`` the flat indices
    of the cells scored and ``cluster [n]`` their error clusters (:func:`error_clusters`, within the mask)."""

    mask: int
    field: int
    hidden: np.ndarray
    where: np.ndarray
    cluster: np.ndarray


def scored_gaps(draw: HeldOutDraw, max_targets: int) -> list[ScoredGaps]:
    """The cells to score on each mask of ``draw``, matched over all masks to the targets' distances; masks
    with none are left out."""
    chosen = _matched(draw.candidates, draw.target_distance, max_targets)
    out = []
    for k, (i, labels, where, _, _, cluster) in enumerate(draw.candidates):
        where, cluster = where[chosen[k]], cluster[chosen[k]]
        if where.size:
            out.append(ScoredGaps(k, i, np.isin(labels, np.unique(labels.ravel()[where])), where, cluster))
    return out


def clusters_apart(gaps: list[ScoredGaps]) -> np.ndarray:
    """``[n]`` the error clusters of every scored cell, relabelled 0.. and kept apart between masks."""
    out, offset = [], 0
    for gap in gaps:
        labels = np.unique(gap.cluster, return_inverse=True)[1].reshape(-1)
        out.append(offset + labels)
        offset += int(labels.max()) + 1 if labels.size else 0
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def calibrate(model, data: xr.DataArray, spatial_dims: tuple[str, str], covariates: dict,
              max_fields: int = 4, max_targets: int = 3000, seed: int = 0, block: int | str = "neighbourhood",
              cache: dict | None = None, target_distance: np.ndarray | None = None) -> dict:
    """Hold out cells of ``data`` (a gridded field, any extra dims are fields) and learn the spread calibration
    and the kriging blend on them.

    ``model`` is a fitted :class:`geonp.NeuralProcess` (its ``calibration_`` is not used here, but for
    the kriging kernel); ``covariates`` maps names to DataArrays on the same grid; ``spatial_dims`` are
    the grid's (y, x) dims; ``target_distance``: the distances of the targets ``predict`` will be asked
    for to their nearest observation (km / CRS units); ``None``: the data's own missing cells. The
    cells scored are drawn to match them (:mod:`geonp.calibrate.held_out`), about ``max_targets`` per mask;
    ``block``: the side of the squares they are taken in, by default about a prediction
    neighbourhood's (:func:`geonp.calibrate.held_out.neighbourhood_side`), so that they cost few model calls;
    ``cache``: a dict shared by calls on the same data, so that a mask already predicted with the same
    normalisation (e.g. by ``trend="auto"``'s comparison; the masks of one seed come in the same order)
    is not predicted again.
    """
    draw = draw_held_out(model, data, spatial_dims, max_fields, seed, block, target_distance)
    if isinstance(draw, str):
        return {"status": f"not calibrated: {draw}, so no choice can be checked; the network's own mean and spread "
                          "are used", "std_scale": 1.0}
    fields, lat, lon, candidates, order = draw.fields, draw.lat, draw.lon, draw.candidates, draw.order
    target_distance, matched_to = draw.target_distance, draw.matched_to
    means, stds, truths, distances, units, krigeds, explaineds, clusters, folds = ([] for _ in range(9))
    for k, i, hidden, where, cluster in scored_gaps(draw, max_targets):
        offset = 1 + max((int(c.max()) for c in clusters if c.size), default=0)  # clusters of masks apart
        field = draw.field(i)
        key = (str(model.scaling_), tuple(covariates), i, hidden.tobytes(), where.tobytes())
        channels = None if cache is None else cache.get(key)
        if channels is None:
            channels = predict_held_out(model, field, hidden, where, lat, lon, draw.covariates_of(i, covariates),
                                        spatial_dims)
            if cache is not None:
                cache[key] = channels
        mean, std, distance, unit, kriged, explained = channels
        truth = field.values.ravel()[where]
        ok = np.isfinite(mean) & np.isfinite(std) & (std > 0)
        folds.append(np.full(int(ok.sum()), k % 2))
        for store, values in zip((means, stds, truths, distances, units, krigeds, explaineds, clusters),
                                 (mean, std, truth, distance, unit, kriged, explained,
                                  offset + np.unique(cluster, return_inverse=True)[1].reshape(-1)), strict=True):
            store.append(values[ok])
    held_out_cells = sum(m.size for m in means)
    if held_out_cells < MIN_HELD_OUT:
        return {"status": f"not calibrated: only {held_out_cells} cells could be held out (need {MIN_HELD_OUT})",
                "std_scale": 1.0}
    mean, std, truth, distance, unit, kriged, explained, cluster, fold = (np.concatenate(a) for a in (
        means, stds, truths, distances, units, krigeds, explaineds, clusters, folds))
    unit = np.where(unit > 0, unit, 1.0)
    units = "km" if model.scaling_.kind == "geographic" else "crs units"
    design = held_out.report(distance, target_distance, matched_to, units)
    blended, kriging = choose_kriging(model, mean, kriged, explained, truth, distance, unit, cluster, design["reach"],
                                      fold)
    finite = [np.where(np.isfinite(fields[i]), fields[i], np.nan).astype(np.float64) for i in set(order)]  # inf: NaN
    ceiling = float(np.sqrt(np.mean([np.nanvar(f) for f in finite])) / np.median(unit))
    spread = fit_by_distance((truth - blended) / unit, std / unit, distance, ceiling)
    calibrated = spread.std(std, distance, unit)
    # the network's own mean with a spread calibrated on its errors: what fit's choices of drift and covariates
    # compare (they shape what the network sees; the kriging blend is learned on top of them)
    network = (fit_by_distance((truth - mean) / unit, std / unit, distance, ceiling).std(std, distance, unit)
               if kriging else calibrated)
    return {"status": "calibrated", "std_scale": round(float(np.median(calibrated / std)), 4),
            "by_distance": spread.to_dict(), "held_out_cells": int(held_out_cells),
            "fields": len({c[0] for c in candidates}),
            "masks": len(candidates), "mask_shapes": draw.mask_shapes, "held_out_design": design,
            **({"kriging": kriging} if kriging else {}),
            "before": summarise(mean, std, truth), "after": summarise(blended, calibrated, truth),
            "network": summarise(mean, network, truth)}


def _candidate(model, observed, mask, points, block, rng) -> tuple | None:
    """One mask's ``(gaps [ny, nx], cells [n], distance [n], priority [n], cluster [n])``: its gaps labelled
    (0: not hidden), its hidden cells (flat indices), their distance to the observations left, the order to
    take them in (ringed gaps first, then squares in random order: :func:`geonp.calibrate.held_out.matched_selection`)
    and their error cluster (:func:`error_clusters`); None where the mask hides too little or too much. A
    cell's distance depends on its own gap alone (gaps are apart), so gaps not scored can be left observed."""
    hidden = mask & observed
    if hidden.sum() < 5 or (observed & ~hidden).sum() < 2:
        return None
    where = np.flatnonzero(hidden.ravel())
    distance = held_out.distances_to_remaining(points, observed, hidden)
    ringed = held_out.ringed_by_observations(hidden, observed).ravel()[where]
    side = held_out.neighbourhood_side(observed & ~hidden, model.max_context) if block == "neighbourhood" else block
    rank = held_out.square_rank(where, hidden.shape, int(side), rng)
    labels = ndimage.label(hidden, structure=held_out.EIGHT)[0]
    depth = ndimage.distance_transform_edt(hidden).ravel()[where]  # cells from the gap's rim
    clusters = error_clusters(where, labels.ravel()[where], depth, hidden.shape)
    return labels, where, distance, rank + (~ringed) * (rank.max() + 1), clusters


def error_clusters(cells: np.ndarray, gap: np.ndarray, depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``[n]`` a label per held-out cell whose errors are taken as independent of other labels': its gap, cut
    into squares of ``CLUSTER_SIDE`` cells, twice as wide for every doubling of the cell's ``depth`` in the gap
    beyond a quarter of that (errors deep in a gap vary smoothly over about its depth: one big cloud is not
    one sample, nor are its neighbouring cells many)."""
    rows, cols = np.unravel_index(cells, shape)
    level = np.ceil(np.log2(np.maximum(depth, 1.0) * 4.0 / CLUSTER_SIDE)).clip(0, 20).astype(np.int64)
    side = CLUSTER_SIDE * 2**level
    squares = (rows // side) * (shape[1] + 1) + cols // side
    return (gap.astype(np.int64) * 32 + level) * (shape[0] * (shape[1] + 1) + 1) + squares


def _matched(candidates: list, target_distance: np.ndarray, max_targets: int) -> list:
    """Per candidate mask, the positions of its cells to score: matched over all masks together to the
    targets' distances (:func:`geonp.calibrate.held_out.matched_selection`)."""
    distance = np.concatenate([c[3] for c in candidates])
    priority = np.concatenate([c[4] for c in candidates])
    mask_of = np.concatenate([np.full(c[2].size, k) for k, c in enumerate(candidates)])
    count = held_out.feasible_count(distance, target_distance, max_targets * len(candidates))
    chosen = held_out.matched_selection(distance, priority, target_distance, count)
    starts = np.concatenate([[0], np.cumsum([c[2].size for c in candidates])])
    return [chosen[mask_of[chosen] == k] - starts[k] for k in range(len(candidates))]


def predict_held_out(model, field, hidden, where, lat, lon, covariates, spatial_dims) -> tuple:
    """The held-out cells ``where`` of ``field`` predicted from the rest, as ``predict`` would (network's own
    mean and spread): ``(mean, std, distance_to_data, context_std, kriged, explained)``, each ``[n]`` but
    ``kriged`` and ``explained`` ``[n, 1 + K]``: the kriging mean of the model's kernel and the share of variance
    it explains, then each of its ``K`` candidates'.
    ``covariates``: on this field, each ``[y, x]`` (:meth:`HeldOutDraw.covariates_of`)."""
    ydim, xdim = spatial_dims
    masked = field.where(~xr.DataArray(hidden, dims=(ydim, xdim)))
    context = masked.to_dataset(name=str(field.name or "value"))
    points = xr.Dataset(coords={ydim: ("point", lat.ravel()[where]), xdim: ("point", lon.ravel()[where])})
    for name, cov in covariates.items():
        context[name] = cov
        points[name] = ("point", np.asarray(cov.values).ravel()[where])
    with warnings.catch_warnings():  # what fit has warned about already, or will at predict
        warnings.filterwarnings("ignore", message=".*(from any observation|infinite)", category=UserWarning)
        pred = model.predict(context, target=points, progress=False, calibrated=False, distance=True,
                             spatial_dims=tuple(spatial_dims))
    column = lambda v: np.asarray(pred[v]).ravel() if v in pred else np.full(where.size, np.nan)  # noqa: E731
    kernels = 1 + sum(str(v).startswith("kriging_mean_") for v in pred.data_vars)
    kriged, explained = zip(*((column(m), column(e)) for m, e in map(kriging_names, range(kernels))), strict=True)
    return (*(column(v) for v in ("mean", "std", "distance_to_data", "context_std")),
            np.stack(kriged, axis=-1), np.nan_to_num(np.stack(explained, axis=-1)))


def choose_kriging(model, mean, kriged, explained, truth, distance, unit, cluster=None, reach=None, fold=None) -> tuple[
        np.ndarray, dict | None]:
    """:func:`blend_kriging` for the model's kernel and each of its candidates (``kriged`` and ``explained``
    ``[n, 1 + K]``: their means at the held-out cells and the shares of variance they explain there): the one
    whose blend has the lowest held-out RMSE is kept, the model's own kernel on ties; ``(mean, None)`` without
    a kernel."""
    from geonp.calibrate.kriging import LocalKriging
    from geonp.predict.provenance import kriging_candidates

    calibration = getattr(model, "calibration_", None)
    kernels = [LocalKriging.from_calibration(calibration), *kriging_candidates(calibration)]
    if kernels[0] is None:
        return mean, None
    kriged = np.asarray(kriged, np.float64).reshape(mean.size, -1)
    explained = np.asarray(explained, np.float64).reshape(mean.size, -1)
    tried = [blend_kriging(kernel, mean, kriged[:, j], explained[:, j], truth, distance, unit, cluster, reach, fold)
             for j, kernel in enumerate(kernels[: kriged.shape[1]])]
    rmse = [np.inf if t[1] is None else t[1]["held_out_rmse"]["blended"] for t in tried]
    best = int(np.argmin(rmse))
    blended, chosen = tried[best]
    if chosen is not None and len(tried) > 1:
        chosen["choice"] = {"by": "held-out RMSE of the blend", "trend": [k.trend for k in kernels[: len(tried)]],
                            "held_out_rmse": [None if not np.isfinite(r) else r for r in rmse]}
    return blended, chosen


def blend_kriging(kernel, mean, kriged, explained, truth, distance, unit, cluster=None, reach=None, fold=None) -> tuple[
        np.ndarray, dict | None]:
    """The held-out cells' blended means and ``kernel`` (:mod:`geonp.calibrate.kriging`) with the blend
    weights learned on them, with its held-out RMSE beside the network's and kriging's alone; ``(mean, None)``
    without a kernel or kriged values. ``cluster``: each cell's error cluster (:func:`error_clusters`; the
    weights are kept only where the blend's gain is clear of its spread over clusters); ``reach``: the
    farthest held-out distance (beyond it the weight is 0); ``fold``: each cell's mask parity (the weights
    are cross-checked between them)."""
    from geonp.calibrate import kriging as local_kriging
    from geonp.calibrate.kriging import fit_weights

    usable = np.isfinite(kriged)
    if kernel is None or not usable.any():
        return mean, None
    kriged = np.where(usable, kriged, mean)  # no kriging there: the network's mean
    groups = distance_groups(distance, int(np.clip(mean.size // local_kriging.MIN_BIN, 1, MAX_BINS)),
                             local_kriging.MIN_BIN)
    knots, weights = fit_weights((truth - mean) / unit, (truth - kriged) / unit, distance, groups, cluster, fold)
    reach = float(distance.max()) if reach is None else float(reach)
    kernel = dataclasses.replace(kernel, distance=knots, weight=weights, reach=round(reach, 6))
    blended = mean + kernel.weights(distance, explained) * (kriged - mean)
    rmse = lambda m: round(float(np.sqrt(np.mean((m - truth) ** 2))), 5)  # noqa: E731
    return blended, {**kernel.to_dict(), "held_out_rmse": {"network": rmse(mean), "kriging": rmse(kriged),
                                                           "blended": rmse(blended)}}
