"""Checks for the options a user passes (numbers, counts, probabilities): a :class:`ConfigError` saying what to pass.

Each entry point (``fit``, ``predict``, ``aggregate``, ``next_sites``) runs its options through these before
anything else, so a wrong type never reaches numpy, dask or jax as a bare traceback.
"""

from __future__ import annotations

import math

import numpy as np

from geonp.errors import ConfigError

QUANTILE_EDGE = 1e-6  # quantiles closer than this to 0 or 1 are infinite for a Gaussian in float32


def is_real(value) -> bool:
    """A real number (int or float, numpy's too), not a bool."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool | np.bool_)


def numbers(values, name: str) -> tuple[float, ...]:
    """``values`` (None or a list of finite numbers) as a tuple of floats."""
    if values is None:
        return ()
    if isinstance(values, str) or is_real(values) or not hasattr(values, "__iter__"):
        raise ConfigError(f"{name}={values!r}: pass a list of numbers, e.g. {name}=[{values!r}] for one.")
    values = list(values)
    bad = [v for v in values if not is_real(v) or not math.isfinite(float(v))]
    if bad:
        raise ConfigError(f"{name} must hold finite numbers; got {bad}.")
    return tuple(float(v) for v in values)


def probabilities(values, name: str) -> tuple[float, ...]:
    """``values`` as probabilities far enough inside (0, 1) that a Gaussian quantile is finite."""
    probs = numbers(values, name)
    bad = [q for q in probs if not QUANTILE_EDGE <= q <= 1 - QUANTILE_EDGE]
    if bad:
        raise ConfigError(f"{name} must be probabilities strictly between 0 and 1 (within {QUANTILE_EDGE:g} of "
                          f"neither: farther out a Gaussian quantile is infinite); got {bad}.")
    return probs


def whole_number(value, name: str, low: int | None = None) -> int:
    """``value`` as an int (>= ``low``): a whole number is expected, not 1.5, '8' or None."""
    whole = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if not whole and isinstance(value, float | np.floating) and math.isfinite(value) and float(value).is_integer():
        whole = True
    if not whole or (low is not None and value < low):
        expected = "a whole number" + (f" >= {low}" if low is not None else "")
        raise ConfigError(f"{name}={value!r}: expected {expected}.")
    return int(value)


def positive_number(value, name: str, optional: bool = False) -> float | None:
    """``value`` as a finite float > 0 (or None where ``optional``)."""
    if value is None and optional:
        return None
    if not is_real(value) or not math.isfinite(float(value)) or value <= 0:
        expected = "a finite number > 0" + (" or None" if optional else "")
        raise ConfigError(f"{name}={value!r}: expected {expected}.")
    return float(value)


def fraction(value, name: str, low_open: bool = True) -> float:
    """``value`` as a float in (0, 1) (``low_open=False``: [0, 1))."""
    if not is_real(value) or not (0 < value < 1 if low_open else 0 <= value < 1):
        raise ConfigError(f"{name}={value!r}: expected a number in {'(' if low_open else '['}0, 1).")
    return float(value)


def check_field_types(obj) -> None:
    """Raise :class:`ConfigError` when a dataclass field whose default is a bool, int, float or str holds
    another type (a saved config edited by hand, or an option of the wrong kind); ``None`` defaults are free."""
    import dataclasses

    def kind_ok(default, value) -> bool:
        if isinstance(default, bool):
            return isinstance(value, bool | np.bool_)
        if isinstance(default, int):
            return is_real(value) and isinstance(value, int | np.integer)
        if isinstance(default, float):
            return is_real(value)
        if isinstance(default, str):
            return isinstance(value, str)
        return True

    bad = [f"{f.name}={getattr(obj, f.name)!r} (expected {type(f.default).__name__})"
           for f in dataclasses.fields(obj) if not kind_ok(f.default, getattr(obj, f.name))]
    if bad:
        raise ConfigError(f"{type(obj).__name__}: {', '.join(bad)}.")


def check_numbers(values, what: str) -> None:
    """Raise :class:`ConfigError` unless ``values`` is a list or tuple of real numbers."""
    if not (isinstance(values, list | tuple) and all(is_real(v) for v in values)):
        raise ConfigError(f"{what} must be a list of numbers; got {values!r}.")
