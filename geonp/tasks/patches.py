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
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from geonp.errors import ConfigError, EmptyContextError
from geonp.tasks.batch import Batch


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

    def __post_init__(self):
        lo, hi = self.context_fraction
        if not (0 < lo <= hi < 1):
            raise ConfigError(f"context_fraction must satisfy 0 < low <= high < 1, got {self.context_fraction}.")
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
        out = {
            "x_ctx": np.zeros((batch_size, nc_max, dx), np.float32), "y_ctx": np.zeros((batch_size, nc_max, dy), np.float32),
            "mask_ctx": np.zeros((batch_size, nc_max), bool),
            "x_tgt": np.zeros((batch_size, nt_max, dx), np.float32), "y_tgt": np.zeros((batch_size, nt_max, dy), np.float32),
            "mask_tgt": np.zeros((batch_size, nt_max), bool),
        }
        meta = {"space": (2, np.zeros)}
        if self._temporal:
            meta["time"] = (1, np.zeros)
        meta_ctx = {g: np.zeros((batch_size, nc_max, d), np.float32) for g, (d, _) in meta.items()}
        meta_tgt = {g: np.zeros((batch_size, nt_max, d), np.float32) for g, (d, _) in meta.items()}
        for b in range(batch_size):
            t = int(rng.choice(len(self._weights), p=self._weights))
            n = len(self.values[t])
            k = min(self.window_points, n)
            centre = self.embedding[t][rng.integers(n)]
            _, window = self._tree(t).query(centre, k=k)
            window = rng.permutation(np.atleast_1d(window))
            n_ctx = int(np.clip(round(rng.uniform(*self.context_fraction) * k), 1, min(nc_max, k - 1)))
            ctx, tgt = window[:n_ctx], window[n_ctx:][:nt_max]
            origin = 0.0 if self.geographic else self.space[t][window[0]]
            for name, (rows, side, mask) in {"ctx": (ctx, "ctx", "mask_ctx"), "tgt": (tgt, "tgt", "mask_tgt")}.items():
                m = len(rows)
                out[f"x_{side}"][b, :m] = self.covariates[t][rows]
                out[f"y_{side}"][b, :m] = self.values[t][rows]
                out[mask][b, :m] = True
                target_meta = meta_ctx if name == "ctx" else meta_tgt
                # projected features are relative to the window centre: the model is translation
                # invariant, and small numbers keep float32 exact (UTM northings are ~1e6)
                target_meta["space"][b, :m] = self.space[t][rows] - origin
                if self._temporal:
                    target_meta["time"][b, :m] = self.time[t][rows]
        return Batch(out["x_ctx"], out["y_ctx"], meta_ctx, out["mask_ctx"], out["x_tgt"], out["y_tgt"],
                     meta_tgt, out["mask_tgt"]), None
