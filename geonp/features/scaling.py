"""The feature normalisation that is fitted with a model and saved with it.

A neural process works in its own units: distances in "model units" (the GP
tasks of the bundled model live on [-2, 2]^2), time in model units, values
standardised. ``FeatureScaling`` holds the conversion from the user's units:

    space  (geographic)  great-circle distance [km]      / space_unit   -> model units
    space  (projected)   Euclidean distance [CRS units]  / space_unit   -> model units
    time                 hours since reference          / time_unit    -> model units
    values               (y - value_mean) / value_std, then (center="task") minus the mean
                         of the task's context: a GP-like model knows spatial structure, not
                         the level of the field (an hour of ERA5 can sit 2 std from the mean);
                         center="task-scale" also divides by the context's standard deviation
                         (floored), so the model never has to know the field's amplitude either
    covariates           (x - covariate_mean) / covariate_std (in K slots with in-use flags, for a model
                         that takes up to K covariates of any meaning: geonp.tasks.covariates)
    drift                trend_degree > 0: a polynomial of that degree in space, fitted to each field's
                         standardised observations, is taken out before the model and added back after
                         (geonp.features.drift)

It is plain data (JSON-friendly), so ``load`` + ``predict`` on new data
reproduces a fitted model exactly.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from geonp.errors import ConfigError, MetadataMismatchError, reject_unknown_fields
from geonp.features.drift import DEGREES
from geonp.features.tables import DataError
from geonp.nn.bias import EARTH_RADIUS_KM, CoordinateGroup
from geonp.options import check_field_types, check_numbers

# The bundled GP model saw tasks on a 4 x 4 box; a neighbourhood of this many
# model units in radius (the disc of the same area) is what one training task covers.
TASK_RADIUS = math.sqrt(16.0 / math.pi)
CENTERS = ("task", "task-scale", "global")
# a predicted variable's largest magnitude must lie here: outputs are float32 (normal from 1.2e-38 to 3.4e38),
# and a margin of 1,000 leaves room for spreads, quantiles and draws
VALUE_RANGE = (1e-35, 1e35)
# a context value this many fitted standard deviations from the fitted mean is data in other units
MAX_STANDARDISED = 1e6
CONTEXT_STD_FLOOR = 1e-3  # "task-scale": a (nearly) constant context is divided by this, not by ~0


@dataclasses.dataclass(frozen=True)
class FeatureScaling:
    """How a dataset's coordinates, values and covariates map to a model's inputs."""

    kind: str  # "geographic" (lon/lat degrees) or "projected" (x/y in CRS units)
    space_unit: float  # km (geographic) or CRS units (projected) per model unit
    value_names: tuple[str, ...]
    value_mean: tuple[float, ...]
    value_std: tuple[float, ...]
    covariate_names: tuple[str, ...] = ()
    covariate_mean: tuple[float, ...] = ()
    covariate_std: tuple[float, ...] = ()
    time_unit: float | None = None  # hours per model unit; None: the model has no time group
    crs: str | None = None
    value_attrs: tuple[dict, ...] = ()  # attrs of each value variable (units, long_name ...), for outputs
    center: str = "task"  # "task": values relative to each task's (tile's) context mean; "task-scale": also
    # divided by the context's std; "global": neither
    covariate_slots: int = 0  # K > 0: the model takes up to K covariates as [x_0..x_{K-1}, used_0..used_{K-1}]
    far_context: int = 0  # of a cell's context slots, how many go to far observations (geonp.features.far_context)
    covariates_ignored: tuple[str, ...] = ()  # given but left out by held-out selection (geonp.calibrate.covariates):
    # a slot model sees them as unused slots
    trend_degree: int = 0  # > 0: each field's polynomial drift of this degree is fitted to its observations and
    # the model fills in the residual (geonp.features.drift); chosen by fit on held-out cells

    def __post_init__(self):
        check_field_types(self)
        for name in ("value_mean", "value_std", "covariate_mean", "covariate_std"):
            check_numbers(getattr(self, name), f"FeatureScaling.{name}")
        if self.kind not in ("geographic", "projected"):
            raise ConfigError(f"FeatureScaling.kind must be 'geographic' or 'projected', got {self.kind!r}.")
        if self.center not in CENTERS:
            raise ConfigError(f"FeatureScaling.center must be one of {CENTERS}, got {self.center!r}.")
        if not (self.space_unit > 0 and math.isfinite(self.space_unit)):
            raise ConfigError(f"space_unit must be a positive length, got {self.space_unit}.")
        if self.time_unit is not None and not (self.time_unit > 0 and math.isfinite(self.time_unit)):
            raise ConfigError(f"time_unit must be a positive number of hours, got {self.time_unit}.")
        if not (len(self.value_names) == len(self.value_mean) == len(self.value_std)):
            raise ConfigError("value_names, value_mean and value_std must have the same length.")
        if not (len(self.covariate_names) == len(self.covariate_mean) == len(self.covariate_std)):
            raise ConfigError("covariate_names, covariate_mean and covariate_std must have the same length.")
        if self.trend_degree not in DEGREES:
            raise ConfigError(f"trend_degree must be one of {DEGREES} (0: no drift), got {self.trend_degree!r}.")
        if self.trend_degree and self.center == "global":
            raise ConfigError("a polynomial drift is fitted to standardised Gaussian values; counts and classes "
                              "(center='global') take none: set trend_degree=0.")
        if self.covariate_slots and len(self.covariate_names) > self.covariate_slots:
            raise ConfigError(f"the model takes at most K={self.covariate_slots} covariates; got "
                              f"{len(self.covariate_names)} ({list(self.covariate_names)}). Keep the "
                              f"{self.covariate_slots} most relevant ones.")
        stray = [c for c in self.covariates_ignored if c not in self.covariate_names]
        if stray or (self.covariates_ignored and not self.covariate_slots):
            raise ConfigError(f"covariates_ignored={list(self.covariates_ignored)} must name covariates of a model "
                              f"with covariate slots; it has {list(self.covariate_names)} and "
                              f"{self.covariate_slots} slots.")
        for name, std in zip(self.value_names + self.covariate_names, self.value_std + self.covariate_std,
                             strict=True):
            if not (std > 0 and math.isfinite(std)):
                raise ConfigError(f"scale of {name!r} must be positive and finite, got {std}.")

    # ------------------------------------------------------------------ groups

    def model_config(self, config):
        """``config`` (a :class:`~geonp.nn.models.BSATNPConfig`) with the space group's metric for this data
        (same parameters)."""
        groups = tuple(self.space_group(g) if g.name == "space" else g for g in config.groups)
        return dataclasses.replace(config, groups=groups)

    def space_group(self, template: CoordinateGroup) -> CoordinateGroup:
        """The model's space group with this data's metric: great-circle on lon/lat, or Euclidean.

        The bias depends on distances only, so the same parameters serve both
        metrics; only the distance computation and its unit change.
        """
        if self.kind == "geographic":
            return dataclasses.replace(template, metric="great_circle", dim=2,
                                       radius=EARTH_RADIUS_KM / self.space_unit)
        return dataclasses.replace(template, metric="euclidean", dim=2, radius=1.0)

    def space_features(self, lon_or_x, lat_or_y) -> np.ndarray:
        """``[N, 2]`` raw space features: lon/lat degrees (geographic) or x, y in model units."""
        a, b = np.asarray(lon_or_x, np.float64), np.asarray(lat_or_y, np.float64)
        if self.kind == "geographic":
            return np.stack([a, b], axis=-1)
        return np.stack([a, b], axis=-1) / self.space_unit

    def time_features(self, hours) -> np.ndarray:
        """``[N, 1]`` time in model units (hours / time_unit)."""
        if self.time_unit is None:
            raise ConfigError("this model has no time coordinate group; time is handled as separate tasks.")
        return (np.asarray(hours, np.float64) / self.time_unit)[..., None]

    # ------------------------------------------------------------------ values

    def scale_values(self, values) -> np.ndarray:
        """``[..., Dy]`` values in user units -> standardised."""
        return (np.asarray(values, np.float64) - np.asarray(self.value_mean)) / np.asarray(self.value_std)

    def unscale_mean(self, mean) -> np.ndarray:
        return np.asarray(mean, np.float64) * np.asarray(self.value_std) + np.asarray(self.value_mean)

    def unscale_std(self, std) -> np.ndarray:
        return np.asarray(std, np.float64) * np.asarray(self.value_std)

    def scale_covariates(self, covariates) -> np.ndarray:
        """``[..., Dx]`` covariates in user units -> standardised (``Dx = 0`` gives an empty last axis).

        A model with covariate slots gets ``[..., 2K]``: the ``Dx`` standardised covariates (less
        ``covariates_ignored``), zeros in the unused slots, then a flag per slot (1 where a covariate is given).
        """
        x = np.asarray(covariates, np.float64)
        if x.shape[-1] != len(self.covariate_names):
            raise MetadataMismatchError(
                f"got {x.shape[-1]} covariate column(s) but the model was fitted with "
                f"{list(self.covariate_names)}."
            )
        if self.covariate_names:
            x = (x - np.asarray(self.covariate_mean)) / np.asarray(self.covariate_std)
        if self.covariate_slots:  # the slot layout of geonp.tasks.covariates: values, then in-use flags
            x = x[..., [j for j, c in enumerate(self.covariate_names) if c not in self.covariates_ignored]]
            n, k = x.shape[-1], self.covariate_slots
            unused = np.zeros(x.shape[:-1] + (k - n,))
            flags = np.broadcast_to(np.arange(k) < n, x.shape[:-1] + (k,)).astype(np.float64)
            x = np.concatenate([x, unused, flags], axis=-1)
        return x

    def task_standardisation(self, y_ctx) -> tuple[np.ndarray, np.ndarray]:
        """``(offset, scale)`` of one task (tile): see :func:`task_standardisation`."""
        return task_standardisation(y_ctx, self.center)

    # ------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        d["value_attrs"] = [_jsonable_attrs(a) for a in self.value_attrs]
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> FeatureScaling:
        d = dict(d)
        reject_unknown_fields(cls, d, "FeatureScaling")
        for f in dataclasses.fields(cls):
            if isinstance(d.get(f.name), list):
                d[f.name] = tuple(d[f.name])
        d["value_attrs"] = tuple(dict(a) for a in d.get("value_attrs", ()))
        return cls(**d)


def _jsonable_attrs(attrs: Mapping) -> dict:
    """Keep the attrs JSON can hold (strings and numbers): units, long_name, standard_name ..."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, str | int | float | bool):
            out[str(key)] = value
        elif isinstance(value, np.generic):
            out[str(key)] = value.item()
    return out


def task_standardisation(y_ctx, center: str) -> tuple[np.ndarray, np.ndarray]:
    """``(offset, scale)`` ``[Dy]`` of one task (tile) from its standardised context values ``[n, Dy]``.

    The model sees ``(y - offset) / scale`` and its predictions map back as ``offset + scale * value``
    (``center``: see :class:`FeatureScaling`).
    """
    y_ctx = np.asarray(y_ctx, np.float64)
    if center == "global":  # counts, classes: used as they are, whatever their columns
        return np.zeros(1), np.ones(1)
    offset = y_ctx.mean(axis=0)
    if center == "task":
        return offset, np.ones_like(offset)
    return offset, np.maximum(y_ctx.std(axis=0), CONTEXT_STD_FLOOR)


def task_covariates(x_ctx, x_tgt, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """A slot model's covariates ``[n, 2K]`` of one task (neighbourhood), standardised over its context.

    The priors draw every task's covariates standardised over that task's context points
    (:mod:`geonp.tasks.covariates`); ``fit`` standardises a user's over all the data. Where a
    prediction conditions each neighbourhood on part of the data, its covariates are re-standardised
    over that part, as in training (the in-use flags, and unused slots' zeros, are left as they are).
    Models without slots (``slots = 0``) see their covariates as trained (over all the data).
    """
    if not slots:
        return x_ctx, x_tgt
    values = np.asarray(x_ctx[:, :slots], np.float64)  # [n, K]
    mean, std = values.mean(axis=0), np.maximum(values.std(axis=0), CONTEXT_STD_FLOOR)
    standardise = lambda x: np.concatenate([(x[:, :slots] - mean) / std * (x[:, slots:2 * slots] > 0),  # noqa: E731
                                            x[:, slots:]], axis=-1)
    return standardise(np.asarray(x_ctx)), standardise(np.asarray(x_tgt))


def robust_scale(values: np.ndarray, name: str, predicted: bool = True) -> tuple[float, float]:
    """Mean and standard deviation of the finite values, with a clear error when there are none (or, for a
    ``predicted`` variable, when they lie outside what float32 outputs hold)."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ConfigError(f"{name!r} has no finite value to fit its normalisation on; check the data.")
    peak = float(np.abs(finite).max())
    if predicted and (0 < peak < VALUE_RANGE[0] or peak > VALUE_RANGE[1]):
        power = -int(np.round(np.log10(peak)))
        raise DataError(f"{name!r} holds values of magnitude {peak:.3g}; predictions are float32, which keeps "
                        f"magnitudes between {VALUE_RANGE[0]:g} and {VALUE_RANGE[1]:g} with full precision. Rescale "
                        f"it first (e.g. da * 1e{power}, or convert its units) and scale the predictions back.")
    unit = peak if peak > 0 else 1.0  # moments of values / peak: no overflow near 1e308
    mean, std = float((finite / unit).mean()) * unit, float((finite / unit).std()) * unit
    if not std > 0:
        std = max(abs(mean), 1.0)  # a constant field: any positive scale works
    return mean, std


def neighbourhood_radius(unit_points: np.ndarray, k: int, rng: np.random.Generator, samples: int = 256) -> float:
    """Median distance from a point to its k-th nearest neighbour (same units as the points).

    ``unit_points`` are Euclidean coordinates (unit vectors times a radius for
    the sphere). This is how large a window of k points is in this data.
    """
    from scipy.spatial import cKDTree

    n = unit_points.shape[0]
    if n < 2:
        raise ConfigError("at least two observed points are needed to fit the length scale of space.")
    k = int(min(max(k, 1), n - 1))
    centres = unit_points[rng.choice(n, size=min(samples, n), replace=False)]
    dist, _ = cKDTree(unit_points).query(centres, k=[k + 1])
    radius = float(np.median(dist))
    if not radius > 0:
        raise ConfigError("the observed points all sit at the same location; space has no scale to fit.")
    return radius


def fit_space_unit(snapshots: Sequence[np.ndarray], window_points: int, seed: int = 0) -> float:
    """Length of one model unit such that a window of ``window_points`` points spans one training task.

    ``snapshots`` are the observed points of single fields (one time step, one
    member ...), ``[n, d]`` each: pooling time steps would stack every grid cell
    on itself and make space look far denser than any one field is.
    """
    rng = np.random.default_rng(seed)
    usable = [p for p in snapshots if len(p) >= 2]
    if not usable:
        raise ConfigError("at least two observed points in one field (time step, member ...) are needed to fit "
                          "the length scale of space.")
    chosen = rng.choice(len(usable), size=min(16, len(usable)), replace=False)
    radii = [neighbourhood_radius(usable[i], window_points, rng, samples=64) for i in chosen]
    return float(np.median(radii)) / TASK_RADIUS


def fit_scaling(kind: str, snapshots: Sequence[np.ndarray], values: np.ndarray, value_names: Sequence[str],
                covariates: np.ndarray | None = None, covariate_names: Sequence[str] = (),
                window_points: int = 1024, hours: np.ndarray | None = None, time_unit: float | None = None,
                crs: str | None = None, value_attrs: Sequence[Mapping] = (), seed: int = 0,
                standardise: bool = True, center: str | None = None) -> FeatureScaling:
    """Fit a :class:`FeatureScaling` to observed points.

    ``snapshots``: per field (time step, member ...), its observed points ``[n, 2 or 3]``
    as projected x/y or unit vectors times the Earth's radius in km (so nearby
    distances are km). ``values [N, Dy]`` and ``covariates [N, Dx]``: all observed points.
    ``standardise=False`` (counts, classes): values are used as they are, not centred.
    ``center``: how a task's values are standardised (:class:`FeatureScaling`); None: "task" when
    ``standardise``, else "global". A pretrained model names the rule it was trained with.
    """
    values = np.asarray(values, np.float64).reshape(len(values), -1)
    if standardise:
        stats = [robust_scale(values[:, j], n) for j, n in enumerate(value_names)]
    else:
        stats = [(0.0, 1.0)] * len(value_names)
    cov_stats = []
    if covariate_names:
        covariates = np.asarray(covariates, np.float64).reshape(len(covariates), -1)
        cov_stats = [robust_scale(covariates[:, j], n, predicted=False) for j, n in enumerate(covariate_names)]
    if hours is not None and time_unit is None:
        steps = np.diff(np.unique(np.asarray(hours, np.float64)))
        time_unit = float(np.median(steps)) if steps.size else 1.0
    return FeatureScaling(
        kind=kind, space_unit=fit_space_unit(snapshots, window_points, seed),
        value_names=tuple(value_names), value_mean=tuple(s[0] for s in stats),
        value_std=tuple(s[1] for s in stats), covariate_names=tuple(covariate_names),
        covariate_mean=tuple(s[0] for s in cov_stats), covariate_std=tuple(s[1] for s in cov_stats),
        time_unit=time_unit if hours is not None else None, crs=crs,
        value_attrs=tuple(dict(a) for a in value_attrs), center=(center or "task") if standardise else "global",
    )
