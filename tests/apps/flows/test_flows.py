"""The recipes' flows at small sizes on the shared samples (skipped cleanly when they are absent)."""

import json

import numpy as np
import pytest

from geonp.apps.recipes import data_root, run_recipe
from geonp.estimator.releases import available

DATA = data_root()
needs = lambda sub: pytest.mark.skipif(not (DATA / sub).is_dir(), reason=f"shared {sub} not present")  # noqa: E731


@pytest.mark.slow
@needs("disease_prevalence")
def test_prevalence_flow_cross_validates_against_kriging_and_maps(tmp_path):
    report = run_recipe("recipes/prevalence-gambia.yaml", {"output": str(tmp_path), "folds": 3, "grid": 24,
                                                           "joint_samples": 32, "joint_points": 96, "next_sites": 3})
    # beside kriging, binomial geostatistics: the model a statistician would fit (GPBoost is a dev dependency)
    assert set(report["cv"]) == {"geonp", "kriging", "binomial_glmm"}
    for scores in report["cv"].values():
        assert scores["n_locations"] == 65 and np.isfinite(scores["log_score"])
        assert 0.5 < scores["coverage_95"] <= 1.0 and scores["crps"] < 0.2
        assert 0.3 < scores["coverage_95_prevalence"] <= 1.0
    assert report["cv"]["geonp"]["rmse_weighted"] < 0.25
    assert (tmp_path / "prevalence.nc").is_file() and (tmp_path / "prevalence.png").is_file()
    assert json.loads((tmp_path / "report.json").read_text())["locations"] == 65
    # the surveyed area's mean prevalence, with an interval from joint draws
    (area,) = report["regions"]["table"]
    assert area["region"] == "survey area" and 0.05 < area["q025"] < area["mean"] < area["q975"] < 0.8, area
    assert (tmp_path / "regions.csv").is_file()
    assert [s["order"] for s in report["next_sites"]] == [1, 2, 3] and (tmp_path / "next_sites.csv").is_file()


@needs("era5_t2m_uk")
def test_downscale_flow_scores_every_method_on_the_same_cells(tmp_path):
    report = run_recipe("recipes/downscale-uk-1deg.yaml", {"output": str(tmp_path), "times": 2})
    methods = report["methods"]
    assert set(methods) == {"geonp", "bilinear", "bicubic", "kriging"}
    assert report["cells_scored"] > 2000
    for scores in methods.values():
        assert 0 < scores["rmse"] < 3.0  # kelvin
    assert methods["geonp"]["crps"] < methods["bilinear"]["crps"]
    assert (tmp_path / "downscaled.nc").is_file()


@pytest.mark.skipif("sir-categorical" not in available(), reason="bundled SIR model not present")
def test_epidemic_flow_beats_nearest_observed_cell(tmp_path):
    report = run_recipe("recipes/epidemic-1024.yaml", {"output": str(tmp_path), "size": 96, "steps": 30,
                                                       "seeds": 4, "observed_fraction": 0.2, "plot": False})
    assert report["hidden_cells"] > 0.7 * 96 * 96
    assert report["geonp"]["accuracy"] > 0.6
    assert report["geonp"]["accuracy"] >= report["nearest_observed"]["accuracy"] - 0.02
    assert np.isfinite(report["geonp"]["log_score"])


@pytest.mark.slow
@needs("disease_prevalence")
def test_prevalence_flow_with_covariates_uses_them_in_both_methods(tmp_path):
    from geonp.testing import extended_release

    slots = extended_release("prevalence-binomial", tmp_path, {"x_dim": 8, "covariate_slots": 4}, 0.2)
    report = run_recipe("recipes/prevalence-tanzania.yaml", {
        "output": str(tmp_path / "out"), "folds": 2, "model": slots.pretrained, "covariates": ["EVI", "Temperature"],
        "joint_samples": 8, "joint_points": 64, "weights": "Population", "next_sites": 2})
    for method in ("geonp", "kriging"):  # kriging: regression kriging on the same covariates
        assert np.isfinite(report["cv"][method]["log_score"]) and report["cv"][method]["n_locations"] > 380
    assert report["map_points"] > 8000 and (tmp_path / "out" / "prevalence.png").is_file()
    # which covariates the model kept, with every subset's held-out score
    selection = report["covariate_selection"]
    assert set(selection["scores"]) == {"EVI + Temperature", "EVI", "Temperature", "none"}
    assert sorted(selection["kept"] + selection["ignored"]) == ["EVI", "Temperature"]
    # region means from joint draws conditioned on the surveys and their covariates, population-weighted
    (area,) = report["regions"]["table"]
    assert report["regions"]["weights"] == "Population" and area["points"] > 10
    assert 0.0 < area["q025"] < area["mean"] < area["q975"] < 1.0, area
    assert [s["order"] for s in report["next_sites"]] == [1, 2]  # candidates carry their covariates
