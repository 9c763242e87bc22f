"""Every architecture of the TNP-KR / BSA-TNP / CMANP papers on 2-D GP tasks, in one table.

    python -m benchmarks.compare                           # all models, the default budget, writes RESULTS.md
    python -m benchmarks.compare --steps 40 --sizes 1000 --no-write        # a quick look
    python -m benchmarks.compare --models bsa-tnp,dka --sizes 1000,10000,100000

Each model has the same sizes (blocks, width, heads) and trains for the same
number of steps on the same task stream (steps and wall time recorded). Then,
per model: NLL on fresh tasks in distribution ([-2, 2]^2), the same tasks
shifted to [8, 12]^2, and a 2x wider domain at the same density, with the
exact GP oracle alongside; parameters; the time of one training step; and
prediction time and peak memory (XLA's buffer assignment of the compiled
program: arguments + outputs + temporaries) at 1K, 10K and 100K context
points. A program whose buffers exceed the memory available is recorded as
out of memory without being run; one projected (from the 10K time and the
model's scaling) to take longer than ``--max-seconds`` is recorded as not run
(with its memory, which compiling tells without running).

Prints the table, writes it into benchmarks/RESULTS.md between markers, and
prints as its last line a JSON object keyed by model name.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from geonp.estimator.estimator import ARCHITECTURES
from geonp.nn.models import BSATNPConfig, build_model, default_groups
from geonp.scoring.evaluation import evaluate_gp
from geonp.tasks.gp import GPTaskSampler
from geonp.training.loop import TrainConfig, negative_log_likelihood, train

RESULTS = Path(__file__).parent / "RESULTS.md"
START, END = "<!-- compare.py:start -->", "<!-- compare.py:end -->"
LINEAR = {"dka", "cmanp"}  # cost linear in the context; the rest quadratic
SIZES = dict(num_blocks=4, width=64, num_heads=4, head_dim=16, ff_dim=128, num_features=64, num_latents=64)


def model_config(arch: str) -> BSATNPConfig:
    return BSATNPConfig(groups=default_groups(bias=ARCHITECTURES[arch]["bias"]), **SIZES, **ARCHITECTURES[arch])


def parameter_count(params) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree_util.tree_leaves(params)))


def step_seconds(config, params, batch, repeats: int = 5) -> float:
    """Median wall time of one jitted value-and-gradient step (compiled beforehand)."""
    model = build_model(config)
    grad = jax.jit(jax.value_and_grad(lambda p, b: negative_log_likelihood(model, config, p, b)))
    jax.block_until_ready(grad(params, batch))
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        jax.block_until_ready(grad(params, batch))
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def memory_limit_bytes() -> int:
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(0.9 * stats["bytes_limit"])
    return int(0.8 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def scaling_inputs(n_context: int, n_target: int, seed: int = 0):
    """One task with ``n_context`` points at the training density (about 20 per unit^2)."""
    side = math.sqrt(n_context / 20.0)
    rng = np.random.default_rng(seed)
    xc = rng.uniform(0, side, (1, n_context, 2)).astype(np.float32)
    xt = rng.uniform(0, side, (1, n_target, 2)).astype(np.float32)
    yc = (np.sin(xc[..., :1]) * np.cos(xc[..., 1:])).astype(np.float32)
    return (jnp.zeros((1, n_context, 0)), jnp.asarray(yc), {"space": jnp.asarray(xc)}, jnp.ones((1, n_context), bool),
            jnp.zeros((1, n_target, 0)), {"space": jnp.asarray(xt)})


def prediction_cost(config, params, n_context: int, n_target: int, limit: int, max_seconds: float,
                    projected: float | None) -> dict:
    """``{"seconds", "peak_mib"}``, or ``{"status": "oom" | "not run", ...}`` with the reason."""
    inputs = scaling_inputs(n_context, n_target)
    apply = jax.jit(build_model(config).apply)
    try:
        compiled = apply.lower(params, *inputs).compile()  # buffer assignment first: it allocates nothing
        mem = compiled.memory_analysis()
        peak = mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes
        if peak > limit:
            return {"status": "oom", "peak_mib": round(peak / 2**20), "limit_mib": round(limit / 2**20)}
        if projected is not None and projected > max_seconds:
            return {"status": "not run", "projected_seconds": round(projected, 1), "peak_mib": round(peak / 2**20, 1)}
        if projected is None or projected < 30:  # a warm-up call, unless one call is itself long
            jax.block_until_ready(compiled(params, *inputs))
        t = time.perf_counter()
        jax.block_until_ready(compiled(params, *inputs))
        return {"seconds": round(time.perf_counter() - t, 3), "peak_mib": round(peak / 2**20, 1)}
    except (MemoryError, jax.errors.JaxRuntimeError) as err:
        if isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in str(err) or "Out of memory" in str(err):
            return {"status": "oom", "error": str(err).splitlines()[0][:120]}
        raise


def run_model(arch: str, args, limit: int) -> dict:
    config = model_config(arch)
    sampler = GPTaskSampler(num_target=256)
    tc = TrainConfig(steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                     validate_every=args.steps, validation_batches=2, progress=args.progress)
    started = time.perf_counter()
    result = train(config, sampler, tc)
    train_seconds = time.perf_counter() - started
    params = result.params
    batch = sampler.sample(jax.random.PRNGKey(99), args.batch_size)[0]

    eval_sampler = GPTaskSampler()  # 128-512 context, 1,024 noise-free targets
    wide = dataclasses.replace(GPTaskSampler().scaled(2.0), num_target=1024)
    kw = dict(num_batches=args.eval_batches, batch_size=8)
    base = evaluate_gp(config, params, eval_sampler, **kw)
    shifted = evaluate_gp(config, params, eval_sampler, shift=10.0, oracle=False, **kw)
    scaled = evaluate_gp(config, params, wide, seed=4321, **kw)

    row = {
        "params": parameter_count(params), "steps": result.step, "train_seconds": round(train_seconds, 1),
        "step_seconds": round(step_seconds(config, params, batch), 4),
        "nll": base["model"]["nll"], "nll_shifted": shifted["model"]["nll"], "nll_scaled": scaled["model"]["nll"],
        "rmse": base["model"]["rmse"], "coverage_95": base["model"]["coverage_95"],
        "oracle_nll": base["oracle"]["nll"], "oracle_nll_scaled": scaled["oracle"]["nll"], "predict": {},
    }
    previous = None
    for n in args.sizes:
        projected = None
        if previous is not None and "seconds" in previous[1]:
            ratio = n / previous[0]
            projected = previous[1]["seconds"] * (ratio if arch in LINEAR else ratio**2)
        cost = prediction_cost(config, params, n, args.targets, limit, args.max_seconds, projected)
        row["predict"][str(n)] = cost
        previous = (n, cost)
        print(f"  {arch} context {n}: {cost}", file=sys.stderr, flush=True)
    return row


def _cost_cell(cost: dict) -> str:
    if "seconds" in cost:
        return f"{cost['seconds']:.3g} s / {cost['peak_mib']:,.0f} MiB"
    if cost.get("status") == "oom":
        return f"OOM ({cost['peak_mib']:,} MiB needed)" if "peak_mib" in cost else "OOM"
    return f"not run (~{cost['projected_seconds']:,.0f} s) / {cost['peak_mib']:,.0f} MiB"


def table(rows: dict, sizes) -> str:
    head = ("| model | params | steps | train s | s/step | NLL in-dist | NLL shifted [8,12]^2 | NLL 2x domain | "
            "RMSE | cov95 | " + " | ".join(f"predict {n:,} ctx" for n in sizes) + " |")
    lines = [head, "|" + "---|" * (10 + len(sizes))]
    for arch, r in rows.items():
        cells = [arch, f"{r['params']:,}", str(r["steps"]), f"{r['train_seconds']:.0f}", f"{r['step_seconds']:.3f}",
                 f"{r['nll']:.3f}", f"{r['nll_shifted']:.3f}", f"{r['nll_scaled']:.3f}", f"{r['rmse']:.3f}",
                 f"{r['coverage_95']:.3f}"] + [_cost_cell(r["predict"][str(n)]) for n in sizes]
        lines.append("| " + " | ".join(cells) + " |")
    first = next(iter(rows.values()))
    lines.append(f"| exact GP oracle | | | | | {first['oracle_nll']:.3f} | {first['oracle_nll']:.3f} | "
                 f"{first['oracle_nll_scaled']:.3f} | | |" + " |" * len(sizes))
    return "\n".join(lines)


def write_results(text: str):
    body = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{text}\n{END}"
    if START in body:
        body = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, body, flags=re.S)
    else:
        body = body.rstrip() + "\n\n" + block + "\n"
    RESULTS.write_text(body)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(ARCHITECTURES), help="comma-separated names from "
                        f"{list(ARCHITECTURES)}")
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--eval-batches", type=int, default=4)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--targets", type=int, default=1000, help="test points in the prediction timings")
    parser.add_argument("--max-seconds", type=float, default=400.0, help="skip a prediction projected to take longer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="do not touch benchmarks/RESULTS.md")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    models = [m.strip() for m in args.models.split(",")]
    unknown = [m for m in models if m not in ARCHITECTURES]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(ARCHITECTURES)}")

    limit = memory_limit_bytes()
    device = jax.devices()[0]
    machine = (f"{platform.node() or 'host'}: {os.cpu_count()} CPU cores, jax {jax.__version__} on "
               f"{device.platform} ({device.device_kind}), memory limit {limit / 2**30:.1f} GiB")
    rows = {}
    for arch in models:
        print(f"{arch} ...", file=sys.stderr, flush=True)
        rows[arch] = run_model(arch, args, limit)
    text = table(rows, args.sizes)
    command = "python -m benchmarks.compare " + " ".join(sys.argv[1:])
    report = (f"## Architectures side by side on 2-D GP tasks — {datetime.date.today().isoformat()}\n\n"
              f"Command: `{command.strip()}`  \nMachine: {machine}.  \n"
              f"Sizes for every model: {SIZES}; batch {args.batch_size}, peak learning rate "
              f"{args.learning_rate}; 2-D GP tasks with 128-512 context points (RBF, Matern 1/2, 3/2, 5/2, "
              f"periodic). NLL in nats per target over {args.eval_batches * 8} fresh tasks of 1,024 noise-free "
              f"targets; prediction timings for one task with {args.targets:,} test points (compile excluded), "
              f"peak = XLA buffers.\n\n{text}\n")
    print(report)
    if not args.no_write:
        write_results(report)
    print(json.dumps({**rows, "gp-oracle": {"nll": next(iter(rows.values()))["oracle_nll"],
                                            "nll_scaled": next(iter(rows.values()))["oracle_nll_scaled"]}}))


if __name__ == "__main__":
    main()
