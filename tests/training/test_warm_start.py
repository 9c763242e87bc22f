"""Warm starts: a release given new token inputs anywhere in the token computes what it did before."""

import numpy as np

from geonp.nn.models import BSATNPConfig, initial_params
from geonp.predict.network import predict_raw
from geonp.tasks.fields import FieldTaskSampler
from geonp.training.warm_start import transplant, with_token_layout

SMALL = {"num_blocks": 1, "width": 16, "num_heads": 2, "head_dim": 8, "ff_dim": 32, "attention": "dense"}


def _init(config, batch):
    return initial_params(config, 1)


def test_covariates_inserted_before_support_leave_the_model_unchanged():
    changes = {"x_dim": 8, "covariate_slots": 4, "covariate_trend": True}
    source = BSATNPConfig(support=True, **SMALL)
    target = BSATNPConfig(support=True, **SMALL, **changes)
    coarse = {"num_context": 64, "min_context": 16, "num_target": 16, "layouts": ("coarse",), "layout_weights": (1,)}
    plain, _ = FieldTaskSampler(**coarse).sample(3, 2)  # block means: the support column is in use
    slotted, _ = FieldTaskSampler(covariate_slots=4, **coarse).sample(3, 2)
    assert np.asarray(plain.meta_ctx["support"]).max() > 0
    params = _init(source, plain)
    moved = with_token_layout(params, source, target)
    extended, report = transplant(moved, _init(target, slotted), zero_new=True)
    assert not report["partial"] and not report["fresh"]
    before = np.asarray(predict_raw(source, params, plain))
    after = np.asarray(predict_raw(target, extended, slotted._replace(x_ctx=slotted.x_ctx * 0 + 3.0)))
    # same tasks (the covariates only add columns), any covariate values: the zero rows ignore them
    np.testing.assert_allclose(after, np.asarray(predict_raw(target, extended, slotted)), atol=1e-6)
    assert np.abs(before).max() > 0
    plain_as_slotted = plain._replace(x_ctx=slotted.x_ctx, x_tgt=slotted.x_tgt)
    np.testing.assert_allclose(np.asarray(predict_raw(target, extended, plain_as_slotted)), before, atol=1e-5)
