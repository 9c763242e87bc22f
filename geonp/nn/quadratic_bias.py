"""The quadratic (anisotropic Gaussian) bias, folded into the query-key product.

For head h and coordinate group g, with a lower-triangular ``A[g, h]`` of
positive diagonal (so ``M = A^T A`` is positive definite), the bias added to
the attention logit between query point i and key point j is

    bias_h(i, j) = - sum_g | A[g, h] (x_i - x_j) |^2

i.e. a Gaussian kernel ``exp(-(x_i - x_j)^T M (x_i - x_j))`` multiplying the
attention weights, with its own length scale and orientation per head
(anisotropy: a head can reach further east-west than north-south). Expanded,

    -|A x_i|^2 + 2 (A x_i) . (A x_j) - |A x_j|^2

the first term is constant along a softmax row and drops out, and the rest
is a dot product of short per-point vectors. So the bias costs no work per
pair of points at all: it is folded into the q k^T product by appending
``C + 1`` channels to every head,

    q'_i = [q_i * s / sqrt(Dh),  2 s A x_i,  s]           s = sqrt(Dh + C + 1)
    k'_j = [k_j,                 A x_j,      -|A x_j|^2]

so that ``q'_i . k'_j / sqrt(Dh + C + 1) = q_i . k_j / sqrt(Dh) + bias_h(i, j)``,
and scan and dense attention run unchanged (their backward passes then give
the gradients of A and of the coordinates for free). Coordinates are centred
on the keys' centroid first, which leaves every distance unchanged (the model
stays exactly translation invariant) and keeps ``|A x|^2`` small, so the
expansion does not lose float32 precision to cancellation.

Great-circle groups use the 3-D unit vectors times the group's radius (chord
length, within 1% of the arc up to 0.49 rad, 3,100 km on the Earth) with an
isotropic ``A`` (the geometric mean of the head's axis scales; the parameters
are shaped by the raw coordinates, so one model runs on projected and on
longitude/latitude data): any rotation of the sphere leaves the bias unchanged.

Shapes: prepared metadata ``{group: [B, N, d]}``; parameters per group of
``dim`` raw columns ``{"log_diag": [H, dim], "lower": [H, dim (dim - 1) / 2]}``
(``lower`` only for dim > 1); bias tiles ``[B, H, Tq, Tk]``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np

from geonp.nn import distances
from geonp.nn.random_features import masked_centroid


def columns(group) -> int:
    """Coordinate columns C of a group after preparation (3 unit-vector columns on the sphere)."""
    return distances.prepared_dim(group.metric, group.dim)


def init_quadratic_bias(key, groups: Sequence, num_heads: int) -> dict:
    """Isotropic heads at log-spaced length scales: ``A = I / (sqrt(2) l_h)``, i.e. bias ``-d^2 / (2 l_h^2)``."""
    del key  # deterministic: heads differ by their length scales
    params = {}
    for g in groups:
        log_diag = -jnp.log(math.sqrt(2.0) * g.log_spaced_scales(num_heads))  # [H]
        # shaped by the raw coordinate columns, not the metric: a model fitted on projected data
        # runs on longitude/latitude and back (the estimator switches the metric to the data's)
        params[g.name] = {"log_diag": jnp.repeat(log_diag[:, None], g.dim, axis=1).astype(jnp.float32)}
        if g.dim > 1:  # the orientation of an anisotropic head
            params[g.name]["lower"] = jnp.zeros((num_heads, g.dim * (g.dim - 1) // 2), jnp.float32)
    return params


def transform(table, group) -> jnp.ndarray:
    """``[H, C, C]`` lower-triangular matrices A of one group (isotropic on the sphere)."""
    c = columns(group)
    if group.metric == "great_circle":  # isotropic: the geometric mean of the head's axis scales
        scale = jnp.exp(jnp.mean(table["log_diag"], axis=-1))  # [H]
        return scale[:, None, None] * jnp.eye(c)[None]  # [H, 3, 3]
    diag = jnp.exp(table["log_diag"])  # [H, C]
    if "lower" not in table:  # one column
        return diag[:, :, None] * jnp.eye(c)[None]  # [H, C, C]
    rows, cols = np.tril_indices(c, -1)
    a = jnp.zeros((diag.shape[0], c, c), diag.dtype).at[:, rows, cols].set(table["lower"])
    return a + diag[:, :, None] * jnp.eye(c)[None]


def _points(group, prepared):
    """Prepared coordinates in the group's distance units: unit vectors times the radius on the sphere."""
    return prepared * group.radius if group.metric == "great_circle" else prepared


def project(params, meta, centres, groups: Sequence):
    """``[B, N, H, C_total]``: ``A x`` of every point for every head, groups side by side (centred)."""
    parts = []
    for g in groups:
        x = _points(g, meta[g.name]) - centres[g.name]  # [B, N, C]
        a = transform(params[g.name], g)  # [H, C, C]
        parts.append(jnp.einsum("hij,bnj->bnhi", a, x))
    return jnp.concatenate(parts, axis=-1)


def key_centres(groups: Sequence, meta_kv, key_mask) -> dict:
    """``{group: [B, 1, C]}``: the centroid of the real keys (subtracting it leaves distances unchanged)."""
    return {g.name: masked_centroid(_points(g, meta_kv[g.name]), key_mask) for g in groups}


def fold(q, k, params, meta_q, meta_kv, key_mask, groups: Sequence):
    """Queries and keys ``[B, N, H, Dh + C + 1]`` whose scaled dot product carries the bias.

    q ``[B, Nq, H, Dh]``, k ``[B, Nk, H, Dh]``; ``meta_*`` prepared metadata; key_mask ``[B, Nk]`` or None.
    """
    dh = q.shape[-1]
    centres = key_centres(groups, meta_kv, key_mask)
    aq = project(params, meta_q, centres, groups)  # [B, Nq, H, C]
    ak = project(params, meta_kv, centres, groups)  # [B, Nk, H, C]
    s = math.sqrt(dh + aq.shape[-1] + 1)
    q_aug = jnp.concatenate([q * (s / math.sqrt(dh)), 2.0 * s * aq, jnp.full(aq.shape[:-1] + (1,), s, q.dtype)],
                            axis=-1)
    k_aug = jnp.concatenate([k, ak, -jnp.sum(ak * ak, axis=-1, keepdims=True)], axis=-1)
    return q_aug, k_aug


def quadratic_bias(params, q_meta, k_meta, groups: Sequence):
    """The same bias as a tile ``[B, H, Tq, Tk]`` computed pair by pair (the reference of :func:`fold`)."""
    total = 0.0
    for g in groups:
        a = transform(params[g.name], g)  # [H, C, C]
        diff = _points(g, q_meta[g.name])[:, :, None, :] - _points(g, k_meta[g.name])[:, None, :, :]
        ad = jnp.einsum("hij,bqkj->bhqki", a, diff)  # [B, H, Tq, Tk, C]
        total = total - jnp.sum(ad * ad, axis=-1)
    return total


def profile(table, d, group=None):
    """``[H, D]`` bias at distances ``d`` along each head's longest reach (the halo search needs that one)."""
    log_diag = np.asarray(table["log_diag"], np.float64)
    if group is not None and group.metric == "great_circle":
        lam = np.exp(2.0 * log_diag.mean(axis=1))
    elif "lower" not in table:  # one column
        lam = np.exp(2.0 * log_diag[:, 0])
    else:
        c = log_diag.shape[1]
        rows, cols = np.tril_indices(c, -1)
        lam = []
        for h in range(log_diag.shape[0]):
            a = np.diag(np.exp(log_diag[h]))
            a[rows, cols] = np.asarray(table["lower"][h], np.float64)
            lam.append(np.linalg.eigvalsh(a.T @ a)[0])  # the slowest decay direction
        lam = np.asarray(lam)
    d = np.asarray(d, np.float64)
    return -lam[:, None] * d[None, :] ** 2
