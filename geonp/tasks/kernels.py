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
