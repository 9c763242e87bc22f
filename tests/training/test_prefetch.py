"""Batches sampled ahead in a sampler process are exactly the batches sampled in line."""

import dataclasses

import jax
import numpy as np
import pytest

from geonp.tasks.gp import GPTaskSampler
from geonp.training.prefetch import Prefetcher
from geonp.training.reuse import StepBatches


@dataclasses.dataclass(frozen=True)
class BrokenSampler:
    """Fails at one step, to check that the error reaches the trainer."""

    fail_at: int

    def sample(self, key, batch_size):
        if int(jax.random.key_data(key)[-1]) == int(jax.random.key_data(jax.random.fold_in(jax.random.PRNGKey(0),
                                                                                         self.fail_at))[-1]):
            raise ValueError("a deliberately broken task")
        return GPTaskSampler(num_context=(4, 8), num_target=4).sample(key, batch_size)


def test_prefetched_batches_equal_in_line_batches_in_order():
    sampler = GPTaskSampler(num_context=(5, 20), num_target=7)
    key = jax.random.PRNGKey(3)
    with Prefetcher(StepBatches(sampler, 2, key), start=4, stop=9) as batches:
        got = list(batches)
    assert [step for step, _ in got] == [4, 5, 6, 7, 8]
    for step, batch in got:
        expected = sampler.sample(jax.random.fold_in(key, step), 2)[0]
        for a, b in zip(jax.tree_util.tree_leaves(batch), jax.tree_util.tree_leaves(expected), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))


def test_a_sampler_error_is_raised_at_its_step_with_its_message():
    with Prefetcher(StepBatches(BrokenSampler(fail_at=2), 1, jax.random.PRNGKey(0)), start=0, stop=5) as batches:
        assert next(batches)[0] == 0 and next(batches)[0] == 1
        with pytest.raises(RuntimeError, match="(?s)step 2 failed.*deliberately broken"):
            next(batches)


def test_several_sampler_processes_take_turns_and_keep_the_step_order():
    sampler = GPTaskSampler(num_context=(5, 20), num_target=7)
    key = jax.random.PRNGKey(5)
    with Prefetcher(StepBatches(sampler, 2, key), start=3, stop=8, workers=2) as batches:
        got = list(batches)
    assert [step for step, _ in got] == list(range(3, 8))
    for step, batch in got:
        expected = sampler.sample(jax.random.fold_in(key, step), 2)[0]
        for a, b in zip(jax.tree_util.tree_leaves(batch), jax.tree_util.tree_leaves(expected), strict=True):
            np.testing.assert_array_equal(a, np.asarray(b))


def test_sampler_workers_below_one_are_refused_with_the_default_named():
    from geonp.errors import ConfigError
    from geonp.training.loop import TrainConfig

    with pytest.raises(ConfigError, match="sampler_workers must be >= 1.*got 0"):
        TrainConfig(sampler_workers=0)
