"""The bundled BSA-TNP against the exact GP posterior on fresh GP tasks (the numerical reference)."""

import numpy as np
import pytest

from geonp.estimator.releases import available, pretrained
from geonp.scoring.evaluation import evaluate_gp
from geonp.tasks.gp import GPTaskSampler

# The bundled model (2,889 steps on 2 CPU cores) is 0.65 nats above the oracle on these 16 fixed
# tasks (0.35-0.70 over other seeds; benchmarks/RESULTS.md has the full figures). The bound fails a
# model that regressed: 20 training steps leave a gap above 1.1 nats. Tighten it as training improves.
MAX_NLL_GAP = 0.75


@pytest.fixture(scope="module")
def bundled():
    assert "gp2d-normal" in available(), "the gp2d-normal model must ship inside the package"
    return pretrained("gp2d-normal")


@pytest.fixture(scope="module")
def scores(bundled):
    config, params, _ = bundled
    sampler = GPTaskSampler(num_target=256)
    return (evaluate_gp(config, params, sampler, seed=2024, num_batches=2, batch_size=8),
            evaluate_gp(config, params, sampler, seed=2024, num_batches=2, batch_size=8, shift=10.0, oracle=False))


def test_close_to_the_exact_gp(scores):
    base, _ = scores
    model, oracle = base["model"], base["oracle"]
    assert model["nll"] - oracle["nll"] < MAX_NLL_GAP
    assert model["nll"] < 1.0  # a N(0, 1) prior guess scores about 1.42
    assert model["rmse"] < 1.5 * oracle["rmse"]


def test_calibrated(scores):
    base, _ = scores
    assert 0.85 <= base["model"]["coverage_95"] <= 0.99


def test_translation_invariant_to_1e_3(scores):
    base, shifted = scores
    assert abs(base["model"]["nll"] - shifted["model"]["nll"]) < 1e-3
    assert np.isclose(base["model"]["rmse"], shifted["model"]["rmse"], atol=1e-4)
