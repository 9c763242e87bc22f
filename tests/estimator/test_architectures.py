"""Every architecture through the same accessor, training loop, likelihoods and save/load."""

import numpy as np
import pytest

import geonp
from geonp.errors import ConfigError
from geonp.testing import with_gaps

TINY = {"num_blocks": 2, "width": 16, "num_heads": 2, "head_dim": 8, "ff_dim": 32, "steps": 2, "batch_size": 2,
        "window_points": 96, "max_context": 96, "num_target": 32, "progress": False}


@pytest.mark.slow
@pytest.mark.parametrize("arch", sorted(geonp.ARCHITECTURES))
def test_fit_predict_save_load(arch, field, tmp_path):
    obs = with_gaps(field.isel(time=0))
    model = obs.np.fit(arch=arch, **TINY)
    assert model.config_.bias == geonp.ARCHITECTURES[arch]["bias"]
    pred = obs.np.predict(model=model)
    assert np.isfinite(pred["mean"].values).all() and (pred["std"].values > 0).all()
    assert pred["mean"].attrs["units"] == "K"
    again = geonp.load(model.save(tmp_path / arch)).predict(obs)
    np.testing.assert_array_equal(again["mean"].values, pred["mean"].values)
    assert pred.attrs["geonp_model"].startswith(f"{arch}, normal: trained from scratch")
    assert again.attrs["geonp_model"] == f"{tmp_path / arch} (saved model; {arch}, normal)"  # which model ran


@pytest.mark.slow
def test_counts_likelihood_works_with_another_architecture(field):
    rng = np.random.default_rng(0)
    ds = field.isel(time=0).to_dataset(name="t2m")
    n = rng.integers(5, 40, ds["t2m"].shape)
    ds["examined"] = (("lat", "lon"), n.astype(float))
    ds["positive"] = (("lat", "lon"), rng.binomial(n, 0.3).astype(float))
    model = geonp.NeuralProcess(arch="dka", likelihood="binomial", **TINY).fit(ds, "positive", trials="examined")
    pred = model.predict(ds[["positive", "examined"]])
    assert ((pred["mean"] > 0) & (pred["mean"] < 1)).all()


def test_unknown_architecture_names_the_choices(field):
    with pytest.raises(ConfigError, match="unknown arch 'tnp-x'.*'bsa-tnp'.*'cmanp'"):
        geonp.NeuralProcess(arch="tnp-x", **TINY).fit(field.isel(time=0))
