"""The one layout of a prediction's channels, written by the tile predictor and read by the outputs.

A block of predictions is an array ``[..., channel]``. Its channels, in order:

    Gaussian and count heads   mean, std, one per quantile, one per exceedance threshold
    categorical heads          one probability per class
    then                       one per sample
    with ``distance``          distance to the nearest observation, the context's std,
                               and (``kriging``) the neighbourhood's kriging mean before any blend and
                               the share of variance it explains, then each candidate kernel's two
                               (fit compares them on held-out cells)
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
    kriging: int = 0  # with distance: how many kernels' unblended kriging (the kernel's, then its candidates')

    @property
    def blocks(self) -> dict[str, slice]:
        """Each block of channels, in order: ``summary`` (mean and std, or the class probabilities), ``quantile``,
        ``threshold``, ``sample``, ``diagnostics`` (distance_to_data, context_std and, with ``kriging``,
        kriging_mean, kriging_explained, kriging_mean_1, kriging_explained_1, ...)."""
        widths = {"summary": self.classes or 2, "quantile": self.quantiles, "threshold": self.thresholds,
                  "sample": self.samples, "diagnostics": (2 + 2 * self.kriging) * self.distance}
        blocks, start = {}, 0
        for name, width in widths.items():
            blocks[name], start = slice(start, start + width), start + width
        return blocks

    summary = property(lambda self: self.blocks["summary"])
    quantile = property(lambda self: self.blocks["quantile"])
    threshold = property(lambda self: self.blocks["threshold"])
    sample = property(lambda self: self.blocks["sample"])
    diagnostics = property(lambda self: self.blocks["diagnostics"])

    @property
    def size(self) -> int:
        return self.diagnostics.stop

    def diagnostic(self, name: str) -> int:
        """The channel of ``"distance_to_data"``, ``"context_std"``, ``"kriging_mean"``, ``"kriging_explained"``
        or a candidate's ``"kriging_mean_<k>"``, ``"kriging_explained_<k>"``."""
        names = self.diagnostic_names
        if name not in names:
            raise KeyError(f"no {name!r} channel in {self}")
        return self.diagnostics.start + names.index(name)

    @property
    def diagnostic_names(self) -> tuple[str, ...]:
        """The diagnostics' channels by name, in order."""
        if not self.distance:
            return ()
        kriged = tuple(name for k in range(int(self.kriging)) for name in kriging_names(k))
        return ("distance_to_data", "context_std") + kriged


def kriging_names(kernel: int) -> tuple[str, str]:
    """The channels (and output variables) of kernel ``kernel``'s kriging mean and the share of variance it
    explains: 0 the model's own kernel, ``k > 0`` its ``k``-th candidate."""
    suffix = f"_{kernel}" if kernel else ""
    return f"kriging_mean{suffix}", f"kriging_explained{suffix}"
