"""Where a field model's gap to the exact GP comes from: per-task gaps broken down by the task's regime.

    python -m benchmarks.oracle_gap                                  # the bundled field-normal
    python -m benchmarks.oracle_gap --release runs/field-normal      # a release not installed yet
    python -m benchmarks.oracle_gap --batches 12                     # more tasks (6 x 16 by default)

``train_bundled.py --evaluate`` gives one number per layout; this splits the same tasks (same seed)
by what each task's field is (``geonp.tasks.fields.FieldTaskInfo``): layout, signal-to-noise ratio,
the dominant component's length scale and kernel, the number of components, the context size.
Per task:

    gap_t       = mean over its targets of  NLL_model - NLL_oracle        (nats per target)
    mse_ratio_t = mean (mean_model - y)^2 / mean (mean_oracle - y)^2      (1: as precise as the exact GP)

Each bin reports the mean and median gap, its share of the summed gap, and the median MSE ratio.
A classical reference is scored on the same tasks, so the model's figures have something to stand
beside: ``kriging_ml``, isotropic kriging chosen per task by its context's marginal likelihood
over a grid of kernels (Matern-3/2, Matern-5/2, RBF), length scales (0.05-50 model units) and
nugget-to-sill ratios (1e-6-0.5), the sill profiled out; block means are treated as points at
their block centres (that is the model's input too, with its support told). Last line JSON:
``{"release", "tasks", "gap_mean", "gap_median", "mse_ratio_median", "kriging_ml": {...},
"bins": {"<split>": {"<bin>": {"tasks", "gap_mean", "gap_median", "share", "mse_ratio_median",
"kriging_gap_median", "kriging_mse_ratio_median"}}}}``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.linalg import LinAlgError, cho_factor, cho_solve

from geonp.apps.flows import pretrain
from geonp.estimator.releases import available, load_model, pretrained
from geonp.features.far_context import FAR_FRACTION
from geonp.scoring import metrics
from geonp.scoring.evaluation import field_predictions
from geonp.tasks.fields import FIELD_KERNELS, LAYOUTS
from geonp.tasks.kernels import covariance

KRIGING_KERNELS = ("matern32", "matern52", "rbf")
KRIGING_LENGTHS = (0.05, 0.15, 0.5, 1.5, 5.0, 15.0, 50.0)
KRIGING_NUGGETS = (1e-6, 1e-4, 1e-2, 1e-1, 0.5)
# bin edges per split (a value v falls in the bin whose lower edge is the largest one <= v)
SPLITS = {
    "snr": (1.0, 10.0, 100.0),
    "length_scale": (0.0, 0.2, 1.0, 5.0),
    "n_context": (0, 64, 256, 500),
}


def kriging_ml(x_ctx, y_ctx, x_tgt):
    """Mean and std ``[Nt]`` of the latent field at the targets under the grid's most likely kernel."""
    n = len(y_ctx)
    best = None
    for kernel in KRIGING_KERNELS:
        for length in KRIGING_LENGTHS:
            k_cc = covariance(kernel, x_ctx, x_ctx, length)
            for nugget in KRIGING_NUGGETS:
                try:
                    factor = cho_factor(k_cc + nugget * np.eye(n), lower=True)
                except LinAlgError:
                    continue
                alpha = cho_solve(factor, y_ctx)
                sill = max(float(y_ctx @ alpha) / n, 1e-12)  # profiled: the likelihood's maximiser
                log_lik = -0.5 * n * np.log(sill) - np.log(np.diag(factor[0])).sum()
                if best is None or log_lik > best[0]:
                    best = (log_lik, kernel, length, factor, alpha, sill)
    _, kernel, length, factor, alpha, sill = best
    k_ct = covariance(kernel, x_ctx, x_tgt, length)
    variance = sill * np.maximum(1.0 - np.sum(k_ct * cho_solve(factor, k_ct), axis=0), 1e-10)
    return k_ct.T @ alpha, np.sqrt(variance)


def per_task_rows(config, params, sampler, batches: int, batch_size: int = 16) -> list[dict]:
    rows = []
    for batch, info, mean, std in field_predictions(config, params, sampler, num_batches=batches,
                                                    batch_size=batch_size):
        for b in range(len(info.layout)):
            y = np.asarray(batch.y_tgt[b, :, 0], np.float64)
            o_mean, o_std = info.oracle_mean[b, :, 0], info.oracle_std[b, :, 0]
            n = int(info.n_context[b])
            k_mean, k_std = kriging_ml(np.asarray(batch.meta_ctx["space"][b, :n], np.float64),
                                       np.asarray(batch.y_ctx[b, :n, 0], np.float64),
                                       np.asarray(batch.meta_tgt["space"][b], np.float64))
            rows.append({
                "layout": LAYOUTS[info.layout[b]], "n_context": n, "snr": float(info.snr[b]),
                "length_scale": float(info.length_scale[b]), "kernel": FIELD_KERNELS[info.kernel[b]],
                "components": int(info.components[b]),
                "gap": metrics.nll(mean[b, :, 0], std[b, :, 0], y) - metrics.nll(o_mean, o_std, y),
                "mse_ratio": (metrics.rmse(mean[b, :, 0], y) / metrics.rmse(o_mean, y)) ** 2,
                "kriging_gap": metrics.nll(k_mean, k_std, y) - metrics.nll(o_mean, o_std, y),
                "kriging_mse_ratio": (metrics.rmse(k_mean, y) / metrics.rmse(o_mean, y)) ** 2,
            })
    return rows


def bin_label(split: str, value) -> str:
    if split not in SPLITS:
        return str(value)
    edges = SPLITS[split]
    i = int(np.searchsorted(edges, value, side="right")) - 1
    return f">= {edges[i]:g}" if i == len(edges) - 1 else f"{edges[i]:g} - {edges[i + 1]:g}"


def breakdown(rows: list[dict]) -> dict:
    total = sum(r["gap"] for r in rows)
    out = {}
    for split in ("layout", "snr", "length_scale", "kernel", "components", "n_context"):
        groups: dict[str, list[dict]] = {}
        for r in sorted(rows, key=lambda r: r[split]):
            groups.setdefault(bin_label(split, r[split]), []).append(r)
        out[split] = {label: {
            "tasks": len(g), "gap_mean": round(float(np.mean([r["gap"] for r in g])), 4),
            "gap_median": round(float(np.median([r["gap"] for r in g])), 4),
            "share": round(sum(r["gap"] for r in g) / total, 3),
            "mse_ratio_median": round(float(np.median([r["mse_ratio"] for r in g])), 3),
            "kriging_gap_median": round(float(np.median([r["kriging_gap"] for r in g])), 4),
            "kriging_mse_ratio_median": round(float(np.median([r["kriging_mse_ratio"] for r in g])), 3),
        } for label, g in groups.items()}
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release", default="field-normal", help="bundled name or release folder")
    parser.add_argument("--batches", type=int, default=6, help="batches of 16 tasks (6: train_bundled's tasks)")
    args = parser.parse_args(argv)
    config, params, meta = pretrained(args.release) if args.release in available() else load_model(args.release)
    if meta.get("tasks") != "fields":
        raise SystemExit(f"{args.release} was not trained on field tasks (tasks={meta.get('tasks')!r}); this "
                         "benchmark scores field models (e.g. field-normal) against the exact GP.")
    options = {"far_fraction": FAR_FRACTION} if meta.get("far_context") else {}
    if config.covariate_slots:
        options["covariate_slots"] = config.covariate_slots
    started = time.perf_counter()
    rows = per_task_rows(config, params, pretrain.make_sampler("fields", options), args.batches)
    bins = breakdown(rows)
    print(f"{args.release} ({meta.get('total_steps', meta.get('steps'))} steps): {len(rows)} tasks, "
          f"{time.perf_counter() - started:.0f} s")
    print(f"{'split':<13}{'bin':<12}{'tasks':>6}{'gap mean':>10}{'median':>9}{'share':>7}{'mse/oracle':>12}"
          f"{'kriging med':>13}{'kriging mse':>13}")
    for split, groups in bins.items():
        for label, g in groups.items():
            print(f"{split:<13}{label:<12}{g['tasks']:>6}{g['gap_mean']:>10.3f}{g['gap_median']:>9.3f}"
                  f"{g['share']:>7.2f}{g['mse_ratio_median']:>12.2f}{g['kriging_gap_median']:>13.3f}"
                  f"{g['kriging_mse_ratio_median']:>13.2f}")
    gaps, kriging = [r["gap"] for r in rows], [r["kriging_gap"] for r in rows]
    summary = {"release": args.release, "tasks": len(rows),
               "gap_mean": round(float(np.mean(gaps)), 4), "gap_median": round(float(np.median(gaps)), 4),
               "mse_ratio_median": round(float(np.median([r["mse_ratio"] for r in rows])), 3),
               "kriging_ml": {"gap_mean": round(float(np.mean(kriging)), 4),
                              "mse_ratio_median": round(float(np.median([r["kriging_mse_ratio"] for r in rows])), 3),
                              "gap_median": round(float(np.median(kriging)), 4),
                              "model_better_on": round(float(np.mean(np.array(gaps) < np.array(kriging))), 3)},
               "bins": bins}
    print(f"all tasks: gap mean {summary['gap_mean']:.3f} median {summary['gap_median']:.3f}; kriging_ml mean "
          f"{summary['kriging_ml']['gap_mean']:.3f} median {summary['kriging_ml']['gap_median']:.3f}; the model "
          f"is closer to the oracle on {summary['kriging_ml']['model_better_on']:.0%} of the tasks")
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
