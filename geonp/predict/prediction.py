"""Prediction with a fitted :class:`geonp.NeuralProcess`: targets, context rule, tiles, calibration, outputs.

:class:`PredictionMixin` holds ``predict``: the context's observations become a
:class:`~geonp.predict.context.ContextSet`, the targets a dask array of tiles predicted by a
:class:`~geonp.predict.context.TilePredictor`, and the channels a CF Dataset (:mod:`geonp.xr.outputs`).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from geonp import options
from geonp.calibrate.calibration import SpreadCalibration
from geonp.calibrate.kriging import LocalKriging
from geonp.errors import ConfigError, MetadataMismatchError
from geonp.features import tables as tables_lib
from geonp.features.counts import pool_duplicate_sites, with_unit_exposure
from geonp.features.drift import with_drift
from geonp.features.grids import refined_grid
from geonp.features.scaling import MAX_STANDARDISED, TASK_RADIUS
from geonp.features.support import TRAINED_UP_TO, support_between
from geonp.features.tables import DataError, covariate_alignment_hint
from geonp.predict import conserve as conservation
from geonp.predict.context import ContextSet, TilePredictor, auto_halo, distances_to_data
from geonp.xr.outputs import prediction_dataset
from geonp.xr.progress import TILE_PREFIX, TileProgress

LAZY_ABOVE_POINTS = 4_000_000  # targets larger than this stay lazy unless lazy=False
FAR_CHECK_POINTS = 4_000_000  # targets beyond the reach of the data are counted up to this many points


class PredictionMixin:
    """``predict`` and its steps (mixed into :class:`geonp.NeuralProcess`)."""

    def condition(self, context):
        """Keep ``context`` (data like ``fit``'s) as the observations ``predict(target=...)`` conditions on.

        A constant-memory model (``arch="cmanp"``) also folds them into its conditioned state
        (:mod:`geonp.predict.streaming`) here, once: later :meth:`update` calls add only the new points.
        """
        self._check_fitted()
        self.context_ = context
        self.stream_ = self._new_stream(context) if self.config_.family == "cmanp" else None
        return self

    def update(self, new_observations):
        """Add observations to those kept by :meth:`condition`; ``predict`` then conditions on all of them.

        ``new_observations`` has the context's form: rows of the same table (DataFrame), points along
        the same site dimension, or a field on the same grid whose non-missing cells are the new (or
        corrected) values.

        ``arch="cmanp"``: the new points are folded into the kept state in O(new points), and the old ones
        are never revisited (:mod:`geonp.predict.streaming`), so ``predict`` after ``update`` equals conditioning on
        all data at once in the frame (value centre and scale, origin) set by :meth:`condition`. A task
        whose already observed cells get corrected values is re-folded whole, in the same frame.
        Other architectures re-condition on the union at the next ``predict`` (their context is chosen
        per tile, by count), which equals conditioning on all data at once.
        """
        self._check_fitted()
        current = getattr(self, "context_", None)
        self.context_ = new_observations if current is None else append_observations(current, new_observations)
        if self.config_.family == "cmanp":
            self.stream_ = (self._new_stream(self.context_) if current is None or getattr(self, "stream_", None) is None
                            else self._fold_into_stream(current, new_observations))
        return self

    def _stream_parts(self, data):
        """Task labels, the observed points of ``data`` per task as model inputs, and their raw ``(x, y)``."""
        s = self.scaling_
        table = tables_lib.to_table(data, self._context_var(data), self.covariates_, None, None, s.crs,
                                    temporal=self.temporal)
        table = with_unit_exposure(table, self.config_.likelihood)
        observed = tables_lib.require_observations(table, "the context")
        parts = self._observed_by_task(table, observed, s, range(table.num_tasks))
        keys = [np.stack([table.x[t, observed[t]], table.y[t, observed[t]]], -1) for t in range(table.num_tasks)]
        return table.task_labels, parts, keys

    def _fold(self, state, parts, t):
        from geonp.predict import streaming

        return streaming.fold(self.config_, self.params_, self.scaling_, state, parts["space"][t], parts["time"][t],
                              parts["covariates"][t], parts["values"][t])

    def _new_stream(self, context) -> dict:
        labels, parts, _ = self._stream_parts(context)
        return {label: self._fold(None, parts, t) for t, label in enumerate(labels) if len(parts["values"][t])}

    def _fold_into_stream(self, current, new) -> dict:
        """The kept states with ``new``'s observations folded in; a task with corrected cells is re-folded whole."""
        from geonp.predict.streaming import TaskState

        stream = dict(self.stream_)
        labels, parts, keys = self._stream_parts(new)
        # points: a repeat at a site is one more observation; on a grid, a new value at an observed cell corrects it
        observed_before = {}
        if _is_grid(current):  # each task's observed cells, read once
            labels_before, _, keys_before = self._stream_parts(current)
            observed_before = {lab: _rounded(k) for lab, k in zip(labels_before, keys_before, strict=True)}
        merged = None
        for t, label in enumerate(labels):
            if not len(parts["values"][t]):
                continue
            state = stream.get(label)
            if state is not None and _rounded(keys[t]) & observed_before.get(label, set()):
                if merged is None:
                    merged_labels, merged_parts, _ = self._stream_parts(self.context_)
                    merged = dict(zip(merged_labels, range(len(merged_labels)), strict=True))
                stream[label] = self._fold(TaskState(state.frame, None, 0), merged_parts, merged[label])
            else:
                stream[label] = self._fold(state, parts, t)
        return stream

    def _conditioned(self):
        context = getattr(self, "context_", None)
        if context is None:
            raise ConfigError("predict() without context needs observations kept by model.condition(data) (or "
                              "model.update(data)); or pass them: model.predict(data, target).")
        return context

    def predict(self, context=None, target=None, *, quantiles: Sequence[float] | None = None, samples: int = 0,
                exceedance: Sequence[float] | None = None, halo: float | str | None = None, tile: int = 128,
                time_tile: int = 24, lazy: bool | None = None, seed: int = 0, spatial_dims=None, time_dim=None,
                progress: bool | None = None, calibrated: bool = True, distance: bool = False,
                joint: bool = False, conserve: bool | str = "auto", without: Sequence[str] = ()) -> xr.Dataset:
        """Condition on the observed values of ``context`` and predict at ``target``.

        Args:
            context: data like ``fit``'s (a DataArray, or a Dataset holding ``var`` and the covariates);
                ``None``: the observations kept by :meth:`condition` and :meth:`update`.
            target: ``None`` (every cell of the context grid; adds ``filled``), an integer factor
                (a grid that many times finer), a DataArray/Dataset whose coordinates are the targets
                (with the covariates as variables when the model has any), or a DataFrame of points.
            quantiles: probabilities, e.g. ``[0.05, 0.5, 0.95]``; adds a ``quantiles`` variable.
            samples: draws from each point's predictive marginal; adds ``samples``.
            joint: make the ``samples`` draws coherent across the target points of each task (time step,
                member ...), by autoregressive sampling coarse to fine (:mod:`geonp.predict.joint`): region means,
                areas above a threshold and other functions of many points then have honest spread
                (:func:`geonp.aggregate`). Costs about ``samples`` predictions of the targets; each task's
                targets are predicted as one block. Normal, binomial and poisson models, not temporal.
            exceedance: thresholds t (binomial: prevalence, poisson: rate); adds ``exceedance``
                = P(value > t) per point along a ``threshold`` dimension.
            halo: ``None`` (default): context by count, as in training: the targets are split into cells
                and each cell conditions on its ``max_context`` nearest observations (and every target on
                its own 4 nearest), however dense the data; a distance in km (geographic) or CRS units:
                all context within it around each tile; ``"all"``: all context (exact, slower).
            tile: target tile size in grid cells per side (points for point targets).
            time_tile: time steps per tile for temporal models.
            lazy: return dask-backed variables (compute on write); default: lazy when the context or
                target is dask-backed or the target has more than 4M points.
            calibrated: apply the spread calibration learned by ``fit`` on held-out cells (a factor
                on the std by distance to the nearest observation, ``calibration_["by_distance"]``;
                see :mod:`geonp.calibrate.calibration`); False: the model's own spread.
            conserve: when the targets are a finer grid nested in the context grid (downscaling),
                shift each prediction so that its mean over every context cell equals that cell's
                value, by a smooth correction (:mod:`geonp.predict.conserve`; area-weighted on the
                sphere): ``"auto"`` (default) does so for Gaussian models on in-memory outputs and
                says in ``attrs['geonp_conservation']`` when it does not; ``True`` requires it;
                ``False`` keeps the model's own mean. The spread is not changed.
            without: post-hoc stages to switch off, by name (:data:`STAGES`): ``"drift"`` (the
                field's polynomial drift, :mod:`geonp.features.drift`), ``"blend"`` (the kriging
                blend, :mod:`geonp.calibrate.kriging`), ``"spread"`` (the spread calibration) and
                ``"conservation"``; ``calibrated=False`` is ``without=("blend", "spread")``. For
                ablations: what each stage is worth on your data.
            distance: add ``distance_to_data``, each target's distance to its nearest observation
                (km on the sphere, CRS units when projected), and ``context_std``, the standard
                deviation of the observations it was conditioned on (the unit of the calibration's floor).
        """
        self._check_fitted()
        without = _stages_off(without, calibrated, conserve)
        quantiles, exceedance = options.probabilities(quantiles, "quantiles"), options.numbers(exceedance, "exceedance")
        samples, tile, time_tile, seed = (options.whole_number(v, name, low) for v, name, low in (
            (samples, "samples", 0), (tile, "tile", 1), (time_tile, "time_tile", 1), (seed, "seed", None)))
        if samples > MAX_SAMPLES:
            raise ConfigError(f"samples={samples}: at most {MAX_SAMPLES:,} draws per point (a 95% quantile from "
                              f"{MAX_SAMPLES:,} draws is already within about 1% of the predictive std). For more, "
                              "predict again with another seed= and concatenate the draws.")
        if halo is not None and not isinstance(halo, str) and not options.is_real(halo):
            raise ConfigError(f"halo={halo!r}: pass a distance (a number), None (automatic) or 'all'.")
        stream = None
        if context is None:
            context = self._conditioned()
            stream = None if joint else getattr(self, "stream_", None)  # joint draws go through the tile path
        head = self.config_.likelihood
        self._check_joint(head, joint, int(samples))
        if conserve not in (True, False, "auto"):
            raise ConfigError(f"conserve={conserve!r}: expected 'auto', True or False.")
        if conserve is True and (target is None or head.name != "normal"):
            why = ("target=None predicts the context's own cells" if target is None
                   else f"a {head.name} model's predictions are not shifted (Gaussian models only)")
            raise ConfigError(f"conserve=True, but the coarse cells' means cannot be kept: {why}. Pass a finer "
                              "grid nested in the context grid (target=<factor>) to a Gaussian model, or "
                              "conserve='auto'.")
        thresholds = self._thresholds(head, exceedance)
        if quantiles and not hasattr(head, "quantile"):
            raise ConfigError(f"a {head.name} model predicts class probabilities; it has no quantiles.")
        s = self.scaling_
        ctx = tables_lib.to_table(context, self._context_var(context), self.covariates_, spatial_dims, time_dim,
                                  s.crs, temporal=self.temporal)
        ctx = with_unit_exposure(ctx, head)
        observation_names = [self.var_] + ([self.count_var_] if self.count_var_ else [])
        self._check_observations(ctx, head, observation_names, "the context")
        ctx = pool_duplicate_sites(ctx, head, observation_names, "the context")
        _check_value_scale(ctx, s, head)
        if ctx.layout.kind != s.kind:
            raise MetadataMismatchError(
                f"the model was fitted on {s.kind} coordinates but this data is {ctx.layout.kind} "
                f"({ctx.layout.spatial}); use data in the same kind of coordinates, or pass spatial_dims/crs."
            )
        observed = tables_lib.require_observations(ctx, "the context")
        tgt = self._target_table(context, ctx, target, spatial_dims, time_dim)
        _warn_missing_target_covariates(tgt, self.covariates_)
        task_map = self._task_map(ctx, tgt)
        empty = sorted(set(np.flatnonzero(observed.sum(axis=1) == 0).tolist()) & set(task_map.tolist()))
        if empty:
            labels = [dict(zip(ctx.task_dims, ctx.task_labels[i], strict=True)) for i in empty[:3]]
            warnings.warn(f"{len(empty)} task(s) have no observation (e.g. {labels}); their predictions are NaN. "
                          "Drop those steps or add observations.", UserWarning, stacklevel=2)
        support = self._support(ctx, tgt, joint)
        predictor = TilePredictor(
            config=self._data_config(self.config_, s), params=self.params_, scaling=s,
            context=ContextSet(**with_drift(self._observed_by_task(ctx, observed, s, range(ctx.num_tasks)),
                                            0 if stream is not None or "drift" in without else s.trend_degree)),
            task_shape=tuple(tgt.template.sizes[d] for d in tgt.task_dims),
            task_map=task_map, halo=self._halo_distance(halo), time_halo=self._time_halo(halo),
            quantiles=quantiles, num_samples=int(samples), seed=seed, temporal=self.temporal, thresholds=thresholds,
            neighbours=self.max_context if halo is None and not self.temporal else None,  # temporal: by halo
            spread=SpreadCalibration() if "spread" in without else self._spread(),
            kriging=None if stream is not None or self.temporal else self._kriging("blend" not in without),
            distance_channel=bool(distance), joint=bool(joint),
            progress=bool(joint) and bool(self.progress if progress is None else progress), support=support,
            stream=None if stream is None else tuple(stream.get(label) for label in ctx.task_labels),
        )
        far = self._far_from_data(predictor.context, task_map, tgt, gaps_only=target is None)
        channels = self._channel_array(predictor, tgt, None if joint else tile, time_tile)
        if lazy is None:
            lazy = _is_dask(context) or _is_dask(target) or tgt.x.size > LAZY_ABOVE_POINTS
        if not lazy:
            n_tiles = int(np.prod(channels.data.numblocks))
            show = self.progress if progress is None else progress
            with TileProgress(n_tiles, enabled=show and n_tiles > 1):
                channels = channels.compute()  # a dask.distributed Client, if one is active

        source_attrs = dict(context.attrs) if isinstance(context, xr.Dataset) else {}
        provenance = {
            "model": self.model_description, "version": _version(),
            **({"stages_off": ", ".join(sorted(without))} if without else {}),
            "context_points": int(observed.sum()),
            "context_rule": ("all, folded into the conditioned state (predict.streaming)" if stream is not None else
                             _count_rule(predictor.neighbours, s.far_context) if predictor.neighbours else
                             "all" if predictor.halo is None else f"within {predictor.halo:.4g} of each tile"),
            "halo": "all" if predictor.halo is None else predictor.halo,
            "halo_units": "km" if s.kind == "geographic" else "crs units",
            "steps_trained": int(getattr(self, "steps_trained_", 0)),
            **({"samples": "joint" if joint else "marginal"} if samples else {}),
            **({"context_support": round(support, 3)} if self.config_.support else {}),
            **({"covariates_ignored": ", ".join(s.covariates_ignored)} if s.covariates_ignored else {}),
            **({"trend_degree": 0 if "drift" in without else s.trend_degree} if head.standardise else {}),
            **far,
            **self._calibration_attrs(predictor.spread, predictor.kriging),
            **self._fine_tuning_attrs(),
        }
        value_attrs = dict(s.value_attrs[0] if s.value_attrs else {})
        if head.standardise:
            value_attrs.update(ctx.template.attrs)
        value_attrs.setdefault("name", self.var_)
        out = prediction_dataset(channels, value_attrs, predictor.layout, quantiles, source_attrs, provenance,
                                 thresholds=thresholds, classes=_class_labels(head, value_attrs),
                                 distance_units=provenance["halo_units"], joint_samples=bool(joint))
        if target is not None and head.name == "normal" and "conservation" not in without:
            out = self._conserved(out, ctx, lazy, conserve)
        out = out.transpose(*[d for d in tgt.original_dims if d in out.dims], ...)
        if target is None and head.name == "normal":
            observed_values = ctx.template.transpose(*tgt.original_dims)
            if bool(observed_values.notnull().all()):
                warnings.warn("the data have no gap to fill (every cell is observed): 'filled' equals the data and "
                              "'mean' re-predicts the observed cells from their neighbours. Pass target= (a finer "
                              "factor, a grid, points) to predict elsewhere.", UserWarning, stacklevel=2)
            usable = np.isfinite(observed_values) if np.issubdtype(observed_values.dtype, np.number) else \
                observed_values.notnull()  # +-inf are missing, as fit and predict treat them
            out["filled"] = observed_values.where(usable, out["mean"]).assign_attrs(
                {**out["mean"].attrs, "long_name": f"observations, gaps filled with the predictive mean of "
                                                  f"{value_attrs.get('long_name', self.var_)}"})
        return out

    def _conserved(self, out: xr.Dataset, ctx, lazy: bool, conserve) -> xr.Dataset:
        """``out`` with every context cell's mean kept on a nested finer target grid (:mod:`geonp.predict.conserve`)."""
        if lazy:
            status = ("not applied: the prediction is lazy (dask), and keeping the cells' means needs the whole "
                      "field; pass lazy=False to apply it")
        else:
            y, x = ctx.layout.spatial
            out, status = conservation.conserve(out, ctx.template, y, x, self.scaling_.kind == "geographic")
        if conserve is True and status.startswith("not applied"):
            reason = status.removeprefix("not applied: ")
            raise ConfigError(f"conserve=True, but the coarse cells' means cannot be kept: {reason}. Predict on a "
                              "grid nested in the context grid (target=<factor>), or pass conserve='auto'.")
        out.attrs["geonp_conservation"] = status
        return out

    def _far_from_data(self, context: ContextSet, task_map, tgt, gaps_only: bool = False) -> dict:
        """Count (and warn about) targets farther from every observation than one training task's radius,
        and those beyond the held-out cells' reach (:mod:`geonp.calibrate.held_out`); ``gaps_only``: the targets are
        the context's own cells, of which the observed ones (distance 0) are left out of the quantiles."""
        s = self.scaling_
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
            warnings.warn(
                f"{n} of {far.size} target(s) ({100 * n / far.size:.1f}%) lie farther than {limit:.4g} {units} "
                "from any observation (beyond the neighbourhood a training task covers): there the prediction "
                "falls back towards the prior (the neighbourhood mean, a wide spread). They are counted in "
                "attrs['geonp_far_from_data']; add observations or restrict the targets to trust them.",
                UserWarning, stacklevel=3)
        return {**attrs, "far_from_data": n, **self._held_out_attrs(distance[distance > 0] if gaps_only else distance)}

    def _held_out_attrs(self, distance: np.ndarray) -> dict:
        """The held-out design beside these targets: both distance distributions, the reach, and how many
        targets lie beyond it (where the blend is off and the spread the widest learned)."""
        from geonp.calibrate import held_out

        design = (getattr(self, "calibration_", None) or {}).get("held_out_design")
        if not design:
            return {}
        reach = float(design["reach"])
        levels = held_out.QUANTILES
        targets = held_out.quantiles(distance)
        return {"held_out_matched_to": design["matched_to"], "held_out_reach": reach,
                "targets_beyond_held_out": int((distance > reach).sum()), "distance_quantile_levels": np.array(levels),
                "held_out_distance_quantiles": np.array(list(design["held_out_distance"].values())),
                **({"target_distance_quantiles": np.array(list(targets.values()))} if targets else {})}

    @property
    def model_description(self) -> str:
        """Which model ran: the bundled name or saved path it came from, and what was done to it."""
        head = f"{self.arch}, {self.config_.likelihood.name}"
        named = self.pretrained if isinstance(self.pretrained, str) and self.pretrained != "auto" else None
        source = getattr(self, "source_", None) or getattr(self, "started_from_", None) or named
        trained = int(getattr(self, "steps_trained_", 0))
        if source is None:
            return f"{head}: trained from scratch on the user's data ({trained} steps)"
        from geonp.estimator.releases import available

        kind = "bundled model" if source in available() else "saved model"
        done = f", fine-tuned {trained} steps on the user's data" if trained and not getattr(self, "source_", None) \
            else ""
        return f"{source} ({kind}; {head}){done}"

    def _spread(self) -> SpreadCalibration:
        return SpreadCalibration.from_calibration(getattr(self, "calibration_", None))

    def _kriging(self, blend: bool) -> LocalKriging | None:
        """The kriging kernel fitted on the data (:mod:`geonp.calibrate.kriging`), with its blend weights when
        ``blend`` (the blend is learned with the calibration; without it: the network's own mean)."""
        kriging = LocalKriging.from_calibration(getattr(self, "calibration_", None))
        if kriging is None or blend:
            return kriging
        return dataclasses.replace(kriging, distance=(), weight=())

    def _fine_tuning_attrs(self) -> dict:
        """What fitting on the data did, on its held-out gaps (:mod:`geonp.estimator.fine_tune`)."""
        record = getattr(self, "fine_tuning_", None)
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

    def _calibration_attrs(self, applied: SpreadCalibration, blend: LocalKriging | None) -> dict:
        cal = getattr(self, "calibration_", None) or {"status": "not calibrated: fitted before calibration existed"}
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
        kriging = cal.get("kriging")
        if kriging and blend is not None and blend.blends:  # the blend was applied (calibrated=True)
            attrs["kriging_blend"] = (f"{kriging['kernel']} simple kriging of each neighbourhood (length scale "
                                      f"{kriging['length_scale']:.4g}), blended into the mean by distance to data")
            attrs["kriging_distance"] = np.asarray(kriging["distance"])
            attrs["kriging_weight"] = np.asarray(kriging["weight"])
            if "reach" in kriging:  # tapered to 0 there: never extrapolated beyond the held-out cells
                attrs["kriging_reach"] = kriging["reach"]
            for k, v in kriging.get("held_out_rmse", {}).items():
                attrs[f"kriging_held_out_rmse_{k}"] = v
        return attrs

    def _support(self, ctx, tgt, joint: bool) -> float:
        """log2 of the context cells' side in target cells for a model that reads it (downscaling), else 0."""
        if not self.config_.support:
            return 0.0
        support = support_between(ctx, tgt)
        if support and joint:
            raise ConfigError("joint samples from block means (a context grid coarser than the targets) are not "
                              "supported yet; use marginal samples (joint=False), or predict on the context grid.")
        if support > TRAINED_UP_TO + 0.1:
            warnings.warn(f"the context cells are {2 ** support:.1f} times the target cells' side; the model was "
                          f"trained on block means of up to {2 ** TRAINED_UP_TO:.0f}x, so it extrapolates here. "
                          "Downscale in steps (e.g. 4x, then 2x) or check against a held-out fine field.",
                          UserWarning, stacklevel=3)
        return support

    def _context_var(self, context):
        if getattr(self, "count_var_", None):
            return [self.var_, self.count_var_]
        return None if isinstance(context, xr.DataArray) else self.var_

    def _check_joint(self, head, joint: bool, samples: int):
        from geonp.predict.joint import JOINT_HEADS

        if not joint:
            return
        if samples < 1:
            raise ConfigError("joint=True makes the samples= draws coherent across points; pass samples=n "
                              "(e.g. samples=100) as well.")
        if head.name not in JOINT_HEADS:
            raise ConfigError(f"joint samples need a {', '.join(JOINT_HEADS)} model; this one is {head.name}. "
                              "Use joint=False for independent draws per point.")
        if self.temporal:
            raise ConfigError("joint samples are drawn over space, one task at a time; a temporal model mixes "
                              "time steps. Predict one time step at a time with a spatial model, or joint=False.")

    @staticmethod
    def _thresholds(head, exceedance) -> tuple[float, ...]:
        thresholds = tuple(float(t) for t in (exceedance or ()))
        if not thresholds:
            return ()
        if not hasattr(head, "exceedance"):
            raise ConfigError(f"exceedance= needs a binomial, bernoulli or poisson model; this one is {head.name}. "
                              "For a Gaussian field use quantiles= instead.")
        upper = 1.0 if head.name in ("binomial", "bernoulli") else math.inf
        bad = [t for t in thresholds if not 0 < t < upper]
        if bad:
            raise ConfigError(f"exceedance thresholds must lie in (0, {upper}) for a {head.name} model; got {bad}.")
        return thresholds

    def _target_table(self, context, ctx, target, spatial_dims, time_dim):
        kw = dict(temporal=self.temporal, need_values=False, time_reference=ctx.time_reference)
        if target is None:  # the context's own points, covariates included
            return dataclasses.replace(ctx, values=None)
        if isinstance(target, int | float | np.integer | np.floating) and not isinstance(target, bool):
            if self.covariates_:
                raise MetadataMismatchError(
                    f"the model uses covariates {list(self.covariates_)}, which a resolution factor cannot "
                    "provide; pass target=<a Dataset on the fine grid holding those variables>."
                )
            ds, _ = tables_lib.as_dataset(context, self._context_var(context))
            target = refined_grid(ds, ctx.layout, target)
        if isinstance(target, pd.DataFrame):
            target = tables_lib.dataframe_to_dataset(target)
        if isinstance(target, xr.DataArray):
            target = target.to_dataset(name=str(target.name) if target.name is not None else "_target")
        if not isinstance(target, xr.Dataset):
            raise ConfigError(f"target must be None, a resolution factor, a DataArray/Dataset or a DataFrame; got "
                              f"{type(target).__name__}.")
        # broadcast the target over the context's task dims it lacks (each time step, member ...)
        missing = {d: ctx.template[d].values for d in ctx.task_dims
                   if d not in target.dims and d in ctx.template.coords}
        if missing:
            target = target.expand_dims(missing)
        tgt = tables_lib.to_table(target, None, self.covariates_, spatial_dims, time_dim, self.scaling_.crs,
                                  task_dims=ctx.task_dims, **kw)
        if tgt.layout.kind != ctx.layout.kind:
            raise MetadataMismatchError(
                f"the target's coordinates are {tgt.layout.kind} ({tgt.layout.spatial}) but the context's and the "
                f"model's are {ctx.layout.kind} ({ctx.layout.spatial}); give the target the same kind of "
                "coordinates (reproject it, e.g. with pyproj) or name them with spatial_dims=.")
        dropped = {d: n for d, n in target.sizes.items() if d not in tgt.template.dims and n > 1}
        if dropped:
            raise MetadataMismatchError(
                f"the target has dimension(s) {dropped} that neither the context ({list(ctx.template.dims)}) nor "
                "the model's coordinates have, so there is nothing to predict along them. Select one step (e.g. "
                f"target.isel({next(iter(dropped))}=0)) and broadcast the prediction afterwards, or give the "
                "context the same dimension.")
        return tgt

    @staticmethod
    def _task_map(ctx, tgt) -> np.ndarray:
        if tuple(tgt.task_dims) != tuple(ctx.task_dims):
            raise MetadataMismatchError(
                f"the target's task dimensions {list(tgt.task_dims)} do not match the context's "
                f"{list(ctx.task_dims)}; select them (e.g. .isel(time=0)) or give the target the same dims."
            )
        lookup = {label: i for i, label in enumerate(ctx.task_labels)}
        labels = tgt.task_labels
        missing = [lab for lab in labels if lab not in lookup]
        if missing:
            raise MetadataMismatchError(
                f"{len(missing)} target task(s) (e.g. {dict(zip(tgt.task_dims, missing[0], strict=True))}) have no "
                "context with the same coordinates; select matching steps."
            )
        return np.array([lookup[lab] for lab in labels], np.int64)


    def _halo_distance(self, halo):
        if isinstance(halo, str):
            if halo != "all":
                raise ConfigError(f"halo={halo!r}: pass a distance, None (automatic) or 'all'.")
            return None
        if halo is None:
            return auto_halo(self.params_, "space", self.config_) * self.scaling_.space_unit
        if not (halo > 0 and math.isfinite(halo)):
            raise ConfigError(f"halo must be a positive, finite distance, got {halo}.")
        return float(halo)

    def _time_halo(self, halo):
        if not self.temporal or isinstance(halo, str):
            return None
        return auto_halo(self.params_, "time", self.config_) * self.scaling_.time_unit

    def _channel_array(self, predictor: TilePredictor, tgt, tile: int, time_tile: int) -> xr.DataArray:
        t = tgt.template
        shape = tuple(t.shape)
        n_task = len(tgt.task_dims)
        point_chunks = []
        for d in tgt.point_dims:
            if d == tgt.layout.time and self.temporal:
                point_chunks.append(time_tile)
            elif tile is None:  # joint draws: one block per task
                point_chunks.append(t.sizes[d])
            else:
                point_chunks.append(tile if len(tgt.point_dims) > 1 else tile * tile)
        chunks = (1,) * n_task + tuple(point_chunks)
        inputs = [tgt.x, tgt.y] + ([tgt.hours] if self.temporal else [])
        inputs += [tgt.covariates[..., j] for j in range(tgt.covariates.shape[-1])]
        arrays = [dsa.from_array(np.asarray(a).reshape(shape), chunks=chunks) for a in inputs]
        n_ch = predictor.num_channels
        from dask.base import tokenize

        name = f"{TILE_PREFIX}-{tokenize(predictor.config.to_dict(), *[a.name for a in arrays], id(predictor))}"
        data = dsa.map_blocks(predictor, *arrays, new_axis=len(shape), chunks=arrays[0].chunks + ((n_ch,),),
                              dtype=np.float32, meta=np.empty((0,) * (len(shape) + 1), np.float32), name=name)
        coords = {k: v for k, v in t.coords.items()}
        return xr.DataArray(data, dims=tuple(t.dims) + ("channel",), coords=coords)


STAGES = ("drift", "blend", "spread", "conservation")  # predict's post-hoc stages, each can be switched off


def _stages_off(without, calibrated: bool, conserve) -> frozenset:
    """The stages ``predict`` leaves out: ``without`` (checked), plus those ``calibrated`` / ``conserve`` say."""
    names = (without,) if isinstance(without, str) else without
    try:
        names = frozenset(names)
    except TypeError:
        raise ConfigError(f"without={without!r}: expected stage names from {list(STAGES)}, e.g. "
                          "without=['blend'].") from None
    unknown = sorted(str(n) for n in names - set(STAGES))
    if unknown:
        raise ConfigError(f"without={sorted(map(str, names))}: unknown stage(s) {unknown}; the stages are "
                          f"{list(STAGES)}.")
    return names | ({"blend", "spread"} if not calibrated else set()) | ({"conservation"} if conserve is False
                                                                            else set())


MAX_SAMPLES = 100_000  # draws per point: more adds nothing a summary needs and only costs memory and minutes


def _check_value_scale(ctx, scaling, head) -> None:
    """Context values (and covariates) millions of fitted standard deviations away are data in other units:
    the network would overflow to NaN in float32, so they are refused with how to fix it."""
    pairs = [("covariate", scaling.covariate_names, scaling.scale_covariates(ctx.covariates))]
    if head.standardise:
        pairs.insert(0, ("variable", scaling.value_names, scaling.scale_values(ctx.values[..., :1])))
        raw = ctx.values[..., 0][np.isfinite(ctx.values[..., 0])]
        spread = float(np.ptp(raw)) / scaling.value_std[0] if raw.size else 0.0  # in fitted standard deviations
        if 0 < spread < 1 / MAX_STANDARDISED:
            raise DataError(
                f"the context's {scaling.value_names[0]!r} varies by {spread:.3g} of the standard deviation the model "
                "was fitted on: it is in other units (or scaled) than the fitting data. Refit on this data "
                "(model.fit(data, steps=0) re-learns the normalisation) or convert it to the fitting data's units.")
    for kind, names, standardised in pairs:
        for i, name in enumerate(names):
            column = np.abs(standardised[..., i])
            column = column[np.isfinite(column)]
            if column.size and column.max() > MAX_STANDARDISED:
                raise DataError(
                    f"the context's {kind} {name!r} lies up to {column.max():.3g} standard deviations from what the "
                    f"model was fitted on: it is in other units (or scaled) than the fitting data. Refit on this "
                    "data (model.fit(data, steps=0) re-learns the normalisation) or convert it to the fitting "
                    "data's units.")


def _count_rule(count: int, far: int) -> str:
    if far:
        return f"nearest {count - far} and {far} far (geonp.features.far_context) per cell"
    return f"nearest {count} per cell"


def _warn_missing_target_covariates(tgt, names) -> None:
    if not names:
        return
    located = np.isfinite(tgt.x) & np.isfinite(tgt.y)
    missing = located & ~np.isfinite(tgt.covariates).all(axis=-1)
    if missing.any():
        hint = covariate_alignment_hint(int(missing.sum()), int(located.sum()))
        warnings.warn(f"{int(missing.sum())} of {int(located.sum())} target point(s) have no value of a covariate "
                      f"({list(names)}); their predictions are NaN. Fill the covariate there (e.g. from a finer "
                      f"product) or mask those points.{hint}", UserWarning, stacklevel=3)


def _class_labels(head, value_attrs) -> tuple[str, ...] | None:
    """Class names of a categorical model: CF ``flag_meanings`` when present, else 0..K-1."""
    if head.name != "categorical":
        return None
    names = str(value_attrs.get("flag_meanings", "")).split()
    return tuple(names) if len(names) == head.num_classes else tuple(str(i) for i in range(head.num_classes))


def _is_dask(obj) -> bool:
    if isinstance(obj, xr.DataArray):
        return obj.chunks is not None
    if isinstance(obj, xr.Dataset):
        return bool(obj.chunks)
    return False


def _version() -> str:
    from geonp import __version__

    return __version__


def _rounded(points) -> set:
    """``{(x, y)}`` of ``points [n, 2]``, rounded so that the same cell read twice is one key."""
    return {tuple(p) for p in np.round(points, 9)}


def _is_grid(data) -> bool:
    if not isinstance(data, xr.DataArray | xr.Dataset):
        return False
    from geonp.features.coordinates import find_coordinates

    layout = find_coordinates(data)
    return layout.y in data.dims


def append_observations(current, new):
    """``current`` observations with ``new`` ones added: rows of a table, sites along the site dimension,
    or, on a grid, the new non-missing values over the old ones."""
    if isinstance(current, pd.DataFrame) or isinstance(new, pd.DataFrame):
        if not (isinstance(current, pd.DataFrame) and isinstance(new, pd.DataFrame)):
            raise ConfigError("update() takes new observations of the context's kind: a DataFrame after a DataFrame.")
        return pd.concat([current, new], ignore_index=True)
    if not isinstance(new, type(current)):
        raise ConfigError(f"update() takes new observations of the context's kind ({type(current).__name__}), "
                          f"got {type(new).__name__}.")
    from geonp.features.coordinates import find_coordinates

    layout = find_coordinates(current)
    sites = set(current[layout.y].dims) if layout.y in current.coords else set()
    if len(sites) == 1 and layout.y not in current.dims:  # point data: sites along one dimension
        (dim,) = sites
        merged = xr.concat([current, new], dim=dim, data_vars="all", coords="different", compat="equals")
        return merged.assign_coords({dim: np.arange(merged.sizes[dim])}) if dim in merged.coords else merged
    return new.combine_first(current)
