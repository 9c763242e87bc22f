"""Where ``predict`` predicts: the context and target tables, each target task's context task, the tiles
(a dask array of blocks for the tile predictor), the halo, and the context cells' support."""

from __future__ import annotations

import dataclasses
import math

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from geonp.errors import ConfigError, MetadataMismatchError, warn
from geonp.features import tables as tables_lib
from geonp.features.grids import refined_grid
from geonp.features.scaling import MAX_STANDARDISED
from geonp.features.support import TRAINED_UP_TO, support_between
from geonp.features.tables import DataError, covariate_alignment_hint
from geonp.predict.context import auto_halo
from geonp.predict.tiles import TilePredictor
from geonp.xr.progress import TILE_PREFIX


def target_table(model, context, ctx, target, spatial_dims, time_dim):
    """The targets as a table whose tasks are the context's (``target=None``: the context's own points)."""
    kw = dict(temporal=model.temporal, need_values=False, time_reference=ctx.time_reference)
    if target is None:  # the context's own points, covariates included
        return dataclasses.replace(ctx, values=None)
    if isinstance(target, int | float | np.integer | np.floating) and not isinstance(target, bool):
        if model.covariates_:
            raise MetadataMismatchError(
                f"the model uses covariates {list(model.covariates_)}, which a resolution factor cannot "
                "provide; pass target=<a Dataset on the fine grid holding those variables>."
            )
        ds, _ = tables_lib.as_dataset(context, model._context_var(context))
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
    tgt = tables_lib.to_table(target, None, model.covariates_, spatial_dims, time_dim, model.scaling_.crs,
                              task_dims=ctx.task_dims, **kw)
    if tgt.layout.kind != ctx.layout.kind:
        raise MetadataMismatchError(
            f"the target's coordinates are {tgt.layout.kind} ({tgt.layout.spatial}) but the context's and the "
            f"model's are {ctx.layout.kind} ({ctx.layout.spatial}); give the target the same kind of "
            "coordinates (reproject it, e.g. with pyproj) or name them with spatial_dims=.")
    dropped = {d: n for d, n in target.sizes.items() if d not in tgt.template.dims and n > 1}
    if dropped:
        raise MetadataMismatchError(
            f"the target has dimension(s) {dropped} that neither the context ({list(ctx.template.dims)}) nor "
            "the model's coordinates have, so there is nothing to predict along them. Select one step (e.g. "
            f"target.isel({next(iter(dropped))}=0)) and broadcast the prediction afterwards, or give the "
            "context the same dimension.")
    return tgt


def task_map(ctx, tgt) -> np.ndarray:
    """``[target tasks]`` the context task of each target task (same labels)."""
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


def halo_distance(model, halo):
    """The halo in km / CRS units (None: all context); ``None`` asks the learned bias."""
    if isinstance(halo, str):
        if halo != "all":
            raise ConfigError(f"halo={halo!r}: pass a distance, None (automatic) or 'all'.")
        return None
    if halo is None:
        return auto_halo(model.params_, "space", model.config_) * model.scaling_.space_unit
    if not (halo > 0 and math.isfinite(halo)):
        raise ConfigError(f"halo must be a positive, finite distance, got {halo}.")
    return float(halo)

def time_halo(model, halo):
    if not model.temporal or isinstance(halo, str):
        return None
    return auto_halo(model.params_, "time", model.config_) * model.scaling_.time_unit


def channel_array(predictor: TilePredictor, tgt, tile: int | None, time_tile: int, temporal: bool) -> xr.DataArray:
    t = tgt.template
    shape = tuple(t.shape)
    n_task = len(tgt.task_dims)
    point_chunks = []
    for d in tgt.point_dims:
        if d == tgt.layout.time and temporal:
            point_chunks.append(time_tile)
        elif tile is None:  # joint draws: one block per task
            point_chunks.append(t.sizes[d])
        else:
            point_chunks.append(tile if len(tgt.point_dims) > 1 else tile * tile)
    chunks = (1,) * n_task + tuple(point_chunks)
    inputs = [tgt.x, tgt.y] + ([tgt.hours] if temporal else [])
    inputs += [tgt.covariates[..., j] for j in range(tgt.covariates.shape[-1])]
    arrays = [dsa.from_array(np.asarray(a).reshape(shape), chunks=chunks) for a in inputs]
    n_ch = predictor.num_channels
    from dask.base import tokenize

    name = f"{TILE_PREFIX}-{tokenize(predictor.config.to_dict(), *[a.name for a in arrays], id(predictor))}"
    data = dsa.map_blocks(predictor, *arrays, new_axis=len(shape), chunks=arrays[0].chunks + ((n_ch,),),
                          dtype=np.float32, meta=np.empty((0,) * (len(shape) + 1), np.float32), name=name)
    coords = {k: v for k, v in t.coords.items()}
    return xr.DataArray(data, dims=tuple(t.dims) + ("channel",), coords=coords)


def support(model, ctx, tgt, joint: bool) -> float:
    """log2 of the context cells' side in target cells for a model that reads it (downscaling), else 0."""
    if not model.config_.support:
        return 0.0
    support = support_between(ctx, tgt)
    if support and joint:
        raise ConfigError("joint samples from block means (a context grid coarser than the targets) are not "
                          "supported yet; use marginal samples (joint=False), or predict on the context grid.")
    if support > TRAINED_UP_TO + 0.1:
        warn(f"the context cells are {2 ** support:.1f} times the target cells' side; the model was "
             f"trained on block means of up to {2 ** TRAINED_UP_TO:.0f}x, so it extrapolates here. "
             "Downscale in steps (e.g. 4x, then 2x) or check against a held-out fine field.")
    return support


def warn_missing_target_covariates(tgt, names) -> None:
    if not names:
        return
    located = np.isfinite(tgt.x) & np.isfinite(tgt.y)
    missing = located & ~np.isfinite(tgt.covariates).all(axis=-1)
    if missing.any():
        hint = covariate_alignment_hint(int(missing.sum()), int(located.sum()))
        warn(f"{int(missing.sum())} of {int(located.sum())} target point(s) have no value of a covariate "
             f"({list(names)}); their predictions are NaN. Fill the covariate there (e.g. from a finer "
             f"product) or mask those points.{hint}")


def check_value_scale(ctx, scaling, head) -> None:
    """Context values (and covariates) millions of fitted standard deviations away are data in other units:
    the network would overflow to NaN in float32, so they are refused with how to fix it."""
    pairs = [("covariate", scaling.covariate_names, scaling.scale_covariates(ctx.covariates))]
    if head.standardise:
        pairs.insert(0, ("variable", scaling.value_names, scaling.scale_values(ctx.values[..., :1])))
        raw = ctx.values[..., 0][np.isfinite(ctx.values[..., 0])]
        spread = float(np.ptp(raw)) / scaling.value_std[0] if raw.size else 0.0  # in fitted standard deviations
        if 0 < spread < 1 / MAX_STANDARDISED:
            raise DataError(
                f"the context's {scaling.value_names[0]!r} varies by {spread:.3g} of the standard deviation the model "
                "was fitted on: it is in other units (or scaled) than the fitting data. Refit on this data "
                "(model.fit(data, steps=0) re-learns the normalisation) or convert it to the fitting data's units.")
    for kind, names, standardised in pairs:
        for i, name in enumerate(names):
            column = np.abs(standardised[..., i])
            column = column[np.isfinite(column)]
            if column.size and column.max() > MAX_STANDARDISED:
                raise DataError(
                    f"the context's {kind} {name!r} lies up to {column.max():.3g} standard deviations from what the "
                    f"model was fitted on: it is in other units (or scaled) than the fitting data. Refit on this "
                    "data (model.fit(data, steps=0) re-learns the normalisation) or convert it to the fitting "
                    "data's units.")
