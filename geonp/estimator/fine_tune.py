"""Fine-tuning a bundled model on the user's own data, checked on held-out gaps that look like the targets.

A network meta-trained on a synthetic prior is a good start, and continuing its training on the data itself
makes it better where the data differ from the prior. Whether it did is decided on cells training never sees:

    1. gaps of the data's own shapes are laid on observed ground and hidden (:func:`geonp.calibrate.calibration.
       draw_held_out`: the cells scored are matched to the targets' distance to the data);
    2. the training tasks are cut from the rest (:class:`geonp.tasks.patches.PatchSampler`, a share of them
       with one contiguous gap as targets, as prediction faces);
    3. the starting network and the network every few steps predict the hidden cells from the rest, as
       ``predict`` would (its own mean and spread); the parameters with the best CRPS are kept, and where no
       step beats the start, the start is kept and the user is told.

The held-out RMSE, CRPS and coverage before and after go into ``history_`` and the prediction's attrs.
Gaussian grids only: elsewhere training runs without this check (its validation NLL is on windows).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import xarray as xr

from geonp.calibrate import calibration
from geonp.calibrate.kriging import clear_gain

MAX_CELLS = 1500  # held-out cells scored per validation: a few seconds of prediction on a CPU
MIN_CELLS = 50  # fewer cannot tell a better network from noise: no held-out check
# fitted parameters replace the start only where they lower the held-out CRPS by this many standard errors (over
# gap squares, geonp.calibrate.kriging.clear_gain): about ten validations are compared, so 1 would keep noise; at
# 120 s a field, a gain under that on the held-out gaps went with a loss of 6% in the real gaps of the global
# ERA5 fields (benchmarks/RESULTS.md, issue 36)
CLEAR_GAIN = 2.0
SCORES = ("held_out_rmse", "held_out_crps", "held_out_cov95", "held_out_cells")  # a record's scores


@dataclasses.dataclass
class HeldOutCheck:
    """Hidden gaps of one fit: ``gaps`` the scored cells of each mask of ``draw``."""

    draw: calibration.HeldOutDraw
    gaps: list
    spatial_dims: tuple[str, str]
    covariates: dict

    @property
    def cells(self) -> int:
        return int(sum(gap.where.size for gap in self.gaps))

    def hide(self, observed: np.ndarray) -> np.ndarray:
        """``observed [T, P]`` (tasks = the draw's fields, points = its cells) without the hidden gaps."""
        out = observed.copy()
        for gap in self.gaps:
            out[gap.field] &= ~gap.hidden.ravel()
        return out

    def score(self, model) -> tuple[dict, np.ndarray]:
        """The held-out RMSE, CRPS and 95% coverage of ``model``'s own mean and spread at the hidden cells, and
        each cell's CRPS ``[n]`` (NaN where it could not be predicted)."""
        from geonp.scoring.metrics import crps_gaussian_points

        means, stds, truths = [], [], []
        for gap in self.gaps:
            field = self.draw.field(gap.field)
            covariates = self.draw.covariates_of(gap.field, self.covariates)
            mean, std, *_ = calibration.predict_held_out(model, field, gap.hidden, gap.where, self.draw.lat,
                                                         self.draw.lon, covariates, self.spatial_dims)
            means.append(mean)
            stds.append(std)
            truths.append(field.values.ravel()[gap.where])
        mean, std, truth = (np.concatenate(a).astype(np.float64) for a in (means, stds, truths))
        ok = np.isfinite(mean) & np.isfinite(std) & (std > 0) & np.isfinite(truth)
        per_cell = np.full(mean.shape, np.nan)
        per_cell[ok] = crps_gaussian_points(mean[ok], std[ok], truth[ok])
        return {**calibration.summarise(mean[ok], std[ok], truth[ok]), "cells": int(ok.sum())}, per_cell

    @property
    def clusters(self) -> np.ndarray:
        """``[n]`` each scored cell's error cluster (independent units of the gain's standard error)."""
        return calibration.clusters_apart(self.gaps)


def held_out_check(model, data: xr.DataArray, spatial_dims, covariates: dict, target_distance, seed: int,
                   observed: np.ndarray) -> HeldOutCheck | str:
    """Gaps to hide from fine-tuning and score it on, or a sentence saying why there are none.

    ``observed [T, P]`` is the training table's observed mask: its tasks and points must be the fields and cells
    of ``data`` in order (a grid), which is checked.
    """
    draw = calibration.draw_held_out(model, data, spatial_dims, seed=seed, target_distance=target_distance)
    if isinstance(draw, str):
        return f"no held-out check of fine-tuning: {draw}"
    if observed.shape != (draw.fields.shape[0], draw.fields[0].size) or \
            not (np.isfinite(draw.fields.reshape(observed.shape)) >= observed).all():
        return "no held-out check of fine-tuning: the data's table does not follow its grid"
    check = HeldOutCheck(draw, calibration.scored_gaps(draw, MAX_CELLS // max(1, len(draw.candidates))),
                         tuple(spatial_dims), covariates)
    if check.cells < MIN_CELLS:
        return f"no held-out check of fine-tuning: only {check.cells} cells could be held out (need {MIN_CELLS})"
    return check


class BestOnHeldOut:
    """The validator the training loop calls: scores parameters on the held-out gaps and keeps the best by CRPS
    among those clearly better than the start (:data:`CLEAR_GAIN`); the start until one is."""

    def __init__(self, model, check: HeldOutCheck):
        self.model, self.check = model, check
        self.records: list[dict] = []
        self.best_params, self.best, self.start_cells = None, None, None

    def __call__(self, step: int, params) -> dict:
        started = time.perf_counter()
        model = self.model._with_state(self.model.state_.replace(params=params))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores, per_cell = self.check.score(model)
        if self.start_cells is None:
            self.start_cells = per_cell
        gain = self.start_cells - per_cell  # > 0 where these parameters score better than the start
        both = np.isfinite(gain)
        clear = step == 0 or clear_gain(gain[both], self.check.clusters[both], CLEAR_GAIN)
        record = {"step": int(step), **{f"held_out_{k}": v for k, v in scores.items()},
                  "held_out_clearly_better": bool(clear and step > 0),
                  "validation_seconds": round(time.perf_counter() - started, 2)}
        self.records.append(record)
        if self.best is None or (clear and scores["crps"] < self.best["crps"]):
            import jax

            self.best = {**scores, "step": int(step)}
            self.best_params = jax.tree_util.tree_map(np.array, params)  # a copy: the step donates its buffers
        return record

    @property
    def start(self) -> dict:
        return {k.removeprefix("held_out_"): v for k, v in self.records[0].items() if k in SCORES}

    def summary(self, steps: int, seconds: float, device: str) -> dict:
        """What fitting did, on the held-out gaps: before, after (the parameters kept), which were kept."""
        kept_start = self.best["step"] == 0
        return {"held_out_cells": self.check.cells, "matched_to": self.check.draw.matched_to,
                "before": self.start, "after": {k: v for k, v in self.best.items() if k != "step"},
                "best_step": self.best["step"], "steps": int(steps), "seconds": round(seconds, 1),
                "device": device,
                "kept": f"the starting model: no step beat it clearly ({CLEAR_GAIN:g} standard errors of the held-out "
                        "CRPS)" if kept_start
                else f"the fitted parameters of step {self.best['step']}"}
