"""A field's large-scale drift: a low-order polynomial in space, fitted to each field's observations.

A neural process conditions each cell of targets on its nearest observations
(:func:`geonp.predict.context.neighbourhoods`), and inside a gap wider than their reach
it reverts towards their level. Real fields carry drifts larger than any
neighbourhood (the equator-to-pole contrast of a global temperature field, a
valley-to-mountain gradient), and a gap across one hides a level that the gap's
near rim does not show. Regression kriging's answer, used here: fit the drift
to all of a field's observations, let the model fill in the residual, add the
drift back at the targets:

    y(x)  = m(x) + r(x)          m(x) = sum_p beta_p phi_p(z(x)),  all monomials of z up to ``degree``
    z(x)  = A^T (e(x) - c) / s   e: the Euclidean embedding (km in 3-D on the sphere, CRS units projected),
                                 c: the observations' centroid, A: axes (x and y when projected; east,
                                 north and up at the centroid on the sphere), s: the spread along each
    beta  = argmin || m(x_obs) - y_obs ||^2                                      (least squares, per field)

Axes along which the observations spread less than ``MIN_AXIS_SPREAD`` of the widest
are left out (the Earth's curvature under a regional grid, a thin strip's width), so a
regional field gets a plane's polynomials and a global one the sphere's (degree 2 in
3-D includes the equator-to-pole term). Targets beyond the observations' extent
along an axis see the drift held at the edge: a polynomial is never extrapolated. The
axes follow the grid (projected x/y, or east/north on lon/lat), so that extent is the
grid's own box.

Whether a drift helps depends on the field: where the neighbourhoods already see the
large scales, a polynomial only adds extrapolation error. ``fit`` chooses between none
and degree 2 (``AUTO_DEGREES``) on held-out cells in the data's own gap shapes
(:mod:`geonp.calibrate.calibration`); the degree is part of the model's
:class:`~geonp.features.scaling.FeatureScaling`, the coefficients are refitted on every
field a prediction conditions on.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from geonp.nn.bias import EARTH_RADIUS_KM

DEGREES = (0, 1, 2)  # the degrees a model can take; 0 = no drift
# what ``trend="auto"`` chooses between: none, or the curvature. A neighbourhood that rings a gap already shows
# the model a plane's gradient across it (its prior has length scales up to trends), and on held-out cells a
# plane won where it lost on the real gaps; what the rim cannot show is a hidden maximum or minimum (the warm
# tropics inside a gap that spans them)
AUTO_DEGREES = (0, 2)
MIN_AXIS_SPREAD = 0.1  # of the widest axis' spread: narrower axes are left out of the drift
POINTS_PER_TERM = 10  # fewer observations per polynomial term: no drift (its coefficients would be noise)


@dataclasses.dataclass(frozen=True)
class PolynomialTrend:
    """``m(x)`` of one field: evaluate with ``trend(embedding [N, E]) -> [N, Dy]`` (the values' units)."""

    degree: int
    centre: np.ndarray  # [E]
    axes: np.ndarray  # [E, A] the grid's axes kept (grid_axes)
    spread: np.ndarray  # [A] the observations' standard deviation along each axis
    low: np.ndarray  # [A] the observations' extent in whitened coordinates (targets are clamped to it)
    high: np.ndarray  # [A]
    coefficients: np.ndarray  # [P, Dy]

    def __call__(self, embedding) -> np.ndarray:
        z = np.clip(self._whiten(embedding), self.low, self.high)
        return design(z, self.degree) @ self.coefficients

    def _whiten(self, embedding) -> np.ndarray:
        return (np.asarray(embedding, np.float64) - self.centre) @ self.axes / self.spread


def design(z: np.ndarray, degree: int) -> np.ndarray:
    """``[N, P]``: 1 and every monomial of the columns of ``z [N, A]`` up to ``degree``."""
    columns = [np.ones(len(z))]
    for order in range(1, degree + 1):
        for combination in itertools.combinations_with_replacement(range(z.shape[1]), order):
            columns.append(np.prod(z[:, list(combination)], axis=1))
    return np.stack(columns, axis=1)


def grid_axes(centre: np.ndarray) -> np.ndarray:
    """``[E, E]`` orthonormal axes: the embedding's own in the plane; east, north, up at ``centre`` on the sphere
    (the identity where the centroid is near the Earth's centre: data around the whole globe)."""
    if centre.shape[-1] != 3 or np.linalg.norm(centre) < 1e-3 * EARTH_RADIUS_KM:
        return np.eye(centre.shape[-1])
    lon, lat = np.arctan2(centre[1], centre[0]), np.arcsin(centre[2] / np.linalg.norm(centre))
    east = [-np.sin(lon), np.cos(lon), 0.0]
    north = [-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)]
    up = [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)]
    return np.array([east, north, up]).T


def fit_trend(embedding, values, degree: int) -> PolynomialTrend | None:
    """The least-squares drift of one field's observations (``embedding [n, E]``, ``values [n, Dy]``).

    None for ``degree`` 0, and where there are too few observations for the polynomial's terms.
    """
    if degree <= 0:
        return None
    embedding = np.asarray(embedding, np.float64)
    values = np.asarray(values, np.float64).reshape(len(embedding), -1)
    centre = embedding.mean(axis=0)
    axes = grid_axes(centre)
    spread = ((embedding - centre) @ axes).std(axis=0)
    if not spread.max() > 0:
        return None
    keep = spread >= MIN_AXIS_SPREAD * spread.max()
    axes, spread = axes[:, keep], spread[keep]
    z = (embedding - centre) @ axes / spread
    basis = design(z, degree)
    if len(embedding) < POINTS_PER_TERM * basis.shape[1]:
        return None
    coefficients = np.linalg.lstsq(basis, values, rcond=None)[0]
    return PolynomialTrend(degree, centre, axes, spread, z.min(axis=0), z.max(axis=0), coefficients)


def with_drift(parts: dict, degree: int) -> dict:
    """``parts`` (per task: ``embedding [n, E]`` and standardised ``values [n, Dy]``) with each task's drift
    of ``degree`` fitted to its observations under ``trends`` and its values made the residuals; unchanged for
    degree 0. Prediction conditions on these, and training with a fixed degree samples its windows from them."""
    if not degree:
        return parts
    trends = [fit_trend(e, v, degree) if len(v) else None
              for e, v in zip(parts["embedding"], parts["values"], strict=True)]
    residuals = [v if t is None else v - t(e) for e, v, t in zip(parts["embedding"], parts["values"], trends,
                                                                   strict=True)]
    return {**parts, "values": residuals, "trends": trends}
