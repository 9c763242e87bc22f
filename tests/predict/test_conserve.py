"""Conservative downscaling: the nesting of grids and the correction that keeps every coarse cell's mean."""

import numpy as np
import pytest

from geonp.predict import conserve as conservation


def _grids(factor=4, ny=40, nx=60):
    fine_y, fine_x = 50.05 + 0.1 * np.arange(ny), -5.05 + 0.1 * np.arange(nx)
    return fine_y, fine_x, fine_y.reshape(-1, factor).mean(1), fine_x.reshape(-1, factor).mean(1)


def test_nesting_finds_each_target_cell_its_coarse_cell_in_either_order():
    fy, fx, cy, cx = _grids()
    nest = conservation.nesting(cy, cx, fy, fx)
    assert nest.factor == (4, 4)
    np.testing.assert_array_equal(nest.cell[0], np.repeat(np.arange(10), 4))
    assert nest.complete[0].all() and nest.complete[1].all()
    flipped = conservation.nesting(cy, cx, fy[::-1], fx)
    np.testing.assert_array_equal(flipped.cell[0], np.repeat(np.arange(10), 4)[::-1])
    part = conservation.nesting(cy, cx, fy[2:], fx)  # the first coarse row is covered by half
    assert not part.complete[0][0] and part.complete[0][1:].all()


@pytest.mark.parametrize("fine, reason", [
    (lambda fy: fy + 0.03, "edges"),  # shifted by less than a cell: the edges do not line up
    (lambda fy: 50.0 + 0.15 * np.arange(20), "whole number"),  # 0.4 / 0.15
    (lambda fy: np.r_[fy[:10], fy[10:] + 0.5], "regularly spaced"),
])
def test_grids_that_do_not_nest_say_why(fine, reason):
    fy, fx, cy, cx = _grids()
    assert reason in conservation.nesting(cy, cx, fine(fy), fx)
    assert "not finer" in conservation.nesting(cy, cx, cy, cx)


def _truth(fy, fx, seed=0):
    y, x = np.meshgrid(fy, fx, indexing="ij")
    rng = np.random.default_rng(seed)
    return np.sin(3 * y) + np.cos(2.1 * x) + 0.3 * np.sin(7 * x + 5 * y) + 0.05 * rng.standard_normal(y.shape)


def _block_means(field, factor, weights):
    ny, nx = field.shape
    shape = (ny // factor, factor, nx // factor, factor)
    return (field * weights).reshape(shape).sum((1, 3)) / weights.reshape(shape).sum((1, 3))


@pytest.mark.parametrize("geographic", [True, False])
def test_the_correction_keeps_every_cell_mean_exactly_and_lowers_the_error(geographic):
    fy, fx, cy, cx = _grids()
    truth = _truth(fy, fx)
    weights = conservation.area_weights(fy, fx.size, geographic)
    values = _block_means(truth, 4, weights)
    nest = conservation.nesting(cy, cx, fy, fx)
    # a prediction off by a smooth bias and by detail the coarse cells cannot see
    y, x = np.meshgrid(fy, fx, indexing="ij")
    guess = truth + 0.4 * np.sin(0.8 * x) + 0.3 + 0.2 * np.cos(9 * y)
    kept = guess - conservation.correction(guess, values, weights, nest)
    np.testing.assert_allclose(_block_means(kept, 4, weights), values, atol=1e-10)
    rmse = lambda a: float(np.sqrt(np.mean((a - truth) ** 2)))  # noqa: E731
    assert rmse(kept) < 0.5 * rmse(guess)
    # the correction is smooth: no step at the cells' edges larger than the field's own steps
    assert np.abs(np.diff(kept, axis=1)).max() < 1.5 * np.abs(np.diff(truth, axis=1)).max()


def test_missing_and_partly_covered_cells_are_not_constrained():
    fy, fx, cy, cx = _grids()
    truth = _truth(fy, fx)
    weights = conservation.area_weights(fy, fx.size, False)
    values = _block_means(truth, 4, weights)
    values[3, 5] = np.nan  # a missing coarse cell (the sea, a gap)
    guess = truth + 1.0
    kept = guess - conservation.correction(guess, values, weights, conservation.nesting(cy, cx, fy, fx))
    means = _block_means(kept, 4, weights)
    finite = np.isfinite(values)
    np.testing.assert_allclose(means[finite], values[finite], atol=1e-10)
    assert np.isfinite(kept).all()  # the missing cell follows its neighbours' correction
    assert abs(means[3, 5] - _block_means(truth, 4, weights)[3, 5]) < 0.2
    # a target grid that starts half way into the first coarse row leaves that row free
    part = conservation.nesting(cy, cx, fy[2:], fx)
    kept = guess[2:] - conservation.correction(guess[2:], _block_means(truth, 4, weights), weights[2:], part)
    assert np.isfinite(kept).all()
