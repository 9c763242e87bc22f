"""Joint (spatially coherent) predictive draws by autoregressive sampling, coarse to fine.

A neural process predicts each target's marginal given the context; its draws at
two neighbouring cells are independent, so a region's mean from them is far too
certain. Joint draws come from the chain rule

    p(y_1, ..., y_N | C) = prod_k p(Y_k | C, Y_1, ..., Y_{k-1})

taken in rounds ``Y_1, Y_2, ...``: the targets of a round are drawn from the
model's marginals given the observations and every value drawn so far (each draw
continues on its own), then join the context of the next round. Within a round
the draws are independent, so a round must hold targets that are far apart
compared with the context around them: rounds go coarse to fine
(:func:`coarse_to_fine_rounds`), a sparse lattice over the whole domain first,
each later round roughly doubling the density, so a target's nearest neighbours
have been drawn before it (in the last round, at most 1.4 cells away on a grid).

Cost: every round predicts its targets once per draw, and together the rounds
cover every target once, so ``S`` joint draws cost about ``S`` marginal
predictions of the target set, plus one model call per round and neighbourhood.
Context is chosen by count as in :func:`geonp.predict.context.neighbourhoods`: each cell
conditions on its nearest ``count`` points among the observations and the values
drawn so far, so no call sees more context than the model was trained with.

Count models draw the latent prevalence (rate) ``p``; it joins the context as a
pseudo-survey ``(p * n, n)`` with ``n`` the largest number of trials (exposure)
among the observations: a heavily weighted site, as the model saw in training.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from tqdm.auto import tqdm

from geonp.errors import ConfigError
from geonp.features.scaling import task_covariates
from geonp.predict.network import predict_raw
from geonp.tasks.batch import Batch

FIRST_ROUND = 1  # targets in the first (coarsest) round
GROWTH = 1.414  # each round about this many times denser than the last
DRAWS_PER_CALL = 8  # draws of one neighbourhood per model call (8: 10% faster than 16 or 64 on 2 CPU cores)
JOINT_HEADS = ("normal", "binomial", "poisson")


def coarse_to_fine_rounds(points: np.ndarray, first: int = FIRST_ROUND, growth: float = GROWTH) -> list[np.ndarray]:
    """Split ``points`` ``[N, E]`` into rounds of indices, coarse to fine (each round about twice the last).

    Round ``k`` cuts the bounding box into cubes of side ``h_k = h_0 / sqrt(2)^k`` (``h_0``: about
    ``first`` cubes over the points' extent) and takes, in every cube that holds no point of an
    earlier round, the point nearest the cube's centre: a maximin-like ordering for grids and
    scattered points alike. Every point lands in exactly one round.
    """
    points = np.asarray(points, np.float64)
    n = points.shape[0]
    if n <= first:
        return [np.arange(n)]
    low = points.min(axis=0)
    extent = float((points.max(axis=0) - low).max())
    if not extent > 0:  # every point at one place: one round
        return [np.arange(n)]
    side = extent * (1 + 1e-9) / math.sqrt(first)  # the last point inside the first cubes
    level = np.full(n, -1)
    k = 0
    while (level < 0).any():
        if side < 1e-9 * extent:  # duplicated coordinates: whatever is left goes last
            level[level < 0] = k
            break
        cells = np.floor((points - low) / side).astype(np.int64)  # [N, E]
        _, cell = np.unique(cells, axis=0, return_inverse=True)
        cell = cell.reshape(-1)
        occupied = np.zeros(cell.max() + 1, bool)
        occupied[cell[level >= 0]] = True
        free = np.flatnonzero((level < 0) & ~occupied[cell])
        if free.size:
            off_centre = (((points[free] - low) / side - cells[free] - 0.5) ** 2).sum(-1)
            order = free[np.lexsort((off_centre, cell[free]))]  # by cell, nearest the centre first
            first_of_cell = np.r_[True, cell[order][1:] != cell[order][:-1]]
            level[order[first_of_cell]] = k
            k += 1
        side /= math.sqrt(growth)
    return [np.flatnonzero(level == i) for i in range(k + 1) if (level == i).any()]


def joint_draws(conditional, context: dict, values, targets: dict, num_samples: int, key, count: int = 512,
                pseudo_weight: float | None = None, progress: bool = False, far: int = 0) -> np.ndarray:
    """``[S, N, Dy]`` draws at ``N`` targets, coherent across them (the units of ``values``).

    Args:
        conditional: ``(context, values [B, nc, Dy], targets, key) -> [B, nt, Dy]``: independent draws at
            the targets given each of B context sets (same points, B sets of values); the network's is
            :func:`network_conditional`, an exact GP's serves as the reference in the tests.
        context, targets: point features ``{"embedding": [n, E], "space", "time" (or None), "covariates"}``
            (embedding in km / CRS units, for the rounds and neighbourhoods; the rest as the model takes them).
        values: ``[n, Dy]`` the observed values at the context points.
        num_samples: S, the number of joint draws.
        key: a ``jax.random.PRNGKey``.
        count: context points per neighbourhood (the model's training context size).
        far: of those, how many are far observations (a model trained so; geonp.features.far_context).
        pseudo_weight: count models: a drawn prevalence or rate ``p`` joins the context as ``(p * w, w)``.
    """
    from geonp.predict.context import ContextSet, neighbourhoods

    points = {k: None if v is None else np.asarray(v) for k, v in context.items()}
    values = np.broadcast_to(np.asarray(values, np.float64), (num_samples,) + np.shape(values))  # [S, n, Dy]
    n_target = len(targets["embedding"])
    draws = None
    bar = tqdm(total=n_target, desc=f"{num_samples} joint draws", unit="point", disable=not progress,
               mininterval=1.0)
    calls = 0
    for round_index in coarse_to_fine_rounds(targets["embedding"]):
        positions = ContextSet(embedding=[points["embedding"]], space=[None], time=[None], hours=[None],
                               covariates=[None], values=[values[0]])
        n_ctx = positions.size(0)
        groups = (neighbourhoods(targets["embedding"][round_index], positions, 0, count, far) if n_ctx > count
                  else [(np.arange(round_index.size), np.arange(n_ctx))])
        for t_local, ci in groups:
            ti = round_index[t_local]
            ctx = {k: None if v is None else v[ci] for k, v in points.items()}
            tgt = {k: None if v is None else np.asarray(v)[ti] for k, v in targets.items()}
            for start in range(0, num_samples, DRAWS_PER_CALL):
                rows = np.arange(start, min(start + DRAWS_PER_CALL, num_samples))
                draw = np.asarray(conditional(ctx, values[rows][:, ci], tgt, jax.random.fold_in(key, calls)))
                calls += 1
                if draws is None:
                    draws = np.full((num_samples, n_target, draw.shape[-1]), np.nan)
                draws[rows[:, None], ti[None, :]] = draw
        new = draws[:, round_index]  # [S, r, Dy]
        if pseudo_weight is not None:  # a latent prevalence / rate joins as a heavily weighted pseudo-survey
            new = np.concatenate([new * pseudo_weight, np.full_like(new, pseudo_weight)], axis=-1)
        values = np.concatenate([values, new], axis=1)
        for name, array in targets.items():
            if array is not None:
                points[name] = np.concatenate([points[name], np.asarray(array)[round_index]], axis=0)
        bar.update(round_index.size)
    bar.close()
    return draws


def network_conditional(predictor):
    """The network's conditional for :func:`joint_draws`: a :class:`geonp.predict.tiles.TilePredictor`'s model and
    scaling; values in the context's scaled units (:meth:`FeatureScaling.scale_values`)."""
    head = predictor.config.likelihood
    if head.name not in JOINT_HEADS:
        raise ConfigError(f"joint samples need a normal, binomial or poisson model; this one is {head.name}. "
                          "Use joint=False for independent draws per point.")

    def conditional(context, values, targets, key):
        batch, offset, scale = _draw_batch(predictor, context, values, targets)
        # drawn on the padded (bucketed) shape, so rounds of every size share a few compiled draws
        raw = predict_raw(predictor.config, predictor.params, batch, trim=False)  # [DRAWS_PER_CALL, bucket, outputs]
        draw = np.asarray(head.sample(raw, key, 1)[0], np.float64)[: len(values), : len(targets["space"])]
        return draw * scale[:, None, :] + offset[:, None, :]  # [B, nt, Dy] each draw's own units

    return conditional


def _draw_batch(predictor, context, values, targets):
    """One :class:`Batch` of B draws for one neighbourhood, padded to :data:`DRAWS_PER_CALL` tasks (a single
    compiled shape), and each draw's value standardisation ``offset, scale`` ``[B, Dy]``."""
    s = predictor.scaling
    size = max(DRAWS_PER_CALL, len(values))
    origin = 0.0 if s.kind == "geographic" else targets["space"].mean(axis=0)
    standardisations = [s.task_standardisation(v) for v in values]
    offset = np.stack([o for o, _ in standardisations])  # [B, Dy]
    scale = np.stack([v for _, v in standardisations])
    tile = lambda a: np.broadcast_to(a, (size,) + a.shape)  # noqa: E731
    y = np.zeros((size,) + values.shape[1:])
    y[: len(values)] = (values - offset[:, None, :]) / scale[:, None, :]
    meta_ctx = {"space": tile(context["space"] - origin)}
    meta_tgt = {"space": tile(targets["space"] - origin)}
    if targets.get("time") is not None:
        meta_ctx["time"], meta_tgt["time"] = tile(context["time"]), tile(targets["time"])
    n_ctx, n_tgt = len(context["space"]), len(targets["space"])
    x_ctx, x_tgt = task_covariates(context["covariates"], targets["covariates"], predictor.config.covariate_slots)
    batch = Batch(x_ctx=tile(x_ctx), y_ctx=y, meta_ctx=meta_ctx,
                  mask_ctx=np.ones((size, n_ctx), bool), x_tgt=tile(x_tgt),
                  y_tgt=np.zeros((size, n_tgt, predictor.config.y_columns)), meta_tgt=meta_tgt,
                  mask_tgt=np.ones((size, n_tgt), bool))
    return batch, offset, scale
