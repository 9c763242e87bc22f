"""The command line, including the README's main job at a small size."""

import json

from geonp import __version__
from geonp.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_demo_scores_models_against_the_exact_gp(capsys):
    assert main(["demo", "--train-seconds", "3", "--eval-batches", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out.strip().splitlines()[-1])
    assert "exact GP (oracle)" in out
    assert report["oracle"]["nll"] < report["trained_from_scratch"]["nll"]
    assert report["trained_from_scratch"]["steps"] >= 1
    # the bundled model ships inside the package and is scored too
    assert report["pretrained"]["nll"] < report["trained_from_scratch"]["nll"]
    assert abs(report["pretrained"]["nll"] - report["pretrained_shifted"]["nll"]) < 1e-3
