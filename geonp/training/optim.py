"""The optimiser: global-norm clipping, then AdamW on a warm-up + cosine-decay schedule."""

from __future__ import annotations

import optax


def make_optimizer(steps: int, learning_rate: float = 5e-4, warmup_steps: int | None = None,
                   weight_decay: float = 1e-4, clip_norm: float = 1.0, final_fraction: float = 0.05):
    """``optax.chain(clip_by_global_norm, adamw(warmup_cosine_decay))``.

    The rate rises linearly from 0 over ``warmup_steps`` (default 5% of the
    run) to ``learning_rate``, then decays along a cosine to
    ``final_fraction * learning_rate`` at ``steps``.
    """
    warmup = max(1, int(0.05 * steps)) if warmup_steps is None else warmup_steps
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=learning_rate, warmup_steps=warmup,
        decay_steps=max(steps, warmup + 1), end_value=final_fraction * learning_rate,
    )
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adamw(schedule, weight_decay=weight_decay))
