"""A model with covariate slots takes 0..K covariates of any meaning without retraining."""

import numpy as np
import pandas as pd
import pytest

from geonp.errors import ConfigError
from geonp.features.tables import dataframe_to_dataset

from .conftest import extended_release

SLOTS = {"x_dim": 8, "covariate_slots": 4, "covariate_trend": True}


def _surveys(n=60, seed=0):
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(-16.5, -14.0, n), rng.uniform(13.0, 13.8, n)
    examined = rng.integers(10, 60, n).astype(float)
    frame = pd.DataFrame({"lon": lon, "lat": lat, "examined": examined, "elevation": 20 + 30 * lon - 5 * lat,
                          "ndvi": rng.uniform(0.2, 0.8, n),
                          "positive": rng.binomial(examined.astype(int), 0.3).astype(float)})
    return dataframe_to_dataset(frame, "site")


def test_zero_to_k_covariates_pass_through_the_slots(tmp_path):
    surveys = _surveys()
    target = surveys.drop_vars(["positive", "examined"]).isel(site=slice(0, 15))
    # the covariate and trend rows zero: the model without covariates exactly, whatever the bundled release has
    plain = extended_release("prevalence-binomial", tmp_path, SLOTS, 0.0, rows={"covariates": 0.0, "trend": 0.0})
    reference = plain.fit(surveys, "positive", trials="examined", steps=0).predict(surveys, target)
    plain.fit(surveys, "positive", trials="examined", covariates=["elevation", "ndvi"], steps=0)
    assert plain.scaling_.covariate_slots == 4
    np.testing.assert_allclose(plain.predict(surveys, target)["mean"], reference["mean"], atol=1e-5)
    for rows in ({"covariates": 0.3, "trend": 0.0}, {"covariates": 0.0, "trend": 0.5}):
        weighted = extended_release("prevalence-binomial", tmp_path, SLOTS, 0.0, rows=rows)
        weighted.fit(surveys, "positive", trials="examined", steps=0)  # no covariate: no slot value, no trend
        np.testing.assert_allclose(weighted.predict(surveys, target)["mean"], reference["mean"], atol=1e-5)
        weighted.fit(surveys, "positive", trials="examined", covariates=["elevation"], steps=0)
        moved = weighted.predict(surveys, target)
        assert float(np.abs(moved["mean"] - reference["mean"]).max()) > 1e-3, rows  # the covariate reaches the tokens
    too_many = surveys.assign(a=surveys["ndvi"] * 2, b=surveys["ndvi"] * 3, c=surveys["ndvi"] ** 2)
    with pytest.raises(ConfigError, match="at most K=4 covariates"):
        plain.fit(too_many, "positive", trials="examined", covariates=["elevation", "ndvi", "a", "b", "c"], steps=0)
