"""Bad input reaches the user as a typed, explanatory error, never as a jax traceback or NaN."""

import jax
import numpy as np
import pytest

from geonp.errors import (
    EmptyContextError,
    GeonpError,
    InputShapeError,
    MetadataMismatchError,
    NonFiniteInputError,
)
from geonp.nn.models import BSATNPConfig, initial_params
from geonp.predict.network import predict
from geonp.tasks.gp import GPTaskSampler

SMALL = BSATNPConfig(num_blocks=1, width=16, num_heads=2, head_dim=8, ff_dim=32)


@pytest.fixture(scope="module")
def setup():
    batch, _ = GPTaskSampler(num_context=(10, 20), num_target=8).sample(jax.random.PRNGKey(0), 2)
    batch = jax.tree_util.tree_map(np.asarray, batch)
    params = initial_params(SMALL, 0)
    return batch, params


def _set(array, index, value):
    array = np.array(array, copy=True)
    array[index] = value
    return array


def test_valid_batch_predicts(setup):
    batch, params = setup
    out = predict(SMALL, params, batch)
    assert out["mean"].shape == (2, 8, 1) and np.all(out["std"] > 0)


def test_nan_outside_the_mask_is_fine_inside_is_an_error(setup):
    batch, params = setup
    padded = np.flatnonzero(~batch.mask_ctx[0])
    if len(padded):
        ok = batch._replace(y_ctx=_set(batch.y_ctx, (0, padded[0]), np.nan),
                            meta_ctx={"space": _set(batch.meta_ctx["space"], (0, padded[0]), np.nan)})
        np.testing.assert_allclose(predict(SMALL, params, ok)["mean"], predict(SMALL, params, batch)["mean"],
                                   atol=1e-5)
    with pytest.raises(NonFiniteInputError, match="y_ctx contains 1 NaN"):
        predict(SMALL, params, batch._replace(y_ctx=_set(batch.y_ctx, (0, 0, 0), np.nan)))
    with pytest.raises(NonFiniteInputError, match="target coordinates 'space'"):
        predict(SMALL, params, batch._replace(meta_tgt={"space": _set(batch.meta_tgt["space"], (1, 3, 0), np.inf)}))


def test_empty_context(setup):
    batch, params = setup
    with pytest.raises(EmptyContextError, match=r"task\(s\) \[1\]"):
        predict(SMALL, params, batch._replace(mask_ctx=_set(batch.mask_ctx, (1,), False)))


def test_wrong_shapes(setup):
    batch, params = setup
    with pytest.raises(InputShapeError, match="trailing axis"):
        predict(SMALL, params, batch._replace(y_ctx=batch.y_ctx[..., 0]))
    with pytest.raises(InputShapeError, match="mask_ctx"):
        predict(SMALL, params, batch._replace(mask_ctx=batch.mask_ctx[:, :-1]))


def test_mismatched_metadata(setup):
    batch, params = setup
    with pytest.raises(MetadataMismatchError, match="lacks coordinate group"):
        predict(SMALL, params, batch._replace(meta_ctx={"xy": batch.meta_ctx["space"]}))
    with pytest.raises(MetadataMismatchError, match="expected"):
        predict(SMALL, params, batch._replace(meta_tgt={"space": batch.meta_tgt["space"][..., :1]}))


def test_every_error_is_a_geonp_error():
    for cls in (EmptyContextError, InputShapeError, MetadataMismatchError, NonFiniteInputError):
        assert issubclass(cls, GeonpError)


def test_bucketed_padding_changes_nothing(setup):
    from geonp.predict.network import bucket_size, pad_batch

    batch, params = setup
    assert [bucket_size(n) for n in (1, 17, 300, 2048, 2049, 5000)] == [16, 32, 512, 2048, 3072, 5120]
    padded = pad_batch(batch)
    assert padded.y_ctx.shape[1] == bucket_size(batch.y_ctx.shape[1])
    assert padded.mask_ctx.sum() == batch.mask_ctx.sum()
    # a prediction on fewer targets equals the matching rows of a prediction on all of them
    few = batch._replace(x_tgt=batch.x_tgt[:, :3], y_tgt=batch.y_tgt[:, :3],
                         meta_tgt={"space": batch.meta_tgt["space"][:, :3]}, mask_tgt=batch.mask_tgt[:, :3])
    np.testing.assert_allclose(predict(SMALL, params, few)["mean"], predict(SMALL, params, batch)["mean"][:, :3],
                               atol=1e-5)
