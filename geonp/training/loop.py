"""Meta-training: sample a batch of tasks, take a jitted optimiser step, repeat.

Reproducible: the batch of step t is a function of t alone (drawn from
``fold_in(seed_key, t)``, or, with task reuse, a symmetric view of the batch
drawn for ``t // reuse``: ``geonp.training.reuse``), so a run resumed from a
checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from geonp.errors import ConfigError
from geonp.nn.models import BSATNPConfig, build_model, initial_params
from geonp.tasks.batch import Batch
from geonp.training import checkpoints
from geonp.training.optim import make_optimizer
from geonp.training.prefetch import Prefetcher
from geonp.training.reuse import StepBatches, resolve_reuse


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train`.

    ``time_budget`` (seconds) stops the run early, keeping the schedule of ``steps``; a run resumed from
    its checkpoint goes on with the seconds and records it had (the budget is the whole run's).
    ``checkpoint_dir`` enables saving every ``checkpoint_every`` steps and resuming.
    ``patience`` stops after that many validations without a better validation NLL
    and returns the best parameters seen. ``validate_at_start`` also scores the starting parameters
    (step 0) on the validation tasks, so a run that continues a trained model shows what its schedule
    did to it: the starting figure and the later ones are on the same tasks.
    """

    steps: int = 1000
    batch_size: int = 16
    learning_rate: float = 5e-4
    warmup_steps: int | None = None
    weight_decay: float = 1e-4
    clip_norm: float = 1.0
    seed: int = 0
    validate_every: int = 250
    validation_batches: int = 4
    checkpoint_every: int = 250
    checkpoint_dir: str | None = None
    time_budget: float | None = None
    patience: int | None = None  # early stopping: validations without improvement before stopping
    progress: bool = True
    prefetch: int | None = None  # batches sampled ahead in a sampler process (0: in line); None: auto_prefetch()
    sampler_workers: int | None = None  # sampler processes taking turns when prefetching; None: auto_sampler_workers()
    task_reuse: int | None = None  # steps per sampled batch (geonp.training.reuse); None: 1
    validate_at_start: bool = False  # a step-0 record with the starting parameters' validation NLL

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ConfigError(f"steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}.")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"learning_rate must be a positive number, got {self.learning_rate}.")
        if self.sampler_workers is not None and self.sampler_workers < 1:
            raise ConfigError(f"sampler_workers must be >= 1 sampler processes (or None: all cores but two on an "
                              f"accelerator, 1 on a CPU), got {self.sampler_workers}.")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be >= 1 validations (or None), got {self.patience}.")


@dataclasses.dataclass
class TrainResult:
    params: dict
    step: int
    history: list  # dicts: step, train_nll, val_nll (when validated), seconds
    seconds: float
    best_val_nll: float | None = None
    stopped_early: bool = False


PREFETCH_MIN_STEPS = 200  # shorter runs sample in line: starting the sampler process costs several seconds
PREFETCH_MIN_CORES = 8


def auto_prefetch() -> int:
    """Batches to sample ahead: 2 on an accelerator or a CPU with many cores, else 0.

    On a 2-core CPU the step already keeps both cores busy, and a sampler process
    beside it made steps slower, not faster (0.97 vs 0.77 s per step with task
    reuse, benchmarks/speed.py); with reuse, sampling in line costs ~0.05 s a step.
    """
    return 2 if jax.default_backend() != "cpu" or (os.cpu_count() or 1) >= PREFETCH_MIN_CORES else 0


MAX_SAMPLER_WORKERS = 32


def auto_sampler_workers() -> int:
    """Sampler processes: on an accelerator, all but two of the CPU cores (at most 32), else 1.

    A batch of 32 field tasks takes ~1 s of one core to sample (float64 Choleskys), far longer
    than the network's step on a GPU, so one sampler process would leave the GPU idle. On a CPU the
    step itself uses the cores.
    """
    if jax.default_backend() == "cpu":
        return 1
    return max(1, min(MAX_SAMPLER_WORKERS, (os.cpu_count() or 1) - 2))


def _picklable(sampler) -> bool:
    import pickle

    try:
        pickle.dumps(sampler)
        return True
    except Exception:
        return False


def negative_log_likelihood(model: nn.Module, config: BSATNPConfig, params, batch: Batch):
    """Mean NLL per real target point (nats)."""
    raw = model.apply(params, *batch.model_inputs())
    real = batch.mask_tgt
    # padded targets get a valid dummy observation (1 of 1, count 1, class 1) so no log(0) reaches the gradient
    y = jnp.where(real[..., None], batch.y_tgt, jnp.ones_like(batch.y_tgt))
    log_p = jnp.where(real, config.likelihood.log_prob(raw, y), 0.0)  # [B, Nt]
    return -jnp.sum(log_p) / jnp.maximum(jnp.sum(real.astype(log_p.dtype)), 1.0)


@functools.lru_cache(maxsize=8)
def _compiled_steps(config: BSATNPConfig, steps: int, learning_rate: float, warmup_steps: int, weight_decay: float,
                    clip_norm: float | None):
    """The jitted training step and validation loss for one model and optimiser, and the optimiser.

    Cached, so that fitting again with the same settings (a notebook re-run, a test) reuses the
    compiled programs instead of tracing and compiling the step anew.
    """
    model = build_model(config)
    optimizer = make_optimizer(steps, learning_rate, warmup_steps, weight_decay, clip_norm)
    loss_fn = lambda p, b: negative_log_likelihood(model, config, p, b)  # noqa: E731

    # the old state's buffers are donated to the new one: no copy of params and optimiser state per step
    @functools.partial(jax.jit, donate_argnums=0)
    def train_step(state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(state["params"], batch)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        return {"params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}, loss

    return train_step, jax.jit(loss_fn), optimizer


def train(config: BSATNPConfig, sampler, train_config: TrainConfig = TrainConfig(), params=None,
          validation_sampler=None, validator=None) -> TrainResult:
    """Meta-train a BSA-TNP on tasks from ``sampler`` (anything with ``sample(key, batch_size)``).

    Validation batches come from ``validation_sampler`` (default: ``sampler`` with another seed).
    ``validator(step, params) -> dict`` (e.g. :class:`geonp.estimator.fine_tune.BestOnHeldOut`) also scores the
    parameters at step 0 and at every validation; its ``held_out_crps`` then decides early stopping, and its
    record joins the history and the progress bar.
    """
    tc = train_config
    train_step, eval_loss, optimizer = _compiled_steps(config, tc.steps, tc.learning_rate, tc.warmup_steps,
                                                       tc.weight_decay, tc.clip_norm)
    seed_key = jax.random.PRNGKey(tc.seed)
    batch_of_step = StepBatches(sampler, tc.batch_size, seed_key, resolve_reuse(tc.task_reuse, sampler))

    if params is None:
        params = initial_params(config, tc.seed)
    # a private copy: the step donates its input buffers, and the caller's params must survive that
    params = jax.tree_util.tree_map(jnp.array, params)
    state = {"params": params, "opt_state": optimizer.init(params)}
    start_step, resumed = 0, {}
    ckpt_dir = Path(tc.checkpoint_dir) if tc.checkpoint_dir else None
    if ckpt_dir is not None and checkpoints.has_training_state(ckpt_dir):
        # a resumed run goes on where it stopped: its records, and its clock (the time budget is the run's)
        state, start_step, resumed = checkpoints.load_training_state(ckpt_dir, state)

    val_source = validation_sampler or sampler
    validation = [val_source.sample(jax.random.fold_in(jax.random.PRNGKey(tc.seed + 10_000), i), tc.batch_size)[0]
                  for i in range(tc.validation_batches)]

    def validate(params):
        return float(np.mean([float(eval_loss(params, b)) for b in validation]))

    history = list(resumed.get("history", []))
    started = time.perf_counter() - float(resumed.get("seconds", 0.0))
    bar = tqdm(total=tc.steps, initial=start_step, disable=not tc.progress, desc="training", unit="step",
               mininterval=1.0)
    step, running = start_step, []
    best_val, best_params, since_best, stopped_early = math.inf, None, 0, False
    def held_out(step, params, record):
        scores = {k: v for k, v in validator(step, params).items() if k != "step"}
        record.update(scores)
        bar.set_postfix(held_out_rmse=f"{scores['held_out_rmse']:.4g}", crps=f"{scores['held_out_crps']:.4g}",
                        refresh=False)
        return scores["held_out_crps"]

    if (tc.validate_at_start or validator is not None) and start_step == 0:
        record = {"step": 0, "val_nll": validate(state["params"])}
        best_val = held_out(0, state["params"], record) if validator is not None else record["val_nll"]
        history.append({**record, "seconds": time.perf_counter() - started})
        if tc.patience is not None:
            best_params = jax.tree_util.tree_map(np.array, state["params"])  # a copy: the step donates its buffers
    depth = auto_prefetch() if tc.prefetch is None else tc.prefetch
    prefetching = depth > 0 and tc.steps - start_step >= PREFETCH_MIN_STEPS and _picklable(sampler)
    workers = auto_sampler_workers() if tc.sampler_workers is None else tc.sampler_workers
    batches = Prefetcher(batch_of_step, start_step, tc.steps, depth, workers) if prefetching else (
        (t, batch_of_step(t)) for t in range(start_step, tc.steps))
    with contextlib.closing(batches):  # the sampler process stops however the loop ends
        for batch_step, batch in batches:
            assert batch_step == step
            state, loss = train_step(state, batch)
            step += 1
            running.append(loss)
            bar.update(1)
            last = step == tc.steps
            out_of_time = tc.time_budget is not None and time.perf_counter() - started > tc.time_budget
            if step % 10 == 0 or last or out_of_time:
                train_nll = float(np.mean([float(x) for x in running]))
                running = []
                if not math.isfinite(train_nll):
                    raise FloatingPointError(
                        f"training loss became {train_nll} at step {step}; lower learning_rate or check the "
                        "data for extreme values."
                    )
                record = {"step": step, "train_nll": train_nll, "seconds": time.perf_counter() - started}
                if step % tc.validate_every == 0 or last or out_of_time:
                    record["val_nll"] = validate(state["params"])
                    score = held_out(step, state["params"], record) if validator is not None else record["val_nll"]
                    if score < best_val:
                        best_val, since_best = score, 0
                        if tc.patience is not None:
                            best_params = jax.tree_util.tree_map(np.array, state["params"])  # a copy
                    else:
                        since_best += 1
                        stopped_early = tc.patience is not None and since_best >= tc.patience
                    if validator is None:
                        bar.set_postfix(loss=f"{train_nll:.3f}", val=f"{record['val_nll']:.3f}", refresh=False)
                elif validator is None:
                    bar.set_postfix(loss=f"{train_nll:.3f}", refresh=False)
                history.append(record)
            if ckpt_dir is not None and (step % tc.checkpoint_every == 0 or last or out_of_time):
                checkpoints.save_training_state(ckpt_dir, state, step, extra={
                    "seconds": time.perf_counter() - started, "history": history})
            if out_of_time or stopped_early:
                break
    bar.close()
    final = best_params if best_params is not None else state["params"]
    return TrainResult(final, step, history, time.perf_counter() - started,
                       best_val if math.isfinite(best_val) and validator is None else None, stopped_early)
