"""Training and attention speed: the new default against today's per-head bias, in one run.

    python -m benchmarks.speed            # 30 timed steps per model
    python -m benchmarks.speed --steps 10 # quicker

Training (reference BSA-TNP: 6 blocks, width 64, 4 heads of 32, feed-forward
256; batch 16 GP tasks of 512 context and 256 targets) runs through
``geonp.training.loop.train`` itself, so the figure is what a user's training
run gets per step, task sampling included:

* ``before``: the per-head RBF bias (5 basis functions per head,
  ``bias="rbf-per-head"``) with tasks sampled in line and every task of the
  batch in one attention tile, as the loop did before;
* ``after``: the default config (quadratic bias folded into q k^T) with the
  default loop: tasks sampled in line on a small CPU and ahead in a sampler
  process elsewhere (``auto_prefetch``); also timed prefetched, and with each
  drawn batch serving 4 steps through symmetries of the prior
  (``TrainConfig(task_reuse=4)``, opt-in: ``geonp.training.reuse``), and with
  the whole batch in each attention tile (``after_whole_batch_tiles_s``: what
  walking the tasks in cache-sized groups, ``geonp.nn.attention.TILE_LOGITS_BUDGET``, buys).

Seconds per step are taken between the loop's own records at step 10 and at
the last record before the end (compilation and the final validation excluded).

Attention: one task, one head of 64 channels, Nq = Nk = 4096, the default
bias, forward pass, tiles of 512 (as ``benchmarks/attention.py``); GFLOP/s
count only the QK^T and PV matmuls of the 64 channels, against a jitted
4096 x 4096 float32 matmul in the same run.

Last line: JSON with ``train_step_s``, ``train_step_s_before``,
``train_speedup``, ``attention_gflops``, ``matmul_gflops``, ``attention_matmul_ratio``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time

import jax
import jax.numpy as jnp

from geonp.nn import attention as attention_lib
from geonp.nn.bias import CoordinateGroup
from geonp.nn.models import BSATNPConfig
from geonp.tasks.gp import GPTaskSampler
from geonp.training import loop
from geonp.training.loop import TrainConfig, auto_prefetch, train
from geonp.training.reuse import resolve_reuse

BATCH, CONTEXT, TARGETS = 16, 512, 256
N_ATTENTION, HEAD_DIM, BLOCK = 4096, 64, 512

BEFORE = BSATNPConfig(bias="rbf-per-head", groups=(CoordinateGroup("space", 2, num_basis=5),))
AFTER = BSATNPConfig()


@dataclasses.dataclass(frozen=True)
class BeforeGPTaskSampler(GPTaskSampler):
    """The task sampler as it was: all five kernels evaluated for every task, then one selected."""

    def sample(self, key, batch_size):
        from unittest import mock

        from geonp.tasks import gp, kernels

        def every_kernel(kernel_index, a, b, lengthscale, period, names):
            options = [kernels.covariance(name, a, b, lengthscale, period, xp=jnp) for name in names]
            return jnp.select([kernel_index == i for i in range(len(names))], options)

        # jit traces once per sampler (a static argument): this class gets its own trace, with the old covariance
        with mock.patch.object(gp, "_unit_covariance", every_kernel):
            return super().sample(key, batch_size)


def seconds_per_step(config: BSATNPConfig, steps: int, prefetch: int, sampler_class=GPTaskSampler,
                     task_reuse: int | None = None, whole_batch_tiles: bool = False) -> float:
    """Seconds per step of ``train``; ``whole_batch_tiles``: every task in one attention tile, as before."""
    from unittest import mock

    sampler = sampler_class(num_context=(CONTEXT, CONTEXT), num_target=TARGETS)
    tc = TrainConfig(steps=steps + 20, batch_size=BATCH, validate_every=10**9, validation_batches=1,
                     checkpoint_dir=None, progress=False, prefetch=prefetch, task_reuse=task_reuse)
    budget = 1 << 62 if whole_batch_tiles else attention_lib.TILE_LOGITS_BUDGET
    loop._compiled_steps.cache_clear()  # the step is traced anew under this run's tiles
    with mock.patch.object(attention_lib, "TILE_LOGITS_BUDGET", budget):
        history = train(config, sampler, tc).history
    loop._compiled_steps.cache_clear()
    at = {r["step"]: r["seconds"] for r in history}
    return (at[steps + 10] - at[10]) / steps


def _best_of(fn, reps: int = 3) -> float:
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - started)
    return best


def matmul_gflops(size: int = 4096) -> float:
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size))
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    return 2 * size**3 / _best_of(lambda: f(a)) / 1e9


def attention_gflops(n: int = N_ATTENTION) -> float:
    """Forward biased attention with the default (folded quadratic) bias; matmul FLOPs of 64 channels only."""
    from geonp.nn import bias as bias_lib
    from geonp.nn import quadratic_bias
    from geonp.nn.attention import scan_biased_attention

    groups = AFTER.groups
    ks = jax.random.split(jax.random.PRNGKey(0), 4)
    q, k, v = (jax.random.normal(kk, (1, n, 1, HEAD_DIM)) for kk in ks[:3])
    meta = bias_lib.prepare_metadata(groups, {"space": jax.random.uniform(ks[3], (1, n, 2), minval=-2, maxval=2)})
    params = quadratic_bias.init_quadratic_bias(None, groups, 1)

    @jax.jit
    def forward(q, k, v):
        qf, kf = quadratic_bias.fold(q, k, params, meta, meta, None, groups)
        return scan_biased_attention(qf, kf, v, bias_lib.no_bias, {}, meta, meta, None, BLOCK, BLOCK)

    jax.block_until_ready(forward(q, k, v))
    return 4.0 * n * n * HEAD_DIM / _best_of(lambda: forward(q, k, v)) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per model")
    args = parser.parse_args()

    matmul = matmul_gflops()
    attention = attention_gflops()
    before = seconds_per_step(BEFORE, args.steps, prefetch=0, sampler_class=BeforeGPTaskSampler,
                              whole_batch_tiles=True)
    inline = seconds_per_step(AFTER, args.steps, prefetch=0)
    whole_batch = seconds_per_step(AFTER, args.steps, prefetch=0, whole_batch_tiles=True)
    reused = seconds_per_step(AFTER, args.steps, prefetch=0, task_reuse=4)
    loop.PREFETCH_MIN_STEPS = 0  # the loop samples short runs in line; time the sampler process here all the same
    prefetched = seconds_per_step(AFTER, args.steps, prefetch=2)
    after = prefetched if auto_prefetch() else inline
    result = {
        "train_step_s": round(after, 4), "train_step_s_before": round(before, 4),
        "train_speedup": round(before / after, 3),
        "attention_gflops": round(attention, 1), "matmul_gflops": round(matmul, 1),
        "attention_matmul_ratio": round(attention / matmul, 3),
        "shapes": {"batch": BATCH, "context": CONTEXT, "targets": TARGETS, "attention_n": N_ATTENTION},
        "before": {"bias": BEFORE.bias, "sampling": "in line"},
        "after": {"bias": AFTER.bias, "sampling": "prefetched" if auto_prefetch() else "in line",
                  "task_reuse": resolve_reuse(TrainConfig().task_reuse, GPTaskSampler())},
        "after_inline_s": round(inline, 4), "after_prefetched_s": round(prefetched, 4),
        "after_whole_batch_tiles_s": round(whole_batch, 4),
        "after_reuse4_s": round(reused, 4), "train_speedup_reuse4": round(before / reused, 3),
        "machine": f"{platform.machine()}, {jax.device_count()} x {jax.devices()[0].platform}, jax {jax.__version__}",
        "config_after": {k: v for k, v in dataclasses.asdict(AFTER).items() if k in ("num_blocks", "width",
                                                                                    "num_heads", "head_dim")},
    }
    print(f"train step: {after:.3f} s (before {before:.3f} s, {before / after:.2f}x); attention "
          f"{attention:.0f} GFLOP/s vs matmul {matmul:.0f} ({attention / matmul:.2f})")
    print(json.dumps(result))


if __name__ == "__main__":
    jnp.zeros(())  # initialise the backend before timing
    main()
