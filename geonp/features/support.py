"""Support: how much of the field one observation averages, relative to the cells predicted.

A raster cell's value is the mean of the field over the cell. When the context
and the targets are cells of the same size (gap filling) or points (stations),
nothing distinguishes them and the support is 0. When the context is a coarser
grid than the targets (downscaling: 1 degree means to 0.25 degree cells), each
context value averages ``r x r`` target cells, and a model told so can predict
the fine detail the block mean has smoothed away instead of copying it. The
feature a model with ``BSATNPConfig(support=True)`` reads in each context token
(never in the attention bias) is

    support = log2(r),   r = sqrt(context cell area / target cell area)   (0 when r <= 1)

which is translation and scale invariant (a ratio), 1 for 2x downscaling and 2
for 4x. Training tasks carry it under the metadata key :data:`SUPPORT`
(``[B, Nc, 1]``, ``geonp.tasks.fields`` coarse tasks), prediction from the
grids' coordinate spacings (:func:`support_between`).
"""

from __future__ import annotations

import numpy as np

SUPPORT = "support"  # metadata key: [B, Nc, 1] log2 of each context point's footprint side, in target cells
TRAINED_UP_TO = 2.0  # log2 of the largest block factor in the field prior (4x); beyond it the model extrapolates
_SAME = 0.05  # ratios within 2**0.05 (3.5%) of 1 count as the same cells


def cell_size(table) -> float | None:
    """Geometric mean of a gridded table's two coordinate spacings (its units), or None for scattered points."""
    layout = table.layout
    if not {layout.x, layout.y} <= set(table.point_dims):
        return None
    spacings = []
    for name in (layout.x, layout.y):
        values = np.asarray(table.template[name].values, np.float64)
        if values.size < 2:
            return None
        spacings.append(float(np.median(np.abs(np.diff(values)))))
    if min(spacings) <= 0:
        return None
    return float(np.sqrt(spacings[0] * spacings[1]))


def support_between(context_table, target_table) -> float:
    """``log2`` of the context cells' side in target cells; 0 unless both are grids and the context is coarser."""
    coarse, fine = cell_size(context_table), cell_size(target_table)
    if coarse is None or fine is None:
        return 0.0
    value = float(np.log2(coarse / fine))
    return value if value > _SAME else 0.0


def context_support(meta_ctx, reference):
    """``[B, Nc, 1]`` support of each context point: ``meta_ctx[SUPPORT]``, or zeros shaped like ``reference``."""
    if SUPPORT in meta_ctx:
        return meta_ctx[SUPPORT]
    return reference[..., :1] * 0.0
