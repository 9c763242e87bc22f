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

import inspect

from geonp.errors import ConfigError, NotFittedError
from geonp.fitting import ARCHITECTURES, FittingMixin
from geonp.persistence import PersistenceMixin, load, pretrained
from geonp.prediction import PredictionMixin

__all__ = ["ARCHITECTURES", "NeuralProcess", "NotFittedError", "load", "pretrained"]


class NeuralProcess(FittingMixin, PredictionMixin, PersistenceMixin):
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
        pretrained: where ``fit`` starts: ``"auto"`` (default) the bundled model ``predict()`` would use
            for this data and likelihood (:func:`geonp.model_store.default_model`: ``field-normal`` to
            fill gaps or with covariates, ``gp2d-normal`` for other targets, ``prevalence-binomial`` for
            surveys), unless ``arch`` or the network's sizes are set, or none fits (poisson, temporal ...):
            then a new network; a bundled name or a saved directory; ``None``: a new network. From a
            model, ``fit`` fine-tunes it on the data's own gap shapes and keeps the result only where it
            beats the start on held-out gaps (:mod:`geonp.fine_tuning`); ``steps=0`` only calibrates.
        temporal: add a time group to the bias (time becomes a coordinate, not separate tasks).
        num_blocks, width, num_heads, head_dim, ff_dim: network sizes (ignored with ``pretrained``).
        window_points: observed points per training task (the neighbourhood a task covers); also
            sets the length unit of space (a window spans one training task's extent).
        context_fraction, max_context, num_target: how a window is split into context and targets.
        steps, batch_size, learning_rate, time_budget, patience, validation_fraction, seed, progress:
            training options (``time_budget`` in seconds, the usual way to fine-tune in a notebook:
            ``fit(data, time_budget=300)``; ``patience`` in validations for early stopping;
            ``learning_rate="auto"``: 1e-4 fine-tuning a model, 5e-4 for a new network).
        select_covariates: for a model with covariate slots, keep only the covariates that improve
            its held-out score on the data (every subset is scored; :mod:`geonp.covariate_selection`):
            the leave-location-out log score on surveys, the calibrated CRPS on the calibration's
            held-out cells on Gaussian grids. The rest become unused slots and are named in
            ``covariates_ignored_``. False: use every covariate given.
        trend: the large-scale drift of a Gaussian field (:mod:`geonp.features.drift`): a polynomial in
            space fitted to each field's observations, which the model's neighbourhoods then fill in
            around. ``"auto"`` (default): ``fit`` chooses none (0) or the curvature (2) by the
            CRPS on the calibration's held-out cells (gridded Gaussian fields; elsewhere none);
            0, 1 or 2: that degree. Training (``steps`` > 0) with a fixed degree samples its windows from
            the residuals; with ``"auto"`` the degree is chosen after training, which saw the values.
    """

    def __init__(self, arch: str = "bsa-tnp", likelihood: str = "normal", pretrained: str | None = "auto",
                 temporal: bool = False, num_blocks: int = 6, width: int = 64, num_heads: int = 4,
                 head_dim: int = 32, ff_dim: int = 256, window_points: int = 512,
                 context_fraction: tuple[float, float] = (0.1, 0.9), max_context: int = 512,
                 num_target: int = 256, steps: int = 500, batch_size: int = 8, learning_rate: float | str = "auto",
                 time_budget: float | None = None, patience: int | None = None,
                 validation_fraction: float = 0.1, seed: int = 0, progress: bool = True,
                 select_covariates: bool = True, trend: int | str = "auto"):
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
        self.select_covariates = select_covariates
        self.trend = trend

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
