"""The tile predictor: one dask block of targets, predicted from its neighbourhoods' context.

For each block (one task's tile of targets) :class:`TilePredictor` picks the context by count
(:func:`geonp.predict.context.neighbourhoods`) or by halo, calls the network on padded batches of
neighbourhoods (:mod:`geonp.predict.network`), kriges the same neighbourhoods where the blend needs it,
applies the post-processing stages that are on (:mod:`geonp.predict.stages`), draws samples (marginal,
or joint: :mod:`geonp.predict.joint`) and writes the channels of a :class:`~geonp.predict.channels.ChannelLayout`.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from geonp.calibrate.kriging import LocalKriging
from geonp.calibrate.spread import SpreadCalibration
from geonp.features.scaling import FeatureScaling, task_covariates
from geonp.features.support import SUPPORT
from geonp.nn.models import BSATNPConfig
from geonp.predict import stages as stages_lib
from geonp.predict.channels import ChannelLayout
from geonp.predict.context import MIN_TARGETS, ContextSet, neighbourhoods
from geonp.predict.network import predict_raw
from geonp.tasks.batch import Batch


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
    kriging_candidates: tuple[LocalKriging, ...] = ()  # with distance_channel: other kernels' means beside it

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
                             distance=self.distance_channel,
                             kriging=(1 + len(self.kriging_candidates)) * (self.kriging_channel and not categorical))

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
        explained = np.zeros(x.size)
        candidates = self.kriging_candidates if self.kriging_channel and self.distance_channel else ()
        by_candidate = [(np.full(x.size, np.nan), np.zeros(x.size)) for _ in candidates]
        for start in range(0, len(groups), GROUPS_PER_CALL):
            chunk = groups[start:start + GROUPS_PER_CALL]
            batch, standardisations = self._group_batch(task, chunk, tgt_space, tgt_time, tgt_cov)
            out = predict_raw(self.config, self.params, batch)  # [G, Nt, outputs] numpy
            for i, (t_idx, c_idx) in enumerate(chunk):
                raw[t_idx] = out[i, : t_idx.size]
                offset[t_idx], scale[t_idx] = standardisations[i]
                if kriged is not None:  # the same neighbourhood, in the same standardised units
                    for kernel, (mean_into, explained_into) in zip((self.kriging, *candidates),
                                                                   ((kriged, explained), *by_candidate), strict=True):
                        mean_into[t_idx], explained_into[t_idx] = kernel.predict(
                            self.context.embedding[task][c_idx], batch.y_ctx[i, : c_idx.size, 0], emb[t_idx])
        raw = raw[None]  # [1, N, outputs]
        known = steps or self.distance_channel  # distance to data and the context's std, where a stage needs them
        at = stages_lib.Targets(nearest=self.context.distance_to_nearest(task, emb) if known else None,
                                unit=s.unscale_std(scale) if known else None, kriged=kriged,
                                explained=explained if kriged is not None else None, candidates=tuple(by_candidate))
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
JOINT_CONTEXT = 512  # context per neighbourhood for joint draws when prediction does not go by count


HEAD_CHUNK = 4096  # points per call of the likelihood head's summary


def _head_summary(head, raw: np.ndarray) -> dict:
    """``head.predict`` of ``raw`` ``[1, N, k]`` as numpy, in zero-padded chunks of :data:`HEAD_CHUNK` points:
    the head's small jax ops compile once per shape, and blocks come in every size."""
    n = raw.shape[1]
    padded = np.pad(raw, [(0, 0), (0, -n % HEAD_CHUNK), (0, 0)])
    chunks = [head.predict(jax.numpy.asarray(padded[:, i: i + HEAD_CHUNK])) for i in range(0, n, HEAD_CHUNK)]
    return {k: np.concatenate([np.asarray(c[k]) for c in chunks], axis=1)[:, :n] for k in chunks[0]}
