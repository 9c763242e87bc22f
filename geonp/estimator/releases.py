"""Saving, loading and shipping trained models (safetensors + JSON, never pickle)."""

from __future__ import annotations

import functools
from pathlib import Path

import jax

from geonp.errors import CheckpointError, GeonpError
from geonp.nn.models import BSATNPConfig, build_model, probe_inputs
from geonp.training import checkpoints

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained_models"


@functools.lru_cache(maxsize=32)
def params_template(config: BSATNPConfig):
    """Shapes and dtypes of a model's parameters, without running it (``jax.eval_shape``).

    Cached per config (tracing the model takes ~0.5 s; the result is an immutable tree of shapes).
    """
    return jax.eval_shape(build_model(config).init, jax.random.PRNGKey(0), *probe_inputs(config))


def save_model(path, config: BSATNPConfig, params, metadata: dict | None = None) -> Path:
    """Write ``config.json`` + ``params.safetensors`` atomically into the directory ``path``."""
    return checkpoints.save_release(path, config.to_dict(), params, metadata)


def load_model(path):
    """Read a directory written by :func:`save_model`: ``(config, params, metadata)``."""

    def template(config_dict):
        try:
            config = BSATNPConfig.from_dict(config_dict)
        except (GeonpError, TypeError, KeyError, ValueError, AttributeError, IndexError) as err:
            raise CheckpointError(f"{path}: the model config cannot be read ({err}); the file is corrupted "
                                  "or from another geonp version.") from err
        return params_template(config)

    config_dict, params, metadata = checkpoints.load_release(path, template)
    return BSATNPConfig.from_dict(config_dict), params, metadata


def available() -> list[str]:
    """Names of the models shipped inside the package."""
    if not PRETRAINED_DIR.is_dir():
        return []
    return sorted(p.name for p in PRETRAINED_DIR.iterdir() if (p / "config.json").is_file())


def pretrained(name: str = "gp2d-normal"):
    """Load a model shipped inside the package (offline): ``(config, params, metadata)``."""
    if name not in available():
        raise CheckpointError(f"no pretrained model named {name!r}; available: {available()}.")
    return load_model(PRETRAINED_DIR / name)


def release(spec):
    """``(config, params, metadata)`` of a bundled model by name, or of a folder written by ``save()`` or
    ``benchmarks/train_bundled.py``: the one place a model name or path becomes weights."""
    if isinstance(spec, str) and spec in available():
        return pretrained(spec)
    if isinstance(spec, str | Path) and Path(spec).is_dir():
        return load_model(spec)
    raise CheckpointError(f"{str(spec)!r} is neither a bundled model ({available()}) nor a directory written by save() "
                          "or benchmarks/train_bundled.py.")


# The bundled models a plain ``predict()`` (and ``fit(pretrained="auto")``) starts from, by what is asked for
# (benchmarks/realdata.py decides, case by case): filling gaps (target=None) with the field model trained on
# cloud gaps, which wins there by far; other targets (a finer grid, points) with gp2d-normal until the field
# model beats it on them; with covariates, the field model (gp2d-normal has no covariate input).
DEFAULT_GAP_MODEL = "field-normal"
DEFAULT_MODEL = "gp2d-normal"
DEFAULT_SURVEY_MODEL = "prevalence-binomial"


def default_model(target=None, covariates=(), likelihood: str = "normal", temporal: bool = False) -> str | None:
    """The bundled model for a job: ``predict(target=...)`` of a ``likelihood`` field with ``covariates``;
    ``None`` where none is made for it (a temporal model, poisson, bernoulli or categorical data)."""
    from geonp.nn.likelihoods import get_likelihood

    name = get_likelihood(likelihood).name
    if temporal:
        return None
    if name == "normal":
        return DEFAULT_GAP_MODEL if target is None or covariates else DEFAULT_MODEL
    return DEFAULT_SURVEY_MODEL if name == "binomial" else None
