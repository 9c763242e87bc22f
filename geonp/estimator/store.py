"""A fitted estimator on disk: its hyperparameters and :class:`~geonp.estimator.state.FittedModel` as
safetensors + JSON (never pickle), written atomically by :func:`geonp.estimator.releases.save_model`."""

from __future__ import annotations

from pathlib import Path

from geonp.errors import CheckpointError
from geonp.estimator.releases import load_model, save_model
from geonp.estimator.state import FittedModel

KIND = "geonp.NeuralProcess"  # the metadata's "kind" of a saved estimator (a release has none)


def save(path: Path, estimator_params: dict, state: FittedModel) -> Path:
    """Write ``state`` and the estimator's hyperparameters to the directory ``path``."""
    metadata = {"kind": KIND, "estimator": _jsonable(estimator_params), **state.to_dict()}
    return save_model(path, state.config, state.params, metadata)


def read(path: Path) -> tuple[dict, FittedModel]:
    """``(hyperparameters, state)`` of the estimator saved in ``path`` (a CheckpointError for anything else)."""
    config, params, meta = load_model(path)
    if meta.get("kind") != KIND or "scaling" not in meta:
        raise CheckpointError(
            f"{path} holds model weights without a fitted normalisation (not written by NeuralProcess.save). Use "
            f"geonp.NeuralProcess(pretrained={str(path)!r}).fit(data, steps=0) to calibrate it on your data."
        )
    estimator_params = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(meta.get("estimator", {})).items()}
    return estimator_params, FittedModel.from_dict(config, params, meta, source=str(path))


def is_saved_estimator(meta: dict) -> bool:
    """Whether a model folder's metadata is an estimator's (``save``), not a release's weights alone."""
    return meta.get("kind") == KIND


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
