"""Predictions as a CF-compliant ``xr.Dataset``: mean, std, quantiles, samples, with units and provenance."""

from __future__ import annotations

import datetime

import numpy as np
import xarray as xr

from geonp.predict.channels import ChannelLayout, kriging_names


def _variable_attrs(source: dict, what: str) -> dict:
    attrs = {k: source[k] for k in ("units", "standard_name") if k in source}
    if str(attrs.get("standard_name", "")).lower() in ("", "unknown"):
        attrs.pop("standard_name", None)  # GRIB writes 'unknown'; CF wants a real name or none
    label = source.get("long_name") or source.get("standard_name") or source.get("name", "value")
    attrs["long_name"] = f"{what} of {label}"
    return attrs


def prediction_dataset(channels: xr.DataArray, value_attrs: dict, layout: ChannelLayout, quantiles=(),
                       attrs: dict | None = None, provenance: dict | None = None, thresholds=(),
                       classes=None, distance_units: str | None = None, joint_samples: bool = False) -> xr.Dataset:
    """Split a ``[..., channel]`` array laid out as ``layout`` (:mod:`geonp.predict.channels`) into CF variables.

    ``classes``: a categorical model's class names; ``distance_units``: the units of the distance to
    data (with ``layout.distance``).
    """
    if classes is not None:
        variables = _class_variables(channels, value_attrs, classes)
    else:
        variables = _moment_variables(channels, value_attrs, layout, quantiles, thresholds)
    if layout.samples:
        s = channels.isel(channel=layout.sample).rename(channel="sample")
        s = s.assign_coords(sample=np.arange(layout.samples))
        if joint_samples:
            sample_attrs = _variable_attrs(value_attrs, "joint samples of the predictive distribution")
            sample_attrs["comment"] = ("draws coherent across the points of each task (autoregressive, coarse to "
                                       "fine: geonp.predict.joint); functions of many points (region means) are valid")
        else:
            sample_attrs = _variable_attrs(value_attrs, "samples of the predictive marginal")
            sample_attrs["comment"] = "independent draws per point (marginals, not spatially coherent fields)"
        if classes is not None:
            sample_attrs.pop("units", None)
            sample_attrs["flag_values"] = np.arange(len(classes), dtype=np.int16)
            sample_attrs["flag_meanings"] = " ".join(classes)
        variables["samples"] = s.transpose("sample", ...).assign_attrs(sample_attrs)
    if layout.distance:
        variables["distance_to_data"] = channels.isel(channel=layout.diagnostic("distance_to_data"), drop=True
                                                      ).assign_attrs({"long_name": "distance to the nearest "
                                                                      "observation", "units": distance_units})
        variables["context_std"] = channels.isel(channel=layout.diagnostic("context_std"), drop=True).assign_attrs(
            _variable_attrs(value_attrs, "standard deviation of the observations conditioned on"))
        for k in range(int(layout.kriging)):  # the kernel's kriging mean and share explained, then candidates'
            which = f" under candidate kernel {k}" if k else ""
            mean, explained = (channels.isel(channel=layout.diagnostic(name), drop=True) for name in kriging_names(k))
            variables[kriging_names(k)[0]] = mean.assign_attrs(_variable_attrs(
                value_attrs, f"kriging mean of each neighbourhood{which} (unblended)"))
            variables[kriging_names(k)[1]] = explained.assign_attrs({
                "long_name": f"share of the variance the kriging{which} explains (caps its blend weight)",
                "units": "1"})
    out = xr.Dataset(variables)
    out.attrs.update(attrs or {})
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    history = f"{stamp}: predicted by geonp"
    out.attrs["history"] = f"{out.attrs['history']}\n{history}" if out.attrs.get("history") else history
    out.attrs["Conventions"] = "CF-1.8"
    out.attrs.update({f"geonp_{k}": v for k, v in (provenance or {}).items()})
    return out


def _class_variables(channels: xr.DataArray, value_attrs: dict, classes) -> dict:
    """``probs`` along a ``class`` dimension and ``mode``, the most probable class (CF flags)."""
    k = len(classes)
    probs = channels.isel(channel=slice(0, k)).rename(channel="class").assign_coords(
        {"class": ("class", list(classes), {"long_name": "class (state)"})})
    label = value_attrs.get("long_name") or value_attrs.get("name", "class")
    probs = probs.transpose("class", ...).assign_attrs(
        {"long_name": f"predictive probability of each class of {label}", "units": "1"})
    complete = probs.notnull().all("class")
    mode = probs.fillna(-1.0).argmax("class").where(complete).astype(np.float32)
    mode = mode.assign_attrs({"long_name": f"most probable class of {label}",
                              "flag_values": np.arange(k, dtype=np.int16), "flag_meanings": " ".join(classes)})
    return {"probs": probs, "mode": mode}


def _moment_variables(channels: xr.DataArray, value_attrs: dict, layout: ChannelLayout, quantiles,
                      thresholds) -> dict:
    """``mean``, ``std``, ``quantiles`` (dim ``quantile``), ``exceedance`` (dim ``threshold``)."""
    mean = channels.isel(channel=0, drop=True)
    std = channels.isel(channel=1, drop=True)
    std_attrs = _variable_attrs(value_attrs, "predictive standard deviation")
    if "standard_name" in std_attrs:
        std_attrs["standard_name"] = f"{std_attrs['standard_name']} standard_error"  # CF modifier
    variables = {
        "mean": mean.assign_attrs(_variable_attrs(value_attrs, "predictive mean")),
        "std": std.assign_attrs(std_attrs),
    }
    if len(quantiles):
        q = channels.isel(channel=layout.quantile).rename(channel="quantile")
        q = q.assign_coords(quantile=("quantile", np.asarray(quantiles, np.float64),
                                      {"long_name": "probability of the predictive quantile", "units": "1"}))
        variables["quantiles"] = q.transpose("quantile", ...).assign_attrs(
            _variable_attrs(value_attrs, "predictive quantiles"))
    if len(thresholds):
        e = channels.isel(channel=layout.threshold).rename(channel="threshold")
        threshold_attrs = {"long_name": "exceedance threshold", **{k: v for k, v in value_attrs.items()
                                                                   if k == "units"}}
        e = e.assign_coords(threshold=("threshold", np.asarray(thresholds, np.float64), threshold_attrs))
        label = value_attrs.get("long_name") or value_attrs.get("name", "value")
        variables["exceedance"] = e.transpose("threshold", ...).assign_attrs(
            {"long_name": f"probability that {label} exceeds the threshold", "units": "1"})
    return variables
