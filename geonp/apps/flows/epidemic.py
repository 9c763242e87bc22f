"""Epidemic surfaces: simulate an SIR lattice, observe a fraction of cells, fill in the whole surface.

    flow: epidemic
    size: 1024                 # lattice cells per side
    observed_fraction: 0.1     # ~100K observed cells at 1024^2
    output: ../runs/epidemic-1024

The bundled ``sir-categorical`` model (trained on 64 x 64 lattices) predicts the
state probabilities of every cell through the tiled ``.np`` accessor. Reported
against the simulation's truth on the unobserved cells: accuracy, log score and
Brier score, next to the nearest-observed-cell baseline, and the time taken.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from geonp.apps.recipes import resolve
from geonp.tasks.epidemic import STATE_NAMES, simulate_sir


def simulate_observations(size: int, beta: float, gamma: float, steps: int, seeds: int, observed_fraction: float,
                          seed: int = 0):
    """(truth ``[size, size]`` int8, observed DataArray with NaN where unobserved)."""
    key = jax.random.PRNGKey(seed)
    truth = np.asarray(simulate_sir(key, (size, size), beta, gamma, steps, seeds, max_steps=steps))
    observed = np.random.default_rng(seed).random((size, size)) < observed_fraction
    cells = np.arange(size, dtype=np.float64)
    coords = {"y": ("y", cells, {"units": "cell", "long_name": "lattice row"}),
              "x": ("x", cells, {"units": "cell", "long_name": "lattice column"})}
    attrs = {"long_name": "SIR state", "flag_values": "0 1 2", "flag_meanings": " ".join(STATE_NAMES)}
    da = xr.DataArray(np.where(observed, truth, np.nan).astype(np.float32), dims=("y", "x"), coords=coords,
                      name="state", attrs=attrs)
    return truth, da


def nearest_baseline(da: xr.DataArray) -> np.ndarray:
    """The state of the nearest observed cell, everywhere."""
    values = da.values
    iy, ix = np.nonzero(np.isfinite(values))
    tree = cKDTree(np.stack([iy, ix], -1))
    yy, xx = np.meshgrid(np.arange(values.shape[0]), np.arange(values.shape[1]), indexing="ij")
    _, nearest = tree.query(np.stack([yy.ravel(), xx.ravel()], -1), workers=-1)
    return values[iy[nearest], ix[nearest]].reshape(values.shape).astype(np.int8)


def scores(truth: np.ndarray, hidden: np.ndarray, probs: np.ndarray | None = None, mode: np.ndarray | None = None):
    t = truth[hidden]
    out = {"accuracy": float(np.mean(mode[hidden] == t))}
    if probs is not None:
        p = probs[:, hidden]  # [K, n]
        true_p = np.take_along_axis(p, t[None].astype(int), axis=0)[0]
        out["log_score"] = float(np.mean(np.log(np.maximum(true_p, 1e-12))))
        onehot = np.eye(p.shape[0])[t.astype(int)].T
        out["brier"] = float(np.mean(np.sum((p - onehot) ** 2, axis=0)))
    return out


def run(base: Path, output: str, size: int = 1024, observed_fraction: float = 0.1, beta: float = 0.25,
        gamma: float = 0.1, steps: int = 120, seeds: int = 30, model: str = "sir-categorical", tile: int = 128,
        seed: int = 0, plot: bool = True) -> dict:
    import geonp

    out_dir = resolve(base, output)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    truth, da = simulate_observations(size, beta, gamma, steps, seeds, observed_fraction, seed)
    simulate_seconds = time.perf_counter() - started
    hidden = ~np.isfinite(da.values)

    started = time.perf_counter()
    pred = da.np.predict(model=model, tile=tile, progress=False)
    predict_seconds = time.perf_counter() - started
    probs = pred["probs"].transpose("class", "y", "x").values
    mode = pred["mode"].values.astype(np.int8)
    started = time.perf_counter()
    nearest = nearest_baseline(da)
    nearest_seconds = time.perf_counter() - started

    counts = np.bincount(truth.ravel(), minlength=3) / truth.size
    report = {
        "size": size, "observed_cells": int((~hidden).sum()), "hidden_cells": int(hidden.sum()),
        "truth_fractions": dict(zip(STATE_NAMES, np.round(counts, 4).tolist(), strict=True)),
        "simulation": {"beta": beta, "gamma": gamma, "steps": steps, "seeds": seeds, "seconds":
                       round(simulate_seconds, 2)},
        "geonp": {**scores(truth, hidden, probs, mode), "seconds": round(predict_seconds, 2)},
        "nearest_observed": {**scores(truth, hidden, mode=nearest), "seconds": round(nearest_seconds, 2)},
    }
    out = pred.assign(truth=(("y", "x"), truth, {"long_name": "simulated SIR state", **{
        k: da.attrs[k] for k in ("flag_values", "flag_meanings")}}))
    out.to_netcdf(out_dir / "epidemic.nc")
    if plot:
        view = out.isel(y=slice(0, min(size, 256)), x=slice(0, min(size, 256)))
        view = view.assign(observed=da.isel(y=slice(0, min(size, 256)), x=slice(0, min(size, 256))),
                           p_infected=view["probs"].sel({"class": "infected"}).assign_attrs(
                               long_name="P(infected)", units="1"))
        geonp.plot(view, ["truth", "observed", "mode", "p_infected"], path=out_dir / "epidemic.png",
                   title=f"SIR {size}x{size}, {observed_fraction:.0%} of cells observed (top-left 256x256 shown)")
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report
