"""What ``fit`` learns, frozen: :class:`FittedModel`, the one list of a fitted estimator's state.

``NeuralProcess.fit`` builds one, ``save`` writes it (``to_dict`` beside the weights), ``load`` reads it
(``from_dict``), and ``predict`` reads it. A choice ``fit`` makes on held-out cells (the drift's degree, a
covariate subset, the calibration) is tried on copies, ``state.replace(...)``, never by changing the
estimator that predicts.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from geonp.features.scaling import FeatureScaling
from geonp.nn.models import BSATNPConfig


@dataclasses.dataclass(frozen=True)
class FittedModel:
    """A fitted estimator's state. The estimator's ``config_``, ``params_``, ``scaling_`` ... read these fields."""

    config: BSATNPConfig  # the network: sizes, coordinate groups, likelihood
    params: dict  # its weights (a pytree of numpy arrays)
    scaling: FeatureScaling  # the normalisation of coordinates, values and covariates; drift degree, slots used
    var: str  # the variable modelled
    count_var: str | None = None  # binomial: the number examined; poisson: the exposure
    covariates: tuple[str, ...] = ()  # the covariates given to fit (scaling.covariates_ignored: those left out)
    layout: dict = dataclasses.field(default_factory=dict)  # coordinate roles -> names (tables.Layout)
    n_observations: int = 0
    steps_trained: int = 0
    # training records, the last one holding the calibration and the choices fit made
    history: list = dataclasses.field(default_factory=list)
    calibration: dict | None = None  # the held-out calibration: spread, kriging blend, drift, design
    fine_tuning: dict | None = None  # what fine-tuning did on held-out gaps (geonp.estimator.fine_tune)
    source: str | None = None  # the bundled name or folder it was loaded from
    started_from: str | None = None  # the model fit started from (None: a new network)

    def replace(self, **changes) -> FittedModel:
        """A copy with ``changes`` (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)

    def with_scaling(self, **changes) -> FittedModel:
        """A copy whose normalisation has ``changes`` (e.g. ``trend_degree=2``, ``covariates_ignored=(...)``)."""
        return self.replace(scaling=dataclasses.replace(self.scaling, **changes))

    def to_dict(self) -> dict:
        """The JSON metadata ``save`` writes beside the weights and the config (``from_dict`` reads it back)."""
        return {"scaling": self.scaling.to_dict(), "var": self.var, "count_var": self.count_var,
                "covariates": list(self.covariates), "layout": self.layout, "steps": int(self.steps_trained),
                "n_observations": int(self.n_observations), "history": list(self.history)[-50:],
                "calibration": self.calibration}

    @classmethod
    def from_dict(cls, config: BSATNPConfig, params: dict, meta: dict, source: str | None = None) -> FittedModel:
        """The state ``to_dict`` wrote, with the ``config`` and ``params`` saved beside it."""
        history = list(meta.get("history", []))
        last = history[-1] if history and isinstance(history[-1], dict) else {}
        return cls(config=config, params=jax.tree_util.tree_map(np.asarray, params),
                   scaling=FeatureScaling.from_dict(meta["scaling"]), var=meta["var"],
                   count_var=meta.get("count_var"), covariates=tuple(meta.get("covariates", ())),
                   layout=meta.get("layout", {}), n_observations=int(meta.get("n_observations", 0)),
                   steps_trained=int(meta.get("steps", 0)), history=history, calibration=meta.get("calibration"),
                   fine_tuning=last.get("fine_tuning"), source=source)


def fitted_attribute(name: str) -> property:
    """A read-only estimator attribute ``<name>_`` that reads ``state_.<name>`` (AttributeError before fit)."""

    def read(self):
        state = self.__dict__.get("state_")
        if state is None:
            raise AttributeError(f"{name}_ exists after fit (or geonp.load)")
        return getattr(state, name)

    read.__doc__ = f"The fitted ``{name}`` (:class:`geonp.estimator.state.FittedModel`)."
    return property(read)
