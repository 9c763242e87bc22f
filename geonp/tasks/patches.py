"""Meta-training tasks cut from the user's own data: random neighbourhoods of observed points.

A task is a window of ``window_points`` observed points around a random
centre (on a grid: a disc of cells, like a 32 x 32 patch; for a survey: the
nearest sites), at a random task index (a time step, an ensemble member).
A random fraction of the window is the context; the other observed points of
the window are the targets (held-out observations, so the loss is honest).

    task index t ~ U{tasks with observations}, weighted by their counts
    centre       ~ U(observed points of t)
    window       = the window_points nearest observed points (model-unit distance)
    n_context    = round(U(context_fraction) * |window|), at most max_context
    targets      = up to num_target of the rest of the window
    gap tasks    (a share ``gap_share`` of them, for fine-tuning) hide a disc of U(GAP_SIZES) of the window
                 around its centre instead: targets inside it, the ring of the window around it as context,
                 as a cell deep in a gap sees its data at prediction
    values      standardised by the context values (``center``: minus their mean, "task-scale" also
                divided by their std), as at prediction time
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from geonp.errors import ConfigError, EmptyContextError
from geonp.features.scaling import task_standardisation
from geonp.tasks.batch import Batch

GAP_SIZES = (0.05, 0.5)  # a gap task's disc, as a share of its window


@dataclasses.dataclass
class PatchSampler:
    """``sample(key, batch_size) -> (Batch, None)`` from per-task arrays of observed points.

    Per task ``t``: ``embedding[t] [n, d]`` (model units, for neighbourhoods),
    ``space[t] [n, 2]``, ``time[t] [n, 1]`` or None, ``covariates[t] [n, Dx]``,
    ``values[t] [n, Dy]`` (standardised).
    """

    embedding: list
    space: list
    time: list
    covariates: list
    values: list
    window_points: int = 512
    context_fraction: tuple[float, float] = (0.1, 0.9)
    max_context: int = 512
    num_target: int = 256
    geographic: bool = False  # space features are lon/lat degrees (not shifted)
    center: str = "task"  # FeatureScaling.center: "task" (minus the context mean), "task-scale" (also / std), "global"
    gap_share: float = 0.0  # share of tasks whose targets are one contiguous gap (a disc) in the window

    def __post_init__(self):
        lo, hi = self.context_fraction
        if not (0 < lo <= hi < 1):
            raise ConfigError(f"context_fraction must satisfy 0 < low <= high < 1, got {self.context_fraction}.")
        if not 0.0 <= self.gap_share <= 1.0:
            raise ConfigError(f"gap_share must be a share in [0, 1], got {self.gap_share}.")
        if self.window_points < 2 or self.max_context < 1 or self.num_target < 1:
            raise ConfigError("window_points must be >= 2 and max_context, num_target >= 1; got "
                              f"{self.window_points}, {self.max_context}, {self.num_target}.")
        counts = np.array([len(v) for v in self.values])
        if (counts >= 2).sum() == 0:
            raise EmptyContextError("fitting needs at least one task (time step, member ...) with two or more "
                                    "observed points; the data has none.")
        self._weights = np.where(counts >= 2, counts, 0) / np.where(counts >= 2, counts, 0).sum()
        self._trees = {}
        self._temporal = self.time[0] is not None

    def _tree(self, t: int):
        from scipy.spatial import cKDTree

        if t not in self._trees:
            self._trees[t] = cKDTree(self.embedding[t])
        return self._trees[t]

    def sample(self, key, batch_size: int):
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).astype(np.uint64))
        nc_max, nt_max = self.max_context, self.num_target
        dx, dy = self.covariates[0].shape[-1], self.values[0].shape[-1]
        groups = {"space": 2, "time": 1} if self._temporal else {"space": 2}

        def empty(n):  # one side (context or targets) of the batch, padded to n points
            return {"x": np.zeros((batch_size, n, dx), np.float32), "y": np.zeros((batch_size, n, dy), np.float32),
                    "mask": np.zeros((batch_size, n), bool),
                    "meta": {g: np.zeros((batch_size, n, d), np.float32) for g, d in groups.items()}}

        sides = {"ctx": empty(nc_max), "tgt": empty(nt_max)}
        for b in range(batch_size):
            t = int(rng.choice(len(self._weights), p=self._weights))
            n = len(self.values[t])
            k = min(self.window_points, n)
            centre = self.embedding[t][rng.integers(n)]
            _, window = self._tree(t).query(centre, k=k)  # nearest first
            window = np.atleast_1d(window)
            if self.gap_share and k >= 3 and rng.uniform() < self.gap_share:  # a disc hidden, its ring the context
                hole = int(np.clip(round(rng.uniform(*GAP_SIZES) * k), 1, k - 2))
                context, targets = window[hole:][:nc_max], rng.permutation(window[:hole])[:nt_max]
            else:
                window = rng.permutation(window)
                n_ctx = int(np.clip(round(rng.uniform(*self.context_fraction) * k), 1, min(nc_max, k - 1)))
                context, targets = window[:n_ctx], window[n_ctx:][:nt_max]
            n_ctx, n_t = len(context), len(targets)
            # projected features are relative to the window (the model is translation invariant,
            # and small numbers keep float32 exact: UTM northings are ~1e6)
            origin = 0.0 if self.geographic else self.space[t][window[0]]
            for side, rows in (("ctx", context), ("tgt", targets)):
                m, arrays = len(rows), sides[side]
                arrays["x"][b, :m] = self.covariates[t][rows]
                arrays["y"][b, :m] = self.values[t][rows]
                arrays["mask"][b, :m] = True
                arrays["meta"]["space"][b, :m] = self.space[t][rows] - origin
                if self._temporal:
                    arrays["meta"]["time"][b, :m] = self.time[t][rows]
            # values standardised by the task's context, as at prediction ("global": left as they are)
            y_c = sides["ctx"]["y"][b, :n_ctx]
            offset, scale = task_standardisation(y_c, self.center)
            sides["ctx"]["y"][b, :n_ctx] = (y_c - offset) / scale
            sides["tgt"]["y"][b, :n_t] = (sides["tgt"]["y"][b, :n_t] - offset) / scale
        c, g = sides["ctx"], sides["tgt"]
        return Batch(c["x"], c["y"], c["meta"], c["mask"], g["x"], g["y"], g["meta"], g["mask"]), None
