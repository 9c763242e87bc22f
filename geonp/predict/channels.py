"""The one layout of a prediction's channels, written by the tile predictor and read by the outputs.

A block of predictions is an array ``[..., channel]``. Its channels, in order:

    Gaussian and count heads   mean, std, one per quantile, one per exceedance threshold
    categorical heads          one probability per class
    then                       one per sample
    with ``distance``          distance to the nearest observation, the context's std,
                               and (``kriging``) the neighbourhood's kriging mean before any blend
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ChannelLayout:
    classes: int = 0  # a categorical head's classes (0: a head with a mean and std)
    quantiles: int = 0
    thresholds: int = 0
    samples: int = 0
    distance: bool = False  # distance to data and the context's std
    kriging: bool = False  # with distance: the unblended kriging mean

    @property
    def summary(self) -> slice:
        """The head's summary: mean and std, or the class probabilities."""
        return slice(0, self.classes or 2)

    @property
    def quantile(self) -> slice:
        start = self.summary.stop
        return slice(start, start + self.quantiles)

    @property
    def threshold(self) -> slice:
        start = self.quantile.stop
        return slice(start, start + self.thresholds)

    @property
    def sample(self) -> slice:
        start = self.threshold.stop
        return slice(start, start + self.samples)

    @property
    def diagnostics(self) -> slice:
        """distance_to_data, context_std and (``kriging``) kriging_mean."""
        start = self.sample.stop
        return slice(start, start + (2 + self.kriging) * self.distance)

    @property
    def size(self) -> int:
        return self.diagnostics.stop

    def diagnostic(self, name: str) -> int:
        """The channel of ``"distance_to_data"``, ``"context_std"`` or ``"kriging_mean"``."""
        names = ("distance_to_data", "context_std", "kriging_mean")[: self.diagnostics.stop - self.diagnostics.start]
        if name not in names:
            raise KeyError(f"no {name!r} channel in {self}")
        return self.diagnostics.start + names.index(name)
