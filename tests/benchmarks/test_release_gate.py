"""The release gate: worse beyond noise fails, and a failing release is not installed unless forced."""

import json

import numpy as np
import pytest

from benchmarks import release_gate, train_bundled


def test_same_scores_pass_and_a_clear_loss_fails():
    rng = np.random.default_rng(0)
    installed = rng.normal(-2.0, 1.0, 300)
    same = release_gate.compare(installed, installed, higher_is_better=True)
    assert same["difference"] == 0 and not same["worse"]
    noisy = release_gate.compare(installed + rng.normal(0, 0.05, 300), installed, higher_is_better=True)
    assert not noisy["worse"], noisy  # a difference within noise is not a regression
    worse = release_gate.compare(installed - 0.1 + rng.normal(0, 0.05, 300), installed, higher_is_better=True)
    assert worse["worse"] and worse["difference"] < 0
    # lower is better (CRPS): a higher CRPS beyond noise fails
    assert release_gate.compare(np.abs(installed) + 0.2, np.abs(installed), higher_is_better=False)["worse"]


@pytest.fixture
def release(tmp_path, monkeypatch):
    folder = tmp_path / "runs" / "prevalence-binomial"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"format_version": 1, "metadata": {"steps": 10}, "model": {}}))
    (folder / "params.safetensors").write_bytes(b"weights")
    monkeypatch.setattr(train_bundled, "PACKAGE", tmp_path / "package")
    return folder


def fake_gate(passed: bool):
    row = {"served": True, "worse": not passed, "log_score": {"candidate": -3.1, "installed": -3.0,
                                                              "difference": -0.1, "se": 0.01, "worse": not passed}}
    return lambda candidate, installed=None, cases=None: {"passed": passed, "candidate": candidate,
                                                           "installed": installed, "z": 2.0,
                                                           "cases": {"gambia": row}}


def test_a_release_that_fails_the_gate_is_not_installed(release, monkeypatch):
    monkeypatch.setattr(release_gate, "gate", fake_gate(False))
    with pytest.raises(SystemExit, match="failed the release gate"):
        train_bundled.install(release, "prevalence-binomial")
    assert not (train_bundled.PACKAGE / "prevalence-binomial").exists()


def test_forced_and_passing_installs_record_the_gate(release, monkeypatch):
    monkeypatch.setattr(release_gate, "gate", fake_gate(False))
    train_bundled.install(release, "prevalence-binomial", force="the prior changed; measured by hand")
    config = json.loads((train_bundled.PACKAGE / "prevalence-binomial" / "config.json").read_text())
    record = config["metadata"]["release_gate"]
    assert record["forced"] == "the prior changed; measured by hand" and not record["passed"]
    assert record["cases"]["gambia"]["worse"]
    monkeypatch.setattr(release_gate, "gate", fake_gate(True))
    train_bundled.install(release, "prevalence-binomial")
    config = json.loads((train_bundled.PACKAGE / "prevalence-binomial" / "config.json").read_text())
    assert config["metadata"]["release_gate"]["passed"] and "forced" not in config["metadata"]["release_gate"]
    assert (train_bundled.PACKAGE / "prevalence-binomial" / "params.safetensors").read_bytes() == b"weights"


def test_a_gate_result_of_another_release_is_refused(release, monkeypatch):
    other = fake_gate(True)("runs/another-release", "prevalence-binomial")
    with pytest.raises(SystemExit, match="run the gate on this release"):
        train_bundled.install(release, "prevalence-binomial", gated=other)
    same = fake_gate(True)(str(release), "prevalence-binomial")
    monkeypatch.setattr(release_gate, "gate", lambda *a, **k: pytest.fail("the gate ran again"))
    train_bundled.install(release, "prevalence-binomial", gated=same)
    assert (train_bundled.PACKAGE / "prevalence-binomial" / "config.json").is_file()


def test_field_blocks_pool_errors_and_flag_a_worse_release():
    rng = np.random.default_rng(1)
    counts = rng.integers(50, 256, 40)
    installed = {"squared": counts * rng.uniform(0.8, 1.2, 40), "crps": counts * rng.uniform(0.4, 0.6, 40),
                 "counts": counts}
    same = release_gate._pooled_compare(installed, installed, "squared")
    assert same["difference"] == 0 and not same["worse"]
    assert abs(same["candidate"] - np.sqrt(installed["squared"].sum() / counts.sum())) < 1e-4  # pooled, not averaged
    worse = {**installed, "squared": installed["squared"] * 1.3, "crps": installed["crps"] * 1.2}
    assert release_gate._pooled_compare(worse, installed, "squared")["worse"]
    assert release_gate._pooled_compare(worse, installed, "crps")["worse"]
    assert not release_gate._pooled_compare(installed, worse, "crps")["worse"]  # better is never worse
