"""Prediction's cells: each conditioned on the observations nearest to it, larger only where that saves calls."""

import numpy as np
import pytest

from geonp.predict import context as tiling
from geonp.predict.context import ContextSet, neighbourhoods


def _layout(hidden_fraction: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(np.arange(120.0), np.arange(120.0), indexing="ij"), -1).reshape(-1, 2)
    hidden = rng.random(len(grid)) < hidden_fraction
    points, targets = grid[~hidden], grid[hidden]
    context = ContextSet(embedding=[points], space=[points], time=[None], hours=[None],
                         covariates=[np.zeros((len(points), 0))], values=[np.zeros((len(points), 1))])
    return context, points, targets


@pytest.mark.parametrize("hidden_fraction", [0.05, 0.9])
def test_cells_grow_only_where_they_would_not_fill_a_call_and_stay_inside_their_context(monkeypatch,
                                                                                        hidden_fraction):
    context, points, targets = _layout(hidden_fraction)
    groups = neighbourhoods(targets, context, 0, 512)
    assert np.array_equal(np.sort(np.concatenate([t for t, _ in groups])), np.arange(len(targets)))
    for t_idx, c_idx in groups:  # every target lies within the reach of its cell's context, as in training
        centre = targets[t_idx].mean(axis=0)
        reach = np.linalg.norm(points[c_idx] - centre, axis=1).max()
        assert np.linalg.norm(targets[t_idx] - centre, axis=1).max() < reach
        assert c_idx.size <= 512 + 4 * t_idx.size
    monkeypatch.setattr(tiling, "SPARSE_CELL_TARGETS", 0)  # cells of side r everywhere
    side_r = neighbourhoods(targets, context, 0, 512)
    per_cell = len(targets) / len(side_r)
    if hidden_fraction < 0.5:  # dense data, few targets a cell: sqrt(2) r cells, about half the model calls
        assert per_cell < tiling.MIN_TARGETS and len(groups) < 0.7 * len(side_r)
    else:  # sparse data: cells of side r already fill a call, and stay as they were
        assert per_cell >= tiling.MIN_TARGETS and len(groups) == len(side_r)
