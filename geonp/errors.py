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


class DataError(GeonpError, ValueError):
    """The data values cannot be used: all missing, not numeric, or a variable is missing."""


class CoordinateError(GeonpError, ValueError):
    """Spatial or time coordinates are missing, ambiguous, or unusable (NaN, duplicated, unordered)."""


class NotFittedError(GeonpError, RuntimeError):
    """The estimator was used before ``fit`` (or ``load``)."""


class OutputExistsError(GeonpError, FileExistsError):
    """The output path exists already and ``overwrite`` was not given."""


class CatalogError(GeonpError):
    """A catalog entry could not be read or opened."""


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


def user_path(path, what: str):
    """``path`` as a ``pathlib.Path`` whose folders can hold a new entry, or a :class:`ConfigError` saying why.

    ``what`` names the argument in the message (``"model.save(path)"``). Missing parent folders are fine
    (writers create them); a parent that is a regular file is not.
    """
    import os
    from pathlib import Path

    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)) or not str(os.fspath(path)).strip():
        raise ConfigError(f"{what}: expected a path (a str or pathlib.Path), got {path!r} of type "
                          f"{type(path).__name__}. Pass a file or folder name, e.g. 'out/model'.")
    path = Path(path).expanduser()
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{what}: {parent} is a file, not a folder, so {path} cannot be created "
                                  "under it. Choose a path in a folder.")
            break
    return path


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` at the user's own line: the first frame outside geonp's package, however deep the
    call (``fit`` directly, through ``.np.predict``, or from a flow). Tests' own frames count as the user's."""
    import os
    import sys
    import warnings

    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 2  # level 1 would be this function's own line
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level - 1 if frame is None else level)
