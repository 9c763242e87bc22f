"""Pairwise squared distances between two sets of points, one tile at a time.

Two metrics, each a pair of pure functions:

* ``prepare(coords)`` runs once per point (O(N)) and maps raw coordinates to the
  representation the tile kernel works on;
* ``tile_sq_dist(a, b)`` gives the squared distance between every pair of a
  query tile ``a [B, Tq, d]`` and a key tile ``b [B, Tk, d]`` as ``[B, Tq, Tk]``.

Euclidean distance is for projected or already normalised coordinates.
Great-circle distance is for longitude/latitude in degrees: points are mapped
to unit vectors on the sphere, so the date line wraps and the distance is
invariant to any rotation of the sphere.
"""

from __future__ import annotations

import jax.numpy as jnp

from geonp.errors import ConfigError

METRICS = ("euclidean", "great_circle")


def _pairwise_sq_diff(a, b):
    # a [B, Tq, d], b [B, Tk, d] -> [B, Tq, Tk]; differences first, so that
    # nearby points keep full float32 precision (no 2 - 2 a.b cancellation).
    diff = a[:, :, None, :] - b[:, None, :, :]
    return jnp.sum(diff * diff, axis=-1)


def lonlat_to_unit_vectors(lonlat_deg):
    """``[..., 2]`` longitude/latitude in degrees -> ``[..., 3]`` unit vectors."""
    lon = jnp.deg2rad(lonlat_deg[..., 0])
    lat = jnp.deg2rad(lonlat_deg[..., 1])
    cos_lat = jnp.cos(lat)
    return jnp.stack([cos_lat * jnp.cos(lon), cos_lat * jnp.sin(lon), jnp.sin(lat)], axis=-1)


def chord_sq_to_arc_sq(chord_sq):
    """Squared central angle (radians^2) from the squared chord length on the unit sphere.

    theta = 2 arcsin(c / 2); near zero we use theta^2 = c^2 + c^4 / 12, which is
    exact to float32 precision there and keeps the gradient finite at c = 0.
    """
    small = chord_sq < 1e-6
    safe = jnp.where(small, 1.0, chord_sq)
    half_chord = jnp.clip(jnp.sqrt(safe) / 2.0, 0.0, 1.0)
    exact = (2.0 * jnp.arcsin(half_chord)) ** 2
    series = chord_sq * (1.0 + chord_sq / 12.0)
    return jnp.where(small, series, exact)


def prepare(metric: str, coords):
    """Map raw coordinates ``[B, N, d]`` to the representation used by :func:`tile_sq_dist`."""
    if metric == "euclidean":
        return coords
    if metric == "great_circle":
        return lonlat_to_unit_vectors(coords)
    raise ConfigError(f"unknown distance metric {metric!r}; expected one of {METRICS}.")


def tile_sq_dist(metric: str, a, b, radius: float = 1.0):
    """Squared distances ``[B, Tq, Tk]`` between prepared tiles ``a`` and ``b``.

    For ``great_circle`` the distance is ``radius * central angle``; with
    ``radius`` the Earth's radius divided by a length scale it is in units of
    that length scale.
    """
    sq = _pairwise_sq_diff(a, b)
    if metric == "euclidean":
        return sq
    if metric == "great_circle":
        return (radius * radius) * chord_sq_to_arc_sq(sq)
    raise ConfigError(f"unknown distance metric {metric!r}; expected one of {METRICS}.")


def prepared_dim(metric: str, raw_dim: int) -> int:
    """Number of columns after :func:`prepare` for ``raw_dim`` input columns."""
    if metric == "great_circle":
        if raw_dim != 2:
            raise ConfigError(
                f"great-circle distance needs 2 coordinate columns (longitude, latitude in "
                f"degrees), got {raw_dim}. Use metric='euclidean' for projected coordinates."
            )
        return 3
    return raw_dim
