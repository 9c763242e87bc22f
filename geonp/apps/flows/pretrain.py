"""Meta-train a model on simulated tasks and write it as a shippable release (safetensors + JSON).

    flow: pretrain
    tasks: binomial-survey           # a sampler from TASKS, with options under task_options
    likelihood: binomial
    init_from: gp2d-normal           # warm start (bundled name or directory); null: from scratch
    steps: 1500
    output: ../geonp/pretrained_models/prevalence-binomial

The run checkpoints under ``run_dir`` and resumes there when restarted.
Metadata records the steps, the training time and the machine.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
from pathlib import Path

import jax
import numpy as np

from geonp.apps.recipes import resolve
from geonp.errors import ConfigError
from geonp.estimator.releases import available, release, save_model
from geonp.nn.models import BSATNPConfig, initial_params
from geonp.training.loop import TrainConfig, train
from geonp.training.reuse import resolve_reuse
from geonp.training.warm_start import transplant, with_token_layout


def _samplers():
    from geonp.tasks.epidemic import SIRLatticeSampler
    from geonp.tasks.fields import FieldTaskSampler
    from geonp.tasks.gp import GPTaskSampler
    from geonp.tasks.prevalence import BinomialSurveySampler

    return {"gp2d": GPTaskSampler, "fields": FieldTaskSampler, "binomial-survey": BinomialSurveySampler,
            "sir-lattice": SIRLatticeSampler}


def make_sampler(name: str, options: dict | None = None):
    samplers = _samplers()
    if name not in samplers:
        raise ConfigError(f"unknown tasks {name!r}; available: {sorted(samplers)}.")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()}
    try:
        return samplers[name](**options)
    except TypeError as err:
        raise ConfigError(f"tasks {name!r}: {err}") from err


def machine() -> str:
    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return f"{platform.node() or 'unknown'} ({platform.machine()}, {os.cpu_count()} CPU cores, jax {devices})"


def run(base: Path, tasks: str, output: str, likelihood="normal", task_options: dict | None = None,
        init_from: str | None = None, model: dict | None = None, steps: int = 1000, batch_size: int = 8,
        learning_rate: float = 3e-4, time_budget: float | None = None, seed: int = 0,
        run_dir: str | None = None, description: str = "", scaling: dict | None = None, var: str = "value",
        progress: bool = True, center: str | None = None, task_reuse: int | None = None) -> dict:
    """``scaling`` (a :class:`FeatureScaling` as a dict) ships the model's normalisation, for tasks with
    fixed units (a lattice in cell units): ``geonp.pretrained(name)`` then returns a fitted estimator.
    ``task_reuse``: steps per sampled batch (:mod:`geonp.training.reuse`), for a GPU that the samplers cannot
    keep busy. ``center`` records how the tasks' values are standardised (``FeatureScaling.center``), so that
    ``fit(steps=0)`` standardises a user's tiles the same way.

    With ``init_from``, the release's lineage continues: ``total_steps`` and ``sessions`` (one record
    per run: steps, seconds, machine, date) carry over from the source, so a model trained over
    several sessions says how much training it has seen in all."""
    sampler = make_sampler(tasks, task_options)
    source_meta = {}
    if init_from:
        source = release(init_from if init_from in available() else resolve(base, init_from))
        source_config, source_params, source_meta = source
        config = dataclasses.replace(source_config, likelihood=likelihood, **(model or {}))
    else:
        source_params = None
        config = BSATNPConfig(likelihood=likelihood, **(model or {}))
    params = initial_params(config, seed)
    report = None
    # new inputs (support, covariate slots, trend) extend the source: zero embedding rows, the same function at step 0,
    # and its lineage goes on
    extends = bool(source_params is not None and ((config.support and not source_config.support)
                                                  or (config.covariate_trend and not source_config.covariate_trend)
                                                  or config.x_dim > source_config.x_dim))
    if extends:  # every input keeps its embedding rows wherever the new token layout puts it; new ones are zero
        source_params = with_token_layout(source_params, source_config, config)
    if source_params is not None:
        params, report = transplant(source_params, params, zero_new=extends)
    run_dir = resolve(base, run_dir) if run_dir else resolve(base, output).with_suffix(".run")
    tc = TrainConfig(steps=steps, batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                     checkpoint_dir=str(Path(run_dir) / "state"), checkpoint_every=100,
                     time_budget=time_budget, validate_every=100, progress=progress, validate_at_start=True,
                     task_reuse=task_reuse)
    result = train(config, sampler, tc, params=params)
    # the starting parameters' score (step 0) and the run's own validations, all on the same tasks
    start = [h["val_nll"] for h in result.history if h["step"] == 0 and "val_nll" in h]
    val = [h["val_nll"] for h in result.history if h["step"] > 0 and "val_nll" in h]
    meta = {
        "description": description, "tasks": tasks, "task_options": task_options or {},
        "init_from": init_from, "warm_start": {k: len(v) for k, v in (report or {}).items()},
        "steps": result.step, "planned_steps": steps, "batch_size": batch_size, "learning_rate": learning_rate,
        "task_reuse": resolve_reuse(tc.task_reuse, sampler),
        "train_seconds": round(result.seconds, 1), "machine": machine(),
        "trained_on": datetime.date.today().isoformat(), "start_val_nll": start[0] if start else None,
        "first_val_nll": val[0] if val else None, "final_val_nll": val[-1] if val else None,
    }
    # lineage: the source's training continues only when its whole network carried over (same tasks family)
    continued = report is not None and not report["fresh"] and (not report["partial"] or extends)
    earlier = source_meta.get("sessions", []) if continued else []
    before = int(source_meta.get("total_steps", source_meta.get("steps", 0))) if continued else 0
    this_session = {k: meta[k] for k in ("steps", "train_seconds", "machine", "trained_on", "start_val_nll",
                                         "final_val_nll", "learning_rate", "batch_size", "task_reuse")}
    meta.update(total_steps=before + result.step, sessions=[*earlier, this_session],
                total_hours=round(sum(r.get("train_seconds", 0.0) for r in [*earlier, this_session]) / 3600, 3))
    if center is not None:
        meta["center"] = center
    if getattr(sampler, "far_fraction", 0.0):  # the context rule prediction must follow for this model
        meta["far_context"] = round(sampler.far_fraction * sampler.num_context)
    if scaling is not None:
        from geonp.features.scaling import FeatureScaling

        meta.update(kind="geonp.NeuralProcess", scaling=FeatureScaling.from_dict(scaling).to_dict(), var=var,
                    estimator={"likelihood": config.likelihood.to_dict(), "steps": 0}, covariates=[])
    save_model(resolve(base, output), config, jax.tree_util.tree_map(np.asarray, result.params), meta)
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "history.json").write_text(json.dumps(result.history))
    print(json.dumps({k: meta[k] for k in ("steps", "train_seconds", "start_val_nll", "first_val_nll",
                                           "final_val_nll")}))
    return meta

