"""Checks of count observations (survey positives out of examined, cases with exposure, states).

Counts are used as they are (no standardisation), so every value must be a
legal observation of its likelihood; anything else is a clear error naming the
first offending points. Points left out because something is missing are
reported, never dropped silently.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from geonp.errors import ConfigError, warn
from geonp.features.tables import DataError, covariate_alignment_hint


def _where(table, rows: np.ndarray, limit: int = 5) -> str:
    """A few offending points as readable labels: the point index (and task, when there are tasks)."""
    task, point = np.nonzero(rows)
    labels = []
    for t, p in zip(task[:limit], point[:limit], strict=True):
        where = {d: v for d, v in zip(table.task_dims, table.task_labels[t], strict=True)} if table.task_dims else {}
        index = np.unravel_index(p, [table.template.sizes[d] for d in table.point_dims])
        where.update({d: int(i) for d, i in zip(table.point_dims, index, strict=True)})
        labels.append(str(where))
    more = f" and {int(rows.sum()) - limit} more" if rows.sum() > limit else ""
    return ", ".join(labels) + more


def with_unit_exposure(table, likelihood):
    """A poisson table without an exposure column gets one of 1s where the count is observed (exposure is
    optional: the model then predicts counts per cell); any other table comes back as it is."""
    if likelihood.name != "poisson" or table.values is None or table.values.shape[-1] != 1:
        return table
    ones = np.where(np.isfinite(table.values), 1.0, np.nan)
    return dataclasses.replace(table, values=np.concatenate([table.values, ones], axis=-1))


def check_counts(table, likelihood, names) -> None:
    """Raise :class:`DataError` for observations the likelihood cannot score.

    ``table.values [T, P, C]`` holds the observation columns of ``likelihood``
    (``names``: the variables they came from, e.g. ``("n_positive", "n_tested")``).
    """
    v = table.values
    finite = np.isfinite(v).all(axis=-1)
    k = v[..., 0]
    kind = likelihood.name
    problems = []
    if kind in ("binomial", "bernoulli", "poisson"):
        problems.append((finite & (k < 0), f"negative {names[0]!r}", "counts cannot be negative"))
        problems.append((finite & (np.abs(k - np.round(k)) > 1e-6), f"non-integer {names[0]!r}",
                         "counts must be whole numbers; pass counts, not proportions"))
    if kind == "binomial":
        n = v[..., 1]
        problems.append((finite & (np.abs(n - np.round(n)) > 1e-6), f"non-integer {names[1]!r}",
                         "the number examined must be a whole number of people (or trials)"))
        problems.append((finite & (n <= 0), f"{names[1]!r} <= 0", "every surveyed point needs at least one trial "
                                                                  "(examined); drop rows with none"))
        problems.append((finite & (k > n), f"{names[0]!r} > {names[1]!r}",
                         "positives cannot exceed the number examined; check for swapped columns"))
    if kind == "bernoulli":
        problems.append((finite & ~np.isin(k, (0.0, 1.0)), f"{names[0]!r} not 0/1",
                         "a Bernoulli variable is presence (1) or absence (0); use likelihood='binomial' with "
                         "trials= for counts"))
    if kind == "poisson" and len(names) > 1:  # exposure is optional (1 where not given)
        problems.append((finite & (v[..., 1] <= 0), f"{names[1]!r} <= 0", "exposure must be positive"))
    if kind == "categorical":
        classes = likelihood.num_classes
        problems.append((finite & ~np.isin(k, np.arange(classes, dtype=np.float64)), f"{names[0]!r} not a class",
                         f"values must be class indices 0..{classes - 1} (NaN where unobserved); set "
                         f"likelihood={{'name': 'categorical', 'num_classes': K}} for more classes"))
    for bad, what, fix in problems:
        if bad.any():
            raise DataError(f"{int(bad.sum())} point(s) with {what}: {_where(table, bad)}. {fix}.")


def pool_duplicate_sites(table, likelihood, names, what: str = "the data"):
    """Survey rows at one place (and time) pooled into one location: positives and examined (cases and
    exposure) summed into the first such row, the others left unobserved, with a warning naming them.

    Two surveys of one village are one larger survey of it; kept apart, the model would read them
    as two villages at distance zero. Nothing is lost (the counts add up); any other table comes
    back as it is.
    """
    if likelihood.name not in ("binomial", "poisson") or table.values is None or not is_survey(table):
        return table
    values = table.values.copy()
    observed = table.observed()  # rows left out (a covariate missing) are neither pooled nor pooled into
    merged = np.zeros(observed.shape, bool)
    for t in range(table.num_tasks):
        rows = np.flatnonzero(observed[t])
        place = [table.x[t, rows], table.y[t, rows]] + ([table.hours[t, rows]] if table.hours is not None else [])
        _, first, inverse, repeats = np.unique(np.stack(place, -1), axis=0, return_index=True, return_inverse=True,
                                               return_counts=True)
        if repeats.max(initial=1) < 2:
            continue
        sums = np.zeros((len(first), values.shape[-1]))
        np.add.at(sums, inverse.reshape(-1), values[t, rows])
        merged[t, rows] = True
        merged[t, rows[first]] = False
        values[t, rows] = np.nan
        values[t, rows[first]] = sums
    if not merged.any():
        return table
    warn(f"{what}: {int(merged.sum())} survey row(s) share their coordinates with an earlier row "
         f"({_where(table, merged)}); their {' and '.join(repr(n) for n in names)} were added to that row's, "
         "one location surveyed more than once. Aggregate the rows yourself (e.g. df.groupby([lon, lat])"
         ".sum()) to silence this.")
    return dataclasses.replace(table, values=values)


def excluded_points(table, names) -> dict:
    """Why observed-looking points would be left out: ``{reason: count}`` (empty when none).

    A point is left out when one of its values is missing while another is present
    (e.g. positives without the number examined), when a covariate is missing, or
    when its coordinates are missing.
    """
    v = table.values
    some = np.isfinite(v).any(axis=-1)
    reasons = {}
    partial = some & ~np.isfinite(v).all(axis=-1)
    if partial.any():
        reasons[f"one of {list(names)} missing"] = int(partial.sum())
    if table.covariates.shape[-1]:
        no_cov = some & ~partial & ~np.isfinite(table.covariates).all(axis=-1)
        if no_cov.any():
            reasons["a covariate missing"] = int(no_cov.sum())
    no_coords = some & ~(np.isfinite(table.x) & np.isfinite(table.y))
    if no_coords.any():
        reasons["coordinates missing"] = int(no_coords.sum())
    return reasons


def is_survey(table) -> bool:
    """True for scattered points along one point dimension (a survey), False for a grid."""
    return len(table.point_dims) == 1 and table.layout.x not in table.template.dims


def check_point_coordinates(table) -> None:
    """Survey points (a point dimension, not a grid) must all have coordinates: a clear error otherwise."""
    if not is_survey(table):
        return  # a grid: its coordinates are 1-D and checked elsewhere
    has_value = np.isfinite(table.values).any(axis=-1) if table.values is not None else np.ones_like(table.x, bool)
    missing = has_value & ~(np.isfinite(table.x) & np.isfinite(table.y))
    if missing.any():
        raise DataError(
            f"{int(missing.sum())} point(s) have observations but no coordinates ({table.layout.x}/"
            f"{table.layout.y} is NaN): {_where(table, missing)}. Geocode them or drop those rows explicitly "
            "(e.g. df.dropna(subset=[...]))."
        )


def count_variable(head, trials, exposure) -> str | None:
    """The second observation column's variable (binomial: trials, poisson: exposure), checked against the head."""
    if head.name == "binomial":
        if trials is None:
            raise ConfigError("a binomial model needs trials='<variable with the number examined>' (var holds the "
                              "positives); for 0/1 data use likelihood='bernoulli'.")
        if exposure is not None:
            raise ConfigError("exposure= belongs to a poisson model; a binomial one takes trials=.")
        return str(trials)
    if head.name == "poisson":
        if trials is not None:
            raise ConfigError("trials= belongs to a binomial model; a poisson one takes exposure= (optional).")
        return None if exposure is None else str(exposure)
    if trials is not None or exposure is not None:
        raise ConfigError(f"trials=/exposure= are for binomial/poisson models; this one is {head.name!r}.")
    return None


def value_attrs(head, template, count_var) -> dict:
    """Attributes of what the model predicts: the variable itself, or a prevalence/rate/state of it."""
    attrs = {k: v for k, v in template.attrs.items() if isinstance(v, str | int | float)}
    name = str(template.name)
    if head.name in ("binomial", "bernoulli"):
        of = f"{name} / {count_var}" if count_var else name
        return {"long_name": f"prevalence ({of})", "units": "1", "name": name}
    if head.name == "poisson":
        per = f" per unit of {count_var}" if count_var else ""
        return {"long_name": f"rate of {name}{per}", "units": "1" if not count_var else f"1/({count_var})",
                "name": name}
    return attrs


def check_observations(table, head, names, what) -> None:
    """Clear errors for illegal counts or coordinate-less survey rows; a warning for what is left out."""
    check_point_coordinates(table)
    for label, array in (("value", table.values), ("covariate", table.covariates)):
        infinite = int(np.isinf(array).any(axis=-1).sum()) if array is not None and array.size else 0
        if infinite:
            warn(f"{what}: {infinite} point(s) hold an infinite {label} (+-inf); they are treated as "
                 f"missing, like NaN. Replace them (e.g. data.where(np.isfinite(data))) to silence "
                 "this, or fix the fill value upstream.")
    if not head.standardise:
        check_counts(table, head, names)
    if is_survey(table) or table.covariates.shape[-1]:  # grids: cells whose covariate is missing
        excluded = excluded_points(table, names)
        if excluded:
            reasons = ", ".join(f"{n} ({why})" for why, n in excluded.items())
            hint = covariate_alignment_hint(excluded.get("a covariate missing", 0),
                                                       int(np.isfinite(table.values).any(axis=-1).sum()))
            warn(f"{what}: left out {reasons}; they carry no usable observation.{hint}")
