"""The fitted feature normalisation: JSON round trip, units, checks."""

import json

import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.features.scaling import TASK_RADIUS, FeatureScaling, fit_scaling, task_covariates
from geonp.nn.bias import CoordinateGroup


def test_round_trip_through_json_is_exact():
    s = FeatureScaling("geographic", 12.5, ("t2m",), (280.0,), (3.0,), ("elevation",), (400.0,), (250.0,),
                       time_unit=6.0, value_attrs=({"units": "K", "scale": np.float32(1.5)},))
    back = FeatureScaling.from_dict(json.loads(json.dumps(s.to_dict())))
    assert back.value_attrs[0] == {"units": "K", "scale": 1.5}
    assert back == FeatureScaling(**{**s.__dict__, "value_attrs": back.value_attrs})
    with pytest.raises(ConfigError, match="newer geonp"):
        FeatureScaling.from_dict({**s.to_dict(), "extra": 1})


def test_space_unit_maps_a_window_to_one_training_task():
    # 1 km grid fully observed: the 512 nearest cells fill a disc of radius sqrt(512 / pi) km
    axis = np.arange(100.0)
    points = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    s = fit_scaling("projected", [points], np.ones((len(points), 1)) + points[:, :1], ["z"], window_points=512)
    np.testing.assert_allclose(s.space_unit * TASK_RADIUS, np.sqrt(512 / np.pi), rtol=0.05)
    group = s.space_group(CoordinateGroup("space", 2))
    assert group.metric == "euclidean"
    geo = FeatureScaling("geographic", 10.0, ("z",), (0.0,), (1.0,))
    assert geo.space_group(CoordinateGroup("space", 2)).radius == pytest.approx(637.10088)


def test_stacked_time_steps_do_not_shrink_the_space_unit():
    axis = np.arange(40.0)
    field = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)
    one = fit_scaling("projected", [field], np.ones((len(field), 1)), ["z"], window_points=256).space_unit
    many = fit_scaling("projected", [field] * 50, np.ones((len(field), 1)), ["z"], window_points=256).space_unit
    assert one == pytest.approx(many, rel=0.05)


def test_bad_scalings_are_refused():
    with pytest.raises(ConfigError, match="space_unit"):
        FeatureScaling("projected", 0.0, ("z",), (0.0,), (1.0,))
    with pytest.raises(ConfigError, match="scale of 'z'"):
        FeatureScaling("projected", 1.0, ("z",), (0.0,), (0.0,))
    with pytest.raises(ConfigError, match="no finite value"):
        fit_scaling("projected", [np.random.rand(10, 2)], np.full((10, 1), np.nan), ["z"])


def test_a_neighbourhood_sees_its_slot_covariates_standardised_over_its_own_context():
    rng = np.random.default_rng(0)
    # 4 slots, 2 in use: values then flags; the neighbourhood sits high on the data's elevation range
    values = np.c_[3.0 + 0.2 * rng.standard_normal(50), rng.standard_normal(50), np.zeros((50, 2))]
    flags = np.tile([1.0, 1.0, 0.0, 0.0], (50, 1))
    x_ctx, x_tgt = np.c_[values[:40], flags[:40]], np.c_[values[40:], flags[40:]]
    ctx, tgt = task_covariates(x_ctx, x_tgt, 4)
    np.testing.assert_allclose(ctx[:, :2].mean(axis=0), 0.0, atol=1e-12)  # as the priors draw a task's covariates
    np.testing.assert_allclose(ctx[:, :2].std(axis=0), 1.0)
    scale = x_ctx[:, :2].std(axis=0)
    np.testing.assert_allclose(tgt[:, :2], (x_tgt[:, :2] - x_ctx[:, :2].mean(axis=0)) / scale)  # the same numbers
    np.testing.assert_array_equal(ctx[:, 2:4], 0.0)  # unused slots stay zero
    np.testing.assert_array_equal(ctx[:, 4:], flags[:40])  # flags as they were
    same = task_covariates(x_ctx, x_tgt, 0)  # no slots: covariates as the model was trained with them
    assert same[0] is x_ctx and same[1] is x_tgt
