"""Joint draws against the exact GP: variance of region means, and what they cost.

    python -m benchmarks.joint                  # 24 x 24 grids, 2 observed fractions, 2 seeds, 128 draws
    python -m benchmarks.joint --draws 64 --seeds 1

On a GP grid (RBF, 6 km length scale, noise 0.1, as tests/xr/test_gp_reference.py) with
a fraction of cells observed, every method draws the unobserved cells and the variance
of each quadrant's mean over the draws is divided by the exact posterior's:

    oracle-joint   the coarse-to-fine sampler with the exact GP's conditionals (geonp.predict.joint)
    joint          predict(samples=n, joint=True) with a bundled model (its own spread)
    marginal       predict(samples=n): independent draws per cell

1.0 is exact. Reported: the geometric mean of the ratios over quadrants and seeds, the
range, and seconds per call. Last line: JSON {"<model>/<fraction>": {"<method>": {...}}}.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

import geonp
from geonp.predict.joint import joint_draws
from geonp.testing import (
    exact_gp_conditional,
    gp_grid,
    posterior_covariance,
    quadrant_weights,
    region_variance_ratios,
)


def summary(ratios, seconds):
    ratios = np.asarray(ratios)
    return {"ratio_geomean": round(float(np.exp(np.log(ratios).mean())), 3),
            "ratio_min": round(float(ratios.min()), 3), "ratio_max": round(float(ratios.max()), 3),
            "seconds": round(float(np.mean(seconds)), 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=24)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.08, 0.2])
    parser.add_argument("--models", nargs="+", default=["gp2d-normal", "field-normal"])
    parser.add_argument("--draws", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    results = {}
    for fraction in args.fractions:
        found = {"oracle-joint": ([], [])}
        for seed in range(args.seeds):
            da, _, seen, points = gp_grid(size=args.size, fraction=fraction, seed=seed)
            cov, weights = posterior_covariance(points, seen), quadrant_weights(args.size, seen)
            observed = (da.values.ravel() - 15.0) / 3.0
            feats = lambda p: {"embedding": p, "space": p, "time": None, "covariates": np.zeros((len(p), 0))}  # noqa: E731
            started = time.perf_counter()
            draws = joint_draws(exact_gp_conditional, feats(points[seen]), observed[seen][:, None],
                                feats(points[~seen]), args.draws, jax.random.PRNGKey(seed))[..., 0]
            found["oracle-joint"][1].append(time.perf_counter() - started)
            found["oracle-joint"][0].extend(region_variance_ratios(draws, cov, weights))
            for name in args.models:
                model = geonp.pretrained(name, progress=False)
                if not model.is_fitted:
                    model = model.fit(da, crs="EPSG:32633")
                for method, joint in (("joint", True), ("marginal", False)):
                    started = time.perf_counter()
                    pred = model.predict(da, samples=args.draws, joint=joint, calibrated=False, seed=seed)
                    seconds = time.perf_counter() - started
                    values = pred["samples"].transpose("sample", ...).values.reshape(args.draws, -1)
                    ratios = region_variance_ratios((values[:, ~seen] - 15.0) / 3.0, cov, weights)
                    entry = found.setdefault(f"{name}/{method}", ([], []))
                    entry[0].extend(ratios)
                    entry[1].append(seconds)
        for key, (ratios, seconds) in found.items():
            model, _, method = key.rpartition("/")
            results.setdefault(f"{model or 'exact'}/{fraction}", {})[method] = summary(ratios, seconds)
    for case, methods in results.items():
        for method, row in methods.items():
            print(f"{case:>22} {method:>13}  region-mean variance / exact: {row['ratio_geomean']:.2f} "
                  f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f})  {row['seconds']:.1f} s")
    print(json.dumps({"size": args.size, "draws": args.draws, "seeds": args.seeds, "results": results}))


if __name__ == "__main__":
    main()
