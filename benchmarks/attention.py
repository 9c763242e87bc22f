"""Biased scan attention against dense attention: error, peak memory, time.

    python -m benchmarks.attention --quick     # n in {1024, 4096, 16384}
    python -m benchmarks.attention             # also n = 65536 (scan only) and GFLOP/s

Every (implementation, n) is run in its own process, so each peak-memory
figure belongs to that run alone: after a warm-up on a tiny problem and the
compilation, the kernel's peak-RSS counter is reset (/proc/self/clear_refs),
and the figure is the peak resident set during the timed calls minus the
resident set just before them (inputs already allocated). On a GPU it is
device memory instead (peak bytes in use minus bytes in use before). XLA's
own count of temporary buffers is reported beside it.

Setup: one task, one head of 64 channels, self-attention (Nq = Nk = n) with
a 2-D RBF distance bias of 5 basis functions, forward pass, float32, tiles of 512.
Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

HEADS, HEAD_DIM, BLOCK = 1, 64, 512


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB -> MB
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _inputs(n: int, seed: int = 0):
    from geonp.testing import random_attention_inputs

    return random_attention_inputs(seed, 1, n, n, H=HEADS, Dh=HEAD_DIM, groups=_groups())


def _groups():
    from geonp.nn.bias import CoordinateGroup

    return (CoordinateGroup("space", 2, "euclidean", num_basis=5),)


def worker(impl: str, n: int, reps: int) -> dict:
    """Run one implementation at one size in this process; report peak memory and best time."""
    import jax

    from geonp.nn.attention import dense_biased_attention, scan_biased_attention

    def build(n):
        q, k, v, qm, km, params, bias_fn = _inputs(n)
        if impl == "scan":
            fn = lambda q, k, v: scan_biased_attention(q, k, v, bias_fn, params, qm, km, None, BLOCK, BLOCK)
        else:
            fn = lambda q, k, v: dense_biased_attention(q, k, v, bias_fn, params, qm, km, None)
        return jax.jit(fn).lower(q, k, v).compile(), (q, k, v)

    # warm up the runtime (thread pools, allocator) on a tiny problem, so that the
    # figure below is the attention's own working memory, not one-off start-up costs
    tiny, tiny_args = build(64)
    tiny(*tiny_args).block_until_ready()
    compiled, (q, k, v) = build(n)
    jax.block_until_ready((q, k, v))
    device = jax.devices()[0]
    on_accelerator = device.platform != "cpu" and device.memory_stats() is not None
    reset = _reset_peak_rss()
    before = device.memory_stats()["bytes_in_use"] / 2**20 if on_accelerator else _status_mb("VmRSS")
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        compiled(q, k, v).block_until_ready()
        times.append(time.perf_counter() - started)
    if on_accelerator:  # device memory, not host RSS
        peak = device.memory_stats()["peak_bytes_in_use"] / 2**20
    else:
        peak = _status_mb("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        temp_mb = compiled.memory_analysis().temp_size_in_bytes / 2**20
    except Exception:  # memory_analysis is optional on some backends
        temp_mb = None
    return {"impl": impl, "n": n, "peak_mb": round(peak - before, 1), "xla_temp_mb": temp_mb,
            "seconds": min(times), "device": device.platform}


def run_isolated(impl: str, n: int, reps: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--n", str(n), "--reps", str(reps)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        return {"impl": impl, "n": n, "error": f"exit {done.returncode}: {tail[0]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def accuracy(n: int = 1000) -> dict:
    """Max |scan - dense| for values and for all gradients, ragged mask, n not a tile multiple."""
    import jax
    import jax.numpy as jnp

    from geonp.nn.attention import dense_biased_attention, scan_biased_attention

    q, k, v, qm, km, params, bias_fn = _inputs(n, seed=1)
    mask = jax.random.uniform(jax.random.PRNGKey(2), (1, n)) > 0.25

    def grads(impl, **kw):
        def loss(q, k, v, p):
            out = impl(q, k, v, bias_fn, p, qm, km, mask, **kw)
            return jnp.sum(jnp.sin(out)), out

        return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3), has_aux=True))(q, k, v, params)

    (_, dense), g_dense = grads(dense_biased_attention)
    (_, scan), g_scan = grads(scan_biased_attention, q_block=128, k_block=128)
    leaves = zip(jax.tree_util.tree_leaves(g_dense), jax.tree_util.tree_leaves(g_scan), strict=True)
    return {"max_abs_err": float(jnp.max(jnp.abs(dense - scan))),
            "grad_max_abs_err": max(float(jnp.max(jnp.abs(a - b))) for a, b in leaves)}


def matmul_gflops(size: int = 4096) -> float:
    import jax

    a = jax.random.normal(jax.random.PRNGKey(0), (size, size))
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(3))
    return 2 * size**3 / best / 1e9


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def attention_flops(n: int) -> float:
    """QK^T and PV matmuls only (the bias exps are extra work not counted)."""
    return 4.0 * n * n * HEAD_DIM * HEADS


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", choices=["scan", "dense"])
    parser.add_argument("--n", type=int)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.reps)))
        return

    sizes = [1024, 4096, 16384]
    scan_only = [] if args.quick else [65536]
    result = accuracy()
    rows = {}
    for n in sizes + scan_only:
        reps = 3 if n <= 4096 else 1
        rows[n] = {"scan": run_isolated("scan", n, reps)}
        if n in sizes:
            rows[n]["dense"] = run_isolated("dense", n, reps)
        else:
            need_gb = 3 * 4 * n * n * HEADS / 2**30  # logits, bias and probabilities, float32
            rows[n]["dense"] = {"skipped": f"dense would need about {need_gb:.0f} GB for [n, n] float32 "
                                           "logits, bias and probabilities"}

    print(f"max |scan - dense| = {result['max_abs_err']:.2e}, gradients {result['grad_max_abs_err']:.2e}")
    print(f"{'n':>7}{'scan MB':>10}{'dense MB':>10}{'scan s':>10}{'dense s':>10}{'scan/dense':>12}")
    for n, r in rows.items():
        s, d = r["scan"], r["dense"]
        ratio = s["seconds"] / d["seconds"] if "seconds" in s and "seconds" in d else None
        print(f"{n:>7}{s.get('peak_mb', 'err'):>10}{d.get('peak_mb', '-'):>10}"
              f"{s.get('seconds', float('nan')):>10.3f}{d.get('seconds', float('nan')):>10.3f}"
              f"{(f'{ratio:.2f}' if ratio else '-'):>12}")
        for impl in ("scan", "dense"):
            note = r[impl].get("error") or r[impl].get("skipped")
            if note:
                print(f"        {impl} at n={n}: {note}")

    result.update({
        "sizes": sizes, "heads": HEADS, "head_dim": HEAD_DIM, "block": BLOCK,
        "scan_peak_mb": [rows[n]["scan"].get("peak_mb") for n in sizes],
        "dense_peak_mb": [rows[n]["dense"].get("peak_mb") for n in sizes],
        "scan_seconds": [rows[n]["scan"].get("seconds") for n in sizes],
        "dense_seconds": [rows[n]["dense"].get("seconds") for n in sizes],
        "scan_over_dense_time": [
            rows[n]["scan"]["seconds"] / rows[n]["dense"]["seconds"]
            if "seconds" in rows[n]["scan"] and "seconds" in rows[n]["dense"] else None for n in sizes],
        "xla_temp_mb": {impl: [rows[n][impl].get("xla_temp_mb") for n in sizes] for impl in ("scan", "dense")},
    })
    if not args.quick:
        machine = matmul_gflops()
        achieved = {n: attention_flops(n) / rows[n]["scan"]["seconds"] / 1e9
                    for n in rows if "seconds" in rows[n]["scan"]}
        print(f"jitted 4096x4096 float32 matmul: {machine:.1f} GFLOP/s")
        for n, g in achieved.items():
            print(f"scan attention n={n}: {g:.1f} GFLOP/s (QK^T and PV matmuls only), "
                  f"{g / machine:.2f} of matmul")
        result.update({
            "scan_65536_peak_mb": rows[65536]["scan"].get("peak_mb"),
            "scan_65536_seconds": rows[65536]["scan"].get("seconds"),
            "dense_65536": rows[65536]["dense"]["skipped"],
            "matmul_gflops": machine, "scan_gflops": {str(n): g for n, g in achieved.items()},
        })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
