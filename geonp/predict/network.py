"""Prediction with a trained BSA-TNP on a :class:`~geonp.tasks.batch.Batch`, with input checks."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from geonp.nn.attention import block_size_for, padded_size
from geonp.nn.models import BSATNPConfig, build_model
from geonp.tasks.batch import Batch, validate_batch


@functools.lru_cache(maxsize=16)
def _compiled_apply(config: BSATNPConfig):
    return jax.jit(build_model(config).apply)


def sanitize_batch(batch: Batch) -> Batch:
    """Zero every masked (padding) entry, so NaN placeholders there cannot reach the network."""

    def clean(array, mask):
        array = np.asarray(array)
        keep = np.asarray(mask, bool).reshape(mask.shape + (1,) * (array.ndim - 2))
        return np.where(keep, array, 0).astype(array.dtype)

    clean_meta = lambda meta, mask: {k: clean(v, mask) for k, v in meta.items()}  # noqa: E731
    return batch._replace(
        x_ctx=clean(batch.x_ctx, batch.mask_ctx), y_ctx=clean(batch.y_ctx, batch.mask_ctx),
        meta_ctx=clean_meta(batch.meta_ctx, batch.mask_ctx),
        x_tgt=clean(batch.x_tgt, batch.mask_tgt), y_tgt=clean(batch.y_tgt, batch.mask_tgt),
        meta_tgt=clean_meta(batch.meta_tgt, batch.mask_tgt),
    )


def bucket_size(n: int) -> int:
    """Padded size for n points: a power of two up to 2048, then a multiple of 1024.

    Every distinct input shape costs a jit compilation; bucketing bounds how
    many a stream of differently sized tasks can trigger. Same rule as the
    attention's own tiling, with tiles of 1024.
    """
    return padded_size(n, block_size_for(n, 1024))


def pad_batch(batch: Batch) -> Batch:
    """Pad context and target sets to :func:`bucket_size` with masked points."""

    def pad(array, n):
        array = np.asarray(array)
        widths = [(0, 0)] * array.ndim
        widths[1] = (0, n - array.shape[1])
        return np.pad(array, widths, mode="edge" if array.shape[1] else "constant")

    def pad_mask(mask, n):
        return pad(np.asarray(mask, bool), n) & (np.arange(n) < np.asarray(mask).shape[1])

    nc, nt = bucket_size(batch.y_ctx.shape[1]), bucket_size(batch.x_tgt.shape[1])
    return Batch(
        x_ctx=pad(batch.x_ctx, nc), y_ctx=pad(batch.y_ctx, nc),
        meta_ctx={k: pad(v, nc) for k, v in batch.meta_ctx.items()}, mask_ctx=pad_mask(batch.mask_ctx, nc),
        x_tgt=pad(batch.x_tgt, nt), y_tgt=pad(batch.y_tgt, nt),
        meta_tgt={k: pad(v, nt) for k, v in batch.meta_tgt.items()}, mask_tgt=pad_mask(batch.mask_tgt, nt),
    )


def predict_raw(config: BSATNPConfig, params, batch: Batch, validate: bool = True, trim: bool = True) -> np.ndarray:
    """Raw likelihood parameters ``[B, Nt, num_outputs * y_dim]`` (numpy); checks the batch first.

    Context and target sets are padded to bucket sizes, so tasks of 300 and of
    400 points share one compiled program. The padding targets are cut off on the
    host (a jax slice would compile once per distinct ``Nt``); ``trim=False``
    keeps them, ``[B, bucket_size(Nt), ...]``, for callers that go on in jax.
    """
    if validate:
        validate_batch(batch, config.groups, config.x_dim, config.y_columns)
        batch = sanitize_batch(batch)
    n_tgt = np.asarray(batch.x_tgt).shape[1]
    batch = pad_batch(batch)
    as_f32 = lambda x: jnp.asarray(np.asarray(x, np.float32))  # noqa: E731  (cast on the host: no compile per shape)
    inputs = (
        as_f32(batch.x_ctx), as_f32(batch.y_ctx), jax.tree_util.tree_map(as_f32, batch.meta_ctx),
        jnp.asarray(batch.mask_ctx, bool), as_f32(batch.x_tgt), jax.tree_util.tree_map(as_f32, batch.meta_tgt),
    )
    raw = np.asarray(_compiled_apply(config)(params, *inputs))
    return raw[:, :n_tgt] if trim else raw


def predict(config: BSATNPConfig, params, batch: Batch, validate: bool = True) -> dict:
    """Predictive summary at the targets (for a Gaussian head: ``mean`` and ``std``, ``[B, Nt, Dy]``)."""
    raw = predict_raw(config, params, batch, validate)
    return {k: np.asarray(v) for k, v in config.likelihood.predict(raw).items()}
