"""The held-out design (geonp.calibrate.held_out): cells drawn to lie as far from the data as the targets do."""

import numpy as np

from geonp.calibrate import held_out


def test_matched_selection_follows_the_targets_distances_over_their_range():
    rng = np.random.default_rng(0)
    candidates = rng.exponential(2.0, 20_000)  # most held-out cells at a gap's rim ...
    targets = rng.uniform(0.0, 12.0, 5_000)  # ... the real targets deep in large gaps as often as near them
    chosen = held_out.matched_selection(candidates, rng.permutation(candidates.size), targets, 500)
    picked = candidates[chosen]
    assert abs(picked.size - 500) <= held_out.MATCH_BINS
    for q in (0.1, 0.5, 0.9):  # the same distribution, where the candidates plain would be far off
        assert abs(np.quantile(picked, q) - np.quantile(targets, q)) < 0.6
    assert np.quantile(candidates, 0.5) < 0.5 * np.quantile(targets, 0.5)
    assert np.unique(chosen).size == chosen.size


def test_matched_selection_takes_cells_in_priority_order_within_a_bin():
    distance = np.zeros(100)
    priority = np.arange(100)[::-1]  # the last cell first
    chosen = held_out.matched_selection(distance, priority, np.zeros(10), 5)
    assert chosen.tolist() == [95, 96, 97, 98, 99]
    assert held_out.matched_selection(distance, priority, None, 3).tolist() == [97, 98, 99]  # no targets: by priority


def test_feasible_count_keeps_the_proportions_where_candidates_allow_and_never_starves():
    rng = np.random.default_rng(1)
    targets = rng.uniform(0.0, 10.0, 1_000)
    even = rng.uniform(0.0, 10.0, 5_000)
    assert held_out.feasible_count(even, targets, 1_000) == 1_000  # enough everywhere: the limit
    shallow = np.concatenate([rng.uniform(0.0, 5.0, 4_000), rng.uniform(5.0, 10.0, 400)])
    count = held_out.feasible_count(shallow, targets, 10_000)
    assert 2_200 <= count <= 4_400  # the deep half limits the count, but never below half the candidates
    assert held_out.feasible_count(shallow, None, 10_000) == shallow.size


def test_report_gives_both_distributions_the_reach_and_the_targets_beyond_it():
    design = held_out.report(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 5.0, 9.0]), "the data's missing cells",
                             "km")
    assert design["reach"] == 3.0 and design["targets_beyond_reach"] == 0.5
    assert design["held_out_distance"]["max"] == 3.0 and design["target_distance"]["max"] == 9.0
    assert "cannot host" in design["note"]
    assert "note" not in held_out.report(np.array([1.0, 9.0]), np.array([1.0, 2.0]), "x", "km")


def test_distances_to_remaining_are_to_the_observations_left_after_hiding():
    observed = np.ones((10, 10), bool)
    hidden = np.zeros((10, 10), bool)
    hidden[3:8, 3:8] = True  # a 5 x 5 gap
    yy, xx = np.meshgrid(np.arange(10.0), np.arange(10.0), indexing="ij")
    points = np.column_stack([xx.ravel(), yy.ravel()])
    distance = held_out.distances_to_remaining(points, observed, hidden).reshape(5, 5)
    assert distance[2, 2] == 3.0 and distance[0, 0] == 1.0  # the centre, three cells in; the rim, one
