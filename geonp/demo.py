"""The README's main job: BSA-TNP on 2-D Gaussian-process tasks, scored against the exact GP.

1. The bundled pretrained model (``gp2d-normal``) predicts on fresh GP tasks,
   on the same tasks shifted to [8, 12]^2 (translation invariance), and is
   scored next to the exact GP posterior.
2. A small BSA-TNP is trained from scratch for a short while on the same kind
   of tasks and scored the same way.

Nothing is downloaded: tasks are generated on the spot.
"""

from __future__ import annotations

import json
import time

from geonp.evaluation import evaluate_gp
from geonp.model_store import available, pretrained
from geonp.nn.models import BSATNPConfig
from geonp.tasks.gp import GPTaskSampler
from geonp.training.loop import TrainConfig, train

SMALL = BSATNPConfig(num_blocks=3, width=48, num_heads=4, head_dim=16, ff_dim=128)


def _row(name: str, scores: dict) -> str:
    return (f"{name:<34}{scores['nll']:>9.3f}{scores['rmse']:>9.3f}{scores['crps']:>9.3f}"
            f"{scores['coverage_95']:>9.3f}")


def run(train_seconds: float = 60.0, seed: int = 0, eval_batches: int = 2, progress: bool = True) -> dict:
    sampler = GPTaskSampler()  # 128-512 noisy context points, 1024 noise-free targets on [-2, 2]^2
    kw = dict(seed=seed + 100, num_batches=eval_batches, batch_size=8)
    report = {}
    print("2-D GP tasks (rbf, matern 1/2, 3/2, 5/2, periodic; 128-512 context points, 1024 targets)")
    print(f"{'predictor':<34}{'NLL':>9}{'RMSE':>9}{'CRPS':>9}{'cov95':>9}")

    if "gp2d-normal" in available():
        config, params, meta = pretrained("gp2d-normal")
        base = evaluate_gp(config, params, sampler, **kw)
        moved = evaluate_gp(config, params, sampler, shift=10.0, oracle=False, **kw)
        print(_row("exact GP (oracle)", base["oracle"]))
        print(_row(f"bundled gp2d-normal ({meta.get('steps', '?')} steps)", base["model"]))
        print(_row("  same tasks shifted to [8,12]^2", moved["model"]))
        report.update(oracle=base["oracle"], pretrained=base["model"], pretrained_shifted=moved["model"])
    else:
        print("(no bundled model in this installation: skipping the pretrained part)")

    if train_seconds > 0:
        started = time.perf_counter()
        # smaller tasks than the evaluation ones keep each step short on a laptop CPU
        train_sampler = GPTaskSampler(num_context=(64, 256), num_target=128)
        tc = TrainConfig(steps=10_000, batch_size=8, learning_rate=1e-3, warmup_steps=50, seed=seed,
                         time_budget=train_seconds, validate_every=10_000, validation_batches=1, progress=progress)
        result = train(SMALL, train_sampler, tc)
        scratch = evaluate_gp(SMALL, result.params, sampler, **kw)
        label = f"small model, {result.step} steps ({time.perf_counter() - started:.0f} s)"
        if "oracle" not in report:
            print(_row("exact GP (oracle)", scratch["oracle"]))
            report["oracle"] = scratch["oracle"]
        print(_row(label, scratch["model"]))
        report["trained_from_scratch"] = {**scratch["model"], "steps": result.step}
    print(json.dumps({k: {m: round(v, 4) for m, v in s.items()} for k, s in report.items()}))
    return report
