"""Context selection: each target conditions on the observations nearest to it (by count), or inside a halo.

The model's predictions at different test points are independent given the
context (test points never attend to each other), so a target grid can be cut
into tiles and each tile predicted on its own. A tile sees the context points
within ``halo`` of its bounding circle; when the halo covers all the context
(``halo="all"``) the tiled prediction equals the untiled one.

The halo comes from the learned bias: beyond the distance where every head's
bias has fallen ``log(1 / tolerance)`` nats below its value at zero distance, a
context point weighs at most ``tolerance`` times a co-located one before the
content term. It is capped at the diameter of a training task, beyond which
the model has never seen context anyway. The default tolerance, 1e-3, gives
1.46 model units for the bundled model; on a 256 x 256 surface from 10,000
points (benchmarks/surface.py) halos of 1.46 / 2 / 3 / 4.5 units gave RMSE
0.040 / 0.041 / 0.043 / 0.045 and all context 0.051: far context is out of
the training distribution, so a short halo is both faster and better.

Tiles are the chunks of a ``dask.array.map_blocks`` graph, so predictions are
lazy, stream to zarr/netCDF, and run on any dask scheduler (a
``dask.distributed`` cluster included): :class:`TilePredictor` is a plain
picklable object.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from geonp.features.far_context import far_indices
from geonp.features.scaling import TASK_RADIUS
from geonp.nn.bias import bias_family
from geonp.nn.models import BSATNPConfig

MIN_CONTEXT = 16  # a tile with no context in its halo takes this many nearest points instead


def bias_tables(params) -> list[dict]:
    """Every ``distance_bias`` parameter dict in a model (one per attention layer)."""
    found = []

    def walk(tree):
        if isinstance(tree, dict):
            for key, value in tree.items():
                if key == "distance_bias":
                    found.append(value)
                else:
                    walk(value)

    walk(params)
    return found


def auto_halo(params, group: str, config: BSATNPConfig | None = None, tolerance: float = 1e-3,
              cap: float = 2 * TASK_RADIUS) -> float:
    """Halo (model units) after which every head's bias for ``group`` is ``log(1/tolerance)`` below its peak.

    Returns ``cap`` when some head never falls that far within it (a flat or
    repulsive bias), and for models without a distance bias (TNP-D, CMANP).
    """
    _, _, profile = bias_family(config.bias, config.kernels) if config is not None else bias_family("rbf")
    if profile is None:
        return cap
    d = np.linspace(0.0, cap, 512)
    drop = math.log(1.0 / tolerance)
    worst = 0.0
    for table in bias_tables(params):
        if group not in table:
            continue
        bias = np.asarray(profile(table[group], d), np.float64)  # [H, D]
        for head in bias:
            fallen = np.flatnonzero(head[0] - head >= drop)
            worst = max(worst, d[fallen[0]] if fallen.size else cap)
    return float(worst) if worst > 0 else cap


@dataclasses.dataclass
class ContextSet:
    """The observed context points of every task, model-ready, with neighbourhood queries.

    Per task: ``embedding [n, 2|3]`` (km on the sphere or CRS units), ``space [n, 2]``
    and ``time [n, 1]`` model features, ``hours [n]``, ``covariates [n, Dx]`` and
    ``values [n, 1]`` standardised; with ``trends`` (a model with a drift,
    :mod:`geonp.features.drift`), each task's fitted drift (or None), and ``values`` are the
    residuals from it.
    """

    embedding: list
    space: list
    time: list
    hours: list
    covariates: list
    values: list
    trends: list | None = None

    def drift(self, task: int, points) -> np.ndarray:
        """``[N, 1]`` the task's drift at ``points`` ``[N, E]`` (embedding units), in standardised units."""
        trend = self.trends[task] if self.trends is not None else None
        return np.zeros((len(points), 1)) if trend is None else trend(points)

    def __post_init__(self):
        self._trees = {}

    def __getstate__(self):  # k-d trees are rebuilt where the tile runs
        state = dict(self.__dict__)
        state["_trees"] = {}
        return state

    def size(self, task: int) -> int:
        return len(self.values[task])

    def tree(self, task: int):
        from scipy.spatial import cKDTree

        if task not in self._trees:
            self._trees[task] = cKDTree(self.embedding[task])
        return self._trees[task]

    def distance_to_nearest(self, task: int, points) -> np.ndarray:
        """``[N]`` distance from each of ``points`` ``[N, E]`` (embedding units) to its nearest observation."""
        return self.tree(task).query(points, k=1)[0]

    def select(self, task: int, centre, radius: float | None, hours_range=None, time_halo=None) -> np.ndarray:
        """Indices of the points within ``radius`` of ``centre`` (and of the time range), sorted."""
        n = self.size(task)
        if radius is None or n == 0:
            index = np.arange(n)
        else:
            index = np.asarray(self.tree(task).query_ball_point(centre, radius), dtype=np.int64)
        if hours_range is not None and time_halo is not None and index.size and self.hours[task] is not None:
            h = self.hours[task][index]
            index = index[(h >= hours_range[0] - time_halo) & (h <= hours_range[1] + time_halo)]
        if index.size == 0 and n:
            k = min(MIN_CONTEXT, n)
            _, nearest = self.tree(task).query(centre, k=k)
            index = np.atleast_1d(nearest)
        return np.sort(index)


# a neighbourhood cell's side over r where cells of side r would not fill a call's target slots (fewer than
# SPARSE_CELL_TARGETS targets on average; neighbourhoods): 189 model calls on the 300 x 500 raster against 345, at
# the same accuracy on the real-data cases; applied everywhere, it cost 5% RMSE on the demo's 90%-hidden field,
# where cells of side r already hold ~700 targets (RESULTS.md, stop 33)
CELL_SIDE = math.sqrt(2.0)
# targets of a model call, at least: the call's cost is the context's (512 points through 6 blocks), so padding a
# cell of 16 targets to 128 costs ~nothing, and one compiled shape serves every cell size up to 128
MIN_TARGETS = 128
SPARSE_CELL_TARGETS = MIN_TARGETS


def neighbourhoods(emb_tgt, context: ContextSet, task: int, count: int, far: int = 0) -> list:
    """Split the targets into cells, each conditioned on the ``count`` observations nearest to it.

    Cells are squares (cubes in the 3-D km embedding of the sphere) of side
    ``r``: the distance within which a typical observation has ``count / 2``
    others. The nearest ``count`` observations to a cell's centre then reach
    about ``sqrt(2) r`` from it, beyond the cell's corners (``0.71 r``), and
    every target additionally keeps its own 4 nearest observations. Where such cells would hold few
    targets on average (fewer than :data:`SPARSE_CELL_TARGETS`: dense data, small gaps), a model call
    would be mostly padding, so the side grows to ``sqrt(2) r`` (:data:`CELL_SIDE`): the corners, at ``r``,
    stay inside the context, as a training task's context spans its targets. So no cell
    conditions on (much) more points than the model was trained with, however
    dense the data, and a cell inside a large gap conditions on the gap's edges.
    With ``far`` > 0 (a model trained so), ``far`` of the ``count`` slots go to farther
    observations drawn as in training (:func:`geonp.features.far_context.far_indices`,
    seeded by the cell's nearest observation, so a prediction is reproducible and moves with the grid).

    Returns ``[(target indices, context indices sorted), ...]``.
    """
    tree = context.tree(task)
    points = context.embedding[task]
    n = points.shape[0]
    probe = points[np.random.default_rng(0).choice(n, size=min(n, 256), replace=False)]
    k_half = max(2, min(count // 2, n - 1))
    radius = float(np.median(tree.query(probe, k=k_half + 1)[0][:, -1]))
    radius = radius if radius > 0 else 1.0

    def cell_of_target(side):  # [T] each target's cell, on a lattice that moves with the data
        cells = np.floor((emb_tgt - points.min(axis=0)) / side).astype(np.int64)
        return np.unique(cells, axis=0, return_inverse=True)[1].reshape(-1)

    cell_of = cell_of_target(radius)
    if len(emb_tgt) < SPARSE_CELL_TARGETS * (cell_of.max(initial=-1) + 1):  # cells of side r: mostly padding
        cell_of = cell_of_target(CELL_SIDE * radius)
    order = np.argsort(cell_of, kind="stable")
    bounds = np.flatnonzero(np.diff(cell_of[order])) + 1
    far = far if n > count else 0  # a context that fits whole is used whole
    k = min(count - far, n)
    own = np.atleast_2d(tree.query(emb_tgt, k=min(4, n))[1])
    own = own.reshape(len(emb_tgt), -1)
    groups = []
    for t_idx in np.split(order, bounds):
        centre = emb_tgt[t_idx].mean(axis=0)
        reach, nearest = (np.atleast_1d(a) for a in tree.query(centre, k=k))
        chosen = [nearest, own[t_idx].reshape(-1)]
        if far:
            # seeded by the cell's nearest observation (not its coordinates): reproducible, and the same
            # far points wherever the grid is moved to (translation invariance)
            rng = np.random.default_rng([int(nearest[0]), int(t_idx.size)])
            chosen.append(far_indices(tree, centre, float(reach[-1]), far, rng, nearest))
        groups.append((t_idx, np.unique(np.concatenate(chosen))))
    return groups


def distances_to_data(context: ContextSet, task_map, x, y, kind: str) -> np.ndarray:
    """``[T, P]`` each target's distance to the nearest observation of its task (inf where it has none).

    ``x``, ``y``: target coordinates ``[T, P]`` (one row per target task, ``task_map[t]`` its
    context task); distances in embedding units (km on the sphere, CRS units when projected).
    """
    from geonp.features.tables import euclidean_embedding

    x, y = np.asarray(x).reshape(len(task_map), -1), np.asarray(y).reshape(len(task_map), -1)
    distance = np.full(x.shape, np.inf)
    for t, c in enumerate(task_map):
        if context.size(c):
            distance[t] = context.distance_to_nearest(c, euclidean_embedding(kind, x[t], y[t]))
    return distance

