"""A release gate: a candidate release against the installed one, on every real case its likelihood serves.

    python -m benchmarks.release_gate runs/prevalence-binomial                  # against the bundled release
    python -m benchmarks.release_gate runs/prevalence-binomial --installed OLD  # against another release
    python -m benchmarks.release_gate runs/field-normal --cases uk-clouds,norway-down2x

* **Binomial (prevalence) releases**: every survey set in the shared data, with and without its
  covariates (``benchmarks/_surveys.py``: Gambia villages, Tanzania DHS, western Kenya aggregated to
  locations, a binary map), 10-fold leave-location-out, both models fitted without training on each
  training fold. Per location: log score of the held-out counts (higher is better) and CRPS of
  the prevalence (lower is better). Standard errors of the mean difference by a bootstrap over
  locations. A model without covariate slots does not serve the ``+covariates`` cases (left out, said so).
* **Gaussian field releases**: the ``realdata.py --quick`` cases (gap filling and downscaling), the
  default path (``fit(steps=0)`` then ``predict``) of each model on the same cells. Per block (a run of
  at most 256 nearby targets of one field within one distance band from the data,
  :data:`benchmarks.realdata.DISTANCE_BINS`): squared error and CRPS; standard errors by a bootstrap
  over blocks.

A case **fails** when the candidate is worse than the installed release beyond noise: its mean
log score lower (or its RMSE or CRPS higher) by more than :data:`Z` standard errors. The gate
passes when no case fails. The binomial geostatistical model (GPBoost) runs beside the survey
cases as the reference a statistician would fit, for the table only.

``train_bundled.py --install`` runs this gate and refuses a release that fails it (``--force REASON``
installs it anyway and writes the reason and the table into its ``config.json``).
Last line: JSON ``{"passed": bool, "cases": {case: {...}}}``; exit status 1 when the gate fails.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

Z = 2.0  # standard errors: "worse beyond noise"
BOOTSTRAP = 2000
RELEASES = {"binomial": "prevalence-binomial", "normal": "field-normal"}


def release_config(release: str):
    """The model config of a bundled name or a release folder."""
    from geonp.estimator.releases import release as load_release

    return load_release(release)[0]


def bootstrap_se(differences: np.ndarray, seed: int = 0) -> float:
    """Standard error of the mean of ``differences [L]`` by resampling its rows."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(differences), size=(BOOTSTRAP, len(differences)))
    return float(np.std(differences[draws].mean(1)))


def compare(candidate: np.ndarray, installed: np.ndarray, higher_is_better: bool) -> dict:
    """Means, their difference (candidate - installed), its bootstrap SE, and whether it is worse beyond noise."""
    diff = np.asarray(candidate, np.float64) - np.asarray(installed, np.float64)
    se = bootstrap_se(diff)
    worse = bool((diff.mean() < -Z * se) if higher_is_better else (diff.mean() > Z * se))
    return {"candidate": round(float(np.mean(candidate)), 4), "installed": round(float(np.mean(installed)), 4),
            "difference": round(float(diff.mean()), 4), "se": round(se, 4), "worse": worse}


# --------------------------------------------------------------------------- binomial releases: surveys


def survey_gate(candidate: str, installed: str, names=None, reference: bool = True) -> dict:
    from benchmarks._surveys import cross_validate, geonp_method, summary, survey_cases
    from geonp.apps.flows.survey_baselines import binomial_glmm_latent, has_gpboost

    slots = {release: release_config(release).covariate_slots for release in (candidate, installed)}
    out = {}
    for case in survey_cases(names):
        if case.covariates and not all(slots.values()):
            out[case.name] = {"served": False, "why": "a release without covariate slots: "
                                                      + ", ".join(r for r, s in slots.items() if not s)}
            continue
        print(f"{case.name} ({len(case.frame)} locations)", flush=True)
        tables = {who: cross_validate(case, geonp_method(release)) for who, release in
                  (("candidate", candidate), ("installed", installed))}
        row = {"served": True, "locations": len(case.frame),
               "log_score": compare(tables["candidate"]["log_score"], tables["installed"]["log_score"], True),
               "crps": compare(tables["candidate"]["crps"], tables["installed"]["crps"], False),
               "coverage_95": {who: round(float(np.mean(t["covered"])), 3) for who, t in tables.items()}}
        if reference and has_gpboost():
            row["binomial_glmm"] = summary(cross_validate(case, binomial_glmm_latent))
        row["worse"] = row["log_score"]["worse"] or row["crps"]["worse"]
        out[case.name] = row
        print_row(case.name, row)
    return out


# --------------------------------------------------------------------------- field releases: realdata cases


def field_gate(candidate: str, installed: str, names=None) -> dict:
    from benchmarks import realdata

    cases = realdata.case_runners(realdata.fields(quick=True), ["geonp"], ["geonp"])
    out = {}
    for case in names or list(cases):
        print(case, flush=True)
        blocks = {}
        realdata.Scoreboard.keep_parts = True
        try:
            for who, release in (("candidate", candidate), ("installed", installed)):
                realdata.MODEL = release  # the model realdata's geonp method runs
                blocks[who] = _blocks(cases[case]())
        finally:
            realdata.MODEL, realdata.Scoreboard.keep_parts = None, False
        row = {"served": True, "blocks": len(blocks["candidate"]["squared"]),
               "rmse": _pooled_compare(blocks["candidate"], blocks["installed"], "squared"),
               "crps": _pooled_compare(blocks["candidate"], blocks["installed"], "crps")}
        row["worse"] = row["rmse"]["worse"] or row["crps"]["worse"]
        out[case] = row
        print_row(case, row)
    return out


BLOCK_TARGETS = 256  # targets per block at most: runs of consecutive (row-major, so nearby) targets


def _blocks(result: dict) -> dict:
    """Per block (a run of at most :data:`BLOCK_TARGETS` nearby targets of one field within one distance band):
    summed squared error, summed CRPS, target count."""
    from benchmarks.realdata import DISTANCE_BINS
    from geonp.scoring import metrics

    squared, crps, counts = [], [], []
    for mean, std, truth, cells in result["geonp"]["_parts"]:
        band = np.digitize(cells, DISTANCE_BINS[1:-1])
        for b in np.unique(band):
            index = np.flatnonzero(band == b)
            for run in np.array_split(index, int(np.ceil(index.size / BLOCK_TARGETS))):
                squared.append(float(np.sum((mean[run] - truth[run]) ** 2)))
                crps.append(float(metrics.crps_gaussian(mean[run], np.maximum(std[run], 1e-9), truth[run])) * run.size)
                counts.append(int(run.size))
    return {"squared": np.array(squared), "crps": np.array(crps), "counts": np.array(counts)}


def _pooled_compare(candidate: dict, installed: dict, key: str) -> dict:
    """Pooled RMSE (``key="squared"``) or mean CRPS (``"crps"``) of both, and the SE of their difference by a
    bootstrap over blocks (the same blocks for both)."""
    rng = np.random.default_rng(0)
    n = len(candidate["counts"])
    draws = rng.integers(0, n, size=(BOOTSTRAP, n))

    def pooled(b, d):
        per_target = b[key][d].sum(-1) / b["counts"][d].sum(-1)
        return np.sqrt(per_target) if key == "squared" else per_target

    diff = pooled(candidate, draws) - pooled(installed, draws)
    full = np.arange(n)
    value_c, value_i = float(pooled(candidate, full)), float(pooled(installed, full))
    se = float(np.std(diff))
    return {"candidate": round(value_c, 4), "installed": round(value_i, 4), "difference": round(value_c - value_i, 4),
            "se": round(se, 4), "worse": bool(value_c - value_i > Z * se)}


# --------------------------------------------------------------------------- the gate


def gate(candidate: str, installed: str | None = None, cases=None) -> dict:
    """Score ``candidate`` against ``installed`` (default: the bundled release of its likelihood) on every case
    its likelihood serves; ``{"passed", "candidate", "installed", "cases"}``."""
    likelihood = release_config(candidate).likelihood.name
    if likelihood not in RELEASES:
        raise SystemExit(f"no real cases gate a {likelihood} release yet (gated: {sorted(RELEASES)}).")
    installed = installed or RELEASES[likelihood]
    run = survey_gate if likelihood == "binomial" else field_gate
    rows = run(candidate, installed, cases)
    served = [r for r in rows.values() if r["served"]]
    return {"passed": bool(served) and not any(r["worse"] for r in served), "candidate": candidate,
            "installed": installed, "z": Z, "cases": rows}


def print_row(case: str, row: dict) -> None:
    parts = []
    for metric in ("log_score", "rmse", "crps"):
        if metric in row:
            m = row[metric]
            parts.append(f"{metric} {m['candidate']:.4f} vs {m['installed']:.4f} ({m['difference']:+.4f} "
                         f"+- {m['se']:.4f})")
    print(f"  {case:<22} {'WORSE' if row['worse'] else 'ok':<6} " + "; ".join(parts), flush=True)


def markdown(result: dict) -> str:
    """The gate's table for RESULTS.md."""
    lines = [f"Release gate: `{result['candidate']}` against `{result['installed']}` "
             f"(worse = beyond {result['z']:g} bootstrap SE): **{'passed' if result['passed'] else 'failed'}**", "",
             "| case | n | metric | candidate | installed | difference ± SE | coverage 95 (cand / inst) | "
             "binomial GLMM | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for case, row in result["cases"].items():
        if not row["served"]:
            lines.append(f"| {case} | | | | | not served: {row['why']} | | | |")
            continue
        for metric in ("log_score", "rmse", "crps"):
            if metric not in row:
                continue
            m = row[metric]
            coverage = row.get("coverage_95", {})
            cov = f"{coverage['candidate']:.3f} / {coverage['installed']:.3f}" if coverage else ""
            glmm = row.get("binomial_glmm", {}).get(metric, "")
            lines.append(f"| {case} | {row.get('locations', row.get('blocks'))} | {metric} | {m['candidate']:.4f} | "
                         f"{m['installed']:.4f} | {m['difference']:+.4f} ± {m['se']:.4f} | {cov} | {glmm} | "
                         f"{'worse' if m['worse'] else 'ok'} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidate", help="a release folder (train_bundled.py writes runs/<name>) or bundled name")
    parser.add_argument("--installed", help="the release to beat (default: the bundled one of its likelihood)")
    parser.add_argument("--cases", default="", help="comma-separated subset of cases")
    args = parser.parse_args(argv)
    result = gate(args.candidate, args.installed, [c for c in args.cases.split(",") if c] or None)
    print(markdown(result))
    print(json.dumps(result))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
