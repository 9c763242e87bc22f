"""Prevalence from real surveys: geonp against the model a statistician would fit, on every shared set.

    python -m benchmarks.surveys                                   # the bundled prevalence-binomial
    python -m benchmarks.surveys --model runs/prevalence-binomial  # a release folder (several: comma-separated)
    python -m benchmarks.surveys --cases gambia,uk-binary
    python -m benchmarks.surveys --describe      # what the sets look like to binomial geostatistics

Every case of ``benchmarks/_surveys.py`` (Gambia, Tanzania, western Kenya, each with and without its
covariates; a binary map), 10-fold leave-location-out, every method on the same folds:
``geonp`` (the model fitted without training on each training fold, its covariates chosen by its own
leave-location-out selection), ``binomial_glmm`` (binomial geostatistics by Laplace maximum
likelihood, GPBoost: ``geonp.apps.flows.survey_baselines``), ``kriging`` (of the empirical logit;
regression kriging with covariates) and ``idw10`` (the 10 nearest, a point forecast).
Scores: log score of the held-out counts (higher is better), CRPS of the prevalence, 95% coverage
of the counts and of the prevalence, Brier score on binary cases, seconds.

``--describe`` fits binomial geostatistics to each whole set instead and prints what the task prior
must cover (``geonp/tasks/prevalence.py``): the logit surface's and the village nugget's standard
deviations, the range relative to the set's extent (a survey set spans about the prior's domain), the
mean prevalence, the numbers examined, and the sites' clustering (mean nearest-neighbour distance over
that of as many uniform sites: 1 uniform, below 1 clustered).

Last line: JSON ``{"cases": {case: {method: {...}}}}`` (``--describe``: ``{case: {...}}``).
"""

from __future__ import annotations

import argparse
import json

from benchmarks._surveys import baseline_methods, cross_validate, geonp_method, summary, survey_cases


def describe(case) -> dict:
    """Binomial geostatistics fitted to the whole set (exponential GP + village nugget, Laplace ML)."""
    import warnings

    import gpboost as gpb
    import numpy as np
    from scipy.spatial import cKDTree

    from geonp.apps.flows.survey_baselines import _km

    frame = case.frame
    xs, _ = _km(frame, frame.iloc[:1])
    n = frame.examined.to_numpy(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = gpb.GPModel(gp_coords=xs, group_data=np.arange(len(frame)), cov_function="matern", cov_fct_shape=0.5,
                            likelihood="binomial_logit", weights=n)
        model.fit(y=frame.positive.to_numpy(float) / n, X=np.ones((len(frame), 1)), params={"trace": False})
    nugget, variance, length = (float(v) for v in np.asarray(model.get_cov_pars()).ravel()[:3])
    extent = float(np.ptp(xs, 0).max())
    spacing = cKDTree(xs).query(xs, k=2)[0][:, 1].mean()
    uniform = 0.5 * np.sqrt(np.prod(np.ptp(xs, 0)) / len(frame))
    return {"locations": len(frame), "examined_median": float(np.median(n)),
            "examined_range": [int(n.min()), int(n.max())],
            "prevalence": round(float(frame.positive.sum() / n.sum()), 3),
            "intercept": round(float(np.asarray(model.get_coef()).ravel()[0]), 2),
            "logit_sd": round(variance**0.5, 2), "nugget_sd": round(nugget**0.5, 2),
            "range_km": round(length, 1), "range_over_extent": round(length / extent, 3),
            "clustering": round(float(spacing / uniform), 2)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="prevalence-binomial",
                        help="bundled names or release folders, comma-separated (each a method of its own)")
    parser.add_argument("--cases", default="", help="comma-separated subset of cases")
    parser.add_argument("--describe", action="store_true", help="fit binomial geostatistics to each whole set "
                                                                "and print what the task prior must cover")
    args = parser.parse_args(argv)
    if args.describe:
        described = {c.name: describe(c) for c in survey_cases([c for c in args.cases.split(",") if c] or None)
                     if not c.covariates}
        for name, row in described.items():
            print(f"{name:<12} " + ", ".join(f"{k} {v}" for k, v in row.items()))
        print(json.dumps(described))
        return described
    models = [m for m in args.model.split(",") if m]
    methods = {("geonp" if len(models) == 1 else f"geonp:{m}"): geonp_method(m) for m in models}
    methods.update(baseline_methods())
    cases = survey_cases([c for c in args.cases.split(",") if c] or None)
    if not cases:
        raise SystemExit("no survey sets found: set GEONP_DATA to the shared data folder.")
    results = {}
    for case in cases:
        extra = ", " + ", ".join(case.covariates) if case.covariates else ""
        print(f"{case.name} ({len(case.frame)} locations{extra})", flush=True)
        results[case.name] = {}
        for name, method in methods.items():
            row = results[case.name][name] = summary(cross_validate(case, method))
            brier = f" Brier {row['brier']:.4f}" if "brier" in row else ""
            print(f"    {name:<16} log score {row['log_score']:8.4f}  CRPS {row['crps']:.4f}  cov95 "
                  f"{row['coverage_95']:.3f} (prevalence {row['coverage_95_prevalence']:.3f}){brier}  "
                  f"{row['seconds']:.1f} s", flush=True)
    print(json.dumps({"models": models, "cases": results}))
    return results


if __name__ == "__main__":
    main()
