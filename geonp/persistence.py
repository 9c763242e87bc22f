"""Saving and loading fitted estimators (safetensors + JSON, never pickle), and the bundled models by name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import jax
import numpy as np

from geonp.errors import CheckpointError, ConfigError, GeonpError, user_path
from geonp.features.scaling import FeatureScaling

if TYPE_CHECKING:
    from geonp.estimator import NeuralProcess


class PersistenceMixin:
    """``save`` (mixed into :class:`geonp.NeuralProcess`); :func:`load` reads it back."""

    def save(self, path) -> Path:
        """Write the fitted model (weights, config, normalisation) to the directory ``path`` atomically."""
        from geonp.model_store import save_model

        path = user_path(path, "model.save(path)")
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
        model = load(PRETRAINED_DIR / name).set_params(**params)
        model.source_ = name  # attrs["geonp_model"] names it
        return model
    return _ready_to_calibrate(name, config, params)


def resolve_model(spec, **params) -> NeuralProcess:
    """An estimator from a bundled model's name, a folder written by :meth:`NeuralProcess.save`, or a release
    folder (``benchmarks/train_bundled.py``: weights without a fitted normalisation, ready to calibrate
    with ``fit(steps=0)``): the one place the accessor, the command line, the flows and the benchmarks
    turn a model name or path into an estimator."""
    from geonp.model_store import available, release

    if isinstance(spec, str) and spec in available():
        return pretrained(spec, **params)
    config, _, meta = release(user_path(spec, "a model (a bundled name or a folder)"))
    if meta.get("kind") == "geonp.NeuralProcess":
        return load(spec).set_params(**params)
    return _ready_to_calibrate(str(Path(spec).resolve()), config, params)


def _ready_to_calibrate(source: str, config, params: dict) -> NeuralProcess:
    """An estimator starting from released weights without a fitted normalisation: ``fit(steps=0)`` calibrates it."""
    from geonp.estimator import NeuralProcess

    params = {"likelihood": config.likelihood.to_dict(), "steps": 0, **params}
    params.setdefault("temporal", any(g.name == "time" for g in config.groups))
    return NeuralProcess(pretrained=source, **params)


def load(path) -> NeuralProcess:
    """Load a model written by :meth:`NeuralProcess.save` (safetensors + JSON; never pickle)."""
    from geonp.model_store import load_model

    path = user_path(path, "geonp.load(path)")
    config, params, meta = load_model(path)
    try:
        model = _from_saved(path, config, params, meta)
        _check_saved_state(model)
    except CheckpointError:
        raise
    except (GeonpError, TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
        # the metadata is JSON a person can edit: anything wrong in it is the file's fault, said as such
        raise CheckpointError(f"{path}/config.json holds a model that cannot be used ({type(err).__name__}: "
                              f"{err}); the file is corrupted or was edited. Save the model again, or restore the "
                              "file from a copy.") from None
    return model


def _check_saved_state(model) -> None:
    """Build everything ``predict`` reads from a loaded model's metadata, so a bad field fails at load."""
    model._check_training_options()
    spread, kriging = model._spread(), model._kriging(True)
    model._calibration_attrs(spread, kriging)
    model._held_out_attrs(np.array([0.0, 1.0]))
    names = [model.var_, *model.covariates_, *([model.count_var_] if model.count_var_ is not None else [])]
    if not all(isinstance(n, str) for n in names):
        raise ConfigError(f"var, count_var and covariates must be names; got {names}.")
    if not (isinstance(model.layout_, dict) and all(isinstance(v, str | None) for v in model.layout_.values())):
        raise ConfigError(f"layout must map coordinate roles to names; got {model.layout_!r}.")


def _from_saved(path, config, params, meta):
    from geonp.estimator import NeuralProcess

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
    last = model.history_[-1] if model.history_ and isinstance(model.history_[-1], dict) else {}
    model.fine_tuning_ = last.get("fine_tuning")
    model.steps_trained_ = int(meta.get("steps", 0))
    if meta.get("calibration") is not None:
        model.calibration_ = meta["calibration"]
    model.n_observations_ = int(meta.get("n_observations", 0))
    model.source_ = str(path)  # attrs["geonp_model"] names it
    return model


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
