"""fit from the bundled model by default, checked on held-out gaps it never trains on (geonp.estimator.fine_tune)."""

import numpy as np
import pytest

import geonp
from geonp.estimator import fine_tune as fine_tuning
from geonp.estimator.releases import default_model
from geonp.testing import TINY, smooth_field


@pytest.fixture(scope="module")
def clouded():
    """One 24 x 28 field with a block of cloud (the gap shape the held-out gaps copy)."""
    da = smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25), times=1).isel(time=0)
    return da.where(~((da.lat > 52.0) & (da.lat < 53.5) & (da.lon > -1.0) & (da.lon < 0.6)))


def test_auto_starts_from_the_bundled_model_predict_would_use():
    assert default_model() == "field-normal" and default_model(target=4) == "gp2d-normal"
    assert default_model(target=4, covariates=["z"]) == "field-normal"
    assert default_model(likelihood="binomial") == "prevalence-binomial"
    assert default_model(likelihood="poisson") is None and default_model(temporal=True) is None
    model = geonp.NeuralProcess()
    assert model._starting_model(None, ()) == "field-normal"
    assert geonp.NeuralProcess(width=16)._starting_model(None, ()) is None  # sizes set: a new network
    assert geonp.NeuralProcess(pretrained=None)._starting_model(None, ()) is None


def test_held_out_gaps_are_hidden_from_training_and_scored(clouded):
    model = geonp.NeuralProcess(steps=0, progress=False).fit(clouded)  # field-normal, calibrated
    observed = np.isfinite(clouded.values).reshape(1, -1)
    check = fine_tuning.held_out_check(model, clouded, ("lat", "lon"), {}, None, 0, observed)
    assert isinstance(check, fine_tuning.HeldOutCheck) and check.cells >= fine_tuning.MIN_CELLS
    hidden = observed & ~check.hide(observed)
    assert hidden.sum() >= check.cells  # whole gaps hidden, the cells scored among them
    for gap in check.gaps:
        assert gap.hidden.ravel()[gap.where].all() and observed[0, gap.where].all()
        assert gap.cluster.shape == gap.where.shape
    scores, per_cell = check.score(model)
    assert scores["cells"] == check.cells and 0 < scores["rmse"] and 0 <= scores["cov95"] <= 1
    np.testing.assert_allclose(np.nanmean(per_cell), scores["crps"], rtol=1e-3)


def test_a_fit_that_never_beats_the_start_keeps_the_start_and_says_so(clouded):
    start = geonp.NeuralProcess(steps=0, progress=False).fit(clouded)
    with pytest.warns(UserWarning, match="did not beat the starting model"):
        tuned = geonp.NeuralProcess(steps=4, learning_rate=0.3, progress=False).fit(clouded)
    assert tuned.started_from_ == "field-normal"
    record = tuned.history_[-1]["fine_tuning"]
    assert record["best_step"] == 0 and "starting model" in record["kept"]
    assert record["before"] == record["after"] and record["steps"] == 4
    for a, b in zip(*(jax_leaves(m.params_) for m in (start, tuned)), strict=True):
        np.testing.assert_array_equal(a, b)
    attrs = tuned.predict(clouded, progress=False).attrs
    assert "starting model" in attrs["geonp_fine_tuning"]
    assert attrs["geonp_fine_tuning_held_out_rmse_before"] == record["before"]["rmse"]
    assert "field-normal" in attrs["geonp_model"]


def test_a_new_network_trains_without_the_held_out_check(gappy):
    model = geonp.NeuralProcess(steps=2, **TINY).fit(gappy)
    assert model.started_from_ is None and model.fine_tuning_ is None
    assert "from scratch" in model.model_description


def jax_leaves(params):
    import jax

    return jax.tree_util.tree_leaves(params)


def test_data_too_small_to_check_keeps_the_start_untrained(clouded):
    small = clouded.isel(lat=slice(0, 6), lon=slice(0, 7))
    with pytest.warns(UserWarning, match="could not be checked"):
        model = geonp.NeuralProcess(steps=5, progress=False).fit(small)
    assert model.steps_trained_ == 0 and "kept" in model.fine_tuning_["status"]
    assert np.isfinite(model.predict(small, progress=False)["mean"].values).all()
