"""Typed errors for geonp.

Every error a user can meet derives from :class:`GeonpError`, so ``except
geonp.GeonpError`` catches them all, and each message says three things: what
was wrong, what was expected, and how to fix it.
"""

from __future__ import annotations


class GeonpError(Exception):
    """Base class of every error raised on purpose by geonp."""


class InputShapeError(GeonpError, ValueError):
    """An array has the wrong rank or its sizes do not agree with its partners."""


class NonFiniteInputError(GeonpError, ValueError):
    """Coordinates or values contain NaN or infinity where finite numbers are needed."""


class EmptyContextError(GeonpError, ValueError):
    """A task has no observed (context) point to condition on."""


class MetadataMismatchError(GeonpError, ValueError):
    """Per-point metadata (coordinates, time) does not match between inputs or the model."""


class ConfigError(GeonpError, ValueError):
    """A model, training or task option is out of its valid range."""


class CheckpointError(GeonpError, OSError):
    """A checkpoint is missing, corrupted, or was written by an incompatible version."""


def reject_unknown_fields(cls, d, what: str) -> None:
    """Raise :class:`ConfigError` when a saved dict has fields the dataclass ``cls`` does not know."""
    import dataclasses

    unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {what} fields {sorted(unknown)}; was this written by a newer geonp? "
                          "Upgrade geonp (or remove those fields).")


def describe_shape(array) -> str:
    """Return ``'[2, 3]'`` for an array, for use in error messages."""
    return "[" + ", ".join(str(s) for s in getattr(array, "shape", ())) + "]"
