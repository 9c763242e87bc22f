"""The ``.np`` accessor on ``xr.DataArray`` and ``xr.Dataset``: a thin, stateless front to the estimator.

    model = da.np.fit(steps=300)                     # -> fitted geonp.NeuralProcess
    pred = da.np.predict(target=4, model=model)       # -> xr.Dataset (mean, std, ...)
    ds.np.fit(var="t2m", covariates=["elevation"])
    pred.np.to_zarr("pred.zarr")                      # resumable, atomic

The accessor never keeps state: every call builds what it needs from its arguments.
"""

from __future__ import annotations

import inspect

import xarray as xr

from geonp.errors import ConfigError
from geonp.estimator.estimator import NeuralProcess

_FIT_ARGS = {"var", "covariates", "spatial_dims", "time_dim", "crs", "target"}


def default_model(target, covariates=()) -> str:
    """The bundled Gaussian model ``predict(target=...)`` uses when none is named
    (:func:`geonp.estimator.releases.default_model`)."""
    from geonp.estimator.releases import default_model as bundled_for

    return bundled_for(target, covariates)


class _NPAccessor:
    def __init__(self, obj):
        self._obj = obj

    def fit(self, **kwargs) -> NeuralProcess:
        """A fitted :class:`~geonp.NeuralProcess` on this object's observed values.

        Keyword arguments are ``fit``'s (``var``, ``covariates``, ``spatial_dims``, ``time_dim``,
        ``crs``) and the estimator's (``steps``, ``pretrained``, ``time_budget``, ...).
        """
        valid = set(NeuralProcess._param_names()) | _FIT_ARGS
        unknown = set(kwargs) - valid
        if unknown:
            raise ConfigError(f"unknown argument(s) {sorted(unknown)} for .np.fit; valid: {sorted(valid)}.")
        fit_kwargs = {k: v for k, v in kwargs.items() if k in _FIT_ARGS}
        estimator = NeuralProcess(**{k: v for k, v in kwargs.items() if k not in _FIT_ARGS})
        return estimator.fit(self._obj, **fit_kwargs)

    def predict(self, target=None, model: NeuralProcess | str | None = None, context: str = "auto",
                **kwargs) -> xr.Dataset:
        """Condition on the observed (non-NaN) values here and predict at ``target``.

        Args:
            target: ``None`` (fill this grid), a resolution factor (``4``), a DataArray/Dataset
                (its coordinates are the prediction grid) or a DataFrame of points.
            model: a fitted ``NeuralProcess``, a path written by ``save``, the name of a bundled model
                (``"prevalence-binomial"``, ...) or ``None``: a bundled Gaussian model, ``field-normal``
                (trained on multi-scale fields in cloud gaps) to fill gaps or with ``covariates=``,
                ``gp2d-normal`` for other targets (:func:`default_model`). A bundled model without its own
                normalisation is calibrated on this data without training.
            context: ``"auto"`` (each cell of targets uses its nearest observations, as many as the
                model was trained with; see ``NeuralProcess.predict``) or ``"all"`` (exact
                attention over every context point).
            **kwargs: ``predict`` options: ``quantiles``, ``samples``, ``halo``, ``tile``, ``lazy`` ...
        """
        if context not in ("auto", "all"):
            raise ConfigError(f"context={context!r}: expected 'auto' or 'all'.")
        if context == "all":
            kwargs["halo"] = "all"
        var, crs = kwargs.pop("var", None), kwargs.pop("crs", None)
        calibration = {k: kwargs.pop(k) for k in ("trials", "exposure", "covariates") if k in kwargs}
        predict_args = set(inspect.signature(NeuralProcess.predict).parameters) - {"self", "context", "target"}
        unknown = set(kwargs) - predict_args
        if unknown:
            raise ConfigError(f"unknown argument(s) {sorted(unknown)} for .np.predict; valid: "
                              f"{sorted(predict_args | {'var', 'crs', 'model', 'context', 'trials', 'exposure'})}.")
        if model is None or isinstance(model, str) or hasattr(model, "__fspath__"):
            from geonp.estimator import resolve_model  # a bundled name, a saved model or a release folder

            if model is None:
                model = default_model(target, calibration.get("covariates", ()))
            model = resolve_model(model)
            if "progress" in kwargs:  # the calibration in fit shows bars too: quiet when predict is
                model.set_params(progress=bool(kwargs["progress"]))
            if not model.is_fitted:
                # the held-out cells that calibrate it are matched to these targets' distance to the data
                model.fit(self._obj, var=var, spatial_dims=kwargs.get("spatial_dims"),
                          time_dim=kwargs.get("time_dim"), crs=crs, target=target, **calibration)
            elif crs is not None or calibration:
                raise ConfigError("this model ships its own normalisation (a saved model, or a bundled one trained "
                                  "on real data): crs=, trials=, exposure= and covariates= apply only to models "
                                  "calibrated on your data (model=None or a bundled name without one).")
        elif crs is not None or calibration:
            raise ConfigError("crs=, trials=, exposure= and covariates= only apply when calibrating a bundled model "
                              "(model=None or a bundled name); a fitted model keeps what it was fitted with.")
        elif not isinstance(model, NeuralProcess):
            raise ConfigError(f"model must be a geonp.NeuralProcess, a saved model path or None; got "
                              f"{type(model).__name__}.")
        return model.predict(self._obj, target, **kwargs)

    def plot(self, variables=("mean", "std"), **kwargs):
        """Maps of this prediction, mean and uncertainty side by side (see :func:`geonp.xr.maps.plot`)."""
        from geonp.xr.maps import plot

        return plot(self._obj, variables, **kwargs)

    def to_zarr(self, path, overwrite: bool = False, progress: bool = True):
        """Write this (prediction) Dataset tile by tile; resumable and atomic (see :mod:`geonp.xr.io`)."""
        from geonp.xr.io import to_zarr

        return to_zarr(self._as_dataset(), path, overwrite, progress)

    def to_netcdf(self, path, overwrite: bool = False, progress: bool = True):
        """Write this (prediction) Dataset to netCDF; resumable and atomic (see :mod:`geonp.xr.io`)."""
        from geonp.xr.io import to_netcdf

        return to_netcdf(self._as_dataset(), path, overwrite, progress)

    def _as_dataset(self) -> xr.Dataset:
        obj = self._obj
        return obj if isinstance(obj, xr.Dataset) else obj.to_dataset(name=obj.name or "value")


@xr.register_dataarray_accessor("np")
class DataArrayNPAccessor(_NPAccessor):
    """``DataArray.np``: fit and predict a neural process on this field."""


@xr.register_dataset_accessor("np")
class DatasetNPAccessor(_NPAccessor):
    """``Dataset.np``: fit and predict with ``var=`` and ``covariates=`` naming the variables."""
