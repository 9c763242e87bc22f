"""Fill a large raster from scattered observations with the default model, tiled: time, memory, accuracy.

    python -m benchmarks.surface            # 1024 x 1024 grid from 100,000 context points
    python -m benchmarks.surface --quick    # 256 x 256 from 10,000, plus the untiled (context="all") reference

The field is a smooth random surface (random Fourier features of an RBF GP,
length scale --lengthscale cells) on a projected 1 km grid, observed with
noise at --context random cells. The bundled ``field-normal`` model (``--model``) is
calibrated on the observations (no training), and predicts every cell
through the lazy, tiled path, streamed to a zarr store the way a user would.
Peak memory is the process's peak resident set (whole process: Python, jax,
the grid, the model). Prints a summary, then a JSON line with ``seconds``,
``peak_mb``, ``context_points``, ``test_points`` (and more).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr


def smooth_surface(size: int, lengthscale: float, features: int = 256, seed: int = 0) -> np.ndarray:
    """A unit-variance GP-like surface: random Fourier features of an RBF kernel, ``[size, size]``."""
    rng = np.random.default_rng(seed)
    omega = rng.normal(0.0, 1.0 / lengthscale, size=(features, 2))
    phase = rng.uniform(0, 2 * np.pi, features)
    weight = rng.normal(size=features) * np.sqrt(2.0 / features)
    axis = np.arange(size, dtype=np.float64)
    out = np.zeros((size, size))
    for w, (oy, ox), p in zip(weight, omega, phase, strict=True):
        out += w * np.cos(oy * axis[:, None] + ox * axis[None, :] + p)
    return out


def peak_rss_mb() -> float:
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 x 256 from 10,000 points (+ untiled reference)")
    parser.add_argument("--size", type=int, default=None)
    parser.add_argument("--context", type=int, default=None)
    parser.add_argument("--lengthscale", type=float, default=24.0, help="of the surface, in cells")
    parser.add_argument("--noise", type=float, default=0.05)
    parser.add_argument("--tile", type=int, default=None, help="cells per side; default: predict's own")
    parser.add_argument("--model", default="field-normal", help="bundled model name or release folder")
    parser.add_argument("--halo", type=float, default=None, help="metres; default: from the learned bias")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    size = args.size or (256 if args.quick else 1024)
    n_context = args.context or (10_000 if args.quick else 100_000)

    import geonp

    truth = smooth_surface(size, args.lengthscale, seed=args.seed)
    rng = np.random.default_rng(args.seed + 1)
    cells = rng.choice(size * size, n_context, replace=False)
    observed = np.full(size * size, np.nan)
    observed[cells] = truth.ravel()[cells] + args.noise * rng.normal(size=n_context)
    coords = {"y": ("y", np.arange(size) * 1000.0, {"units": "m", "standard_name": "projection_y_coordinate"}),
              "x": ("x", np.arange(size) * 1000.0, {"units": "m", "standard_name": "projection_x_coordinate"})}
    field = xr.DataArray(observed.reshape(size, size), dims=("y", "x"), coords=coords, name="z",
                         attrs={"units": "1", "long_name": "synthetic surface"})

    started = time.perf_counter()
    model = geonp.NeuralProcess(pretrained=args.model, steps=0).fit(field, crs="EPSG:3857")
    tiling = {} if args.tile is None else {"tile": args.tile}
    lazy = field.np.predict(model=model, halo=args.halo, lazy=True, **tiling)
    with tempfile.TemporaryDirectory() as tmp:
        path = lazy.np.to_zarr(Path(tmp) / "surface.zarr")
        pred = xr.open_zarr(path).load()
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()

    missing = np.isnan(observed.reshape(size, size))
    err = pred["mean"].values - truth
    z = err / pred["std"].values
    report = {
        "grid": f"{size}x{size}", "context_points": n_context, "test_points": size * size,
        "seconds": round(seconds, 1), "peak_mb": round(peak, 1),
        "points_per_second": round(size * size / seconds, 1),
        "tile": lazy["mean"].data.chunksize[0],
        "halo_km": round(float(lazy.attrs["geonp_halo"]) / 1000.0, 2),  # CRS units are m
        "space_unit_km": round(model.scaling_.space_unit / 1000.0, 3),
        "rmse_missing": round(float(np.sqrt(np.mean(err[missing] ** 2))), 4),
        "coverage95_missing": round(float(np.mean(np.abs(z[missing]) < 1.96)), 4),
        "field_std": round(float(truth.std()), 4),
        "machine": f"{platform.machine()} {__import__('os').cpu_count()} cores",
    }
    if args.quick:
        t0 = time.perf_counter()
        exact = field.np.predict(model=model, context="all", tile=size)
        report["untiled_seconds"] = round(time.perf_counter() - t0, 1)
        report["max_abs_diff_vs_untiled"] = round(float(np.abs(exact["mean"].values - pred["mean"].values).max()), 5)
        report["rmse_untiled"] = round(float(np.sqrt(np.mean((exact["mean"].values - truth)[missing] ** 2))), 4)
    for key, value in report.items():
        print(f"{key:>26}: {value}")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
