"""Task reuse: each drawn batch serves several steps through exact symmetries of the prior."""

import dataclasses

import jax
import numpy as np
import pytest

from geonp.errors import ConfigError
from geonp.tasks.gp import GPTaskSampler
from geonp.tasks.patches import PatchSampler
from geonp.tasks.prevalence import BinomialSurveySampler
from geonp.training.reuse import StepBatches, apply_element, group_elements, resolve_reuse

SAMPLER = GPTaskSampler(num_context=(6, 10), num_target=5)


def _pairwise(x):
    return np.linalg.norm(x[:, :, None] - x[:, None, :], axis=-1)


def test_each_reused_step_is_a_distinct_symmetric_view_of_one_drawn_batch():
    key = jax.random.PRNGKey(1)
    batches = StepBatches(SAMPLER, 3, key, reuse=4)
    drawn = SAMPLER.sample(jax.random.fold_in(key, 0), 3)[0]
    views = [batches(t) for t in range(4)]
    seen = set()
    for view in views:
        # a rotation / reflection: distances between points kept, values kept or negated as a whole
        for old, new in ((drawn.meta_ctx["space"], view.meta_ctx["space"]),
                         (drawn.meta_tgt["space"], view.meta_tgt["space"])):
            np.testing.assert_allclose(_pairwise(np.asarray(new)), _pairwise(np.asarray(old)), atol=1e-5)
        sign = float(np.sign(np.sum(np.asarray(view.y_ctx) * np.asarray(drawn.y_ctx))))
        np.testing.assert_allclose(np.asarray(view.y_tgt), sign * np.asarray(drawn.y_tgt))
        np.testing.assert_array_equal(np.asarray(view.mask_ctx), np.asarray(drawn.mask_ctx))
        seen.add((np.asarray(view.meta_tgt["space"]).round(5).tobytes(), sign))
    assert len(seen) == 4  # four different views
    # step 4 draws a new batch
    fresh = SAMPLER.sample(jax.random.fold_in(key, 1), 3)[0]
    np.testing.assert_allclose(_pairwise(np.asarray(batches(4).meta_ctx["space"])),
                               _pairwise(np.asarray(fresh.meta_ctx["space"])), atol=1e-5)


def test_the_batch_of_a_step_does_not_depend_on_the_steps_before_it():
    key = jax.random.PRNGKey(2)
    in_order = StepBatches(SAMPLER, 2, key, reuse=3)
    straight = [in_order(t) for t in range(7)]
    resumed = StepBatches(SAMPLER, 2, key, reuse=3)  # as after a restart at step 5
    for t in (5, 6):
        for a, b in zip(jax.tree_util.tree_leaves(resumed(t)), jax.tree_util.tree_leaves(straight[t]), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_without_reuse_the_batch_of_step_t_is_the_sampler_draw_of_t():
    key = jax.random.PRNGKey(3)
    got = StepBatches(SAMPLER, 2, key)(5)
    expected = SAMPLER.sample(jax.random.fold_in(key, 5), 2)[0]
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_counts_are_never_negated():
    elements = group_elements(BinomialSurveySampler.symmetries)
    assert len(elements) == 8 and all(sign == 1.0 for _, sign in elements)
    batch = BinomialSurveySampler().sample(jax.random.PRNGKey(0), 2)[0]
    for element in elements:
        assert float(np.min(np.asarray(apply_element(batch, element).y_ctx))) >= 0.0


def test_reuse_is_opt_in_and_refused_for_priors_without_symmetries():
    assert resolve_reuse(None, SAMPLER) == 1 and resolve_reuse(4, SAMPLER) == 4
    patches = PatchSampler.__new__(PatchSampler)  # a user's own data: no symmetry is assumed
    assert resolve_reuse(None, patches) == 1
    with pytest.raises(ConfigError, match="declares none"):
        resolve_reuse(2, patches)
    with pytest.raises(ConfigError, match=">= 1"):
        resolve_reuse(0, SAMPLER)
    with pytest.raises(ConfigError, match="at most 16"):
        StepBatches(SAMPLER, 2, jax.random.PRNGKey(0), reuse=17)


def test_coordinates_other_than_planar_are_refused():
    batch = SAMPLER.sample(jax.random.PRNGKey(0), 1)[0]
    spatiotemporal = batch._replace(meta_ctx={"space": np.zeros((1, 10, 3), np.float32)})
    with pytest.raises(ConfigError, match="2-D coordinate groups"):
        apply_element(spatiotemporal, (1, 1.0))
    assert dataclasses.is_dataclass(SAMPLER)
