"""The README's main job: fill the gaps of a field with the bundled model, write netCDF + a map, score it.

1. A smooth random field (random Fourier features of an RBF covariance, 60 km length scale)
   on a 0.1-degree lon/lat grid is generated on the spot; 90% of the cells are hidden (scattered
   gaps plus a block, like a cloud). ``da.np.predict()`` fills them with the bundled
   gap-filling model (``geonp.xr.accessor.default_model(None)``: ``field-normal``); scores on the
   hidden cells are printed next to nearest-neighbour and linear interpolation, and
   ``prediction.nc`` and ``map.png`` are written to ``--output``.
2. The bundled model predicts on fresh GP tasks,
   on the same tasks shifted to [8, 12]^2 (translation invariance), and is
   scored next to the exact GP posterior.
3. Optionally (``--train-seconds``), a small BSA-TNP is trained from scratch for a
   short while on the same kind of tasks and scored the same way.

Nothing is downloaded: tasks are generated on the spot.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from geonp.estimator.releases import available, pretrained
from geonp.nn.models import BSATNPConfig
from geonp.scoring.evaluation import evaluate_gp
from geonp.tasks.gp import GPTaskSampler
from geonp.training.loop import TrainConfig, train

SMALL = BSATNPConfig(num_blocks=3, width=48, num_heads=4, head_dim=16, ff_dim=128)


def _row(name: str, scores: dict) -> str:
    return (f"{name:<34}{scores['nll']:>9.3f}{scores['rmse']:>9.3f}{scores['crps']:>9.3f}"
            f"{scores['coverage_95']:>9.3f}")


def synthetic_field(seed: int = 0, length_scale_km: float = 60.0, features: int = 2000) -> xr.DataArray:
    """A smooth stationary random field (unit variance, RBF covariance) on a lon/lat grid, in kelvin anomalies."""
    rng = np.random.default_rng(seed)
    lat = np.arange(44.0, 56.0 + 1e-9, 0.1)
    lon = np.arange(-6.0, 12.0 + 1e-9, 0.1)
    glon, glat = np.meshgrid(lon, lat)
    x_km = 6371.0 * np.deg2rad(glon) * np.cos(np.deg2rad(50.0))
    y_km = 6371.0 * np.deg2rad(glat)
    w = rng.normal(0.0, 1.0 / length_scale_km, (features, 2))
    b = rng.uniform(0, 2 * np.pi, features)
    phase = x_km[..., None] * w[:, 0] + y_km[..., None] * w[:, 1] + b
    field = np.sqrt(2.0 / features) * np.cos(phase).sum(-1)
    return xr.DataArray(
        (2.0 * field).astype(np.float32), dims=("latitude", "longitude"), name="t2m_anomaly",
        coords={"latitude": ("latitude", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "longitude": ("longitude", lon, {"units": "degrees_east", "standard_name": "longitude"})},
        attrs={"units": "K", "long_name": "synthetic 2 m temperature anomaly"})


def gap_fill(output: str = "geonp-demo", seed: int = 0, hidden: float = 0.9) -> dict:
    """Part 1: hide cells of a synthetic field, fill them with the bundled model, write netCDF + PNG, score."""
    from scipy.interpolate import griddata

    import geonp  # noqa: F401  (registers .np)
    from geonp.scoring import metrics
    from geonp.xr.accessor import default_model

    truth = synthetic_field(seed)
    rng = np.random.default_rng(seed + 1)
    mask = rng.random(truth.shape) < hidden
    mask[40:75, 60:110] = True  # a "cloud": a block with no observation at all
    observed = truth.where(~mask)
    started = time.perf_counter()
    pred = observed.np.predict(progress=False)
    seconds = time.perf_counter() - started
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    pred["truth"] = truth.assign_attrs(long_name="synthetic field (truth)")
    pred["observed"] = observed.assign_attrs(long_name=f"observed cells ({1 - mask.mean():.0%})")
    pred.np.to_netcdf(out / "prediction.nc", overwrite=True, progress=False)
    pred.np.plot(["observed", "mean", "std", "truth"], path=out / "map.png",
                 title=f"geonp demo: gap filling with the bundled {default_model(None)} model")
    y = truth.values[mask]
    glon, glat = np.meshgrid(truth.longitude.values, truth.latitude.values)
    points = np.stack([glon[~mask], glat[~mask]], -1)
    baselines = {m: griddata(points, truth.values[~mask], (glon[mask], glat[mask]), method=m)
                 for m in ("nearest", "linear")}
    scores = {"geonp": metrics.gaussian_scores(pred["mean"].values[mask], pred["std"].values[mask], y)}
    for name, guess in baselines.items():
        ok = np.isfinite(guess)
        scores[name] = {"rmse": metrics.rmse(guess[ok], y[ok]), "mae": metrics.mae(guess[ok], y[ok])}
    print(f"Gap filling: {truth.shape[0]}x{truth.shape[1]} grid, {mask.sum()} hidden cells, {seconds:.1f} s")
    print(f"{'method':<12}{'RMSE':>9}{'MAE':>9}{'CRPS':>9}{'cov95':>9}")
    for name, sc in scores.items():
        print(f"{name:<12}{sc['rmse']:>9.3f}{sc['mae']:>9.3f}{sc.get('crps', float('nan')):>9.3f}"
              f"{sc.get('coverage_95', float('nan')):>9.3f}")
    print(f"wrote {out / 'prediction.nc'} and {out / 'map.png'}\n")
    return {"gap_fill": {k: {m: float(v) for m, v in sc.items()} for k, sc in scores.items()},
            "gap_fill_seconds": round(seconds, 2)}


def run(train_seconds: float = 0.0, seed: int = 0, eval_batches: int = 2, progress: bool = True,
        output: str = "geonp-demo") -> dict:
    filled = gap_fill(output, seed)
    sampler = GPTaskSampler()  # 128-512 noisy context points, 1024 noise-free targets on [-2, 2]^2
    kw = dict(seed=seed + 100, num_batches=eval_batches, batch_size=8)
    report = {}
    print("2-D GP tasks (rbf, matern 1/2, 3/2, 5/2, periodic; 128-512 context points, 1024 targets)")
    print(f"{'predictor':<34}{'NLL':>9}{'RMSE':>9}{'CRPS':>9}{'cov95':>9}")

    if "gp2d-normal" in available():
        config, params, meta = pretrained("gp2d-normal")
        base = evaluate_gp(config, params, sampler, **kw)
        moved = evaluate_gp(config, params, sampler, shift=10.0, oracle=False, **kw)
        print(_row("exact GP (oracle)", base["oracle"]))
        print(_row(f"bundled gp2d-normal ({meta.get('steps', '?')} steps)", base["model"]))
        print(_row("  same tasks shifted to [8,12]^2", moved["model"]))
        report.update(oracle=base["oracle"], pretrained=base["model"], pretrained_shifted=moved["model"])
    else:
        print("(no bundled model in this installation: skipping the pretrained part)")

    if train_seconds > 0:
        started = time.perf_counter()
        # smaller tasks than the evaluation ones keep each step short on a laptop CPU
        train_sampler = GPTaskSampler(num_context=(64, 256), num_target=128)
        tc = TrainConfig(steps=10_000, batch_size=8, learning_rate=1e-3, warmup_steps=50, seed=seed,
                         time_budget=train_seconds, validate_every=10_000, validation_batches=1, progress=progress)
        result = train(SMALL, train_sampler, tc)
        scratch = evaluate_gp(SMALL, result.params, sampler, **kw)
        label = f"small model, {result.step} steps ({time.perf_counter() - started:.0f} s)"
        if "oracle" not in report:
            print(_row("exact GP (oracle)", scratch["oracle"]))
            report["oracle"] = scratch["oracle"]
        print(_row(label, scratch["model"]))
        report["trained_from_scratch"] = {**scratch["model"], "steps": result.step}
    print(json.dumps({**{k: {m: round(v, 4) for m, v in s.items()} for k, s in report.items()}, **filled}))
    return {**report, **filled}
