"""Score a model against the exact GP oracle on the same GP tasks."""

from __future__ import annotations

import jax
import numpy as np

from geonp.nn.models import BSATNPConfig
from geonp.predict.network import predict
from geonp.scoring import metrics
from geonp.tasks.gp import GPTaskSampler, shift_batch
from geonp.tasks.oracle import gp_posterior


def evaluate_gp(config: BSATNPConfig, params, sampler: GPTaskSampler, seed: int = 1234, num_batches: int = 4,
                batch_size: int = 8, shift: float = 0.0, oracle: bool = True) -> dict:
    """Mean scores over ``num_batches`` batches: ``{"model": {...}, "oracle": {...}}``.

    ``shift`` moves every coordinate of the same tasks (invariance check): the
    oracle, being stationary, is unchanged by it.
    """
    model_scores, oracle_scores = [], []
    for i in range(num_batches):
        batch, hyper = sampler.sample(jax.random.fold_in(jax.random.PRNGKey(seed), i), batch_size)
        if oracle:
            mean, std = gp_posterior(batch, hyper, sampler.kernels)
            oracle_scores.append(metrics.gaussian_scores(mean, std, batch.y_tgt))
        moved = shift_batch(batch, shift) if shift else batch
        pred = predict(config, params, moved)
        model_scores.append(metrics.gaussian_scores(pred["mean"], pred["std"], np.asarray(batch.y_tgt)))

    def average(rows):
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]} if rows else {}

    return {"model": average(model_scores), "oracle": average(oracle_scores)}


def evaluate_fields(config: BSATNPConfig, params, sampler, seed: int = 4321, num_batches: int = 6,
                    batch_size: int = 16) -> dict:
    """Model against the exact GP posterior on field tasks (:class:`geonp.tasks.fields.FieldTaskSampler`).

    Returns ``{"all": {"model": scores, "oracle": scores, "gap_nll": ...}, "<layout>": {...}}``, scores
    pooled over the targets of each layout (gaps, scattered, coarse), and for gap tasks also over the
    hidden targets alone (``"gaps-hidden"``). ``gap_nll`` is model NLL minus oracle NLL (nats per target).
    """
    from geonp.tasks.fields import LAYOUTS

    rows = {"model": [], "oracle": [], "truth": [], "layout": [], "hidden": []}
    for batch, info, mean, std in field_predictions(config, params, sampler, seed, num_batches, batch_size):
        rows["model"].append((mean, std))
        rows["oracle"].append((info.oracle_mean, info.oracle_std))
        rows["truth"].append(np.asarray(batch.y_tgt))
        rows["layout"].append(np.broadcast_to(info.layout[:, None], info.hidden.shape))
        rows["hidden"].append(info.hidden)
    truth = np.concatenate(rows["truth"])
    layout, hidden = np.concatenate(rows["layout"]), np.concatenate(rows["hidden"])
    joined = {k: tuple(np.concatenate([r[j] for r in rows[k]]) for j in range(2)) for k in ("model", "oracle")}
    selections = {"all": np.ones_like(hidden)}
    selections.update({name: layout == i for i, name in enumerate(LAYOUTS)})
    selections["gaps-hidden"] = (layout == LAYOUTS.index("gaps")) & hidden
    out = {}
    for name, where in selections.items():
        if not where.any():
            continue
        mask = where[..., None]
        scores = {k: metrics.gaussian_scores(m, s, truth, mask) for k, (m, s) in joined.items()}
        out[name] = {**scores, "gap_nll": scores["model"]["nll"] - scores["oracle"]["nll"],
                     "targets": int(where.sum())}
    return out


def field_predictions(config: BSATNPConfig, params, sampler, seed: int = 4321, num_batches: int = 6,
                      batch_size: int = 16):
    """Yield ``(batch, info, mean [B, Nt, 1], std [B, Nt, 1])``: the model's predictions on the field tasks that
    :func:`evaluate_fields` scores (same seed, same tasks)."""
    for i in range(num_batches):
        batch, info = sampler.sample(jax.random.fold_in(jax.random.PRNGKey(seed), i), batch_size)
        pred = predict(config, params, batch)
        yield batch, info, np.asarray(pred["mean"]), np.asarray(pred["std"])
