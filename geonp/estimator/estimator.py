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

import copy
import inspect
from pathlib import Path

from geonp.errors import CheckpointError, ConfigError, GeonpError, NotFittedError, user_path
from geonp.estimator import store
from geonp.estimator.fit import ARCHITECTURES, FittingMixin
from geonp.estimator.state import FittedModel, fitted_attribute
from geonp.predict.prediction import PredictionMixin

__all__ = ["ARCHITECTURES", "NeuralProcess", "NotFittedError", "load", "pretrained", "resolve_model"]


class NeuralProcess(FittingMixin, PredictionMixin):
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
            for this data and likelihood (:func:`geonp.estimator.releases.default_model`: ``field-normal`` to
            fill gaps or with covariates, ``gp2d-normal`` for other targets, ``prevalence-binomial`` for
            surveys), unless ``arch`` or the network's sizes are set, or none fits (poisson, temporal ...):
            then a new network; a bundled name or a saved directory; ``None``: a new network. From a
            model, ``fit`` fine-tunes it on the data's own gap shapes and keeps the result only where it
            beats the start on held-out gaps (:mod:`geonp.estimator.fine_tune`); ``steps=0`` only calibrates.
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
            its held-out score on the data (every subset is scored; :mod:`geonp.calibrate.covariates`):
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

    # what fit learned: read from the frozen state_ (geonp.estimator.state.FittedModel), never set one by one
    config_ = fitted_attribute("config")
    params_ = fitted_attribute("params")
    scaling_ = fitted_attribute("scaling")
    var_ = fitted_attribute("var")
    count_var_ = fitted_attribute("count_var")
    covariates_ = fitted_attribute("covariates")
    layout_ = fitted_attribute("layout")
    n_observations_ = fitted_attribute("n_observations")
    steps_trained_ = fitted_attribute("steps_trained")
    history_ = fitted_attribute("history")
    calibration_ = fitted_attribute("calibration")
    fine_tuning_ = fitted_attribute("fine_tuning")
    source_ = fitted_attribute("source")
    started_from_ = fitted_attribute("started_from")

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
        return self.__dict__.get("state_") is not None

    def _with_state(self, state: FittedModel) -> NeuralProcess:
        """A copy of this estimator that predicts with ``state`` and no kept observations: what ``fit`` tries
        its candidates on (a drift's degree, a covariate subset, fine-tuned weights)."""
        other = copy.copy(self)
        other.__dict__.update(state_=state, context_=None, stream_=None)
        return other

    def save(self, path) -> Path:
        """Write the fitted model (weights, config, normalisation, calibration) to the directory ``path`` atomically."""
        path = user_path(path, "model.save(path)")
        self._check_fitted()
        return store.save(path, self.get_params(), self.state_)

    def _check_fitted(self):
        if not self.is_fitted:
            raise NotFittedError(
                "this NeuralProcess is not fitted yet: call fit(data, var=...) first (fit(data, steps=0) only "
                "calibrates the normalisation of a pretrained model), or load a saved one with geonp.load(path)."
            )


def load(path) -> NeuralProcess:
    """Load a model written by :meth:`NeuralProcess.save` (safetensors + JSON; never pickle)."""
    path = user_path(path, "geonp.load(path)")
    try:
        estimator_params, state = store.read(path)
        valid = set(NeuralProcess._param_names())
        model = NeuralProcess(**{k: v for k, v in estimator_params.items() if k in valid})
        model.state_ = state
        _check_saved_state(model)
    except CheckpointError:
        raise
    except (GeonpError, TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
        # the metadata is JSON a person can edit: anything wrong in it is the file's fault, said as such
        raise CheckpointError(f"{path}/config.json holds a model that cannot be used ({type(err).__name__}: "
                              f"{err}); the file is corrupted or was edited. Save the model again, or restore the "
                              "file from a copy.") from None
    return model


def pretrained(name: str, **params) -> NeuralProcess:
    """A model shipped inside the package, by name (offline; ``geonp.estimator.releases.available()`` lists them).

    Models that ship their normalisation (trained on real data or on lattices in cell units) come back
    fitted; the others (``gp2d-normal``, ``prevalence-binomial``) come back ready to calibrate on your
    data without training: ``geonp.pretrained("prevalence-binomial").fit(ds, "positive", trials="examined",
    steps=0)``, or to fine-tune with ``steps > 0``.
    """
    from geonp.estimator.releases import PRETRAINED_DIR, available
    from geonp.estimator.releases import pretrained as load_bundled

    if name not in available():
        raise CheckpointError(f"no pretrained model named {name!r}; available: {available()}.")
    config, _, meta = load_bundled(name)
    if store.is_saved_estimator(meta):
        model = load(PRETRAINED_DIR / name).set_params(**params)
        model.state_ = model.state_.replace(source=name)  # attrs["geonp_model"] names it
        return model
    return _ready_to_calibrate(name, config, params)


def resolve_model(spec, **params) -> NeuralProcess:
    """An estimator from a bundled model's name, a folder written by :meth:`NeuralProcess.save`, or a release
    folder (``benchmarks/train_bundled.py``: weights without a fitted normalisation, ready to calibrate
    with ``fit(steps=0)``): the one place the accessor, the command line, the flows and the benchmarks
    turn a model name or path into an estimator."""
    from geonp.estimator.releases import available, release

    if isinstance(spec, str) and spec in available():
        return pretrained(spec, **params)
    config, _, meta = release(user_path(spec, "a model (a bundled name or a folder)"))
    if store.is_saved_estimator(meta):
        return load(spec).set_params(**params)
    return _ready_to_calibrate(str(Path(spec).resolve()), config, params)


def _ready_to_calibrate(source: str, config, params: dict) -> NeuralProcess:
    """An estimator starting from released weights without a fitted normalisation: ``fit(steps=0)`` calibrates it."""
    params = {"likelihood": config.likelihood.to_dict(), "steps": 0, **params}
    params.setdefault("temporal", any(g.name == "time" for g in config.groups))
    return NeuralProcess(pretrained=source, **params)


def _check_saved_state(model: NeuralProcess) -> None:
    """Build everything ``predict`` reads from a loaded model's metadata, so a bad field fails at load."""
    import numpy as np

    from geonp.predict import provenance

    model._check_training_options()
    calibration = model.calibration_
    provenance.calibration_attrs(calibration, provenance.spread(calibration), provenance.kriging(calibration, True))
    provenance.held_out_attrs(calibration, np.array([0.0, 1.0]))
    names = [model.var_, *model.covariates_, *([model.count_var_] if model.count_var_ is not None else [])]
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"var, count_var and covariates must be names; got {names}.")
    if not (isinstance(model.layout_, dict) and all(isinstance(v, str | None) for v in model.layout_.values())):
        raise ConfigError(f"layout must map coordinate roles to names; got {model.layout_!r}.")
