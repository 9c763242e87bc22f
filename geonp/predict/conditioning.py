"""Observations kept between predictions: ``condition`` / ``update`` and, for a constant-memory model
(``arch="cmanp"``), its conditioned state per task, folded in as observations arrive
(:mod:`geonp.predict.streaming`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from geonp.errors import ConfigError
from geonp.features import tables as tables_lib
from geonp.features.counts import with_unit_exposure
from geonp.predict import streaming
from geonp.predict.streaming import TaskState


def stream_parts(model, data):
    """Task labels, the observed points of ``data`` per task as model inputs, and their raw ``(x, y)``."""
    s = model.scaling_
    table = tables_lib.to_table(data, model._context_var(data), model.covariates_, None, None, s.crs,
                                temporal=model.temporal)
    table = with_unit_exposure(table, model.config_.likelihood)
    observed = tables_lib.require_observations(table, "the context")
    parts = tables_lib.observed_by_task(table, observed, s, range(table.num_tasks), model.temporal)
    keys = [np.stack([table.x[t, observed[t]], table.y[t, observed[t]]], -1) for t in range(table.num_tasks)]
    return table.task_labels, parts, keys


def _fold(model, state, parts, t):
    return streaming.fold(model.config_, model.params_, model.scaling_, state, parts["space"][t], parts["time"][t],
                          parts["covariates"][t], parts["values"][t])


def new_stream(model, context) -> dict:
    labels, parts, _ = stream_parts(model, context)
    return {label: _fold(model, None, parts, t) for t, label in enumerate(labels) if len(parts["values"][t])}


def fold_into_stream(model, current, new) -> dict:
    """The kept states with ``new``'s observations folded in; a task with corrected cells is re-folded whole."""
    stream = dict(model.stream_)
    labels, parts, keys = stream_parts(model, new)
    # points: a repeat at a site is one more observation; on a grid, a new value at an observed cell corrects it
    observed_before = {}
    if _is_grid(current):  # each task's observed cells, read once
        labels_before, _, keys_before = stream_parts(model, current)
        observed_before = {lab: _rounded(k) for lab, k in zip(labels_before, keys_before, strict=True)}
    merged = None
    for t, label in enumerate(labels):
        if not len(parts["values"][t]):
            continue
        state = stream.get(label)
        if state is not None and _rounded(keys[t]) & observed_before.get(label, set()):
            if merged is None:
                merged_labels, merged_parts, _ = stream_parts(model, model.context_)
                merged = dict(zip(merged_labels, range(len(merged_labels)), strict=True))
            stream[label] = _fold(model, TaskState(state.frame, None, 0), merged_parts, merged[label])
        else:
            stream[label] = _fold(model, state, parts, t)
    return stream


def _rounded(points) -> set:
    """``{(x, y)}`` of ``points [n, 2]``, rounded so that the same cell read twice is one key."""
    return {tuple(p) for p in np.round(points, 9)}


def _is_grid(data) -> bool:
    if not isinstance(data, xr.DataArray | xr.Dataset):
        return False
    from geonp.features.coordinates import find_coordinates

    layout = find_coordinates(data)
    return layout.y in data.dims


def append_observations(current, new):
    """``current`` observations with ``new`` ones added: rows of a table, sites along the site dimension,
    or, on a grid, the new non-missing values over the old ones."""
    if isinstance(current, pd.DataFrame) or isinstance(new, pd.DataFrame):
        if not (isinstance(current, pd.DataFrame) and isinstance(new, pd.DataFrame)):
            raise ConfigError("update() takes new observations of the context's kind: a DataFrame after a DataFrame.")
        return pd.concat([current, new], ignore_index=True)
    if not isinstance(new, type(current)):
        raise ConfigError(f"update() takes new observations of the context's kind ({type(current).__name__}), "
                          f"got {type(new).__name__}.")
    from geonp.features.coordinates import find_coordinates

    layout = find_coordinates(current)
    sites = set(current[layout.y].dims) if layout.y in current.coords else set()
    if len(sites) == 1 and layout.y not in current.dims:  # point data: sites along one dimension
        (dim,) = sites
        merged = xr.concat([current, new], dim=dim, data_vars="all", coords="different", compat="equals")
        return merged.assign_coords({dim: np.arange(merged.sizes[dim])}) if dim in merged.coords else merged
    return new.combine_first(current)
