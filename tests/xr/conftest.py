"""Small xarray fields and models shared by the accessor tests."""

import dataclasses
import json

import jax
import numpy as np
import pytest
import xarray as xr

import geonp
from geonp.model_store import pretrained, save_model
from geonp.nn.models import build_model
from geonp.training.warm_start import transplant


def smooth_field(lat, lon, times=3, seed=0):
    """A smooth random field (sum of a few plane waves), K around 280, with CF attrs."""
    rng = np.random.default_rng(seed)
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    data = []
    for _ in range(times):
        field = np.zeros_like(la)
        for _ in range(4):
            k = rng.normal(0, 12, size=2)
            field += np.cos(k[0] * la + k[1] * lo + rng.uniform(0, 2 * np.pi))
        data.append(280.0 + 2.0 * field)
    da = xr.DataArray(
        np.array(data, np.float32), dims=("time", "lat", "lon"),
        coords={"time": np.datetime64("2020-01-01T00", "ns") + np.arange(times) * np.timedelta64(6, "h"),
                "lat": ("lat", np.asarray(lat, float), {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", np.asarray(lon, float), {"units": "degrees_east", "standard_name": "longitude"})},
        name="t2m", attrs={"units": "K", "long_name": "2 metre temperature", "standard_name": "air_temperature"},
    )
    return da


def with_gaps(da, fraction=0.6, seed=1):
    keep = np.random.default_rng(seed).random(da.shape) > fraction
    return da.where(keep)


@pytest.fixture(scope="session")
def field():
    return smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25))  # 3 x 24 x 28


@pytest.fixture(scope="session")
def gappy(field):
    return with_gaps(field)


@pytest.fixture(scope="session")
def calibrated(gappy):
    """The bundled model calibrated on the gappy field (no training)."""
    return geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(gappy)


TINY = dict(num_blocks=2, width=16, num_heads=2, head_dim=8, ff_dim=32, window_points=64, max_context=48,
            num_target=32, batch_size=4, progress=False)


@pytest.fixture(scope="session")
def tiny(gappy):
    """A tiny model trained for a few steps (for fit/save/load mechanics, not accuracy)."""
    return geonp.NeuralProcess(steps=12, seed=3, **TINY).fit(gappy)


def extended_release(name, tmp_path, changes: dict, new_rows: float = 0.0, metadata: dict | None = None):
    """A bundled model given new token inputs (``changes`` to its config, e.g. ``{"support": True}``), saved
    under ``tmp_path``: its new embedding rows are zero (the same function) or ``new_rows`` (so they matter);
    ``metadata`` updates its config.json metadata (e.g. a context rule)."""
    config, params, meta = pretrained(name)
    extended = dataclasses.replace(config, **changes)
    groups = {g.name: np.zeros((1, 4, g.dim), np.float32) for g in extended.groups}
    probe = (np.zeros((1, 4, extended.x_dim), np.float32), np.ones((1, 4, extended.y_columns), np.float32), groups,
             np.ones((1, 4), bool), np.zeros((1, 4, extended.x_dim), np.float32), groups)
    params, report = transplant(params, build_model(extended).init(jax.random.PRNGKey(0), *probe), zero_new=True)
    assert len(report["partial"]) == (1 if changes else 0)  # only the embedding's input kernel grows
    old_rows = {jax.tree_util.keystr(p): v.shape[0] for p, v in jax.tree_util.tree_leaves_with_path(
        pretrained(name)[1])}

    def set_new_rows(path, leaf):
        leaf = np.array(leaf)
        if report["partial"] and jax.tree_util.keystr(path) == report["partial"][0]:
            leaf[old_rows[report["partial"][0]]:] = new_rows
        return leaf

    path = tmp_path / f"{name}-{'-'.join([*changes, *(metadata or {})])}-{new_rows}"
    save_model(path, extended, jax.tree_util.tree_map_with_path(set_new_rows, params),
               {**json.loads(json.dumps(meta)), **(metadata or {})})
    return geonp.NeuralProcess(pretrained=str(path), likelihood=extended.likelihood.to_dict(), steps=0)
