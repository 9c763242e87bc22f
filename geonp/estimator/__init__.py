"""The estimator: hyperparameters (``estimator``), fitting (``fit``, ``fine_tune``), saving and
loading (``store``), and the bundled releases by name (``releases``)."""

from geonp.estimator.estimator import ARCHITECTURES, NeuralProcess, NotFittedError, load, pretrained, resolve_model

__all__ = ["ARCHITECTURES", "NeuralProcess", "NotFittedError", "load", "pretrained", "resolve_model"]
