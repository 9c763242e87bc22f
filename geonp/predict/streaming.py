"""The conditioned state of a constant-memory model (``arch="cmanp"``): observations folded in as they arrive.

A CMANP touches its context only through a running softmax of fixed latent queries
(:mod:`geonp.nn.cmanp`): per block, ``m, l [H, L]`` and ``acc [H, L, Dh]``. The state of n
observations merged with the state of m new ones is the state of all n + m, so

    state  = fold(frame, None,  observations)      # O(n)
    state  = fold(frame, state, new observations)  # O(m): old observations are never revisited
    raw    = query(state, targets)                 # O(targets), independent of n

and a prediction after any number of folds equals one from folding everything at once.

**Frame.** The network sees values as ``(y - offset) / scale`` and, on projected coordinates,
positions relative to an ``origin``; the tile path takes these from each tile's own context
(:meth:`geonp.features.scaling.FeatureScaling.task_standardisation`). A state cannot be re-centred
after the fact (values pass through the embedding MLP), so each task fixes its :class:`Frame` from
the observations it is first conditioned on, and every later fold uses that frame.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from geonp.errors import ConfigError
from geonp.features.support import SUPPORT
from geonp.nn.config import BSATNPConfig
from geonp.nn.models import build_model

FOLD_POINTS = 4096  # observations folded per network call (padded), so memory stays constant
QUERY_POINTS = 4096  # targets per network call


@dataclasses.dataclass(frozen=True)
class Frame:
    """One task's standardisation ``(offset, scale)`` ``[Dy]`` and coordinate ``origin`` ``[2]`` (or 0)."""

    offset: np.ndarray
    scale: np.ndarray
    origin: np.ndarray | float

    @classmethod
    def of(cls, scaling, space, values) -> Frame:
        """The frame of the first observations of a task (``space [n, 2]``, standardised ``values [n, Dy]``)."""
        offset, scale = scaling.task_standardisation(values)
        origin = 0.0 if scaling.kind == "geographic" else np.asarray(space, np.float64).mean(axis=0)
        return cls(np.asarray(offset), np.asarray(scale), origin)


@dataclasses.dataclass(frozen=True)
class TaskState:
    """The folded observations of one task: the frame, one softmax state per block, and how many were folded."""

    frame: Frame
    blocks: tuple  # of geonp.nn.cmanp.SoftmaxState, batch 1
    points: int


def require_constant_memory(config: BSATNPConfig):
    if config.family != "cmanp":
        raise ConfigError(f"a conditioned state needs a constant-memory model (arch='cmanp'); this one is "
                          f"family={config.family!r}. Other models re-condition on all observations at predict().")


@functools.lru_cache(maxsize=8)
def _compiled(config: BSATNPConfig):
    from geonp.nn.cmanp import CMANP

    model = build_model(config)
    first = jax.jit(lambda p, x, y, meta, mask: model.apply(p, x, y, meta, mask, method=CMANP.condition))
    more = jax.jit(lambda p, s, x, y, meta, mask: model.apply(p, s, x, y, meta, mask, method=CMANP.update))
    query = jax.jit(lambda p, s, x, meta: model.apply(p, s, x, meta, method=CMANP.query))
    return first, more, query


def _padded(n: int, chunk: int) -> int:
    """Pad to a power of two (at least 64) up to ``chunk``: few distinct shapes, few compilations."""
    return min(chunk, max(64, 1 << (max(n, 1) - 1).bit_length()))


def _meta(config: BSATNPConfig, space, time, rows: slice, size: int, origin) -> dict:
    meta = {"space": np.zeros((1, size, space.shape[-1]), np.float32)}
    part = np.asarray(space[rows], np.float64) - origin
    meta["space"][0, : len(part)] = part
    if any(g.name == "time" for g in config.groups):
        meta["time"] = np.zeros((1, size, 1), np.float32)
        meta["time"][0, : len(part)] = time[rows]
    return meta


def fold(config: BSATNPConfig, params, scaling, state: TaskState | None, space, time, covariates,
         values) -> TaskState:
    """``state`` with observations added (``space [m, 2]``, ``time [m, 1]`` or None, ``covariates [m, Dx]``,
    ``values [m, Dy]`` standardised as :class:`~geonp.features.scaling.FeatureScaling` does); None: a new state
    whose frame these observations set. O(m) network work, in calls of at most :data:`FOLD_POINTS` points."""
    require_constant_memory(config)
    m = len(values)
    if state is None:
        if m == 0:
            raise ConfigError("a conditioned state needs at least one observation to start from.")
        state = TaskState(Frame.of(scaling, space, values), None, 0)
    first, more, _ = _compiled(config)
    frame, blocks = state.frame, state.blocks
    for start in range(0, m, FOLD_POINTS):
        rows = slice(start, min(m, start + FOLD_POINTS))
        n = rows.stop - rows.start
        size = _padded(n, FOLD_POINTS)
        x = np.zeros((1, size, covariates.shape[-1]), np.float32)
        y = np.zeros((1, size, values.shape[-1]), np.float32)
        mask = np.zeros((1, size), bool)
        x[0, :n], y[0, :n], mask[0, :n] = covariates[rows], (values[rows] - frame.offset) / frame.scale, True
        meta = _meta(config, space, time, rows, size, frame.origin)
        if config.support:
            meta[SUPPORT] = np.zeros((1, size, 1), np.float32)
        blocks = tuple(first(params, x, y, meta, mask) if blocks is None else more(params, list(blocks), x, y, meta,
                                                                                    mask))
    return TaskState(frame, blocks, state.points + m)


def query(config: BSATNPConfig, params, state: TaskState, space, time, covariates) -> tuple:
    """Raw likelihood parameters ``[N, outputs]`` at targets (``space [N, 2]``, ``time``, ``covariates``), and
    the frame's ``(offset, scale)`` to map standardised predictions back."""
    require_constant_memory(config)
    _, _, apply = _compiled(config)
    N = len(space)
    out = np.zeros((N, config.likelihood.num_outputs * config.y_dim), np.float32)
    for start in range(0, N, QUERY_POINTS):
        rows = slice(start, min(N, start + QUERY_POINTS))
        n = rows.stop - rows.start
        size = _padded(n, QUERY_POINTS)
        x = np.zeros((1, size, covariates.shape[-1]), np.float32)
        x[0, :n] = covariates[rows]
        meta = _meta(config, space, time, rows, size, state.frame.origin)
        out[rows] = np.asarray(apply(params, list(state.blocks), jnp.asarray(x), meta))[0, :n]
    return out, (state.frame.offset, state.frame.scale)
