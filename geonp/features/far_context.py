"""Far context: a thinned sample of observations beyond the nearest ones, drawn the same way in training
and at prediction.

A cell of targets conditions on its nearest observations (as many as the model
was trained with, :func:`geonp.predict.context.neighbourhoods`); inside a gap wider than
their reach, that is the gap's rim and nothing of the field's larger-scale
structure beyond it. A model trained with far context (``far`` > 0 in its
scaling) gives ``far`` of its slots to farther observations:

    m positions at distances  d ~ LogU(r, FAR_REACH r)  in uniformly random directions
    from the cell's centre (r: the reach of the nearest set), each snapped to its
    nearest observation; snaps that land in the nearest set or twice on one
    observation are dropped (so at most m are added)

Log-uniform distances thin the far field like 1 / d^2: as many points between r
and 2r as between 2r and 4r. Coordinates are whatever the caller's k-d tree
holds: model units (training tasks), km in 3-D on the sphere or CRS units
(prediction); on the sphere directions are drawn in the tangent plane.
"""

from __future__ import annotations

import numpy as np

FAR_REACH = 4.0  # the farthest point drawn, in units of the nearest set's reach
FAR_FRACTION = 0.125  # of a full context (512) given to far points by models trained with them: 64


def far_indices(tree, centre, reach: float, count: int, rng: np.random.Generator, exclude) -> np.ndarray:
    """Indices (into the tree's points) of at most ``count`` far observations, none of ``exclude``."""
    if count <= 0 or reach <= 0:
        return np.zeros(0, np.int64)
    centre = np.asarray(centre, np.float64)
    dim = centre.shape[-1]
    directions = rng.standard_normal((count, dim))
    if dim == 3:  # points on a sphere (km): directions in the tangent plane at the centre
        normal = centre / max(np.linalg.norm(centre), 1e-12)
        directions -= np.outer(directions @ normal, normal)
    directions /= np.maximum(np.linalg.norm(directions, axis=1, keepdims=True), 1e-12)
    distances = reach * np.exp(rng.uniform(0.0, np.log(FAR_REACH), count))
    _, snapped = tree.query(centre + directions * distances[:, None], k=1)
    snapped = np.unique(np.atleast_1d(snapped))
    return snapped[~np.isin(snapped, exclude)].astype(np.int64)
