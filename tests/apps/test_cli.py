"""The command line, including the README's main job at a small size."""

import json

import pytest

from geonp import __version__
from geonp.apps.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


@pytest.mark.slow
def test_demo_scores_models_against_the_exact_gp(capsys, tmp_path):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--train-seconds", "3", "--eval-batches", "1", "--no-progress", "--output", str(out_dir)]) == 0
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert "exact GP (oracle)" in out
    assert report["oracle"]["nll"] < report["trained_from_scratch"]["nll"]
    assert report["trained_from_scratch"]["steps"] >= 1
    # the bundled model ships inside the package and is scored too
    assert report["pretrained"]["nll"] < report["trained_from_scratch"]["nll"]
    assert abs(report["pretrained"]["nll"] - report["pretrained_shifted"]["nll"]) < 1e-3
    # the gap-filling part wrote a netCDF and a map and beats nearest-neighbour filling
    assert (out_dir / "prediction.nc").is_file() and (out_dir / "map.png").stat().st_size > 10_000
    gap = report["gap_fill"]
    assert gap["geonp"]["rmse"] < gap["nearest"]["rmse"]
    assert 0.85 < gap["geonp"]["coverage_95"] <= 1.0


def test_run_rejects_unknown_recipe_keys_and_missing_files(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("flow: prevalence\nsurveys: nowhere.csv\noutput: out\nfolds_typo: 3\n")
    assert main(["run", str(recipe)]) == 2
    assert "folds_typo" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    recipe.write_text("flow: teleport\n")
    assert main(["run", str(recipe)]) == 2
    assert "unknown flow" in capsys.readouterr().err


def test_models_lists_the_bundled_models(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gp2d-normal" in out and "prevalence-binomial" in out


def test_predict_writes_netcdf_and_map(tmp_path, capsys):
    import numpy as np
    import xarray as xr

    from geonp.apps.demo import synthetic_field

    field = synthetic_field(0).isel(latitude=slice(0, 30), longitude=slice(0, 40))
    observed = field.where(np.random.default_rng(0).random(field.shape) > 0.7)
    observed.to_netcdf(tmp_path / "obs.nc")
    out = tmp_path / "pred.nc"
    args = ["predict", str(tmp_path / "obs.nc"), "-o", str(out), "--quantiles", "0.1", "0.9", "--plot",
            str(tmp_path / "map.png")]
    assert main(args) == 0
    pred = xr.open_dataset(out)
    assert {"mean", "std", "quantiles", "filled"} <= set(pred.data_vars) and pred["mean"].attrs["units"] == "K"
    assert (tmp_path / "map.png").is_file()
    assert main(args) == 2  # exists: refuses to overwrite without --overwrite
    assert "overwrite" in capsys.readouterr().err


def test_predict_turns_every_bad_file_or_option_into_one_line(tmp_path, capsys):
    import numpy as np

    from geonp.apps.demo import synthetic_field

    field = synthetic_field(0).isel(latitude=slice(0, 12), longitude=slice(0, 14))
    field.where(np.random.default_rng(0).random(field.shape) > 0.5).to_netcdf(tmp_path / "obs.nc")
    (tmp_path / "garbage.nc").write_bytes(b"not a netCDF file at all")
    truncated = (tmp_path / "obs.nc").read_bytes()
    (tmp_path / "cut.nc").write_bytes(truncated[: len(truncated) // 2])
    out = str(tmp_path / "pred.nc")
    cases = [
        ([str(tmp_path / "missing.nc")], "not found"),
        ([str(tmp_path / "garbage.nc")], "cannot be read"),
        ([str(tmp_path / "cut.nc")], "cannot be read"),
        ([str(tmp_path)], "cannot be read"),
        ([str(tmp_path / "obs.nc"), "--var", "nope"], "no such variable"),
        ([str(tmp_path / "obs.nc"), "--target", str(tmp_path / "missing.nc")], "not found"),
        ([str(tmp_path / "obs.nc"), "--factor", "0"], "whole number >= 1"),
    ]
    for extra, says in cases:
        assert main(["predict", *extra, "-o", out]) == 2, extra
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err and err.count("\n") == 1, (extra, err)
