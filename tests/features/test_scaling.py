"""The fitted feature normalisation: JSON round trip, units, checks."""

import json

import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.features.scaling import TASK_RADIUS, FeatureScaling, fit_scaling
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
