"""Training: it learns, it is reproducible, and a resumed run equals an uninterrupted one."""

import jax
import numpy as np

from geonp.nn.models import BSATNPConfig
from geonp.tasks.gp import GPTaskSampler
from geonp.training.loop import TrainConfig, train
from geonp.training.optim import make_optimizer

TINY = BSATNPConfig(num_blocks=2, width=32, num_heads=2, head_dim=16, ff_dim=64, q_block=64, k_block=64)
SAMPLER = GPTaskSampler(num_context=(32, 64), num_target=32)


def _leaves_equal(a, b):
    return all(np.array_equal(np.asarray(x), np.asarray(y))
               for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True))


def test_loss_decreases():
    result = train(TINY, SAMPLER, TrainConfig(steps=120, batch_size=8, learning_rate=2e-3, validate_every=60,
                                              validation_batches=2, progress=False))
    val = [h["val_nll"] for h in result.history if "val_nll" in h]
    assert result.step == 120 and len(val) == 2
    assert result.history[-1]["train_nll"] < result.history[0]["train_nll"] - 0.1


def test_resume_equals_uninterrupted_run(tmp_path):
    kw = dict(batch_size=4, learning_rate=1e-3, validate_every=1000, validation_batches=1, progress=False, seed=7)
    straight = train(TINY, SAMPLER, TrainConfig(steps=6, **kw))
    # the same 6-step schedule, interrupted after its first step (time budget 0), then resumed
    ckpt = str(tmp_path / "ckpt")
    first = train(TINY, SAMPLER, TrainConfig(steps=6, checkpoint_dir=ckpt, checkpoint_every=3, **kw,
                                             time_budget=0.0))
    assert first.step == 1
    second = train(TINY, SAMPLER, TrainConfig(steps=6, checkpoint_dir=ckpt, **kw))
    assert second.step == 6
    assert _leaves_equal(second.params, straight.params)
    # the resumed run carries on the first one's records and clock
    assert [r["step"] for r in second.history] == [1, 6] and second.seconds >= first.seconds


def test_schedule_warms_up_then_decays():
    opt = make_optimizer(steps=100, learning_rate=1e-3, warmup_steps=10)
    params = {"w": np.ones(3, np.float32)}
    state = opt.init(params)
    lrs = []
    for _ in range(100):
        updates, state = opt.update({"w": np.ones(3, np.float32)}, state, params)
        lrs.append(float(-updates["w"][0]))
    assert lrs[0] < lrs[9] and lrs[99] < lrs[20]
