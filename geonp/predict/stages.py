"""The post-processing stages of a prediction, each ``(marginals, targets) -> marginals``, and the channels.

The network gives each target a predictive distribution in its neighbourhood's standardised units.
The stages then act on it in order, each one switched off by name (``predict(without=...)``):

    "blend"   the neighbourhood's kriging mean (about its mean or a plane), blended in by distance to data
              (:mod:`geonp.calibrate.kriging`): moves the mean, and every quantile and sample with it
    "spread"  the spread calibration learned on held-out cells (:mod:`geonp.calibrate.calibration`):
              scales every distance from the mean by ``std_calibrated / std``

and :func:`channels` maps the result to the data's units (``value = level + scale * v``, ``level`` the
neighbourhood's offset plus the field's drift where ``"drift"`` is on) in the order of a
:class:`~geonp.predict.channels.ChannelLayout`. Gaussian heads only are moved or scaled; count and
categorical heads pass through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from geonp.calibrate.kriging import LocalKriging
from geonp.calibrate.spread import SpreadCalibration
from geonp.features.scaling import FeatureScaling
from geonp.predict.channels import ChannelLayout


@dataclasses.dataclass(frozen=True)
class Targets:
    """What the stages know about a block's ``N`` targets."""

    nearest: np.ndarray | None  # [N] distance to the nearest observation (km / CRS units)
    unit: np.ndarray | None  # [N, Dy] the std of each target's context, the data's units
    kriged: np.ndarray | None  # [N] the neighbourhood's kriging mean, standardised units (None: not kriged)
    explained: np.ndarray | None = None  # [N] the share of each target's variance the kriging explains
    candidates: tuple[tuple[np.ndarray, np.ndarray], ...] = ()  # each candidate kernel's (kriged, explained)


@dataclasses.dataclass(frozen=True)
class Marginals:
    """A block's predictive marginals, standardised: the head's parameters and each target's units."""

    raw: np.ndarray  # [1, N, outputs] the network's output (the head's parameters)
    summary: dict  # the head's summary of raw: mean, std [1, N, 1] (Gaussian, counts) or probs [1, N, K]
    scale: np.ndarray  # [N, W] each target's value = level + scale * v
    level: np.ndarray  # [N, W] the neighbourhood's offset plus the field's drift
    shift: np.ndarray | float = 0.0  # [N, 1] the mean's move ("blend"), standardised units
    factor: np.ndarray | float = 1.0  # [N, 1] every distance from the mean is scaled by it ("spread")

    @property
    def mean(self) -> np.ndarray:
        """``[N, 1]`` the network's mean, standardised (before any stage)."""
        return np.asarray(self.summary["mean"][0])

    def moved(self, v: np.ndarray) -> np.ndarray:
        """``v`` (a quantile, a draw, standardised) after the stages: shifted with the mean, scaled about it."""
        if np.isscalar(self.shift) and np.isscalar(self.factor) and self.shift == 0.0 and self.factor == 1.0:
            return v
        return self.mean + self.shift + self.factor * (v - self.mean)


Stage = Callable[[Marginals, Targets], Marginals]


def kriging_blend(kriging: LocalKriging) -> Stage:
    """Stage ``"blend"``: the mean moves by ``w(d) (m_k - m_n)``, ``d`` the distance to data (NaN kriging: 0),
    the weight capped by the share of variance the kriging explains there."""

    def blend(m: Marginals, at: Targets) -> Marginals:
        shift = np.nan_to_num(kriging.weights(at.nearest, at.explained) * (at.kriged - m.mean[:, 0]))[:, None]
        return dataclasses.replace(m, shift=shift)

    return blend


def spread_calibration(spread: SpreadCalibration, scaling: FeatureScaling) -> Stage:
    """Stage ``"spread"``: the std becomes the calibrated one, in units of each target's context std."""

    def calibrate(m: Marginals, at: Targets) -> Marginals:
        std = network_std(m, scaling)
        calibrated = spread.std(std, at.nearest[:, None], at.unit)
        return dataclasses.replace(m, factor=np.where(std > 0, calibrated / np.where(std > 0, std, 1.0), 1.0))

    return calibrate


def network_std(m: Marginals, scaling: FeatureScaling) -> np.ndarray:
    """``[N, 1]`` the network's own std, the data's units."""
    return scaling.unscale_std(np.asarray(m.summary["std"][0]) * m.scale)


def channels(m: Marginals, head, scaling: FeatureScaling, layout: ChannelLayout, quantiles, thresholds,
             draws: np.ndarray | None, at: Targets) -> np.ndarray:
    """``[N, layout.size]`` the block's channels in the data's units; ``draws [S, N, 1]`` standardised."""
    def to_data(v):
        return scaling.unscale_mean(v * m.scale + m.level)

    if layout.classes:
        out = [np.asarray(m.summary["probs"][0])]  # [N, K]
    else:
        out = [to_data(m.mean + m.shift), network_std(m, scaling) * m.factor]
    out += [to_data(m.moved(np.asarray(head.quantile(m.raw, q)[0]))) for q in quantiles]
    out += [np.asarray(head.exceedance(m.raw, t)[0]) for t in thresholds]  # count heads only (never moved)
    if draws is not None:
        out += [to_data(m.moved(d)) for d in draws]
    if layout.distance:
        out += [at.nearest[:, None], at.unit[:, :1]]
        if layout.kriging:
            for kriged, explained in ((at.kriged, at.explained), *at.candidates):
                out += [to_data(kriged[:, None]), explained[:, None]]
    return np.concatenate(out, axis=-1).astype(np.float32)
