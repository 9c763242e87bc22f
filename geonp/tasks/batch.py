"""A batch of neural-process tasks, and the checks every batch passes before the model sees it."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from geonp.errors import (
    EmptyContextError,
    InputShapeError,
    MetadataMismatchError,
    NonFiniteInputError,
    describe_shape,
)


class Batch(NamedTuple):
    """Context and target sets of B tasks, padded to common sizes.

    x_ctx ``[B, Nc, Dx]`` covariates, y_ctx ``[B, Nc, Dy]`` observations,
    meta_ctx ``{group: [B, Nc, d]}`` coordinates (bias only), mask_ctx ``[B, Nc]``
    True where the context point is real; the same for targets (y_tgt may be
    zeros when unknown).
    """

    x_ctx: object
    y_ctx: object
    meta_ctx: dict
    mask_ctx: object
    x_tgt: object
    y_tgt: object
    meta_tgt: dict
    mask_tgt: object

    def model_inputs(self):
        return self.x_ctx, self.y_ctx, self.meta_ctx, self.mask_ctx, self.x_tgt, self.meta_tgt


def _finite_where(name, array, mask, fix):
    values = np.asarray(array)
    if mask is not None:
        m = np.asarray(mask).astype(bool)
        values = values[m]
    bad = ~np.isfinite(values)
    if bad.any():
        raise NonFiniteInputError(
            f"{name} contains {int(bad.sum())} NaN/inf value(s) at real (unmasked) points. {fix}"
        )


def validate_batch(batch: Batch, groups, x_dim: int, y_dim: int) -> None:
    """Raise a clear :class:`GeonpError` for a batch the model cannot use correctly.

    Checks ranks and sizes, that every coordinate group the model was built
    with is present with the right number of columns, that each task has at
    least one context point, and that nothing the model reads is NaN or inf.
    """
    as_array = lambda a: a if isinstance(a, dict) else np.asarray(a)  # noqa: E731
    x_ctx, y_ctx, meta_ctx, mask_ctx, x_tgt, y_tgt, meta_tgt, mask_tgt = map(as_array, batch)
    if y_ctx.ndim != 3:
        raise InputShapeError(
            f"y_ctx must be [batch, points, {y_dim}], got {describe_shape(y_ctx)}. "
            "Add a trailing axis for a single variable: y[..., None]."
        )
    B, Nc, Dy = y_ctx.shape
    Nt = x_tgt.shape[1] if x_tgt.ndim == 3 else -1
    expected = {
        "x_ctx": (x_ctx, (B, Nc, x_dim)), "mask_ctx": (mask_ctx, (B, Nc)),
        "x_tgt": (x_tgt, (B, Nt, x_dim)), "mask_tgt": (mask_tgt, (B, Nt)),
        "y_tgt": (y_tgt, (B, Nt, y_dim)),
    }
    if Dy != y_dim:
        raise InputShapeError(f"y_ctx has {Dy} value column(s) but the model predicts {y_dim}.")
    for name, (arr, shape) in expected.items():
        if tuple(arr.shape) != shape:
            raise InputShapeError(
                f"{name} has shape {describe_shape(arr)}, expected [{', '.join(map(str, shape))}] "
                f"to match y_ctx {describe_shape(y_ctx)} and the model (x_dim={x_dim}, y_dim={y_dim})."
            )
    for side, meta, n in (("context", meta_ctx, Nc), ("target", meta_tgt, Nt)):
        missing = [g.name for g in groups if g.name not in meta]
        if missing:
            raise MetadataMismatchError(
                f"{side} metadata lacks coordinate group(s) {missing}; the model was built with "
                f"{[g.name for g in groups]}. Pass a dict with one [B, N, d] array per group."
            )
        for g in groups:
            arr = np.asarray(meta[g.name])
            if arr.shape != (B, n, g.dim):
                raise MetadataMismatchError(
                    f"{side} coordinates {g.name!r} have shape {describe_shape(arr)}, expected "
                    f"[{B}, {n}, {g.dim}] (one row of {g.dim} coordinate(s) per point)."
                )
    n_real = np.asarray(mask_ctx).astype(bool).sum(axis=1)
    if (n_real == 0).any():
        empty = np.flatnonzero(n_real == 0).tolist()
        raise EmptyContextError(
            f"task(s) {empty} have no observed context point; a neural process needs at least one "
            "observation to condition on. Drop those tasks or add observations."
        )
    fix_values = "Remove or mask those points (set mask False) before predicting."
    _finite_where("y_ctx", y_ctx, mask_ctx, fix_values)
    _finite_where("x_ctx", x_ctx, mask_ctx, fix_values)
    _finite_where("x_tgt", x_tgt, mask_tgt, fix_values)
    for g in groups:
        _finite_where(f"context coordinates {g.name!r}", meta_ctx[g.name], mask_ctx, fix_values)
        _finite_where(f"target coordinates {g.name!r}", meta_tgt[g.name], mask_tgt, fix_values)
