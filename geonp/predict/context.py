"""Tiled prediction: each tile of the target conditions on the context inside a halo around it.

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

import jax
import numpy as np

from geonp.calibrate.calibration import SpreadCalibration
from geonp.calibrate.kriging import LocalKriging
from geonp.features.far_context import far_indices
from geonp.features.scaling import TASK_RADIUS, FeatureScaling, task_covariates
from geonp.features.support import SUPPORT
from geonp.nn.bias import bias_family
from geonp.nn.models import BSATNPConfig
from geonp.predict import stages as stages_lib
from geonp.predict.channels import ChannelLayout
from geonp.predict.network import predict_raw
from geonp.tasks.batch import Batch

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


@dataclasses.dataclass
class TilePredictor:
    """Predicts one dask block of target points; the output gains a trailing channel axis.

    Channels: mean, std, one per quantile, one per exceedance threshold, then one per
    sample (user units); a categorical model: one probability per class, then samples.
    Blocks span one task each (chunk size 1 along task dims); ``task_map`` maps
    a target task to its context task.
    """

    config: BSATNPConfig
    params: dict
    scaling: FeatureScaling
    context: ContextSet
    task_shape: tuple[int, ...]
    task_map: np.ndarray
    halo: float | None  # km / CRS units; None = all context
    time_halo: float | None  # hours; None = all times
    quantiles: tuple[float, ...] = ()
    num_samples: int = 0
    seed: int = 0
    temporal: bool = False
    thresholds: tuple[float, ...] = ()
    neighbours: int | None = None  # context by count: each cell of targets takes this many nearest observations
    spread: SpreadCalibration = SpreadCalibration()  # calibration of a Gaussian head's spread, by distance to data
    distance_channel: bool = False  # append each target's distance to its nearest observation and its context's std
    joint: bool = False  # samples coherent across the block's targets (predict.joint); blocks then span whole tasks
    progress: bool = False  # a progress bar over the joint draws
    support: float = 0.0  # log2 of a context cell's side in target cells (geonp.features.support), support models
    stream: tuple | None = None  # per context task, a conditioned state (predict.streaming.TaskState), arch="cmanp"
    kriging: LocalKriging | None = None  # each neighbourhood also kriged; blended in where it has weights

    def __repr__(self) -> str:
        # short: dask names each block's task by the callable's repr, and the generated one prints every weight
        return (f"TilePredictor({self.config.family}, {self.config.likelihood.name}, "
                f"{self.num_channels} channels, tasks {self.task_shape})")

    @property
    def layout(self) -> ChannelLayout:
        head = self.config.likelihood
        categorical = head.name == "categorical"
        return ChannelLayout(classes=head.num_classes if categorical else 0,
                             quantiles=0 if categorical else len(self.quantiles),
                             thresholds=0 if categorical else len(self.thresholds), samples=self.num_samples,
                             distance=self.distance_channel, kriging=self.kriging_channel and not categorical)

    @property
    def num_channels(self) -> int:
        return self.layout.size

    @property
    def kriging_channel(self) -> bool:
        """With ``distance_channel``: also the kriging mean, unblended (the calibration learns the blend)."""
        return self.kriging is not None and self.config.likelihood.name == "normal"

    @property
    def stages(self) -> tuple:
        """The post-processing stages on, in order (:mod:`geonp.predict.stages`)."""
        if self.config.likelihood.name != "normal":
            return ()
        on = [stages_lib.kriging_blend(self.kriging)] if self.kriging_channel and self.kriging.blends else []
        if not self.spread.is_identity:
            on.append(stages_lib.spread_calibration(self.spread, self.scaling))
        return tuple(on)

    def __call__(self, x, y, *rest, block_info=None):
        hours = rest[0] if self.temporal else None
        covariates = rest[1:] if self.temporal else rest
        block_shape = x.shape
        n_task = len(self.task_shape)
        location = block_info[0]["chunk-location"] if block_info else (0,) * x.ndim
        target_task = int(np.ravel_multi_index(location[:n_task], self.task_shape)) if n_task else 0
        task = int(self.task_map[target_task])
        flat = lambda a: np.asarray(a, np.float64).reshape(-1)  # noqa: E731
        x, y = flat(x), flat(y)
        cov = np.stack([flat(c) for c in covariates], -1) if covariates else np.zeros((x.size, 0))
        hours = flat(hours) if hours is not None else None
        out = np.full((x.size, self.num_channels), np.nan, np.float32)
        usable = np.isfinite(x) & np.isfinite(y) & np.isfinite(cov).all(-1)
        if hours is not None:
            usable &= np.isfinite(hours)
        if usable.any() and self.context.size(task):
            out[usable] = self._predict(task, x[usable], y[usable], cov[usable],
                                        hours[usable] if hours is not None else None, location)
        return out.reshape(block_shape + (self.num_channels,))

    def _predict(self, task, x, y, cov, hours, location) -> np.ndarray:
        from geonp.features.tables import euclidean_embedding

        s = self.scaling
        emb = euclidean_embedding(s.kind, x, y)
        if self.stream is not None:  # a conditioned state holds every observation of the task (queried below)
            groups = []
        elif self.neighbours is not None:  # context by count; a small context set is used whole
            groups = (neighbourhoods(emb, self.context, task, self.neighbours, far=s.far_context)
                      if self.context.size(task) > self.neighbours else
                      [(np.arange(x.size), np.arange(self.context.size(task)))])
        else:
            centre = emb.mean(axis=0)
            reach = float(np.sqrt(((emb - centre) ** 2).sum(-1)).max())
            radius = None if self.halo is None else reach + self.halo
            hours_range = (hours.min(), hours.max()) if hours is not None else None
            groups = [(np.arange(x.size), self.context.select(task, centre, radius, hours_range, self.time_halo))]
        tgt_space, tgt_time = s.space_features(x, y), s.time_features(hours) if self.temporal else None
        tgt_cov = s.scale_covariates(cov)
        raw = np.zeros((x.size, self.config.likelihood.num_outputs * self.config.y_dim), np.float32)
        # each target's task standardisation: model value v -> offset + scale * v (standardised units)
        width = 1 if s.center == "global" else self.config.y_columns  # global: counts keep their columns
        offset, scale = np.zeros((x.size, width)), np.ones((x.size, width))
        if self.stream is not None:
            from geonp.predict import streaming

            raw, (task_offset, task_scale) = streaming.query(self.config, self.params, self.stream[task], tgt_space,
                                                             tgt_time, tgt_cov)
            offset[:], scale[:] = task_offset, task_scale
        head = self.config.likelihood
        steps = self.stages
        blends = self.kriging_channel and self.kriging.blends
        kriged = np.full(x.size, np.nan) if blends or (self.kriging_channel and self.distance_channel) else None
        for start in range(0, len(groups), GROUPS_PER_CALL):
            chunk = groups[start:start + GROUPS_PER_CALL]
            batch, standardisations = self._group_batch(task, chunk, tgt_space, tgt_time, tgt_cov)
            out = predict_raw(self.config, self.params, batch)  # [G, Nt, outputs] numpy
            for i, (t_idx, c_idx) in enumerate(chunk):
                raw[t_idx] = out[i, : t_idx.size]
                offset[t_idx], scale[t_idx] = standardisations[i]
                if kriged is not None:  # the same neighbourhood, in the same standardised units
                    kriged[t_idx] = self.kriging.mean(self.context.embedding[task][c_idx],
                                                      batch.y_ctx[i, : c_idx.size, 0], emb[t_idx])
        raw = raw[None]  # [1, N, outputs]
        known = steps or self.distance_channel  # distance to data and the context's std, where a stage needs them
        at = stages_lib.Targets(nearest=self.context.distance_to_nearest(task, emb) if known else None,
                                unit=s.unscale_std(scale) if known else None, kriged=kriged)
        # the residual's offset plus the field's drift, if any ("drift": the context holds residuals from it)
        marginals = stages_lib.Marginals(raw=raw, summary=_head_summary(head, raw), scale=scale,
                                         level=offset + self.context.drift(task, emb))
        for stage in steps:
            marginals = stage(marginals, at)
        draws = None
        if self.num_samples:
            key = jax.random.PRNGKey(self.seed)
            for i in location:
                key = jax.random.fold_in(key, int(i))
            if self.joint:  # [S, N, 1] draws coherent across the targets, in scaled units
                from geonp.predict.joint import joint_draws, network_conditional

                c = self.context
                observed = {"embedding": c.embedding[task], "space": c.space[task], "time": c.time[task],
                            "covariates": c.covariates[task]}
                targets = {"embedding": emb, "space": tgt_space, "time": tgt_time, "covariates": tgt_cov}
                weight = None if head.name == "normal" else float(np.max(c.values[task][:, 1]))
                draws = joint_draws(network_conditional(self), observed, c.values[task], targets,
                                    self.num_samples, key, count=self.neighbours or JOINT_CONTEXT,
                                    pseudo_weight=weight, progress=self.progress, far=s.far_context)
                draws = (draws - offset) / scale  # each target's standardised units, as the marginal draws
            else:
                draws = np.asarray(head.sample(raw, key, self.num_samples))[:, 0]  # [S, N, 1]
        layout = self.layout
        return stages_lib.channels(marginals, head, s, layout, self.quantiles if not layout.classes else (),
                                   self.thresholds if not layout.classes else (), draws, at)

    def _group_batch(self, task, groups, tgt_space, tgt_time, tgt_cov):
        """One padded :class:`Batch` of ``len(groups)`` tasks (target indices, context indices), and the value
        ``(offset, scale)`` of each group (:meth:`FeatureScaling.task_standardisation`)."""
        s, c = self.scaling, self.context
        n_ctx = max(ci.size for _, ci in groups)
        n_tgt = max(max(ti.size for ti, _ in groups), MIN_TARGETS)  # few distinct shapes: few compilations
        size = GROUPS_PER_CALL if len(groups) > 1 else 1  # few distinct shapes: few compilations
        dx, dy = c.covariates[task].shape[-1], self.config.y_columns
        dims = {"space": c.space[task].shape[-1], "time": 1}
        names = ["space"] + (["time"] if self.temporal else [])
        batch = {
            "x_ctx": np.zeros((size, n_ctx, dx)), "y_ctx": np.zeros((size, n_ctx, dy)),
            "mask_ctx": np.zeros((size, n_ctx), bool), "x_tgt": np.zeros((size, n_tgt, dx)),
            "mask_tgt": np.zeros((size, n_tgt), bool),
            "meta_ctx": {g: np.zeros((size, n_ctx, dims[g])) for g in names},
            "meta_tgt": {g: np.zeros((size, n_tgt, dims[g])) for g in names},
        }
        standardisations = []
        for i, (ti, ci) in enumerate(groups):
            # projected features relative to the group's targets (translation invariance; keeps float32 exact)
            origin = 0.0 if s.kind == "geographic" else tgt_space[ti].mean(axis=0)
            y_ctx = c.values[task][ci]
            offset, scale = s.task_standardisation(y_ctx)
            standardisations.append((offset, scale))
            x_ctx, x_tgt = task_covariates(c.covariates[task][ci], tgt_cov[ti], self.config.covariate_slots)
            batch["x_ctx"][i, : ci.size] = x_ctx
            batch["y_ctx"][i, : ci.size] = (y_ctx - offset) / scale
            batch["mask_ctx"][i, : ci.size] = True
            batch["x_tgt"][i, : ti.size] = x_tgt
            batch["mask_tgt"][i, : ti.size] = True
            batch["meta_ctx"]["space"][i, : ci.size] = c.space[task][ci] - origin
            batch["meta_tgt"]["space"][i, : ti.size] = tgt_space[ti] - origin
            if self.temporal:
                batch["meta_ctx"]["time"][i, : ci.size] = c.time[task][ci]
                batch["meta_tgt"]["time"][i, : ti.size] = tgt_time[ti]
        if self.config.support:
            batch["meta_ctx"][SUPPORT] = np.full((size, n_ctx, 1), self.support)
        for i in range(len(groups), size):  # padding tasks: one dummy observed point, no targets
            batch["mask_ctx"][i, 0] = True
        return Batch(y_tgt=np.zeros((size, n_tgt, self.config.y_columns)), **batch), standardisations


GROUPS_PER_CALL = 8  # neighbourhoods predicted together in one model call
# targets of a model call, at least: the call's cost is the context's (512 points through 6 blocks), so padding a
# cell of 16 targets to 128 costs ~nothing, and one compiled shape serves every cell size up to 128
MIN_TARGETS = 128
# a neighbourhood cell's side over r where cells of side r would not fill a call's target slots (fewer than
# SPARSE_CELL_TARGETS targets on average; neighbourhoods): 189 model calls on the 300 x 500 raster against 345, at
# the same accuracy on the real-data cases; applied everywhere, it cost 5% RMSE on the demo's 90%-hidden field,
# where cells of side r already hold ~700 targets (RESULTS.md, stop 33)
CELL_SIDE = math.sqrt(2.0)
SPARSE_CELL_TARGETS = MIN_TARGETS
JOINT_CONTEXT = 512  # context per neighbourhood for joint draws when prediction does not go by count


HEAD_CHUNK = 4096  # points per call of the likelihood head's summary


def _head_summary(head, raw: np.ndarray) -> dict:
    """``head.predict`` of ``raw`` ``[1, N, k]`` as numpy, in zero-padded chunks of :data:`HEAD_CHUNK` points:
    the head's small jax ops compile once per shape, and blocks come in every size."""
    n = raw.shape[1]
    padded = np.pad(raw, [(0, 0), (0, -n % HEAD_CHUNK), (0, 0)])
    chunks = [head.predict(jax.numpy.asarray(padded[:, i: i + HEAD_CHUNK])) for i in range(0, n, HEAD_CHUNK)]
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks], axis=1)[:, :n] for k in chunks[0]}


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

