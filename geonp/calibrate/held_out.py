"""The held-out design: which observed cells ``fit`` hides to learn its data-driven choices, matched to the targets.

Every choice ``fit`` makes on a user's grid (the spread calibration, the kriging blend's weights, the drift,
the covariates) is learned by hiding observed cells and predicting them. Those cells must look like the
real targets, above all in how far they lie from the data: a blend learned on cells at the rim of small
gaps says nothing about the middle of a large cloud. So:

1. **Gap shapes** (:func:`gap_masks`): the data's own missing-value pattern, rolled by a random offset onto
   observed ground and kept as whole gaps (:func:`whole_gaps_up_to`), never cut into squares; where the
   data have no gaps, blobs of smoothed noise of random size.
2. **Distances** (:func:`distances_to_remaining`): each hidden cell's distance to the nearest observation
   left, in the units of prediction (km on the sphere, CRS units when projected).
3. **Matched to the targets** (:func:`matched_selection`): of all hidden cells, the ones scored are drawn so
   that their distances follow the targets' (``target=None``: the data's missing cells; a target grid or
   points given to ``fit``), over the targets' whole range, in quantile bins of the target distances.
   Within a bin, cells of gaps ringed by observations come first (:func:`ringed_by_observations`: a
   gap that lands against a real one sits in a bigger hole than its distance says), then whole squares of
   about a neighbourhood's side (:func:`neighbourhood_side`: cells of one square share the model calls).
4. **Reach**: the farthest distance the scored cells cover. Where targets lie beyond it (the observed
   area cannot host the largest gaps), no learned choice is trusted: the blend weight is 0 there and the
   design says how many targets lie beyond (:func:`report`).

Shapes: grids ``[ny, nx]``; cells as flat indices into them; distances ``[n]``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

HELD_OUT_FRACTION = 0.25  # of the observed cells: holding out more would thin the context below the real one
RINGED_MIN = 0.25
MATCH_BINS = 10  # quantile bins of the target distances
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)  # reported for targets and held-out cells
EIGHT = np.ones((3, 3), bool)


# --------------------------------------------------------------------------- gap shapes


def gap_masks(observed: np.ndarray, missing_patterns: list, rng, count: int) -> tuple[list, str]:
    """``count`` boolean masks (True = hold out) over observed cells, and how they were made.

    ``missing_patterns`` are the missing-value masks of the data's fields; a pattern rolled by a random
    offset puts the data's own gap shapes on observed cells. Where the data have (almost) no gaps,
    smoothed-noise blobs of random size.
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


def whole_gaps_up_to(hidden: np.ndarray, limit: float, rng) -> np.ndarray:
    """Whole connected gaps of ``hidden``, in random order, until about ``limit`` cells are held out.

    A gap is kept or dropped whole, so the held-out shapes stay the data's own
    (a scattered pattern is thinned cell by cell, a cloud keeps its extent). A gap of more than twice
    ``limit`` is never kept: the data's largest gaps can be larger than what the observed area can
    host, and the held-out design then says so (:func:`report`) rather than predict from a sliver.
    """
    labels, count = ndimage.label(hidden, structure=EIGHT)
    if count == 0:
        return hidden
    sizes = np.bincount(labels.ravel())[1:]
    keep, total = [], 0
    for gap in rng.permutation(count):
        if total >= limit:
            break
        if sizes[gap] > 2 * limit:  # alone it would thin the context far below the real one: not a held-out gap
            continue
        keep.append(gap + 1)
        total += sizes[gap]
    return np.isin(labels, keep)


def ringed_by_observations(hidden: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """The held-out gaps that touch no missing cell, as every real gap is ringed by observations.

    A shifted gap that lands against a real one joins it: its cells sit in a bigger hole than
    their distance says (cov95 0.98 on a 300 x 500 cloud-gapped raster when such cells were scored
    like the others). Where fewer than ``RINGED_MIN`` of the held-out cells are in ringed gaps
    (data so cloudy that every gap meets another), all are kept.
    """
    labels, count = ndimage.label(hidden, structure=EIGHT)
    if count == 0:
        return hidden
    against_missing = ndimage.binary_dilation(~observed, structure=EIGHT) & hidden
    ringed = hidden & ~np.isin(labels, np.unique(labels[against_missing]))
    return ringed if ringed.sum() >= RINGED_MIN * hidden.sum() else hidden


# --------------------------------------------------------------------------- distances


def distances_to_remaining(points: np.ndarray, observed: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """``[n]`` distance of each hidden cell (``hidden.ravel()`` order) to the nearest observed cell left.

    ``points``: ``[ny * nx, E]`` the grid's cells in the prediction's embedding (km, CRS units).
    """
    remaining = (observed & ~hidden).ravel()
    return cKDTree(points[remaining]).query(points[hidden.ravel()], k=1)[0]


def missing_cell_distances(points: np.ndarray, observed_fields: np.ndarray, limit: int, rng) -> np.ndarray:
    """Distances of the missing cells of ``observed_fields`` ``[F, ny, nx]`` to their field's observations:
    the targets of ``predict(target=None)``; at most ``limit``, drawn evenly over the fields."""
    out = []
    per_field = max(1, limit // max(len(observed_fields), 1))
    for observed in observed_fields:
        missing = np.flatnonzero(~observed.ravel())
        if missing.size == 0 or not observed.any():
            continue
        if missing.size > per_field:
            missing = rng.choice(missing, size=per_field, replace=False)
        out.append(cKDTree(points[observed.ravel()]).query(points[missing], k=1)[0])
    return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------- matching


def neighbourhood_side(context: np.ndarray, count: int) -> int:
    """The side, in grid cells, of a square holding about ``count / 2`` of the observed cells ``context``.

    Prediction by count groups targets into cells of about this side, each conditioned on the same
    ``count`` nearest observations (:func:`geonp.predict.context.neighbourhoods`): held-out cells taken in such
    squares cost one model call per square, where scattered ones cost one each (on a 1024 x 1024 grid
    with 10% observed, 3,000 scattered held-out cells took ~450 calls per mask).
    """
    density = max(float(context.mean()), 1e-9)
    return max(1, int(np.sqrt(count / 2.0 / density)))


def square_rank(cells: np.ndarray, shape: tuple[int, int], side: int, rng) -> np.ndarray:
    """``[n]`` a random rank of the ``side x side`` square each of ``cells`` (flat indices) falls in."""
    rows, cols = np.unravel_index(cells, shape)
    square = (rows // side) * (shape[1] // side + 1) + cols // side
    squares, of_cell = np.unique(square, return_inverse=True)
    return rng.permutation(squares.size)[of_cell.reshape(-1)]


def target_bins(target_distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inner edges of ``MATCH_BINS`` quantile bins of the targets' distances (ties merged), and each bin's share
    of the targets (``searchsorted(edges, d, side="right")`` is a distance's bin)."""
    edges = np.unique(np.quantile(target_distance, np.linspace(0.0, 1.0, MATCH_BINS + 1))[1:-1])
    counts = np.bincount(np.searchsorted(edges, target_distance, side="right"), minlength=edges.size + 1)
    return edges, counts / target_distance.size


def matched_selection(distance: np.ndarray, priority: np.ndarray, target_distance: np.ndarray | None,
                      count: int) -> np.ndarray:
    """Indices of about ``count`` candidates whose ``distance`` follow ``target_distance``'s distribution.

    The targets' distances are cut into ``MATCH_BINS`` quantile bins; each bin gets its share of
    ``count`` (at most the candidates it has: beyond the candidates' reach a share goes unfilled),
    taken in increasing ``priority`` (ties broken by position). Without targets (``None`` or empty), the
    ``count`` candidates of lowest priority.
    """
    order = np.lexsort((np.arange(distance.size), priority))
    if target_distance is None or target_distance.size == 0:
        return np.sort(order[:count])
    edges, share = target_bins(target_distance)
    bin_of = np.searchsorted(edges, distance[order], side="right")
    chosen = []
    for b, fraction in enumerate(share):
        inside = order[bin_of == b]
        chosen.append(inside[: int(round(fraction * count))])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


MIN_PER_BIN = 20  # candidates a bin needs to set the count; sparser bins (the deep tail) give what they have


def feasible_count(distance: np.ndarray, target_distance: np.ndarray | None, limit: int) -> int:
    """How many candidates can be scored with their distances following the targets' (at most ``limit``).

    The largest count whose every bin's share fits in the candidates that bin has (bins with fewer than
    ``MIN_PER_BIN`` are left out of that reckoning: they give all they have), but never below half the
    candidates: where they are very unlike the targets the match is then approximate, not empty.
    """
    if target_distance is None or target_distance.size == 0:
        return min(limit, distance.size)
    edges, share = target_bins(target_distance)
    have = np.bincount(np.searchsorted(edges, distance, side="right"), minlength=edges.size + 1)
    fits = [have[b] / share[b] for b in range(share.size) if share[b] > 0 and have[b] >= MIN_PER_BIN]
    count = min(fits) if fits else distance.size
    return int(min(limit, max(count, distance.size / 2)))


def quantiles(distance: np.ndarray) -> dict:
    """The distribution of ``distance`` as ``{"q10": ..., "max": ...}`` (rounded; empty without values)."""
    if distance.size == 0:
        return {}
    values = np.quantile(distance, QUANTILES)
    return {("max" if q == 1.0 else f"q{round(100 * q)}"): round(float(v), 4) for q, v in zip(QUANTILES, values,
                                                                                         strict=True)}


def report(held_out_distance: np.ndarray, target_distance: np.ndarray | None, matched_to: str, units: str) -> dict:
    """What ``calibration_["held_out_design"]`` records: both distance distributions, the reach (the
    farthest held-out distance) and the share of targets beyond it."""
    reach = float(held_out_distance.max()) if held_out_distance.size else 0.0
    out = {"matched_to": matched_to, "units": units, "reach": round(reach, 4),
           "held_out_distance": quantiles(held_out_distance)}
    if target_distance is not None and target_distance.size:
        beyond = float(np.mean(target_distance > reach))
        out.update(target_distance=quantiles(target_distance), targets_beyond_reach=round(beyond, 4))
        if beyond > 0.01:
            out["note"] = (f"{100 * beyond:.1f}% of the targets lie farther from the data than any held-out cell "
                           f"({reach:.4g} {units}): the observed area cannot host gaps that large; there the "
                           "network's own mean is kept and the widest spread learned")
    return out
