"""Warm starts: carry a trained model's weights into a model with other inputs or outputs.

A binomial or categorical model shares its attention stack with a Gaussian one;
only the token embedding (other observation encodings, covariates) and the
head (other outputs) differ in shape. ``transplant`` copies every weight whose
shape matches and, where shapes differ, the overlapping block (new rows or
columns keep their fresh initialisation), so meta-training starts from the
spatial structure the source model has already learned.
"""

from __future__ import annotations

import jax
import numpy as np


def transplant(source, target, zero_new: bool = False):
    """``target``'s tree with ``source``'s values wherever the paths match (overlapping block if shapes differ).

    ``zero_new``: entries outside the overlapping block are zero instead of freshly initialised, so a
    new token input (an extra embedding row) starts with no effect and the model computes exactly
    what the source did. Returns ``(params, report)``: report maps "copied", "partial" and "fresh" to
    lists of paths.
    """
    flat_source = {jax.tree_util.keystr(p): np.asarray(v) for p, v in jax.tree_util.tree_leaves_with_path(source)}
    report = {"copied": [], "partial": [], "fresh": []}

    def take(path, fresh):
        name = jax.tree_util.keystr(path)
        old = flat_source.get(name)
        fresh = np.asarray(fresh)
        if old is None or old.ndim != fresh.ndim:
            report["fresh"].append(name)
            return fresh
        if old.shape == fresh.shape:
            report["copied"].append(name)
            return old.astype(fresh.dtype)
        block = tuple(slice(0, min(a, b)) for a, b in zip(old.shape, fresh.shape, strict=True))
        out = np.zeros_like(fresh) if zero_new else fresh.copy()
        out[block] = old[block]
        report["partial"].append(name)
        return out

    return jax.tree_util.tree_map_with_path(take, target), report
