"""Covariance functions for Gaussian-process tasks, as pure functions of two point sets.

Each takes ``a [N, d]``, ``b [M, d]`` and hyperparameters and returns ``[N, M]``.
They work with jax.numpy and numpy alike (``xp``), so the same formula drives
the task sampler (jax, float32) and the exact oracle (numpy, float64).
"""

from __future__ import annotations

import numpy as np

KERNELS = ("rbf", "matern12", "matern32", "matern52", "periodic")


def _distance(a, b, xp):
    sq = xp.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=-1)
    return sq, xp.sqrt(xp.maximum(sq, 1e-30))


def rbf(a, b, lengthscale, xp=np):
    sq, _ = _distance(a, b, xp)
    return xp.exp(-0.5 * sq / lengthscale**2)


def matern12(a, b, lengthscale, xp=np):
    _, r = _distance(a, b, xp)
    return xp.exp(-r / lengthscale)


def matern32(a, b, lengthscale, xp=np):
    _, r = _distance(a, b, xp)
    s = np.sqrt(3.0) * r / lengthscale
    return (1.0 + s) * xp.exp(-s)


def matern52(a, b, lengthscale, xp=np):
    sq, r = _distance(a, b, xp)
    s = np.sqrt(5.0) * r / lengthscale
    return (1.0 + s + 5.0 * sq / (3.0 * lengthscale**2)) * xp.exp(-s)


def periodic(a, b, lengthscale, period, xp=np):
    """Product over dimensions of 1-D periodic kernels (positive definite in any dimension)."""
    diff = a[:, None, :] - b[None, :, :]
    return xp.exp(-2.0 * xp.sum(xp.sin(np.pi * diff / period) ** 2, axis=-1) / lengthscale**2)


def covariance(kernel: str, a, b, lengthscale, period=1.0, xp=np):
    """Unit-variance covariance of the named kernel."""
    if kernel == "periodic":
        return periodic(a, b, lengthscale, period, xp)
    return {"rbf": rbf, "matern12": matern12, "matern32": matern32, "matern52": matern52}[kernel](
        a, b, lengthscale, xp
    )


# every kernel above as exp(-E) * P with E = e2 r^2 + e1 r + ep S and P = 1 + p1 r + p2 r^2,
# r = d / lengthscale, S = sum_dims sin^2(pi diff / period) / lengthscale^2: one exp per pair
_FORM = {  # name: (e2, e1, ep, p1, p2)
    "rbf": (0.5, 0.0, 0.0, 0.0, 0.0),
    "matern12": (0.0, 1.0, 0.0, 0.0, 0.0),
    "matern32": (0.0, np.sqrt(3.0), 0.0, np.sqrt(3.0), 0.0),
    "matern52": (0.0, np.sqrt(5.0), 0.0, np.sqrt(5.0), 5.0 / 3.0),
    "periodic": (0.0, 0.0, 2.0, 0.0, 0.0),
}


def selected_covariance(kernel_index, a, b, lengthscale, period, names, xp=np):
    """The covariance of kernel ``names[kernel_index]`` (a traced index) with one exp per pair.

    Equal to :func:`covariance` of that kernel; written so that a batch of tasks
    with different kernels (``vmap``) costs one kernel evaluation per task, not one per name.
    """
    form = xp.asarray([_FORM[n] for n in names])[kernel_index]  # [5]
    diff = a[:, None, :] - b[None, :, :]
    r = xp.sqrt(xp.maximum(xp.sum(diff * diff, axis=-1), 1e-30)) / lengthscale
    # sin(u - v) = sin u cos v - cos u sin v: 2 N sines and cosines instead of N M of each
    ua, ub = np.pi * a / period, np.pi * b / period
    sin_diff = xp.sin(ua)[:, None, :] * xp.cos(ub)[None, :, :] - xp.cos(ua)[:, None, :] * xp.sin(ub)[None, :, :]
    s = xp.sum(sin_diff**2, axis=-1) / lengthscale**2
    energy = form[0] * r * r + form[1] * r + form[2] * s
    return (1.0 + form[3] * r + form[4] * r * r) * xp.exp(-energy)


def of_distance(kernel: str, r, xp=np):
    """Unit-variance stationary kernel as a function of the scaled distance ``r = d / lengthscale`` (not periodic)."""
    if kernel not in _FORM or kernel == "periodic":
        raise ValueError(f"of_distance takes one of {[k for k in _FORM if k != 'periodic']}, got {kernel!r}.")
    e2, e1, _, p1, p2 = _FORM[kernel]
    return (1.0 + p1 * r + p2 * r * r) * xp.exp(-(e2 * r * r + e1 * r))
