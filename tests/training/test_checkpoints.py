"""Release and training-state files: round trips, corruption, version and model mismatch, atomicity."""

import json

import jax
import numpy as np
import pytest

from geonp.errors import CheckpointError
from geonp.estimator.releases import load_model, params_template, save_model
from geonp.nn.models import BSATNPConfig
from geonp.training import checkpoints

SMALL = BSATNPConfig(num_blocks=1, width=16, num_heads=2, head_dim=8, ff_dim=32)


@pytest.fixture
def saved(tmp_path):
    shapes = params_template(SMALL)
    params = jax.tree_util.tree_map(lambda s: np.random.default_rng(0).normal(size=s.shape).astype(s.dtype), shapes)
    path = save_model(tmp_path / "model", SMALL, params, {"trained_steps": 12})
    return path, params


def test_release_round_trip(saved):
    path, params = saved
    config, loaded, meta = load_model(path)
    assert config == SMALL and meta == {"trained_steps": 12}
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(loaded), strict=True):
        np.testing.assert_array_equal(a, b)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "params.safetensors"]


def test_corrupted_parameters_file(saved):
    path, _ = saved
    raw = (path / "params.safetensors").read_bytes()
    (path / "params.safetensors").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_model(path)


def test_corrupted_config(saved):
    path, _ = saved
    (path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_model(path)


def test_checkpoint_from_another_format_version(saved):
    path, _ = saved
    header = json.loads((path / "config.json").read_text())
    header["format_version"] = 99
    (path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_model(path)


def test_parameters_of_another_model(saved, tmp_path):
    path, _ = saved
    other = BSATNPConfig(num_blocks=1, width=24, num_heads=2, head_dim=8, ff_dim=32)
    header = json.loads((path / "config.json").read_text())
    header["model"] = other.to_dict()
    (path / "config.json").write_text(json.dumps(header))
    with pytest.raises(CheckpointError, match="other sizes"):
        load_model(path)


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        load_model(tmp_path / "nope")


def test_failed_save_leaves_previous_checkpoint_intact(saved):
    path, _ = saved

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with checkpoints._AtomicDirectory(path) as tmp:
            (tmp / "config.json").write_text("half written")
            raise Boom()
    config, _, _ = load_model(path)  # the old one is still complete and readable
    assert config == SMALL
    assert [p.name for p in path.parent.iterdir() if "partial" in p.name] == []


def test_training_state_round_trip_keeps_scalars(tmp_path):
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "count": np.int32(7), "key": jax.random.PRNGKey(3)}
    checkpoints.save_training_state(tmp_path / "s", state, step=42)
    restored, step, _ = checkpoints.load_training_state(tmp_path / "s", state)
    assert step == 42 and np.shape(restored["count"]) == () and int(restored["count"]) == 7
    np.testing.assert_array_equal(restored["key"], state["key"])


def test_non_finite_weights_are_refused_on_load(saved):
    from safetensors.numpy import load_file, save_file

    path, _ = saved
    arrays = load_file(str(path / "params.safetensors"))
    name = sorted(arrays)[0]
    arrays[name] = arrays[name].copy()
    arrays[name].flat[0] = np.nan
    save_file(arrays, str(path / "params.safetensors"))
    with pytest.raises(CheckpointError, match="non-finite weights.*corrupt"):
        load_model(path)


def test_a_save_never_overwrites_a_user_file_or_foreign_folder(saved, tmp_path):
    path, params = saved
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    with pytest.raises(CheckpointError, match="is a file; geonp never overwrites it"):
        save_model(notes, SMALL, params)
    assert notes.read_text() == "mine"
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_text("x")
    with pytest.raises(CheckpointError, match="not a geonp model"):
        save_model(folder, SMALL, params)
    assert (folder / "a.jpg").exists()
    save_model(path, SMALL, params, {"trained_steps": 13})  # a geonp model is replaced, as before
    assert load_model(path)[2] == {"trained_steps": 13}
