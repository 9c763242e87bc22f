"""``geonp.NeuralProcess``: a scikit-learn style estimator over xarray and pandas data.

    model = geonp.NeuralProcess(pretrained="gp2d-normal", steps=300).fit(ds, var="t2m")
    pred = model.predict(ds["t2m"], target=4)          # xr.Dataset: mean, std on a 4x finer grid
    model.save("t2m-model"); model = geonp.load("t2m-model")

Constructor arguments are hyperparameters only; ``fit`` learns the feature
normalisation (space and time length units, value and covariate scaling) and
meta-trains on random neighbourhoods of the data; attributes ending in ``_``
exist after fitting. Coordinates reach the model only through the attention
bias, so the model is translation invariant and any domain size works.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import dask.array as dsa
import jax
import numpy as np
import pandas as pd
import xarray as xr

from geonp.calibration import SpreadCalibration
from geonp.errors import CheckpointError, ConfigError, GeonpError, MetadataMismatchError
from geonp.features import counts as counts_lib
from geonp.features import tables as tables_lib
from geonp.features.grids import refined_grid
from geonp.features.scaling import TASK_RADIUS, FeatureScaling, fit_scaling
from geonp.nn import likelihoods
from geonp.nn.models import BSATNPConfig, default_groups
from geonp.outputs import prediction_dataset
from geonp.progress import TILE_PREFIX, TileProgress
from geonp.tiling import ContextSet, TilePredictor, auto_halo, far_from_observations

# the models of the TNP-KR / BSA-TNP / CMANP papers, as settings of one config (geonp.nn.models.BSATNPConfig)
ARCHITECTURES = {
    # biased scan attention (constant memory), anisotropic Gaussian bias folded into q k^T
    "bsa-tnp": {"attention": "scan", "bias": "quadratic"},
    "b-tnp": {"attention": "dense", "bias": "quadratic"},  # the same model, dense O(n^2) attention (reference)
    "tnp-kr": {"attention": "scan", "bias": "kernel"},  # bias = non-negative sum of RKHS kernels per head
    "dka": {"attention": "performer", "bias": "gaussian"},  # Deep Kernel Attention: O(n m) random features
    "tnp-d": {"attention": "dense", "bias": "none", "embed_coordinates": True},  # coordinates in the tokens
    "cmanp": {"family": "cmanp", "bias": "none", "embed_coordinates": True},  # constant memory latents
}
LAZY_ABOVE_POINTS = 4_000_000  # targets larger than this stay lazy unless lazy=False
FAR_CHECK_POINTS = 4_000_000  # targets beyond the reach of the data are counted up to this many points


class NotFittedError(GeonpError, RuntimeError):
    """The estimator was used before ``fit`` (or ``load``)."""


def _resolve_pretrained(spec):
    from geonp.model_store import available, load_model, pretrained

    if spec is None:
        return None
    if isinstance(spec, str) and spec in available():
        return pretrained(spec)
    if Path(spec).is_dir():
        return load_model(spec)
    raise CheckpointError(f"pretrained={spec!r} is neither a bundled model ({available()}) nor a directory "
                          "written by save().")


class NeuralProcess:
    """A transformer neural process (BSA-TNP unless ``arch`` says otherwise) for spatial and spatio-temporal fields.

    Args:
        arch: model family (``geonp.ARCHITECTURES``): ``"bsa-tnp"`` (biased scan attention TNP, the
            default), ``"b-tnp"`` (same, dense attention), ``"tnp-kr"`` (kernel-combination bias),
            ``"dka"`` (Deep Kernel Attention, linear cost), ``"tnp-d"`` (coordinates in the tokens, no
            bias: not translation invariant), ``"cmanp"`` (constant memory latents; not invariant either).
        likelihood: ``"normal"`` for real-valued fields; ``"binomial"`` for positives out of examined
            (``fit(..., trials="n_tested")``), ``"bernoulli"`` for 0/1, ``"poisson"`` for counts
            (``fit(..., exposure="population")``), ``"categorical"`` (or ``{"name": "categorical",
            "num_classes": K}``) for states coded 0..K-1.
        pretrained: name of a bundled model (``geonp.model_store.available()``) or a saved
            directory to start from; ``fit(..., steps=0)`` then only calibrates the normalisation.
        temporal: add a time group to the bias (time becomes a coordinate, not separate tasks).
        num_blocks, width, num_heads, head_dim, ff_dim: network sizes (ignored with ``pretrained``).
        window_points: observed points per training task (the neighbourhood a task covers); also
            sets the length unit of space (a window spans one training task's extent).
        context_fraction, max_context, num_target: how a window is split into context and targets.
        steps, batch_size, learning_rate, time_budget, patience, validation_fraction, seed, progress:
            training options (``time_budget`` in seconds; ``patience`` in validations for early stopping).
    """

    def __init__(self, arch: str = "bsa-tnp", likelihood: str = "normal", pretrained: str | None = None,
                 temporal: bool = False, num_blocks: int = 6, width: int = 64, num_heads: int = 4,
                 head_dim: int = 32, ff_dim: int = 256, window_points: int = 512,
                 context_fraction: tuple[float, float] = (0.1, 0.9), max_context: int = 512,
                 num_target: int = 256, steps: int = 500, batch_size: int = 8, learning_rate: float = 5e-4,
                 time_budget: float | None = None, patience: int | None = None,
                 validation_fraction: float = 0.1, seed: int = 0, progress: bool = True):
        self.arch = arch
        self.likelihood = likelihood
        self.pretrained = pretrained
        self.temporal = temporal
        self.num_blocks = num_blocks
        self.width = width
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.ff_dim = ff_dim
        self.window_points = window_points
        self.context_fraction = context_fraction
        self.max_context = max_context
        self.num_target = num_target
        self.steps = steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.time_budget = time_budget
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ scikit-learn contract

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params) -> NeuralProcess:
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise ConfigError(f"unknown NeuralProcess parameter(s) {sorted(unknown)}; valid: {self._param_names()}.")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        changed = [f"{k}={v!r}" for k, v in self.get_params().items() if defaults.get(k) != v]
        return f"NeuralProcess({', '.join(changed)})"

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "scaling_", None) is not None and getattr(self, "params_", None) is not None

    def _check_fitted(self):
        if not self.is_fitted:
            raise NotFittedError(
                "this NeuralProcess is not fitted yet: call fit(data, var=...) first (fit(data, steps=0) only "
                "calibrates the normalisation of a pretrained model), or load a saved one with geonp.load(path)."
            )

    # ------------------------------------------------------------------ fitting

    def _new_config(self, x_dim: int) -> BSATNPConfig:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown arch {self.arch!r}; available: {sorted(ARCHITECTURES)}.")
        groups = default_groups(temporal=self.temporal, bias=ARCHITECTURES[self.arch]["bias"])
        return BSATNPConfig(x_dim=x_dim, y_dim=1, groups=groups,
                            num_blocks=self.num_blocks, width=self.width, num_heads=self.num_heads,
                            head_dim=self.head_dim, ff_dim=self.ff_dim, likelihood=self.likelihood,
                            **ARCHITECTURES[self.arch])

    def _start(self, x_dim: int):
        """(config, params or None, scaling or None, value centering or None) to start fitting from."""
        loaded = _resolve_pretrained(self.pretrained)
        if loaded is None:
            return self._new_config(x_dim), None, None, None
        config, params, meta = loaded
        if config.x_dim != x_dim:
            if self.steps == 0:
                raise ConfigError(
                    f"the pretrained model takes {config.x_dim} covariate(s) but {x_dim} were given; train (steps > 0) "
                    "to warm-start it with the new covariates, or start from scratch (pretrained=None)."
                )
            config, params = _with_covariates(config, params, x_dim, self.seed)
            meta = {}  # the old normalisation has other covariates
        has_time = any(g.name == "time" for g in config.groups)
        if has_time != bool(self.temporal):
            raise ConfigError(f"pretrained model {'has' if has_time else 'has no'} time group but temporal="
                              f"{self.temporal}; set temporal={has_time}.")
        if likelihoods.get_likelihood(self.likelihood) != config.likelihood:
            raise ConfigError(f"the pretrained model has a {config.likelihood.name!r} likelihood, not "
                              f"{self.likelihood!r}; geonp.pretrained(name) sets it for you.")
        scaling = meta.get("scaling")
        # how the model was trained to see a task's values ("task-scale": standardised by the context)
        center = meta.get("center")
        return config, params, FeatureScaling.from_dict(scaling) if scaling else None, center

    def fit(self, data, var: str | None = None, covariates: Sequence[str] = (), *, trials: str | None = None,
            exposure: str | None = None, spatial_dims=None, time_dim=None, crs=None, **params) -> NeuralProcess:
        """Learn the normalisation of ``data`` and meta-train on random neighbourhoods of it.

        Args:
            data: a gridded DataArray/Dataset, a Dataset with a point (site) dimension, or a DataFrame
                with latitude/longitude (or x/y) columns. NaN values are unobserved.
            var: the variable to model (Datasets and DataFrames).
            covariates: variables that enter the tokens (elevation, ...); they must be given at
                prediction targets too.
            trials: (binomial) the variable holding the number examined; ``var`` holds the positives.
            exposure: (poisson, optional) the variable holding the exposure (population, person-years).
            spatial_dims, time_dim, crs: overrides for coordinate detection.
            **params: any constructor parameter, e.g. ``steps=200`` (``set_params`` first).
        """
        self.set_params(**params)
        if not (isinstance(self.steps, int | np.integer) and self.steps >= 0):
            raise ConfigError(f"steps must be an integer >= 0 (0: calibrate a pretrained model without training), "
                              f"got {self.steps!r}.")
        head = likelihoods.get_likelihood(self.likelihood)
        if isinstance(var, list | tuple):
            if len(var) != 1:
                raise ConfigError(f"var={var!r}: one variable per model; fit one model per variable.")
            var = var[0]
        count_var = _count_variable(head, trials, exposure)
        columns = [var, count_var] if count_var else var
        table = tables_lib.to_table(data, columns, covariates, spatial_dims, time_dim, crs, temporal=self.temporal)
        name = str(table.template.name)
        self._check_observations(table, head, [name] + ([count_var] if count_var else []), "the training data")
        observed = tables_lib.require_observations(table, "the training data")
        config, params0, scaling0, center = self._start(len(covariates))

        hours = table.hours[observed] if table.hours is not None else None
        scaling = fit_scaling(
            table.layout.kind, _snapshots(table, observed, self.seed), table.values[observed][:, :1], [name],
            table.covariates[observed], list(covariates),
            window_points=self.window_points, hours=hours, crs=table.layout.crs,
            value_attrs=[_value_attrs(head, table.template, count_var)], seed=self.seed,
            standardise=head.standardise, center=center,
        )
        if scaling0 is not None and self.steps == 0:
            # a fitted model re-used without training keeps the length units it learned in;
            # values and covariates are re-standardised on this data
            scaling = dataclasses.replace(scaling, space_unit=scaling0.space_unit, time_unit=scaling0.time_unit)

        history, steps_done = [], 0
        if self.steps > 0:
            params0, history, steps_done = self._train(config, params0, table, observed, scaling)
        elif params0 is None:
            raise ConfigError("steps=0 only calibrates a pretrained model; pass pretrained='gp2d-normal' (or a "
                              "saved model) or steps > 0 to train.")

        self.config_ = config
        self.params_ = jax.tree_util.tree_map(np.asarray, params0)
        self.scaling_ = scaling
        self.var_ = name
        self.count_var_ = count_var
        self.covariates_ = tuple(str(c) for c in covariates)
        self.layout_ = dataclasses.asdict(table.layout)
        self.history_ = history
        self.steps_trained_ = steps_done
        self.n_observations_ = int(observed.sum())
        self.calibration_ = self._calibrate(data, table, name, covariates, head)
        # the calibration joins the last record of the history (a record of its own after steps=0)
        self.history_ = [dict(r) for r in history] or [{"step": 0}]
        self.history_[-1]["calibration"] = self.calibration_
        return self

    def _calibrate(self, data, table, name, covariates, head) -> dict:
        """Held-out calibration of the predictive spread on this data (see :mod:`geonp.calibration`)."""
        from geonp import calibration

        if not head.standardise or head.name != "normal":
            return {"status": f"not calibrated: a {head.name} model (only Gaussian fields are)", "std_scale": 1.0}
        if counts_lib.is_survey(table) or self.temporal:
            why = "point data" if counts_lib.is_survey(table) else "a temporal model"
            return {"status": f"not calibrated: {why} (gridded fields only)", "std_scale": 1.0}
        ds, _ = tables_lib.as_dataset(data, name)
        spatial = table.layout.spatial
        if not all(d in ds[name].dims for d in spatial):
            return {"status": "not calibrated: the spatial coordinates are not grid dimensions", "std_scale": 1.0}
        result = calibration.calibrate(self, ds[name], spatial, {c: ds[c] for c in covariates}, seed=self.seed)
        if result["status"] != "calibrated":
            warnings.warn(f"{result['status']}; the predictive spread is the model's own, uncalibrated.",
                          UserWarning, stacklevel=3)
        return result

    @staticmethod
    def _check_observations(table, head, names, what):
        """Clear errors for illegal counts or coordinate-less survey rows; a warning for what is left out."""
        counts_lib.check_point_coordinates(table)
        for label, array in (("value", table.values), ("covariate", table.covariates)):
            infinite = int(np.isinf(array).any(axis=-1).sum()) if array is not None and array.size else 0
            if infinite:
                warnings.warn(f"{what}: {infinite} point(s) hold an infinite {label} (+-inf); they are treated as "
                              f"missing, like NaN. Replace them (e.g. data.where(np.isfinite(data))) to silence "
                              "this, or fix the fill value upstream.", UserWarning, stacklevel=3)
        if not head.standardise:
            counts_lib.check_counts(table, head, names)
        if counts_lib.is_survey(table):
            excluded = counts_lib.excluded_points(table, names)
            if excluded:
                reasons = ", ".join(f"{n} ({why})" for why, n in excluded.items())
                warnings.warn(f"{what}: left out {reasons}; they carry no usable observation.", UserWarning,
                              stacklevel=3)

    def _observed_by_task(self, table, observed, scaling, tasks) -> dict:
        """Per task, the observed points as model inputs: lists of ``[n, ...]`` arrays.

        ``embedding`` is Euclidean in km (geographic) or CRS units, for neighbourhood queries;
        ``space``/``time`` are the bias features; covariates and values are standardised.
        """
        parts = {k: [] for k in ("embedding", "space", "time", "hours", "covariates", "values")}
        for t in tasks:
            m = observed[t]
            x, y = table.x[t, m], table.y[t, m]
            parts["embedding"].append(tables_lib.euclidean_embedding(scaling.kind, x, y))
            parts["space"].append(scaling.space_features(x, y))
            parts["hours"].append(table.hours[t, m] if table.hours is not None else None)
            parts["time"].append(scaling.time_features(table.hours[t, m]) if self.temporal else None)
            parts["covariates"].append(scaling.scale_covariates(table.covariates[t, m]))
            parts["values"].append(scaling.scale_values(table.values[t, m]))
        return parts

    def _patch_sampler(self, table, observed, scaling, tasks):
        from geonp.tasks.patches import PatchSampler

        parts = self._observed_by_task(table, observed, scaling, tasks)
        # windows are nearest neighbours in model units, across space and (temporal models) time
        embedding = [e / scaling.space_unit if t is None else np.concatenate([e / scaling.space_unit, t], -1)
                     for e, t in zip(parts["embedding"], parts["time"], strict=True)]
        return PatchSampler(embedding, parts["space"], parts["time"], parts["covariates"], parts["values"],
                            window_points=self.window_points, context_fraction=tuple(self.context_fraction),
                            max_context=self.max_context, num_target=self.num_target,
                            geographic=scaling.kind == "geographic", center=scaling.center)

    def _train(self, config, params, table, observed, scaling):
        from geonp.training.loop import TrainConfig, train

        rng = np.random.default_rng(self.seed)
        tasks = np.flatnonzero(observed.sum(axis=1) >= 2)
        if tasks.size == 0:
            raise tables_lib.DataError("no task (time step, member ...) has two observed points to train on.")
        n_val = int(round(self.validation_fraction * tasks.size)) if tasks.size >= 5 else 0
        shuffled = rng.permutation(tasks)
        val_tasks, train_tasks = shuffled[:n_val], shuffled[n_val:]
        sampler = self._patch_sampler(table, observed, scaling, train_tasks)
        val_sampler = self._patch_sampler(table, observed, scaling, val_tasks) if n_val else None
        tc = TrainConfig(
            steps=self.steps, batch_size=self.batch_size, learning_rate=self.learning_rate,
            warmup_steps=min(100, max(1, self.steps // 10)), seed=self.seed,
            validate_every=max(10, 10 * math.ceil(self.steps / 100)), validation_batches=2,
            time_budget=self.time_budget, patience=self.patience, progress=self.progress,
        )
        result = train(self._data_config(config, scaling), sampler, tc, params=params, validation_sampler=val_sampler)
        return result.params, result.history, result.step

    @staticmethod
    def _data_config(config: BSATNPConfig, scaling: FeatureScaling) -> BSATNPConfig:
        """The model config with the space group's metric for this data (same parameters)."""
        groups = tuple(scaling.space_group(g) if g.name == "space" else g for g in config.groups)
        return dataclasses.replace(config, groups=groups)

    # ------------------------------------------------------------------ prediction

    def predict(self, context, target=None, *, quantiles: Sequence[float] | None = None, samples: int = 0,
                exceedance: Sequence[float] | None = None, halo: float | str | None = None, tile: int = 128,
                time_tile: int = 24, lazy: bool | None = None, seed: int = 0, spatial_dims=None, time_dim=None,
                progress: bool | None = None, calibrated: bool = True, distance: bool = False,
                joint: bool = False) -> xr.Dataset:
        """Condition on the observed values of ``context`` and predict at ``target``.

        Args:
            context: data like ``fit``'s (a DataArray, or a Dataset holding ``var`` and the covariates).
            target: ``None`` (every cell of the context grid; adds ``filled``), an integer factor
                (a grid that many times finer), a DataArray/Dataset whose coordinates are the targets
                (with the covariates as variables when the model has any), or a DataFrame of points.
            quantiles: probabilities, e.g. ``[0.05, 0.5, 0.95]``; adds a ``quantiles`` variable.
            samples: draws from each point's predictive marginal; adds ``samples``.
            joint: make the ``samples`` draws coherent across the target points of each task (time step,
                member ...), by autoregressive sampling coarse to fine (:mod:`geonp.joint`): region means,
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
                see :mod:`geonp.calibration`); False: the model's own spread.
            distance: add ``distance_to_data``, each target's distance to its nearest observation
                (km on the sphere, CRS units when projected), and ``context_std``, the standard
                deviation of the observations it was conditioned on (the unit of the calibration's floor).
        """
        self._check_fitted()
        quantiles = tuple(float(q) for q in (quantiles or ()))
        bad = [q for q in quantiles if not 0 < q < 1]
        if bad:
            raise ConfigError(f"quantiles must be probabilities strictly between 0 and 1; got {bad}.")
        if int(samples) < 0 or tile < 1 or time_tile < 1:
            raise ConfigError(f"samples must be >= 0 and tile, time_tile >= 1; got {samples}, {tile}, {time_tile}.")
        head = self.config_.likelihood
        self._check_joint(head, joint, int(samples))
        thresholds = self._thresholds(head, exceedance)
        if quantiles and not hasattr(head, "quantile"):
            raise ConfigError(f"a {head.name} model predicts class probabilities; it has no quantiles.")
        s = self.scaling_
        ctx = tables_lib.to_table(context, self._context_var(context), self.covariates_, spatial_dims, time_dim,
                                  s.crs, temporal=self.temporal)
        self._check_observations(ctx, head, [self.var_] + ([self.count_var_] if self.count_var_ else []),
                                 "the context")
        if ctx.layout.kind != s.kind:
            raise MetadataMismatchError(
                f"the model was fitted on {s.kind} coordinates but this data is {ctx.layout.kind} "
                f"({ctx.layout.spatial}); use data in the same kind of coordinates, or pass spatial_dims/crs."
            )
        observed = tables_lib.require_observations(ctx, "the context")
        tgt = self._target_table(context, ctx, target, spatial_dims, time_dim)
        task_map = self._task_map(ctx, tgt)
        empty = sorted(set(np.flatnonzero(observed.sum(axis=1) == 0).tolist()) & set(task_map.tolist()))
        if empty:
            labels = [dict(zip(ctx.task_dims, ctx.task_labels[i], strict=True)) for i in empty[:3]]
            warnings.warn(f"{len(empty)} task(s) have no observation (e.g. {labels}); their predictions are NaN. "
                          "Drop those steps or add observations.", UserWarning, stacklevel=2)
        predictor = TilePredictor(
            config=self._data_config(self.config_, s), params=self.params_, scaling=s,
            context=ContextSet(**self._observed_by_task(ctx, observed, s, range(ctx.num_tasks))),
            task_shape=tuple(tgt.template.sizes[d] for d in tgt.task_dims),
            task_map=task_map, halo=self._halo_distance(halo), time_halo=self._time_halo(halo),
            quantiles=quantiles, num_samples=int(samples), seed=seed, temporal=self.temporal, thresholds=thresholds,
            neighbours=self.max_context if halo is None and not self.temporal else None,  # temporal: by halo
            spread=self._spread() if calibrated else SpreadCalibration(),
            distance_channel=bool(distance), joint=bool(joint),
            progress=bool(joint) and bool(self.progress if progress is None else progress),
        )
        far = self._far_from_data(predictor.context, task_map, tgt)
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
            "model": f"{self.arch} ({self.config_.likelihood.name})", "version": _version(),
            "context_points": int(observed.sum()),
            "context_rule": (f"nearest {predictor.neighbours} per cell" if predictor.neighbours else
                             "all" if predictor.halo is None else f"within {predictor.halo:.4g} of each tile"),
            "halo": "all" if predictor.halo is None else predictor.halo,
            "halo_units": "km" if s.kind == "geographic" else "crs units",
            "steps_trained": int(getattr(self, "steps_trained_", 0)),
            **({"samples": "joint" if joint else "marginal"} if samples else {}),
            **far,
            **self._calibration_attrs(predictor.spread),
        }
        value_attrs = dict(s.value_attrs[0] if s.value_attrs else {})
        if head.standardise:
            value_attrs.update(ctx.template.attrs)
        value_attrs.setdefault("name", self.var_)
        out = prediction_dataset(channels, value_attrs, quantiles, int(samples), source_attrs, provenance,
                                 thresholds=thresholds, classes=_class_labels(head, value_attrs),
                                 distance_units=(provenance["halo_units"] if distance else None),
                                 joint_samples=bool(joint))
        out = out.transpose(*[d for d in tgt.original_dims if d in out.dims], ...)
        if target is None and head.name == "normal":
            observed_values = ctx.template.transpose(*tgt.original_dims)
            if bool(observed_values.notnull().all()):
                warnings.warn("the data have no gap to fill (every cell is observed): 'filled' equals the data and "
                              "'mean' re-predicts the observed cells from their neighbours. Pass target= (a finer "
                              "factor, a grid, points) to predict elsewhere.", UserWarning, stacklevel=2)
            out["filled"] = observed_values.where(observed_values.notnull(), out["mean"]).assign_attrs(
                {**out["mean"].attrs, "long_name": f"observations, gaps filled with the predictive mean of "
                                                  f"{value_attrs.get('long_name', self.var_)}"})
        return out

    def _far_from_data(self, context: ContextSet, task_map, tgt) -> dict:
        """Count (and warn about) targets farther from every observation than one training task's radius."""
        s = self.scaling_
        limit = TASK_RADIUS * s.space_unit
        units = "km" if s.kind == "geographic" else "crs units"
        attrs = {"far_from_data_distance": limit, "far_from_data_units": units}
        if tgt.x.size > FAR_CHECK_POINTS:
            return {**attrs, "far_from_data": "not checked (more than 4M targets)"}
        far = far_from_observations(context, task_map, tgt.x, tgt.y, s.kind, limit)
        n = int(far.sum())
        if n:
            warnings.warn(
                f"{n} of {far.size} target(s) ({100 * n / far.size:.1f}%) lie farther than {limit:.4g} {units} "
                "from any observation (beyond the neighbourhood a training task covers): there the prediction "
                "falls back towards the prior (the neighbourhood mean, a wide spread). They are counted in "
                "attrs['geonp_far_from_data']; add observations or restrict the targets to trust them.",
                UserWarning, stacklevel=3)
        return {**attrs, "far_from_data": n}

    def _spread(self) -> SpreadCalibration:
        return SpreadCalibration.from_calibration(getattr(self, "calibration_", None))

    def _calibration_attrs(self, applied: SpreadCalibration) -> dict:
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
        return attrs

    def _context_var(self, context):
        if getattr(self, "count_var_", None):
            return [self.var_, self.count_var_]
        return None if isinstance(context, xr.DataArray) else self.var_

    def _check_joint(self, head, joint: bool, samples: int):
        from geonp.joint import JOINT_HEADS

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
        return tables_lib.to_table(target, None, self.covariates_, spatial_dims, time_dim, self.scaling_.crs,
                                   task_dims=ctx.task_dims, **kw)

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
        if not halo > 0:
            raise ConfigError(f"halo must be a positive distance, got {halo}.")
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

    # ------------------------------------------------------------------ persistence

    def save(self, path) -> Path:
        """Write the fitted model (weights, config, normalisation) to the directory ``path`` atomically."""
        from geonp.model_store import save_model

        self._check_fitted()
        metadata = {
            "kind": "geonp.NeuralProcess", "estimator": _jsonable(self.get_params()),
            "scaling": self.scaling_.to_dict(), "var": self.var_, "count_var": self.count_var_,
            "covariates": list(self.covariates_),
            "layout": self.layout_, "steps": int(self.steps_trained_), "n_observations": self.n_observations_,
            "history": self.history_[-50:], "calibration": getattr(self, "calibration_", None),
        }
        return save_model(path, self.config_, self.params_, metadata)


def pretrained(name: str, **params) -> NeuralProcess:
    """A model shipped inside the package, by name (offline; ``geonp.model_store.available()`` lists them).

    Models that ship their normalisation (trained on real data or on lattices in cell units) come back
    fitted; the others (``gp2d-normal``, ``prevalence-binomial``) come back ready to calibrate on your
    data without training: ``geonp.pretrained("prevalence-binomial").fit(ds, "positive", trials="examined",
    steps=0)``, or to fine-tune with ``steps > 0``.
    """
    from geonp.model_store import PRETRAINED_DIR, available
    from geonp.model_store import pretrained as load_bundled

    if name not in available():
        raise CheckpointError(f"no pretrained model named {name!r}; available: {available()}.")
    config, _, meta = load_bundled(name)
    if meta.get("kind") == "geonp.NeuralProcess":
        return load(PRETRAINED_DIR / name).set_params(**params)
    params = {"likelihood": config.likelihood.to_dict(), "steps": 0, **params}
    params.setdefault("temporal", any(g.name == "time" for g in config.groups))
    return NeuralProcess(pretrained=name, **params)


def load(path) -> NeuralProcess:
    """Load a model written by :meth:`NeuralProcess.save` (safetensors + JSON; never pickle)."""
    from geonp.model_store import load_model

    config, params, meta = load_model(path)
    if meta.get("kind") != "geonp.NeuralProcess" or "scaling" not in meta:
        raise CheckpointError(
            f"{path} holds model weights without a fitted normalisation (not written by NeuralProcess.save). Use "
            f"geonp.NeuralProcess(pretrained={str(path)!r}).fit(data, steps=0) to calibrate it on your data."
        )
    estimator_params = dict(meta.get("estimator", {}))
    valid = set(NeuralProcess._param_names())
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in estimator_params.items() if k in valid}
    model = NeuralProcess(**kwargs)
    model.config_ = config
    model.params_ = jax.tree_util.tree_map(np.asarray, params)
    model.scaling_ = FeatureScaling.from_dict(meta["scaling"])
    model.var_ = meta["var"]
    model.count_var_ = meta.get("count_var")
    model.covariates_ = tuple(meta.get("covariates", ()))
    model.layout_ = meta.get("layout", {})
    model.history_ = meta.get("history", [])
    model.steps_trained_ = int(meta.get("steps", 0))
    if meta.get("calibration") is not None:
        model.calibration_ = meta["calibration"]
    model.n_observations_ = int(meta.get("n_observations", 0))
    return model


def _snapshots(table, observed, seed: int, limit: int = 16) -> list:
    """Observed points (Euclidean embedding) of up to ``limit`` single fields: one task, one time."""
    rng = np.random.default_rng(seed)
    tasks = np.flatnonzero(observed.sum(axis=1) >= 2)
    out = []
    for t in rng.permutation(tasks)[:limit]:
        m = observed[t]
        points = tables_lib.euclidean_embedding(table.layout.kind, table.x[t, m], table.y[t, m])
        if table.hours is None:
            out.append(points)
            continue
        hours = table.hours[t, m]  # a temporal task holds many time steps: split them
        for h in rng.permutation(np.unique(hours))[:limit]:
            out.append(points[hours == h])
    return out


def _with_covariates(config: BSATNPConfig, params, x_dim: int, seed: int):
    """A warm start with ``x_dim`` covariates: every weight carried over, new embedding rows freshly initialised."""
    import jax.numpy as jnp

    from geonp.nn.models import build_model
    from geonp.training.warm_start import transplant

    config = dataclasses.replace(config, x_dim=x_dim)
    meta = {g.name: jnp.zeros((1, 4, g.dim)) for g in config.groups}
    inputs = (jnp.zeros((1, 4, x_dim)), jnp.ones((1, 4, config.y_columns)), meta, jnp.ones((1, 4), bool),
              jnp.zeros((1, 4, x_dim)), meta)
    fresh = build_model(config).init(jax.random.PRNGKey(seed), *inputs)
    return config, transplant(params, fresh)[0]


def _count_variable(head, trials, exposure) -> str | None:
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


def _value_attrs(head, template, count_var) -> dict:
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


def _class_labels(head, value_attrs) -> tuple[str, ...] | None:
    """Class names of a categorical model: CF ``flag_meanings`` when present, else 0..K-1."""
    if head.name != "categorical":
        return None
    names = str(value_attrs.get("flag_meanings", "")).split()
    return tuple(names) if len(names) == head.num_classes else tuple(str(i) for i in range(head.num_classes))


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def _is_dask(obj) -> bool:
    if isinstance(obj, xr.DataArray):
        return obj.chunks is not None
    if isinstance(obj, xr.Dataset):
        return bool(obj.chunks)
    return False


def _version() -> str:
    from geonp import __version__

    return __version__
