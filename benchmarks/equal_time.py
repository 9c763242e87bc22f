"""Equal wall-clock, better model? Today's per-head bias and the new default, trained for the same minutes.

    python -m benchmarks.equal_time --minutes 10

Both train the reference BSA-TNP size on the same GP task stream (same seed:
batch t is the same for both; the faster one simply sees more of them), each
under its own step and sampling (``before``: per-head RBF bias, tasks sampled
in line with the old covariance code; ``after``: the default config and loop;
``reuse4``: the same with each drawn batch serving 4 steps, ``task_reuse=4``),
with a schedule planned for the steps the budget allows (``--steps-*``, from
``benchmarks/speed.py``'s seconds per step) and stopped by the time budget.
Then both are scored on the same 32 fresh tasks (1,024 noise-free targets
each) next to the exact GP oracle. Last line: JSON.
"""

from __future__ import annotations

import argparse
import json

from benchmarks.speed import AFTER, BEFORE, BeforeGPTaskSampler
from geonp.scoring.evaluation import evaluate_gp
from geonp.tasks.gp import GPTaskSampler
from geonp.training.loop import TrainConfig, train


def run(config, sampler, minutes: float, steps: int, prefetch: int | None, task_reuse: int | None = None) -> dict:
    tc = TrainConfig(steps=steps, batch_size=16, learning_rate=1e-3, time_budget=minutes * 60, validate_every=100,
                     progress=False, prefetch=prefetch, task_reuse=task_reuse)
    result = train(config, sampler, tc)
    scores = evaluate_gp(config, result.params, GPTaskSampler(), num_batches=4, batch_size=8)
    return {"steps": result.step, "planned_steps": steps, "seconds": round(result.seconds, 1),
            "nll": scores["model"]["nll"], "rmse": scores["model"]["rmse"],
            "coverage_95": scores["model"]["coverage_95"], "oracle_nll": scores["oracle"]["nll"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=20.0, help="training minutes for each model")
    parser.add_argument("--seconds-per-step-before", type=float, default=1.95)
    parser.add_argument("--seconds-per-step-after", type=float, default=0.93)
    parser.add_argument("--seconds-per-step-reuse", type=float, default=0.77)
    parser.add_argument("--arms", default="before,after", help="comma-separated: before, after, reuse4 "
                        "(the new default with each drawn batch serving 4 steps, geonp.training.reuse)")
    args = parser.parse_args()
    budget = args.minutes * 60
    arms = {
        "before": lambda: run(BEFORE, BeforeGPTaskSampler(num_target=256), args.minutes,
                              int(budget / args.seconds_per_step_before), prefetch=0, task_reuse=1),
        "after": lambda: run(AFTER, GPTaskSampler(num_target=256), args.minutes,
                             int(budget / args.seconds_per_step_after), prefetch=None),
        "reuse4": lambda: run(AFTER, GPTaskSampler(num_target=256), args.minutes,
                              int(budget / args.seconds_per_step_reuse), prefetch=None, task_reuse=4),
    }
    results = {name: arms[name]() for name in args.arms.split(",")}
    for name, r in results.items():
        print(f"{name:>7}: {r['steps']} steps in {r['seconds']:.0f} s, NLL {r['nll']:.4f} (oracle "
              f"{r['oracle_nll']:.4f}), RMSE {r['rmse']:.4f}, 95% coverage {r['coverage_95']:.3f}")
    print(json.dumps({"minutes": args.minutes, **results}))


if __name__ == "__main__":
    main()
