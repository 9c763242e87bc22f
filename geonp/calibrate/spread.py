"""The spread calibration: the std by distance to the nearest observation, learned on held-out cells.

    std_cal(d) = sqrt((a(d) * std)^2 + (tau(d) * s)^2)    d: distance to the nearest observation,
                                                         s: std of the observations conditioned on

``a(d)`` is a factor on the model's own spread and ``tau(d)`` the spread it misses, in units of each
target's context std. :func:`fit_by_distance` learns both per distance bin of held-out cells (see
:mod:`geonp.calibrate.calibration` for how the cells are drawn and why this form), made non-decreasing with
distance; :class:`SpreadCalibration` applies them (the ``"spread"`` stage of :mod:`geonp.predict.stages`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import brentq, isotonic_regression
from scipy.stats import norm

from geonp.errors import ConfigError

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

    def __post_init__(self):
        knots = (self.distance, self.scale, self.floor)
        if not (len(self.distance) >= 1 and len({len(k) for k in knots}) == 1
                and all(np.isfinite(k).all() for k in knots) and np.all(np.diff(self.distance) > 0)
                and min(self.scale) > 0 and min(self.floor) >= 0
                and np.isfinite(self.growth) and self.growth >= 0 and np.isfinite(self.ceiling)):
            raise ConfigError("a spread calibration needs increasing finite distances with one scale > 0 and one "
                              f"floor >= 0 each, and a finite growth >= 0; got {self.to_dict()}.")

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


def distance_groups(distance: np.ndarray, bins: int, min_bin: int = MIN_BIN) -> list:
    """Indices of ``distance`` in up to ``bins`` groups of about equal size, by increasing distance.

    Equal distances (a grid has many) stay in one group, and no group is smaller than ``min_bin / 2``,
    so the groups' medians increase strictly.
    """
    order = np.argsort(distance, kind="stable")
    d, n = distance[order], distance.size
    cuts = [0]
    for b in range(1, bins):
        cut = int(np.searchsorted(d, d[int(b * n / bins)], side="left"))
        if cut - cuts[-1] >= min_bin // 2 and n - cut >= min_bin // 2:
            cuts.append(cut)
    cuts.append(n)
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
