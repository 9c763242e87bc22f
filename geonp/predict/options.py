"""``predict``'s options, checked once, in one place, into a frozen :class:`PredictOptions`."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from geonp import options
from geonp.errors import ConfigError

STAGES = ("drift", "blend", "spread", "conservation")  # predict's post-hoc stages, each can be switched off
MAX_SAMPLES = 100_000  # draws per point: more adds nothing a summary needs and only costs memory and minutes


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    quantiles: tuple[float, ...]
    thresholds: tuple[float, ...]  # exceedance thresholds (count heads)
    samples: int
    joint: bool
    tile: int
    time_tile: int
    seed: int
    halo: float | str | None
    lazy: bool | None
    progress: bool | None
    distance: bool
    conserve: bool | str
    stages_off: frozenset  # of STAGES


def check(head, target, temporal: bool, *, quantiles: Sequence[float] | None, samples, exceedance, halo, tile,
          time_tile, lazy, seed, progress, calibrated: bool, distance: bool, joint: bool, conserve,
          without: Sequence[str]) -> PredictOptions:
    """Every option of ``predict`` for a model with likelihood ``head``, checked: a ConfigError says what to pass."""
    stages_off = stages_left_out(without, calibrated, conserve)
    quantiles, exceedance = options.probabilities(quantiles, "quantiles"), options.numbers(exceedance, "exceedance")
    samples, tile, time_tile, seed = (options.whole_number(v, name, low) for v, name, low in (
        (samples, "samples", 0), (tile, "tile", 1), (time_tile, "time_tile", 1), (seed, "seed", None)))
    if samples > MAX_SAMPLES:
        raise ConfigError(f"samples={samples}: at most {MAX_SAMPLES:,} draws per point (a 95% quantile from "
                          f"{MAX_SAMPLES:,} draws is already within about 1% of the predictive std). For more, "
                          "predict again with another seed= and concatenate the draws.")
    if halo is not None and not isinstance(halo, str) and not options.is_real(halo):
        raise ConfigError(f"halo={halo!r}: pass a distance (a number), None (automatic) or 'all'.")
    _check_joint(head, joint, samples, temporal)
    if conserve not in (True, False, "auto"):
        raise ConfigError(f"conserve={conserve!r}: expected 'auto', True or False.")
    if conserve is True and (target is None or head.name != "normal"):
        why = ("target=None predicts the context's own cells" if target is None
               else f"a {head.name} model's predictions are not shifted (Gaussian models only)")
        raise ConfigError(f"conserve=True, but the coarse cells' means cannot be kept: {why}. Pass a finer "
                          "grid nested in the context grid (target=<factor>) to a Gaussian model, or "
                          "conserve='auto'.")
    thresholds = exceedance_thresholds(head, exceedance)
    if quantiles and not hasattr(head, "quantile"):
        raise ConfigError(f"a {head.name} model predicts class probabilities; it has no quantiles.")
    return PredictOptions(quantiles=quantiles, thresholds=thresholds, samples=int(samples), joint=bool(joint),
                          tile=tile, time_tile=time_tile, seed=seed, halo=halo, lazy=lazy, progress=progress,
                          distance=bool(distance), conserve=conserve, stages_off=stages_off)


def stages_left_out(without, calibrated: bool, conserve) -> frozenset:
    """The stages ``predict`` leaves out: ``without`` (checked), plus those ``calibrated`` / ``conserve`` say."""
    names = (without,) if isinstance(without, str) else without
    try:
        names = frozenset(names)
    except TypeError:
        raise ConfigError(f"without={without!r}: expected stage names from {list(STAGES)}, e.g. "
                          "without=['blend'].") from None
    unknown = sorted(str(n) for n in names - set(STAGES))
    if unknown:
        raise ConfigError(f"without={sorted(map(str, names))}: unknown stage(s) {unknown}; the stages are "
                          f"{list(STAGES)}.")
    return names | ({"blend", "spread"} if not calibrated else set()) | ({"conservation"} if conserve is False
                                                                        else set())


def exceedance_thresholds(head, exceedance) -> tuple[float, ...]:
    thresholds = tuple(float(t) for t in (exceedance or ()))
    if not thresholds:
        return ()
    if not hasattr(head, "exceedance"):
        raise ConfigError(f"exceedance= needs a binomial, bernoulli or poisson model; this one is {head.name}. "
                          "For a Gaussian field use quantiles= instead.")
    upper = 1.0 if head.name in ("binomial", "bernoulli") else math.inf
    bad = [t for t in thresholds if not 0 < t < upper]
    if bad:
        raise ConfigError(f"exceedance thresholds must lie in (0, {upper}) for a {head.name} model; got {bad}.")
    return thresholds


def _check_joint(head, joint: bool, samples: int, temporal: bool) -> None:
    from geonp.predict.joint import JOINT_HEADS

    if not joint:
        return
    if samples < 1:
        raise ConfigError("joint=True makes the samples= draws coherent across points; pass samples=n "
                          "(e.g. samples=100) as well.")
    if head.name not in JOINT_HEADS:
        raise ConfigError(f"joint samples need a {', '.join(JOINT_HEADS)} model; this one is {head.name}. "
                          "Use joint=False for independent draws per point.")
    if temporal:
        raise ConfigError("joint samples are drawn over space, one task at a time; a temporal model mixes "
                          "time steps. Predict one time step at a time with a spatial model, or joint=False.")
