"""Fitting a :class:`geonp.NeuralProcess`: the model to start from, the normalisation, meta-training on
random neighbourhoods of the data, and the held-out calibration of the predictive spread.

:class:`FittingMixin` holds ``fit`` and the steps it takes; the estimator class itself
(:mod:`geonp.estimator.estimator`) only holds the hyperparameters.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Sequence

import jax
import numpy as np

from geonp import options
from geonp.calibrate import choices
from geonp.calibrate import covariates as selection_lib
from geonp.errors import CheckpointError, ConfigError, warn
from geonp.estimator import fine_tune as fine_tuning
from geonp.estimator.state import FittedModel
from geonp.features import counts as counts_lib
from geonp.features import drift as drift_lib
from geonp.features import tables as tables_lib
from geonp.features.scaling import FeatureScaling, fit_scaling
from geonp.nn import likelihoods
from geonp.nn.models import BSATNPConfig, default_groups

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
# fine-tuning a model: half its tasks hide one contiguous gap (prediction's task), at a small learning rate
FINE_TUNING_GAP_SHARE, FINE_TUNING_RATE, FINE_TUNING_WARMUP, SCRATCH_RATE = 0.5, 1e-4, 20, 5e-4
NETWORK_SIZES = ("num_blocks", "width", "num_heads", "head_dim", "ff_dim")


def _resolve_pretrained(spec):
    from geonp.estimator.releases import release

    if spec is None:
        return None
    try:
        return release(spec)
    except CheckpointError as err:
        raise CheckpointError(f"pretrained={err}") from None



class FittingMixin:
    """``fit`` and its steps (mixed into :class:`geonp.NeuralProcess`)."""

    def _new_config(self, x_dim: int) -> BSATNPConfig:
        if self.arch not in ARCHITECTURES:
            raise ConfigError(f"unknown arch {self.arch!r}; available: {sorted(ARCHITECTURES)}.")
        groups = default_groups(temporal=self.temporal, bias=ARCHITECTURES[self.arch]["bias"])
        return BSATNPConfig(x_dim=x_dim, y_dim=1, groups=groups,
                            num_blocks=self.num_blocks, width=self.width, num_heads=self.num_heads,
                            head_dim=self.head_dim, ff_dim=self.ff_dim, likelihood=self.likelihood,
                            **ARCHITECTURES[self.arch])

    def _starting_model(self, target, covariates) -> str | None:
        """What ``pretrained`` names: for ``"auto"``, the bundled model for this job, unless the network's
        architecture or sizes were set (then a new network of them)."""
        if self.pretrained != "auto":
            return self.pretrained
        from geonp.estimator.releases import default_model

        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        sized = [n for n in ("arch", *NETWORK_SIZES) if getattr(self, n) != defaults[n]]
        return None if sized else default_model(target, covariates, self.likelihood, self.temporal)

    def _start(self, x_dim: int, start: str | None = None):
        """(config, params or None, scaling or None, {center, far_context}) to start fitting from ``start``."""
        loaded = _resolve_pretrained(start)
        if loaded is None:
            return self._new_config(x_dim), None, None, {"center": None, "far_context": 0}
        config, params, meta = loaded
        # a model with covariate slots takes 0..K covariates zero-shot (FeatureScaling checks K)
        if not config.covariate_slots and config.x_dim != x_dim:
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
        # how it was trained to see a task's values ("task-scale": standardised by the context), and how many
        # of a full context's slots went to far observations (geonp.features.far_context)
        rule = {"center": meta.get("center"), "far_context": int(meta.get("far_context", 0))}
        return config, params, FeatureScaling.from_dict(scaling) if scaling else None, rule

    def _check_training_options(self) -> None:
        """Every training option's type and range, before any data is read (a ConfigError saying what to pass)."""
        if not (isinstance(self.steps, int | np.integer) and not isinstance(self.steps, bool) and self.steps >= 0):
            raise ConfigError(f"steps must be an integer >= 0 (0: calibrate a pretrained model without training), "
                              f"got {self.steps!r}.")
        for name, low in (("batch_size", 1), ("window_points", 2), ("max_context", 1), ("num_target", 1),
                          ("num_blocks", 1), ("width", 1), ("num_heads", 1), ("head_dim", 1), ("ff_dim", 1),
                          ("seed", 0)):
            options.whole_number(getattr(self, name), name, low)
        if self.patience is not None:
            options.whole_number(self.patience, "patience", 1)
        if self.learning_rate != "auto":
            options.positive_number(self.learning_rate, "learning_rate ('auto' or a number)")
        options.positive_number(self.time_budget, "time_budget (seconds)", optional=True)
        options.fraction(self.validation_fraction, "validation_fraction", low_open=False)
        low_high = self.context_fraction
        if not (isinstance(low_high, tuple | list) and len(low_high) == 2
                and all(options.is_real(f) and 0 < f < 1 for f in low_high) and low_high[0] <= low_high[1]):
            raise ConfigError(f"context_fraction={low_high!r}: expected (low, high) with 0 < low <= high < 1, "
                              "the share of a training window given as context, e.g. (0.1, 0.9).")
        if not isinstance(self.progress, bool | np.bool_):
            raise ConfigError(f"progress={self.progress!r}: expected True or False.")

    def fit(self, data, var: str | None = None, covariates: Sequence[str] = (), *, trials: str | None = None,
            exposure: str | None = None, spatial_dims=None, time_dim=None, crs=None, target=None, **params):
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
            target: the targets ``predict`` will be asked for (as ``predict``'s ``target``): the cells
                ``fit`` holds out to learn its choices are drawn to lie as far from the data as these do
                (:mod:`geonp.calibrate.held_out`). ``None``: the data's missing cells (filling gaps).
            **params: any constructor parameter, e.g. ``steps=200`` (``set_params`` first).
        """
        self.set_params(**params)
        self._check_training_options()
        head = likelihoods.get_likelihood(self.likelihood)
        if not (self.trend == "auto" or (self.trend in drift_lib.DEGREES and not isinstance(self.trend, bool))):
            raise ConfigError(f"trend must be 'auto' or a polynomial degree in {drift_lib.DEGREES} (0: no drift), "
                              f"got {self.trend!r}.")
        count_var = counts_lib.count_variable(head, trials, exposure)
        table, observed = self._training_table(data, var, count_var, covariates, head, spatial_dims, time_dim, crs)
        name = str(table.template.name)
        started_from = self._starting_model(target, covariates)
        config, params0, scaling0, context_rule = self._start(len(covariates), started_from)
        scaling = self._scaling(table, observed, count_var, covariates, head, config, scaling0, context_rule)
        if self.steps == 0 and params0 is None:
            raise ConfigError("steps=0 only calibrates a pretrained model; pass pretrained='auto' or a bundled or "
                              "saved model, or steps > 0 to train a new network.")
        state = FittedModel(config=config, params=params0, scaling=scaling, var=name, count_var=count_var,
                            covariates=tuple(str(c) for c in covariates), layout=dataclasses.asdict(table.layout),
                            n_observations=int(observed.sum()), started_from=started_from)
        if self.steps > 0:
            state = self._train(state, table, observed, (data, name, covariates, head, target, spatial_dims, time_dim))
        state = state.replace(params=jax.tree_util.tree_map(np.asarray, state.params))
        state, selection = choices.select_covariates(self, state, data, table, observed, name, count_var, covariates)
        state, on_grid = choices.calibrate(self, state, data, table, name, covariates, head,
                                           (target, spatial_dims, time_dim))
        selection = selection or on_grid
        if selection is None and choices.selects_covariates(self, state, covariates):
            selection = selection_lib.every_covariate("only surveys of one time and gridded Gaussian fields that "
                                                      "can be calibrated are", covariates)
        # the new state replaces the old one whole, only now: a fit that fails leaves the previous fit as it was.
        # The observations condition()/update() kept belong to the previous fit (a stream is folded with its
        # parameters): they are forgotten
        self.state_, self.context_, self.stream_ = _with_choices_recorded(state, selection), None, None
        return self

    def _training_table(self, data, var, count_var, covariates, head, spatial_dims, time_dim, crs):
        """The data as a checked table (counts pooled by site), and its observed mask ``[tasks, points]``."""
        if isinstance(var, list | tuple):
            if len(var) != 1:
                raise ConfigError(f"var={var!r}: one variable per model; fit one model per variable.")
            var = var[0]
        columns = [var, count_var] if count_var else var
        table = tables_lib.to_table(data, columns, covariates, spatial_dims, time_dim, crs, temporal=self.temporal)
        table = counts_lib.with_unit_exposure(table, head)
        observation_names = [str(table.template.name)] + ([count_var] if count_var else [])
        counts_lib.check_observations(table, head, observation_names, "the training data")
        table = counts_lib.pool_duplicate_sites(table, head, observation_names, "the training data")
        observed = tables_lib.require_observations(table, "the training data")
        _warn_constant_covariates(table, observed, covariates)
        return table, observed

    def _scaling(self, table, observed, count_var, covariates, head, config, scaling0, context_rule) -> FeatureScaling:
        """The normalisation of coordinates, values and covariates learned on the observations."""
        hours = table.hours[observed] if table.hours is not None else None
        scaling = fit_scaling(
            table.layout.kind, _snapshots(table, observed, self.seed), table.values[observed][:, :1],
            [str(table.template.name)], table.covariates[observed], list(covariates),
            window_points=self.window_points, hours=hours, crs=table.layout.crs,
            value_attrs=[counts_lib.value_attrs(head, table.template, count_var)], seed=self.seed,
            standardise=head.standardise, center=context_rule["center"],
        )
        scaling = dataclasses.replace(scaling, covariate_slots=config.covariate_slots,
                                      far_context=context_rule["far_context"],
                                      trend_degree=self._fixed_trend(head, config))
        if scaling0 is not None and self.steps == 0:
            # a fitted model re-used without training keeps the length units it learned in;
            # values and covariates are re-standardised on this data
            scaling = dataclasses.replace(scaling, space_unit=scaling0.space_unit, time_unit=scaling0.time_unit)
        return scaling

    @property
    def covariates_ignored_(self) -> tuple[str, ...]:
        """Covariates given to ``fit`` that held-out selection left out (``select_covariates``)."""
        return tuple(self.scaling_.covariates_ignored)

    def _fixed_trend(self, head, config) -> int:
        """The drift's degree before any choice: the one asked for, 0 with ``"auto"`` (chosen in _calibrate)."""
        if self.trend == "auto" or not self.trend:
            return 0
        if not head.standardise or config.family == "cmanp":
            raise ConfigError(f"trend={self.trend!r}: a drift is fitted to Gaussian values conditioned on per "
                              f"neighbourhood; this is a {head.name} model ({config.family}). Use trend=0.")
        return int(self.trend)

    def _patch_sampler(self, table, observed, scaling, tasks, gap_share: float = 0.0):
        from geonp.tasks.patches import PatchSampler

        # a model with a drift trains on the residuals it will predict (geonp.features.drift)
        parts = tables_lib.observed_by_task(table, observed, scaling, tasks, self.temporal)
        parts = drift_lib.with_drift(parts, scaling.trend_degree)
        # windows are nearest neighbours in model units, across space and (temporal models) time
        embedding = [e / scaling.space_unit if t is None else np.concatenate([e / scaling.space_unit, t], -1)
                     for e, t in zip(parts["embedding"], parts["time"], strict=True)]
        return PatchSampler(embedding, parts["space"], parts["time"], parts["covariates"], parts["values"],
                            window_points=self.window_points, context_fraction=tuple(self.context_fraction),
                            max_context=self.max_context, num_target=self.num_target,
                            geographic=scaling.kind == "geographic", center=scaling.center, gap_share=gap_share)

    def _train(self, state: FittedModel, table, observed, job) -> FittedModel:
        """``state`` with its weights (``params`` None: a new network) trained on windows of ``table``; fine-tuning a
        model on a Gaussian grid, checked on held-out gaps too (:mod:`geonp.estimator.fine_tune`): the weights kept,
        the history and the steps."""
        from geonp.training.loop import TrainConfig, train

        config, params, scaling = state.config, state.params, state.scaling
        rng = np.random.default_rng(self.seed)
        check = self._with_state(state)._held_out_check(table, observed, job) if params is not None else None
        validator = None
        if isinstance(check, str):  # a model is never fine-tuned where nothing can show it got better
            warn(f"{check}, so fitting could not be checked: the starting model ({state.started_from}) is "
                 "kept untrained. Fit on a larger area, or pass pretrained=None to train a new network.")
            return state.replace(fine_tuning={"status": f"{check}; the starting model is kept ({state.started_from})"})
        if check is not None:
            observed = check.hide(observed)  # training never sees the held-out gaps
            validator = fine_tuning.BestOnHeldOut(self._with_state(state), check)
        tasks = np.flatnonzero(observed.sum(axis=1) >= 2)
        if tasks.size == 0:
            raise tables_lib.DataError("no task (time step, member ...) has two observed points to train on.")
        n_val = int(round(self.validation_fraction * tasks.size)) if tasks.size >= 5 and validator is None else 0
        shuffled = rng.permutation(tasks)
        val_tasks, train_tasks = shuffled[:n_val], shuffled[n_val:]
        gap_share = FINE_TUNING_GAP_SHARE if params is not None else 0.0
        sampler = self._patch_sampler(table, observed, scaling, train_tasks, gap_share)
        val_sampler = self._patch_sampler(table, observed, scaling, val_tasks, gap_share) if n_val else None
        learning_rate = self.learning_rate if self.learning_rate != "auto" else (
            FINE_TUNING_RATE if params is not None else SCRATCH_RATE)
        tc = TrainConfig(
            steps=self.steps, batch_size=self.batch_size, learning_rate=learning_rate,
            # fine-tuning: a short warm-up, so that a time budget that ends the run early has trained at the rate
            warmup_steps=min(100 if params is None else FINE_TUNING_WARMUP, max(1, self.steps // 10)), seed=self.seed,
            validate_every=max(10, 10 * math.ceil(self.steps / (100 if validator is None else 200))),
            validation_batches=2, time_budget=self.time_budget, patience=self.patience, progress=self.progress,
        )
        result = train(scaling.model_config(config), sampler, tc, params=params, validation_sampler=val_sampler,
                       validator=validator)
        if validator is None:
            return state.replace(params=result.params, history=result.history, steps_trained=result.step)
        summary = validator.summary(result.step, result.seconds, jax.default_backend())
        if validator.best["step"] == 0:
            warn(f"fitting did not beat the starting model ({state.started_from}) on {check.cells} held-out "
                 f"cells (CRPS {validator.start['crps']:.4g}); the starting model is kept "
                 "(history_[-1]['fine_tuning']). More steps or time_budget may help.")
        return state.replace(params=validator.best_params, history=result.history, steps_trained=validator.best["step"],
                             fine_tuning=summary)

    def _held_out_check(self, table, observed, job):
        """Gaps to hide from fine-tuning and score it on (:func:`geonp.estimator.fine_tune.held_out_check`); a sentence
        where there can be none; None where the data are not a Gaussian grid (no check applies)."""
        data, name, covariates, head, target, spatial_dims, time_dim = job
        ds, _ = self._gaussian_grid(data, table, name, head)
        if ds is None:
            return None
        target_distance = choices.target_distances(self, data, table, target, spatial_dims, time_dim)
        return fine_tuning.held_out_check(self, ds[name], table.layout.spatial, {c: ds[c] for c in covariates},
                                          target_distance, self.seed, observed)

    def _gaussian_grid(self, data, table, name, head):
        """``(data as a Dataset, None)`` where held-out gaps can be drawn on it (a Gaussian field on a grid,
        space-only model); ``(None, why not)`` elsewhere."""
        if not head.standardise or head.name != "normal":
            return None, f"a {head.name} model (only Gaussian fields are)"
        if counts_lib.is_survey(table) or self.temporal:
            return None, f"{'point data' if counts_lib.is_survey(table) else 'a temporal model'} (gridded fields only)"
        ds, _ = tables_lib.as_dataset(data, name)
        if not all(d in ds[name].dims for d in table.layout.spatial):
            return None, "the spatial coordinates are not grid dimensions"
        return ds, None


def _with_choices_recorded(state: FittedModel, selection: dict | None) -> FittedModel:
    """``state`` whose last history record (one of its own after ``steps=0``) holds the calibration, what
    fine-tuning did and the covariate selection."""
    history = [dict(r) for r in state.history] or [{"step": 0}]
    history[-1]["calibration"] = state.calibration
    if state.fine_tuning is not None:
        history[-1]["fine_tuning"] = state.fine_tuning
    if selection is not None:
        history[-1]["covariate_selection"] = selection
    return state.replace(history=history)


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


def _warn_constant_covariates(table, observed, names) -> None:
    for j, name in enumerate(names):
        values = table.covariates[..., j][observed]
        if values.size and np.nanstd(values) == 0:
            warn(f"covariate {name!r} takes one value ({float(values.flat[0]):g}) at every observation: it "
                 "carries no information for the model (and is scaled to 0). Drop it, or use data where "
                 "it varies.")


def _with_covariates(config: BSATNPConfig, params, x_dim: int, seed: int):
    """A warm start with ``x_dim`` covariates: every weight carried over, new embedding rows freshly initialised."""
    from geonp.nn.models import initial_params
    from geonp.training.warm_start import transplant

    config = dataclasses.replace(config, x_dim=x_dim)
    return config, transplant(params, initial_params(config, seed))[0]
