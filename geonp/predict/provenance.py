"""What a prediction says about itself (``attrs["geonp_*"]``): the model, the calibration and blend applied,
the held-out design beside the targets, fine-tuning, and targets far from the data. Pure functions of the
fitted state (:class:`~geonp.estimator.state.FittedModel`) and the targets."""

from __future__ import annotations

import dataclasses

import numpy as np

from geonp.calibrate import held_out
from geonp.calibrate.kriging import LocalKriging
from geonp.calibrate.spread import SpreadCalibration
from geonp.errors import warn
from geonp.features.scaling import TASK_RADIUS
from geonp.predict.context import ContextSet, distances_to_data

FAR_CHECK_POINTS = 4_000_000  # more targets than this: distances to data are not checked (memory, time)


def spread(calibration: dict | None) -> SpreadCalibration:
    """The spread calibration learned by ``fit`` (identity where there is none)."""
    return SpreadCalibration.from_calibration(calibration)


def kriging(calibration: dict | None, blend: bool) -> LocalKriging | None:
    """The kriging kernel fitted on the data (:mod:`geonp.calibrate.kriging`), with its blend weights when
    ``blend`` (the blend is learned with the calibration; without it: the network's own mean)."""
    kernel = LocalKriging.from_calibration(calibration)
    if kernel is None or blend:
        return kernel
    return dataclasses.replace(kernel, distance=(), weight=())


def kriging_candidates(calibration: dict | None) -> tuple[LocalKriging, ...]:
    """The other kernels ``fit`` is comparing with the kriging's on held-out cells (only while it calibrates)."""
    return tuple(LocalKriging.from_calibration({"kriging": kernel})
                 for kernel in (calibration or {}).get("kriging_candidates", ()))


def describe(arch: str, pretrained, state) -> str:
    """Which model ran: the bundled name or saved path it came from, and what was done to it."""
    from geonp.estimator.releases import available

    head = f"{arch}, {state.config.likelihood.name}"
    named = pretrained if isinstance(pretrained, str) and pretrained != "auto" else None
    source = state.source or state.started_from or named
    trained = int(state.steps_trained)
    if source is None:
        return f"{head}: trained from scratch on the user's data ({trained} steps)"
    kind = "bundled model" if source in available() else "saved model"
    done = f", fine-tuned {trained} steps on the user's data" if trained and not state.source else ""
    return f"{source} ({kind}; {head}){done}"


def calibration_attrs(calibration: dict | None, applied: SpreadCalibration, blend: LocalKriging | None) -> dict:
    """The calibration ``applied`` and the blend (where it was applied), with their held-out scores."""
    cal = calibration or {"status": "not calibrated: fitted before calibration existed"}
    attrs = {"calibration": cal.get("status", "")}
    if applied.is_identity:
        attrs["calibration_std_scale"] = 1.0
    else:  # the median factor on held-out cells, and the table (distances in the halo's units)
        attrs["calibration_std_scale"] = cal.get("std_scale", applied.scale[0])
        attrs["calibration_distance"] = np.asarray(applied.distance)
        attrs["calibration_std_factor"] = np.asarray(applied.scale)
        attrs["calibration_std_floor"] = np.asarray(applied.floor)
    for when in ("before", "after"):
        for k, v in cal.get(when, {}).items():
            attrs[f"calibration_held_out_{k}_{when}"] = v
    if "held_out_cells" in cal:
        attrs["calibration_held_out_cells"] = cal["held_out_cells"]
    kernel = cal.get("kriging")
    if kernel and blend is not None and blend.blends:  # the blend was applied (calibrated=True)
        about = "a plane (universal kriging)" if kernel.get("trend") else "its mean (simple kriging)"
        attrs["kriging_blend"] = (f"{kernel['kernel']} kriging of each neighbourhood about {about}, length scale "
                                  f"{kernel['length_scale']:.4g}, blended into the mean by distance to data")
        attrs["kriging_distance"] = np.asarray(kernel["distance"])
        attrs["kriging_weight"] = np.asarray(kernel["weight"])
        if "reach" in kernel:  # tapered to 0 there: never extrapolated beyond the held-out cells
            attrs["kriging_reach"] = kernel["reach"]
        for k, v in kernel.get("held_out_rmse", {}).items():
            attrs[f"kriging_held_out_rmse_{k}"] = v
    return attrs


def held_out_attrs(calibration: dict | None, distance: np.ndarray) -> dict:
    """The held-out design beside these targets' ``distance [n]`` to data: both distance distributions, the
    reach, and how many targets lie beyond it (where the blend is off and the spread the widest learned)."""
    design = (calibration or {}).get("held_out_design")
    if not design:
        return {}
    reach = float(design["reach"])
    targets = held_out.quantiles(distance)
    return {"held_out_matched_to": design["matched_to"], "held_out_reach": reach,
            "targets_beyond_held_out": int((distance > reach).sum()),
            "distance_quantile_levels": np.array(held_out.QUANTILES),
            "held_out_distance_quantiles": np.array(list(design["held_out_distance"].values())),
            **({"target_distance_quantiles": np.array(list(targets.values()))} if targets else {})}


def fine_tuning_attrs(record: dict | None) -> dict:
    """What fitting on the data did, on its held-out gaps (:mod:`geonp.estimator.fine_tune`)."""
    if not record:
        return {}
    if "kept" not in record:
        return {"fine_tuning": record.get("status", "")}
    attrs = {"fine_tuning": f"kept {record['kept']} (steps {record['steps']}, {record['seconds']} s on "
                            f"{record['device']})", "fine_tuning_held_out_cells": record["held_out_cells"]}
    for when in ("before", "after"):
        for k in ("rmse", "crps", "cov95"):
            attrs[f"fine_tuning_held_out_{k}_{when}"] = record[when][k]
    return attrs


def far_from_data(state, context: ContextSet, task_map, tgt, gaps_only: bool = False) -> dict:
    """Count (and warn about) targets farther from every observation than one training task's radius,
    and those beyond the held-out cells' reach (:mod:`geonp.calibrate.held_out`); ``gaps_only``: the targets
    are the context's own cells, of which the observed ones (distance 0) are left out of the quantiles."""
    s = state.scaling
    limit = TASK_RADIUS * s.space_unit
    units = "km" if s.kind == "geographic" else "crs units"
    attrs = {"far_from_data_distance": limit, "far_from_data_units": units}
    if tgt.x.size > FAR_CHECK_POINTS:
        return {**attrs, "far_from_data": "not checked (more than 4M targets)"}
    distance = distances_to_data(context, task_map, tgt.x, tgt.y, s.kind)
    distance = distance[np.isfinite(distance)]
    far = distance > limit
    n = int(far.sum())
    if n:
        warn(f"{n} of {far.size} target(s) ({100 * n / far.size:.1f}%) lie farther than {limit:.4g} {units} "
             "from any observation (beyond the neighbourhood a training task covers): there the prediction "
             "falls back towards the prior (the neighbourhood mean, a wide spread). They are counted in "
             "attrs['geonp_far_from_data']; add observations or restrict the targets to trust them.")
    return {**attrs, "far_from_data": n,
            **held_out_attrs(state.calibration, distance[distance > 0] if gaps_only else distance)}
