"""Each post-processing stage alone, on hand-made marginals, and the one channel layout."""

import numpy as np
import pytest

from geonp.calibrate.kriging import LocalKriging
from geonp.calibrate.spread import SpreadCalibration
from geonp.features.scaling import FeatureScaling
from geonp.nn.likelihoods import get_likelihood
from geonp.predict import stages
from geonp.predict.channels import ChannelLayout


def _marginals(n=5, mean=0.0, std=1.0):
    raw = np.stack([np.full(n, mean), np.full(n, np.log(np.expm1(std)))], -1)[None].astype(np.float32)
    summary = {"mean": np.full((1, n, 1), mean), "std": np.full((1, n, 1), std)}
    return stages.Marginals(raw=raw, summary=summary, scale=np.full((n, 1), 2.0), level=np.full((n, 1), 10.0))


def _scaling():
    return FeatureScaling(kind="projected", space_unit=1.0, value_mean=(0.0,), value_std=(1.0,), value_names=("v",))


def test_the_blend_moves_the_mean_by_its_weight_times_the_kriging_gap_and_only_where_kriged():
    kriging = LocalKriging(length_scale=1000.0, distance=(0.0, 10.0), weight=(0.8, 0.0))  # explains all nearby
    at = stages.Targets(nearest=np.array([0.0, 5.0, 10.0, 20.0, 0.0]), unit=np.ones((5, 1)),
                        kriged=np.array([1.0, 1.0, 1.0, 1.0, np.nan]))
    moved = stages.kriging_blend(kriging)(_marginals(), at)
    np.testing.assert_allclose(moved.shift[:, 0], [0.8, 0.4, 0.0, 0.0, 0.0])  # w(d) (m_k - m_n); NaN kriging: 0
    np.testing.assert_allclose(moved.moved(np.full((5, 1), 1.0))[:, 0], 1.0 + moved.shift[:, 0])  # quantiles move too


def test_the_spread_stage_scales_every_distance_from_the_mean_and_leaves_the_mean():
    spread = SpreadCalibration(distance=(0.0,), scale=(1.0,), floor=(1.0,))  # std_cal = sqrt(std^2 + unit^2)
    at = stages.Targets(nearest=np.zeros(5), unit=np.ones((5, 1)), kriged=None)
    m = stages.spread_calibration(spread, _scaling())(_marginals(), at)
    std = 2.0  # the network's std (1) times the neighbourhood's scale (2), the data's units
    np.testing.assert_allclose(m.factor, np.sqrt(std**2 + 1.0) / std)
    np.testing.assert_allclose(m.moved(np.full((5, 1), 1.0)), m.factor)  # a quantile 1 sd above the mean of 0
    head = get_likelihood("normal")
    out = stages.channels(m, head, _scaling(), ChannelLayout(quantiles=1), (0.5,), (), None, at)
    np.testing.assert_allclose(out[:, 0], 10.0)  # the mean, level + scale * 0, unchanged
    np.testing.assert_allclose(out[:, 1], np.sqrt(std**2 + 1.0), rtol=1e-6)
    np.testing.assert_allclose(out[:, 2], 10.0, atol=1e-5)  # the median stays at the mean


@pytest.mark.parametrize("layout", [ChannelLayout(), ChannelLayout(quantiles=3, samples=4, distance=True, kriging=True),
                                    ChannelLayout(classes=3, samples=2, distance=True),
                                    ChannelLayout(thresholds=2, distance=True),
                                    ChannelLayout(quantiles=1, distance=True, kriging=2)])
def test_the_channel_layout_tiles_the_channels_without_gaps(layout):
    parts = [layout.summary, layout.quantile, layout.threshold, layout.sample, layout.diagnostics]
    covered = np.concatenate([np.arange(s.start, s.stop) for s in parts])
    np.testing.assert_array_equal(covered, np.arange(layout.size))
    if layout.distance:
        assert layout.diagnostic("distance_to_data") == layout.diagnostics.start
        assert layout.diagnostic("context_std") == layout.diagnostics.start + 1
        with pytest.raises(KeyError) if not layout.kriging else _nothing():
            assert layout.diagnostic("kriging_mean") == layout.size - 2 * max(int(layout.kriging), 1)
            assert layout.diagnostic("kriging_explained") == layout.diagnostic("kriging_mean") + 1
        if layout.kriging == 2:  # a candidate kernel's mean and share explained after the kernel's own
            assert layout.diagnostic("kriging_mean_1") == layout.size - 2
            assert layout.diagnostic("kriging_explained_1") == layout.size - 1


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
