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


def embedding_kernel_path(params, width: int) -> str:
    """Key path of the token embedding's first kernel (``[width, D]``: row i reads token column i)."""
    paths = [jax.tree_util.keystr(p) for p, v in jax.tree_util.tree_leaves_with_path(params)
             if np.ndim(v) == 2 and np.shape(v)[0] == width and "kernel" in jax.tree_util.keystr(p)]
    first = [p for p in paths if "Dense_0" in p or "layers_0" in p]
    if len(first) != 1:
        raise ValueError(f"cannot tell the token embedding's kernel among {paths} (token width {width}).")
    return first[0]


def with_token_layout(params, source_config, target_config):
    """``params`` of ``source_config`` with the embedding's input rows moved to ``target_config``'s token layout
    (:func:`geonp.nn.config.token_layout`): every input both have keeps its rows wherever it now sits, and new
    inputs (or new columns of one) get zero rows, so the model computes what the source did. Then
    :func:`transplant` copies the result whole."""
    from geonp.nn.config import token_layout, token_width

    old, new = token_layout(source_config), token_layout(target_config)
    path = embedding_kernel_path(params, token_width(source_config))

    def move(key_path, leaf):
        if jax.tree_util.keystr(key_path) != path:
            return leaf
        leaf = np.asarray(leaf)
        out = np.zeros((token_width(target_config),) + leaf.shape[1:], leaf.dtype)
        for name, rows in old.items():
            if name in new:
                width = min(rows.stop - rows.start, new[name].stop - new[name].start)
                out[new[name].start:new[name].start + width] = leaf[rows.start:rows.start + width]
        return out

    return jax.tree_util.tree_map_with_path(move, params)
