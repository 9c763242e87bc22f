"""Prediction with a fitted :class:`geonp.NeuralProcess`, as a short sequence of named steps.

``predict`` checks its options (:mod:`geonp.predict.options`), reads the context and the targets
(:mod:`geonp.predict.targets`), builds a :class:`~geonp.predict.tiles.TilePredictor` (context by count,
the network call, the post-processing stages of :mod:`geonp.predict.stages`), computes its tiles, and
turns the channels into a CF Dataset (:mod:`geonp.xr.outputs`) that says what was done
(:mod:`geonp.predict.provenance`); on a finer nested grid, each coarse cell's mean is kept
(:mod:`geonp.predict.conserve`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from geonp.calibrate.spread import SpreadCalibration
from geonp.errors import ConfigError, MetadataMismatchError, warn
from geonp.features import counts as counts_lib
from geonp.features import tables as tables_lib
from geonp.features.counts import pool_duplicate_sites, with_unit_exposure
from geonp.features.drift import with_drift
from geonp.predict import conditioning, provenance, targets
from geonp.predict import conserve as conservation
from geonp.predict import options as predict_options
from geonp.predict.context import ContextSet
from geonp.predict.tiles import TilePredictor
from geonp.xr.outputs import prediction_dataset
from geonp.xr.progress import TileProgress

LAZY_ABOVE_POINTS = 4_000_000  # targets larger than this stay lazy unless lazy=False


class PredictionMixin:
    """``predict`` and its steps (mixed into :class:`geonp.NeuralProcess`)."""

    def condition(self, context):
        """Keep ``context`` (data like ``fit``'s) as the observations ``predict(target=...)`` conditions on.

        A constant-memory model (``arch="cmanp"``) also folds them into its conditioned state
        (:mod:`geonp.predict.streaming`) here, once: later :meth:`update` calls add only the new points.
        """
        self._check_fitted()
        self.context_ = context
        self.stream_ = conditioning.new_stream(self, context) if self.config_.family == "cmanp" else None
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
        self.context_ = (new_observations if current is None
                         else conditioning.append_observations(current, new_observations))
        if self.config_.family == "cmanp":
            self.stream_ = (conditioning.new_stream(self, self.context_)
                            if current is None or getattr(self, "stream_", None) is None
                            else conditioning.fold_into_stream(self, current, new_observations))
        return self

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
            without: post-hoc stages to switch off, by name (:data:`geonp.predict.options.STAGES`): ``"drift"`` (the
                field's polynomial drift, :mod:`geonp.features.drift`), ``"blend"`` (the kriging
                blend, :mod:`geonp.calibrate.kriging`), ``"spread"`` (the spread calibration) and
                ``"conservation"``; ``calibrated=False`` is ``without=("blend", "spread")``. For
                ablations: what each stage is worth on your data.
            distance: add ``distance_to_data``, each target's distance to its nearest observation
                (km on the sphere, CRS units when projected), and ``context_std``, the standard
                deviation of the observations it was conditioned on (the unit of the calibration's floor).
        """
        self._check_fitted()
        state, head = self.state_, self.config_.likelihood
        opts = predict_options.check(head, target, self.temporal, quantiles=quantiles, samples=samples,
                                     exceedance=exceedance, halo=halo, tile=tile, time_tile=time_tile, lazy=lazy,
                                     seed=seed, progress=progress, calibrated=calibrated, distance=distance,
                                     joint=joint, conserve=conserve, without=without)
        stream = None
        if context is None:
            context = self._conditioned()
            stream = None if joint else getattr(self, "stream_", None)  # joint draws go through the tile path
        ctx, observed = self._context_table(context, spatial_dims, time_dim)
        tgt = targets.target_table(self, context, ctx, target, spatial_dims, time_dim)
        targets.warn_missing_target_covariates(tgt, state.covariates)
        task_map = targets.task_map(ctx, tgt)
        _warn_empty_tasks(ctx, observed, task_map)
        predictor = self._tile_predictor(ctx, observed, tgt, task_map, opts, stream)
        far = provenance.far_from_data(state, predictor.context, task_map, tgt, gaps_only=target is None)
        channels = targets.channel_array(predictor, tgt, None if joint else opts.tile, opts.time_tile, self.temporal)
        lazy = opts.lazy if opts.lazy is not None else (
            _is_dask(context) or _is_dask(target) or tgt.x.size > LAZY_ABOVE_POINTS)
        if not lazy:
            channels = self._computed(channels, opts)
        value_attrs = dict(state.scaling.value_attrs[0] if state.scaling.value_attrs else {})
        if head.standardise:
            value_attrs.update(ctx.template.attrs)
        value_attrs.setdefault("name", state.var)
        described = self._provenance(predictor, observed, opts, stream, far)
        out = prediction_dataset(channels, value_attrs, predictor.layout, opts.quantiles,
                                 dict(context.attrs) if isinstance(context, xr.Dataset) else {}, described,
                                 thresholds=opts.thresholds, classes=_class_labels(head, value_attrs),
                                 distance_units=described["halo_units"], joint_samples=opts.joint)
        if target is not None and head.name == "normal" and "conservation" not in opts.stages_off:
            out = self._conserved(out, ctx, lazy, opts.conserve)
        out = out.transpose(*[d for d in tgt.original_dims if d in out.dims], ...)
        if target is None and head.name == "normal":
            out["filled"] = _filled(out, ctx, tgt, value_attrs, state.var)
        return out

    def _context_table(self, context, spatial_dims, time_dim):
        """The context as a checked table (counts pooled by site), and its observed mask ``[tasks, points]``."""
        s, head = self.scaling_, self.config_.likelihood
        ctx = tables_lib.to_table(context, self._context_var(context), self.covariates_, spatial_dims, time_dim,
                                  s.crs, temporal=self.temporal)
        ctx = with_unit_exposure(ctx, head)
        observation_names = [self.var_] + ([self.count_var_] if self.count_var_ else [])
        counts_lib.check_observations(ctx, head, observation_names, "the context")
        ctx = pool_duplicate_sites(ctx, head, observation_names, "the context")
        targets.check_value_scale(ctx, s, head)
        if ctx.layout.kind != s.kind:
            raise MetadataMismatchError(
                f"the model was fitted on {s.kind} coordinates but this data is {ctx.layout.kind} "
                f"({ctx.layout.spatial}); use data in the same kind of coordinates, or pass spatial_dims/crs."
            )
        return ctx, tables_lib.require_observations(ctx, "the context")

    def _tile_predictor(self, ctx, observed, tgt, task_map, opts, stream) -> TilePredictor:
        """The callable each tile runs: context by count, the network, the stages that are on."""
        s, off = self.scaling_, opts.stages_off
        parts = tables_lib.observed_by_task(ctx, observed, s, range(ctx.num_tasks), self.temporal)
        return TilePredictor(
            config=s.model_config(self.config_), params=self.params_, scaling=s,
            context=ContextSet(**with_drift(parts, 0 if stream is not None or "drift" in off else s.trend_degree)),
            task_shape=tuple(tgt.template.sizes[d] for d in tgt.task_dims),
            task_map=task_map, halo=targets.halo_distance(self, opts.halo),
            time_halo=targets.time_halo(self, opts.halo),
            quantiles=opts.quantiles, num_samples=opts.samples, seed=opts.seed, temporal=self.temporal,
            thresholds=opts.thresholds,
            neighbours=self.max_context if opts.halo is None and not self.temporal else None,  # temporal: by halo
            spread=SpreadCalibration() if "spread" in off else provenance.spread(self.calibration_),
            kriging=(None if stream is not None or self.temporal else
                     provenance.kriging(self.calibration_, "blend" not in off)),
            kriging_candidates=provenance.kriging_candidates(self.calibration_) if opts.distance else (),
            distance_channel=opts.distance, joint=opts.joint,
            progress=opts.joint and bool(self.progress if opts.progress is None else opts.progress),
            support=targets.support(self, ctx, tgt, opts.joint),
            stream=None if stream is None else tuple(stream.get(label) for label in ctx.task_labels),
        )

    def _computed(self, channels: xr.DataArray, opts) -> xr.DataArray:
        """The tiles computed now, with a progress bar (on a dask.distributed Client, if one is active)."""
        n_tiles = int(np.prod(channels.data.numblocks))
        show = self.progress if opts.progress is None else opts.progress
        with TileProgress(n_tiles, enabled=show and n_tiles > 1):
            return channels.compute()

    def _provenance(self, predictor: TilePredictor, observed, opts, stream, far: dict) -> dict:
        """``attrs["geonp_*"]``: which model ran, on what context, and which stages (with what they learned)."""
        s, without = self.scaling_, opts.stages_off
        return {
            "model": self.model_description, "version": _version(),
            **({"stages_off": ", ".join(sorted(without))} if without else {}),
            "context_points": int(observed.sum()),
            "context_rule": ("all, folded into the conditioned state (predict.streaming)" if stream is not None else
                             _count_rule(predictor.neighbours, s.far_context) if predictor.neighbours else
                             "all" if predictor.halo is None else f"within {predictor.halo:.4g} of each tile"),
            "halo": "all" if predictor.halo is None else predictor.halo,
            "halo_units": "km" if s.kind == "geographic" else "crs units",
            "steps_trained": int(self.steps_trained_),
            **({"samples": "joint" if opts.joint else "marginal"} if opts.samples else {}),
            **({"context_support": round(predictor.support, 3)} if self.config_.support else {}),
            **({"covariates_ignored": ", ".join(s.covariates_ignored)} if s.covariates_ignored else {}),
            **({"trend_degree": 0 if "drift" in without else s.trend_degree}
               if self.config_.likelihood.standardise else {}),
            **far,
            **provenance.calibration_attrs(self.calibration_, predictor.spread, predictor.kriging),
            **provenance.fine_tuning_attrs(self.fine_tuning_),
        }

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

    @property
    def model_description(self) -> str:
        """Which model ran: the bundled name or saved path it came from, and what was done to it."""
        return provenance.describe(self.arch, self.pretrained, self.state_)

    def _context_var(self, context):
        if getattr(self, "count_var_", None):
            return [self.var_, self.count_var_]
        return None if isinstance(context, xr.DataArray) else self.var_


def _count_rule(count: int, far: int) -> str:
    if far:
        return f"nearest {count - far} and {far} far (geonp.features.far_context) per cell"
    return f"nearest {count} per cell"


def _warn_empty_tasks(ctx, observed, task_map) -> None:
    empty = sorted(set(np.flatnonzero(observed.sum(axis=1) == 0).tolist()) & set(task_map.tolist()))
    if empty:
        labels = [dict(zip(ctx.task_dims, ctx.task_labels[i], strict=True)) for i in empty[:3]]
        warn(f"{len(empty)} task(s) have no observation (e.g. {labels}); their predictions are NaN. "
             "Drop those steps or add observations.")


def _filled(out: xr.Dataset, ctx, tgt, value_attrs: dict, var: str) -> xr.DataArray:
    """The observations with their gaps filled by the predictive mean (``target=None``)."""
    observed_values = ctx.template.transpose(*tgt.original_dims)
    if bool(observed_values.notnull().all()):
        warn("the data have no gap to fill (every cell is observed): 'filled' equals the data and "
             "'mean' re-predicts the observed cells from their neighbours. Pass target= (a finer "
             "factor, a grid, points) to predict elsewhere.")
    usable = np.isfinite(observed_values) if np.issubdtype(observed_values.dtype, np.number) else \
        observed_values.notnull()  # +-inf are missing, as fit and predict treat them
    return observed_values.where(usable, out["mean"]).assign_attrs(
        {**out["mean"].attrs, "long_name": f"observations, gaps filled with the predictive mean of "
                                          f"{value_attrs.get('long_name', var)}"})


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
