"""Prevalence from real surveys: geonp against the model a statistician would fit, on every shared set.

    python -m benchmarks.surveys                                   # the bundled prevalence-binomial
    python -m benchmarks.surveys --model runs/prevalence-binomial  # a release folder (several: comma-separated)
    python -m benchmarks.surveys --cases gambia,uk-binary

Every case of ``benchmarks/_surveys.py`` (Gambia, Tanzania, western Kenya, each with and without its
covariates; a binary map), 10-fold leave-location-out, every method on the same folds:
``geonp`` (the model fitted without training on each training fold, its covariates chosen by its own
leave-location-out selection), ``binomial_glmm`` (binomial geostatistics by Laplace maximum
likelihood, GPBoost: ``geonp.flows.survey_baselines``), ``kriging`` (of the empirical logit;
regression kriging with covariates) and ``idw10`` (the 10 nearest, a point forecast).
Scores: log score of the held-out counts (higher is better), CRPS of the prevalence, 95% coverage
of the counts and of the prevalence, Brier score on binary cases, seconds.

Last line: JSON ``{"cases": {case: {method: {...}}}}``.
"""

from __future__ import annotations

import argparse
import json

from benchmarks._surveys import baseline_methods, cross_validate, geonp_method, summary, survey_cases


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="prevalence-binomial",
                        help="bundled names or release folders, comma-separated (each a method of its own)")
    parser.add_argument("--cases", default="", help="comma-separated subset of cases")
    args = parser.parse_args(argv)
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
