"""Writing predictions tile by tile: bounded memory, resumable, atomic.

``to_zarr(pred, path)`` writes into ``<path>.partial`` one region (a block of
dask chunks) at a time and records each finished region in a small manifest
(``<path>.partial.progress.json``). Stores are zarr format 2 with consolidated
metadata, which every zarr reader understands.
If the process dies, calling it again with the same prediction resumes at the
first unfinished region. Only when every region is written is the store
renamed to ``path``, so a store at ``path`` is always complete.

``to_netcdf(pred, path)`` goes through the same resumable zarr store, then
writes ``<path>.partial`` and renames it: a ``.nc`` file at ``path`` is
always complete too.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from pathlib import Path

import dask
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from geonp.errors import OutputExistsError, user_path

MANIFEST_SUFFIX = ".progress.json"  # beside the partial store: <path>.partial.progress.json


def _fingerprint(pred: xr.Dataset) -> str:
    """Identifies a prediction (same graph, same data), so a resume never mixes two predictions."""
    from dask.base import tokenize

    return tokenize(pred)


def _regions(pred: xr.Dataset):
    """Dicts ``{dim: slice}``, one per block of chunks (all chunked dims)."""
    chunks = pred.chunks  # {dim: (sizes ...)}
    dims = list(chunks)  # single-chunk dims give full slices, so every variable is written
    edges = {d: np.concatenate([[0], np.cumsum(chunks[d])]) for d in dims}
    for index in itertools.product(*(range(len(chunks[d])) for d in dims)):
        yield {d: slice(int(edges[d][i]), int(edges[d][i + 1])) for d, i in zip(dims, index, strict=True)}


def manifest_path(partial: Path) -> Path:
    return partial.with_name(partial.name + MANIFEST_SUFFIX)


def _write_manifest(partial: Path, manifest: dict):
    tmp = partial.with_name(partial.name + MANIFEST_SUFFIX + ".tmp")
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, manifest_path(partial))  # atomic: the manifest is never half written


def _key(region: dict) -> str:
    return ",".join(f"{d}={s.start}:{s.stop}" for d, s in sorted(region.items()))


def _region_part(pred: xr.Dataset, region: dict) -> xr.Dataset:
    """The variables of ``pred`` that lie along the region's dims, cut to it (still lazy)."""
    part = pred.isel(region)
    part = part[[v for v in part.data_vars if set(part[v].dims) & set(region)]]
    return part.drop_vars([c for c in part.coords if not set(part[c].dims) & set(region)])


def to_zarr(pred: xr.Dataset, path, overwrite: bool = False, progress: bool = True,
            parallel: int | None = None) -> Path:
    """Write ``pred`` (lazy or not) to a zarr store at ``path``, resumably and atomically.

    ``parallel`` regions are computed at a time (default: the number of CPU cores), then
    written and recorded one by one, so memory stays bounded by a few tiles.
    """
    parallel = max(1, int(parallel or os.cpu_count() or 1))
    final = user_path(path, "to_zarr(path)")
    partial = final.with_name(final.name + ".partial")
    if final.exists():
        if not overwrite:
            raise OutputExistsError(f"{final} exists; pass overwrite=True to replace it, or choose another path.")
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    pred = pred.unify_chunks() if pred.chunks else pred.chunk()
    token = _fingerprint(pred)
    manifest = None
    if manifest_path(partial).is_file() and partial.is_dir():
        manifest = json.loads(manifest_path(partial).read_text())
        if manifest.get("token") != token:
            manifest = None  # another prediction was interrupted here: start over
    if manifest is None:
        if partial.exists():
            shutil.rmtree(partial)
        pred.to_zarr(partial, mode="w", compute=False, consolidated=False, zarr_format=2)
        manifest = {"token": token, "done": []}
        _write_manifest(partial, manifest)

    done = set(manifest["done"])
    regions = list(_regions(pred))
    todo = [r for r in regions if _key(r) not in done]
    with tqdm(total=len(regions), initial=len(regions) - len(todo), desc=f"writing {final.name}", unit="tile",
              disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(todo), parallel):
            batch = todo[start:start + parallel]
            parts = dask.compute(*[_region_part(pred, region) for region in batch])  # tiles run concurrently
            for region, part in zip(batch, parts, strict=True):
                part.to_zarr(partial, region=region, consolidated=False)
                manifest["done"].append(_key(region))
                _write_manifest(partial, manifest)
                bar.update(1)

    import zarr

    zarr.consolidate_metadata(str(partial))
    os.replace(partial, final)
    manifest_path(partial).unlink()
    return final


def to_netcdf(pred: xr.Dataset, path, overwrite: bool = False, progress: bool = True) -> Path:
    """Write ``pred`` to a netCDF file at ``path``: computed resumably via zarr, then renamed into place."""
    final = user_path(path, "to_netcdf(path)")
    if final.exists() and not overwrite:
        raise OutputExistsError(f"{final} exists; pass overwrite=True to replace it, or choose another path.")
    staging = final.with_name(final.name + ".zarr")
    if staging.exists() and not (staging.with_name(staging.name + ".partial")).exists():
        shutil.rmtree(staging)  # a finished staging store from an interrupted conversion
    to_zarr(pred, staging, overwrite=True, progress=progress)
    tmp = final.with_name(final.name + ".partial")
    with xr.open_zarr(staging) as stored:
        stored.to_netcdf(tmp)
    os.replace(tmp, final)
    shutil.rmtree(staging)
    return final
