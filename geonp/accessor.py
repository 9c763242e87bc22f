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
from geonp.estimator import NeuralProcess

_FIT_ARGS = {"var", "covariates", "spatial_dims", "time_dim", "crs"}
DEFAULT_MODEL = "gp2d-normal"


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
            model: a fitted ``NeuralProcess``, a path written by ``save``, or ``None``: the bundled
                ``gp2d-normal`` model, calibrated on this data without training (a GP-like prior).
            context: ``"auto"`` (each tile uses the context within a halo) or ``"all"`` (exact
                attention over every context point).
            **kwargs: ``predict`` options: ``quantiles``, ``samples``, ``halo``, ``tile``, ``lazy`` ...
        """
        if context not in ("auto", "all"):
            raise ConfigError(f"context={context!r}: expected 'auto' or 'all'.")
        if context == "all":
            kwargs["halo"] = "all"
        var, crs = kwargs.pop("var", None), kwargs.pop("crs", None)
        predict_args = set(inspect.signature(NeuralProcess.predict).parameters) - {"self", "context", "target"}
        unknown = set(kwargs) - predict_args
        if unknown:
            raise ConfigError(f"unknown argument(s) {sorted(unknown)} for .np.predict; valid: "
                              f"{sorted(predict_args | {'var', 'crs', 'model', 'context'})}.")
        if crs is not None and model is not None:
            raise ConfigError("crs= only applies when model=None; a fitted model keeps the CRS it was fitted with.")
        if model is None:
            model = NeuralProcess(pretrained=DEFAULT_MODEL, steps=0).fit(
                self._obj, var=var, spatial_dims=kwargs.get("spatial_dims"), time_dim=kwargs.get("time_dim"), crs=crs)
        elif isinstance(model, str) or hasattr(model, "__fspath__"):
            from geonp.estimator import load

            model = load(model)
        elif not isinstance(model, NeuralProcess):
            raise ConfigError(f"model must be a geonp.NeuralProcess, a saved model path or None; got "
                              f"{type(model).__name__}.")
        return model.predict(self._obj, target, **kwargs)

    def to_zarr(self, path, overwrite: bool = False, progress: bool = True):
        """Write this (prediction) Dataset tile by tile; resumable and atomic (see :mod:`geonp.io`)."""
        from geonp.io import to_zarr

        return to_zarr(self._as_dataset(), path, overwrite, progress)

    def to_netcdf(self, path, overwrite: bool = False, progress: bool = True):
        """Write this (prediction) Dataset to netCDF; resumable and atomic (see :mod:`geonp.io`)."""
        from geonp.io import to_netcdf

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
