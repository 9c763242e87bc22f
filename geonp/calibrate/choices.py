"""The choices ``fit`` learns on held-out data, each tried on copies of the fitted state: the covariate
subset (surveys: leave-location-out log score; grids: calibrated CRPS on held-out cells), the drift's
degree, the neighbourhood kriging's kernel, and the calibration of the spread and the blend
(:mod:`geonp.calibrate.calibration`) on held-out cells matched to the targets (:mod:`geonp.calibrate.held_out`).

``model`` is the estimator being fitted, read for its hyperparameters and used to predict with a candidate
state (``model._with_state(state)``); it is never changed here.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree
from tqdm.auto import tqdm

from geonp.calibrate import calibration
from geonp.calibrate import covariates as selection_lib
from geonp.calibrate import kriging as local_kriging
from geonp.errors import warn
from geonp.estimator.state import FittedModel
from geonp.features import counts as counts_lib
from geonp.features import drift as drift_lib
from geonp.features import tables as tables_lib
from geonp.predict import targets

# the drift's choice: 4 masks of up to 1,000 held-out cells in 16 x 16 squares. It chose as the calibration's full
# set did on every field of the full real-data benchmark's UK and Norway cloud cases, at a third of the cost; 2 masks
# chose a drift on 2 of 8 UK fields where it doubled the error in the real gaps
TREND_FIELDS, TREND_TARGETS, TREND_BLOCK = 4, 1000, "neighbourhood"
TREND_MARGIN = 0.02  # a higher degree is kept only where it lowers that held-out CRPS by 2% or more
BEYOND_REACH_WARNING = 0.1  # of the targets beyond every held-out cell's distance to data: fit warns


def selects_covariates(model, state: FittedModel, covariates) -> bool:
    """Whether ``fit`` chooses among ``covariates``: a slot model given some, with ``select_covariates``."""
    return bool(model.select_covariates and state.config.covariate_slots and covariates)


def select_covariates(model, state: FittedModel, data, table, observed, name, count_var,
                       covariates) -> tuple[FittedModel, dict | None]:
    """Keep the covariates that improve the held-out log score (:mod:`geonp.calibrate.covariates`)."""
    if not selects_covariates(model, state, covariates):
        return state, None
    if not counts_lib.is_survey(table) or model.temporal or observed.shape[0] != 1:
        return state, None  # grids choose on the calibration's held-out cells (_calibrate)
    rows = np.flatnonzero(observed[0])
    if rows.size < selection_lib.MIN_LOCATIONS:
        why = (f"{rows.size} locations (need {selection_lib.MIN_LOCATIONS} for {selection_lib.FOLDS}-fold "
               "cross-validation)")
        return state, selection_lib.every_covariate(why, covariates)
    ds, _ = tables_lib.as_dataset(data, name)
    point_dim = table.point_dims[0]
    ds = ds[[name] + ([count_var] if count_var else []) + list(covariates)].isel({point_dim: rows})
    lined_up = all(np.allclose(np.asarray(ds[c].values, np.float64), along[0, rows], equal_nan=True)
                   for c, along in ((table.layout.x, table.x), (table.layout.y, table.y)) if c in ds.coords)
    if not lined_up:  # the table's points are not the data's in order: never score the wrong sites
        return state, selection_lib.every_covariate("the surveys' points could not be matched to the data's "
                                                    "rows", covariates)
    result = selection_lib.select_for_survey(model._with_state(state), ds, point_dim, list(covariates),
                                             table.values[0, rows], model.seed)
    result = {"status": "selected by leave-location-out log score", **result}
    state = ignore_covariates(model, state, result["ignored"], result, "leave-location-out log score on this data",
                                    "log score")
    return state, result


def ignore_covariates(model, state: FittedModel, ignored, choice, criterion: str, metric: str) -> FittedModel:
    """``state`` with ``ignored`` left out of the model's slots, and a warning saying so."""
    if not ignored:
        return state
    label = selection_lib.label
    best, full = choice["scores"][label(choice["kept"])], choice["scores"][label(state.covariates)]
    warn(f"covariate(s) {ignored} did not improve the model's {criterion} ({metric} {best:.4f} "
         f"without, {full:.4f} with every covariate); the model ignores them (covariates_ignored_). "
         f"Pass select_covariates=False to keep them; fit's history holds every subset's score.")
    return state.with_scaling(covariates_ignored=tuple(ignored))


def choose_trend(model, state: FittedModel, data, spatial, covariates, cache: dict,
                  target_distance) -> tuple[FittedModel, dict]:
    """With ``trend="auto"``: the drift's degree (none or 2, :data:`geonp.features.drift.AUTO_DEGREES`)
    with the lowest calibrated CRPS on held-out cells (the network's own mean: the kriging blend,
    :mod:`geonp.calibrate.kriging`, is learned afterwards on top of the choice).

    Both are calibrated on the same (smaller) held-out set; a higher degree is kept only
    where it lowers the CRPS by ``TREND_MARGIN`` over the best lower one, since a polynomial
    that wins by a hair on held-out cells can still extrapolate badly into the real gaps.
    """
    scores = {}
    for degree in drift_lib.AUTO_DEGREES:
        candidate = model._with_state(state.with_scaling(trend_degree=degree))
        result = calibration.calibrate(candidate, data, spatial, covariates, max_fields=TREND_FIELDS,
                                       max_targets=TREND_TARGETS, seed=model.seed, block=TREND_BLOCK,
                                       cache=cache, target_distance=target_distance)
        if result["status"] == "calibrated":
            scores[degree] = result["network"]["crps"]  # the network's own (the blend comes after)
    chosen = 0
    for degree in sorted(scores):
        if chosen not in scores or scores[degree] < (1.0 - TREND_MARGIN) * scores[chosen]:
            chosen = degree
    state = state.with_scaling(trend_degree=chosen)
    if not scores:
        return state, {"degree": 0, "status": "no drift: no cells could be held out to choose one"}
    return state, {"degree": chosen, "status": "chosen by calibrated CRPS on held-out cells",
            "crps_by_degree": {str(d): v for d, v in scores.items()}}


def calibrate(model, state: FittedModel, data, table, name, covariates, head,
               targets=(None, None, None)) -> tuple[FittedModel, dict | None]:
    """Held-out calibration of the predictive spread on this data (see :mod:`geonp.calibrate.calibration`).

    A slot model on a grid also chooses its covariates here: every subset is calibrated on the
    same held-out cells and the one with the lowest calibrated CRPS of the network's own mean is kept
    (with its calibration and kriging blend).
    ``targets``: ``(target, spatial_dims, time_dim)`` as ``predict`` will be given them: the held-out
    cells are matched to their distances to the data (:func:`target_distances`).
    Returns ``(state with its calibration, covariate selection or None)``.
    """
    ds, why = model._gaussian_grid(data, table, name, head)
    if ds is None:
        return state.replace(calibration={"status": f"not calibrated: {why}", "std_scale": 1.0}), None
    spatial = table.layout.spatial
    working = model._with_state(state)
    target_distance = target_distances(working, data, table, *targets)
    # the neighbourhood kriging's kernels (about the neighbourhood's mean, or a plane), fitted once on the data;
    # the one kept and its blend are chosen with the spread, on the held-out cells
    kernels = () if state.config.family == "cmanp" else kriging_kernels(working, table)
    calibrating = {"status": "calibrating", **({"kriging": kernels[0].to_dict(),
                                                "kriging_candidates": [k.to_dict() for k in kernels[1:]]}
                                               if kernels else {})}
    state = state.replace(calibration=calibrating)
    select = selects_covariates(model, state, covariates)
    candidates = selection_lib.subsets(covariates) if select else [tuple(covariates)]
    given = {c: ds[c] for c in covariates}
    cache = {}  # held-out predictions shared by the drift's comparison and the calibration
    if model.trend != "auto":
        trend = {"degree": state.scaling.trend_degree, "status": "fixed by trend="}
    elif state.config.family == "cmanp":
        trend = {"degree": 0, "status": "no drift: a constant-memory model folds raw values"}
    else:
        state, trend = choose_trend(model, state, ds[name], spatial, given, cache, target_distance)
    results = {}
    for subset in tqdm(candidates, desc=f"calibrating {len(candidates)} covariate subsets", unit="subset",
                       disable=not (model.progress and select), mininterval=1.0):
        candidate = model._with_state(selection_lib.with_subset(state, covariates, subset))
        results[subset] = calibration.calibrate(candidate, ds[name], spatial, given, seed=model.seed, cache=cache,
                                                target_distance=target_distance)
    scored = {s: r["network"]["crps"] for s, r in results.items() if r["status"] == "calibrated"}
    chosen = min(scored, key=lambda s: scored[s]) if scored else tuple(covariates)  # ties: the full set
    result = {**results[chosen], "trend": trend}
    if result["status"] != "calibrated":
        warn(f"{result['status']}; the predictive spread is the model's own, uncalibrated.")
    elif result["held_out_design"].get("targets_beyond_reach", 0.0) > BEYOND_REACH_WARNING:
        warn(f"{result['held_out_design']['note']} (calibration_['held_out_design']).")
    state = state.replace(calibration=result)
    if not select:
        return state, None
    if not scored:
        return state, selection_lib.every_covariate("no held-out cells", covariates)
    ignored = [c for c in covariates if c not in chosen]
    choice = {"status": "selected by calibrated CRPS on the held-out cells", "kept": list(chosen),
              "ignored": ignored, "scores": {selection_lib.label(s): v for s, v in scored.items()}}
    return ignore_covariates(model, state, ignored, choice, "held-out CRPS on this data", "crps"), choice


def target_distances(model, data, table, target, spatial_dims, time_dim) -> np.ndarray | None:
    """``[n]`` the distances (km / CRS units) from ``target`` (``predict``'s) to the nearest observation of
    its task, at most ``calibration.TARGET_SAMPLE`` of them; ``None`` for ``target=None`` (the held-out
    design then takes the data's missing cells)."""
    if target is None:
        return None
    tgt = targets.target_table(model, data, table, target, spatial_dims, time_dim)
    task_map, observed = targets.task_map(table, tgt), table.observed()
    rng = np.random.default_rng(model.seed)
    per_task = max(1, calibration.TARGET_SAMPLE // max(len(task_map), 1))
    xs, ys = np.asarray(tgt.x).reshape(len(task_map), -1), np.asarray(tgt.y).reshape(len(task_map), -1)
    distances = []
    for c, x, y in zip(task_map, xs, ys, strict=True):
        keep = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
        if not observed[c].any() or keep.size == 0:
            continue
        keep = rng.choice(keep, size=per_task, replace=False) if keep.size > per_task else keep
        tree = cKDTree(tables_lib.euclidean_embedding(model.scaling_.kind, table.x[c, observed[c]],
                                                      table.y[c, observed[c]]))
        distances.append(tree.query(tables_lib.euclidean_embedding(model.scaling_.kind, x[keep], y[keep]))[0])
    return np.concatenate(distances) if distances else None


def kriging_kernels(model, table) -> tuple:
    """The kernels of :mod:`geonp.calibrate.kriging` about each neighbourhood's mean, then about a plane, each
    by its likelihood on a few neighbourhoods of ``table`` (restricted to the plane's residuals for the
    second); ``()`` where none can be fitted."""
    rng = np.random.default_rng(model.seed)
    observed = table.observed()
    tasks = rng.permutation(np.flatnonzero(observed.sum(axis=1) >= 8))[: local_kriging.FIT_SETS]
    parts = tables_lib.observed_by_task(table, observed, model.scaling_, tasks, model.temporal)
    values = [v.reshape(len(v), -1)[:, 0] for v in parts["values"]]
    sets = local_kriging.neighbourhood_sets(parts["embedding"], values, rng)
    kernels = tuple(local_kriging.fit_kernel(sets, trend=trend) for trend in (0, 1))
    return kernels if kernels[0] is not None else ()
