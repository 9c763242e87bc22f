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


def test_validation_at_start_scores_the_starting_parameters_on_the_same_tasks():
    kw = dict(steps=3, batch_size=4, validate_every=3, validation_batches=1, progress=False, seed=3,
              validate_at_start=True)
    # steps too small to move anything: step 3 scores what step 0 scored, so both used the same tasks and params
    still = train(TINY, SAMPLER, TrainConfig(learning_rate=1e-12, **kw))
    start, after = still.history[0], still.history[-1]
    assert start["step"] == 0 and after["step"] == 3
    assert abs(start["val_nll"] - after["val_nll"]) < 1e-5
    moved = train(TINY, SAMPLER, TrainConfig(learning_rate=3e-2, **kw))
    assert moved.history[0]["val_nll"] == start["val_nll"]  # the same starting point, scored the same way
    assert abs(moved.history[-1]["val_nll"] - start["val_nll"]) > 1e-4


def test_pretrain_records_each_session_and_its_starting_score(tmp_path):
    from geonp.apps.flows import pretrain
    from geonp.estimator.releases import load_model

    tiny = {k: getattr(TINY, k) for k in ("num_blocks", "width", "num_heads", "head_dim", "ff_dim", "q_block",
                                          "k_block")}
    # the previous test's tasks, steps and rate: the same compiled step
    options = {"num_context": [32, 64], "num_target": 32}
    first = pretrain.run(tmp_path, tasks="gp2d", output="one", task_options=options, model=tiny, steps=3,
                         batch_size=4, learning_rate=3e-2, progress=False)
    assert first["total_steps"] == 3 and first["start_val_nll"] is not None
    pretrain.run(tmp_path, tasks="gp2d", output="two", task_options=options, init_from=str(tmp_path / "one"),
                 steps=3, batch_size=4, learning_rate=3e-2, seed=2, progress=False)
    _, _, meta = load_model(tmp_path / "two")
    assert meta["total_steps"] == 6 and [s["steps"] for s in meta["sessions"]] == [3, 3]
    # each session says where it started, at what rate and batch size, so a schedule that sets a model back shows
    assert meta["sessions"][1]["learning_rate"] == 3e-2 and meta["sessions"][1]["start_val_nll"] is not None
    assert meta["sessions"][1]["batch_size"] == 4


def test_gap_tasks_hide_a_disc_whose_ring_is_the_context():
    from geonp.tasks.patches import PatchSampler

    rng = np.random.default_rng(0)
    points = rng.uniform(-2, 2, size=(400, 2))
    sampler = PatchSampler([points], [points], [None], [np.zeros((400, 0))], [rng.normal(size=(400, 1))],
                           window_points=100, max_context=100, num_target=100, gap_share=1.0)
    batch, _ = sampler.sample(jax.random.PRNGKey(0), 4)
    for b in range(4):
        ctx = np.asarray(batch.meta_ctx["space"][b])[np.asarray(batch.mask_ctx[b])]
        tgt = np.asarray(batch.meta_tgt["space"][b])[np.asarray(batch.mask_tgt[b])]
        # the window's centre is a target, and every target lies nearer to it than any context point
        ringed = [np.linalg.norm(tgt - c, axis=1).max() <= np.linalg.norm(ctx - c, axis=1).min() for c in tgt]
        assert any(ringed)
        assert len(tgt) >= 1 and len(ctx) >= 1
