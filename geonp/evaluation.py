"""Score a model against the exact GP oracle on the same GP tasks."""

from __future__ import annotations

import jax
import numpy as np

from geonp import metrics
from geonp.inference import predict
from geonp.nn.models import BSATNPConfig
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
