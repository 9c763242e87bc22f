"""BSA-TNP on 2-D GP tasks against the exact GP oracle: in distribution, shifted, scaled.

    python -m benchmarks.gp2d                      # evaluate the bundled gp2d-normal model
    python -m benchmarks.gp2d --train --minutes 80 --steps 2400 --run-dir runs/gp2d
    python -m benchmarks.gp2d --model runs/gp2d/release
    python -m benchmarks.gp2d --train --init-from runs/gp2d/release --steps 1000 --learning-rate 3e-4 \
        --run-dir runs/gp2d-more             # continue a model with a fresh, shorter schedule

Training checkpoints into --run-dir and resumes from it when rerun. Prints a
table, then as its last line a JSON object with nll_model, nll_oracle,
nll_shifted, nll_scaled (and the oracle on the scaled domain).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from geonp.estimator.releases import load_model, pretrained, save_model
from geonp.nn.models import BSATNPConfig
from geonp.scoring.evaluation import evaluate_gp
from geonp.tasks.gp import GPTaskSampler
from geonp.training.loop import TrainConfig, train


def train_model(args):
    config, params, earlier_steps = BSATNPConfig(), None, 0
    if args.init_from:  # continue from a saved model with a fresh schedule (fine-tuning)
        config, params, earlier = load_model(args.init_from)
        earlier_steps = int(earlier.get("steps", 0))
    sampler = GPTaskSampler(num_target=args.train_targets)
    tc = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate,
                     seed=args.seed, checkpoint_dir=str(Path(args.run_dir) / "state"),
                     time_budget=args.minutes * 60, validate_every=100)
    result = train(config, sampler, tc, params=params)
    history = result.history
    meta = {"steps": earlier_steps + result.step, "steps_this_run": result.step, "init_from_steps": earlier_steps,
            "planned_steps": args.steps, "batch_size": args.batch_size,
            "train_seconds_this_run": round(result.seconds, 1), "train_targets": args.train_targets,
            "learning_rate": args.learning_rate, "task": "2-D GP (rbf, matern12/32/52, periodic)",
            "final_val_nll": next((h["val_nll"] for h in reversed(history) if "val_nll" in h), None)}
    release = Path(args.run_dir) / "release"
    save_model(release, config, result.params, meta)
    (Path(args.run_dir) / "history.json").write_text(json.dumps(history))
    return config, result.params, meta


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="directory of a saved model (default: the bundled gp2d-normal)")
    parser.add_argument("--train", action="store_true", help="train (or resume) instead of loading")
    parser.add_argument("--init-from", help="with --train: start from this saved model's parameters")
    parser.add_argument("--run-dir", default="runs/gp2d")
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--minutes", type=float, default=80.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--train-targets", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-batches", type=int, default=8)
    parser.add_argument("--eval-batch-size", type=int, default=8)
    args = parser.parse_args()

    if args.train:
        config, params, meta = train_model(args)
    elif args.model:
        config, params, meta = load_model(args.model)
    else:
        config, params, meta = pretrained("gp2d-normal")

    sampler = GPTaskSampler()  # context 128-512, 1024 noise-free targets on [-2, 2]^2
    scaled = GPTaskSampler().scaled(2.0)  # [-4, 4]^2 at the same density: 512-2048 context
    scaled = dataclasses.replace(scaled, num_target=1024)
    started = time.perf_counter()
    kw = dict(num_batches=args.eval_batches, batch_size=args.eval_batch_size)
    base = evaluate_gp(config, params, sampler, **kw)
    shifted = evaluate_gp(config, params, sampler, shift=10.0, oracle=False, **kw)  # [8, 12]^2
    wide = evaluate_gp(config, params, scaled, seed=4321, num_batches=max(1, args.eval_batches // 2),
                       batch_size=args.eval_batch_size)
    seconds = time.perf_counter() - started

    print(f"model trained {meta.get('steps')} steps (batch {meta.get('batch_size')}), "
          f"{meta.get('train_seconds_this_run')} s in its last run")
    print(f"{'set':<28}{'model NLL':>12}{'oracle NLL':>12}{'model RMSE':>12}{'oracle RMSE':>13}{'cov95':>8}")
    rows = [("in distribution [-2,2]^2", base, base), ("shifted [8,12]^2", shifted, base),
            ("2x domain [-4,4]^2", wide, wide)]
    for name, res, ref in rows:
        m, o = res["model"], ref["oracle"]
        print(f"{name:<28}{m['nll']:>12.4f}{o['nll']:>12.4f}{m['rmse']:>12.4f}{o['rmse']:>13.4f}"
              f"{m['coverage_95']:>8.3f}")
    print(f"evaluation took {seconds:.1f} s")
    print(json.dumps({
        "nll_model": base["model"]["nll"], "nll_oracle": base["oracle"]["nll"],
        "nll_shifted": shifted["model"]["nll"], "nll_scaled": wide["model"]["nll"],
        "nll_scaled_oracle": wide["oracle"]["nll"], "crps_model": base["model"]["crps"],
        "crps_oracle": base["oracle"]["crps"], "coverage_95": base["model"]["coverage_95"],
        "train_steps": meta.get("steps"), "train_batch_size": meta.get("batch_size"),
    }))


if __name__ == "__main__":
    main()
