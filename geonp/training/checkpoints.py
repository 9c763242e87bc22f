"""Saving and loading models and training state, without pickle.

Two formats, both a directory of plain files written atomically (into a
temporary sibling, then renamed), so an interrupted save never leaves a
directory that looks complete:

* release (what users load): ``config.json`` (model config, geonp version,
  format version, free metadata) + ``params.safetensors``;
* training state (what resumes a run): ``state.json`` (step, leaf names) +
  ``state.safetensors`` holding parameters, optimiser state and RNG key.

Arrays are stored under their pytree path (``block_0/attention/query/kernel``),
and a load checks every name and shape against the model the config builds,
so a corrupted or mismatched file is reported, never half-loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import jax
import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load_file, save_file

from geonp.errors import CheckpointError

FORMAT_VERSION = 1
RELEASE_FILES = ("config.json", "params.safetensors")


def _path_name(path) -> str:
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def flatten_named(tree) -> dict[str, np.ndarray]:
    """``{path/name: array}`` for every leaf of a pytree."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return {_path_name(path): np.asarray(leaf).copy(order="C") for path, leaf in leaves}  # keeps 0-d shapes


def unflatten_like(template, arrays: dict[str, np.ndarray], source: str):
    """Fill ``template``'s structure with ``arrays``, checking names, shapes and dtypes."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    expected = {_path_name(p): leaf for p, leaf in leaves}
    missing = sorted(set(expected) - set(arrays))
    extra = sorted(set(arrays) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{source} does not match the model its config describes: missing {missing[:5]}, "
            f"unexpected {extra[:5]}. The file was written by a different model or geonp version; "
            "re-export it with the geonp that trained it, or retrain."
        )
    out = []
    for name, leaf in expected.items():
        array = arrays[name]
        shape = tuple(getattr(leaf, "shape", np.shape(leaf)))  # arrays or jax.ShapeDtypeStruct
        if tuple(array.shape) != shape:
            raise CheckpointError(
                f"{source}: array {name!r} has shape {list(array.shape)}, the model expects "
                f"{list(shape)}. The checkpoint belongs to a model with other sizes."
            )
        out.append(array.astype(getattr(leaf, "dtype", array.dtype)))
    return jax.tree_util.tree_unflatten(treedef, out)


class _AtomicDirectory:
    """Write into a temporary sibling directory; rename over ``path`` only on success."""

    def __init__(self, path, marker: str = "config.json"):
        self.path = Path(path)
        self.marker = marker  # the file every folder of this kind holds: only such a folder is replaced

    def __enter__(self) -> Path:
        if self.path.exists() and not (self.path.is_dir() and (self.path / self.marker).is_file()):
            what = "a file" if not self.path.is_dir() else "a folder that is not a geonp model"
            raise CheckpointError(f"{self.path} is {what}; geonp never overwrites it. Save to a new path, or "
                                  "remove it yourself first.")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.partial-", dir=self.path.parent))
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        # mkdtemp makes a private (0700) directory: give the result the user's usual permissions
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.tmp, 0o777 & ~umask)
        for child in self.tmp.iterdir():
            os.chmod(child, 0o666 & ~umask)
        old = None
        if self.path.exists():
            old = self.path.with_name(f".{self.path.name}.old-{os.getpid()}")
            os.replace(self.path, old)
        os.replace(self.tmp, self.path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return False


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} not found. Is this a geonp checkpoint directory?")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{what}: {path} is not valid JSON ({err}); the file is corrupted.") from err


def _read_arrays(path: Path, what: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise CheckpointError(f"{what}: {path} not found; the checkpoint is incomplete.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{what}: {path} cannot be read ({err}); the file is corrupted.") from err


def _check_format(header: dict, path: Path):
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {version!r}; this geonp reads version "
            f"{FORMAT_VERSION}. Load it with the geonp version that wrote it "
            f"(geonp {header.get('geonp_version', 'unknown')})."
        )


# --------------------------------------------------------------------------- release


def save_release(path, config_dict: dict, params, metadata: dict | None = None) -> Path:
    """Write a model (config + parameters) for users to load; returns the directory."""
    from geonp import __version__

    header = {"format_version": FORMAT_VERSION, "geonp_version": __version__, "model": config_dict,
              "metadata": metadata or {}}
    with _AtomicDirectory(path) as tmp:
        save_file(flatten_named(params), str(tmp / "params.safetensors"),
                  metadata={"format_version": str(FORMAT_VERSION)})
        (tmp / "config.json").write_text(json.dumps(header, indent=2, sort_keys=True))
    return Path(path)


def load_release(path, params_template_fn):
    """Read a release; ``params_template_fn(config_dict)`` gives the expected parameter tree.

    Returns ``(config_dict, params, metadata)``.
    """
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint directory at {path}. Pass the folder written by save().")
    header = _read_json(path / "config.json", "checkpoint config")
    _check_format(header, path)
    if "model" not in header:
        raise CheckpointError(f"{path / 'config.json'} has no 'model' section; the file is corrupted.")
    arrays = _read_arrays(path / "params.safetensors", "checkpoint parameters")
    broken = sorted(n for n, a in arrays.items() if np.issubdtype(a.dtype, np.number) and not np.isfinite(a).all())
    if broken:
        raise CheckpointError(f"{path / 'params.safetensors'} holds non-finite weights (NaN or inf) in {broken[:3]}"
                              f"{' ...' if len(broken) > 3 else ''}: the checkpoint is corrupt (every prediction would "
                              "be NaN). Load an earlier copy, or retrain.")
    template = params_template_fn(header["model"])
    params = unflatten_like(template, arrays, str(path / "params.safetensors"))
    return header["model"], params, header.get("metadata", {})


# --------------------------------------------------------------------------- training state


def save_training_state(path, state, step: int, extra: dict | None = None) -> Path:
    """Write a resumable training state (any pytree of arrays) and its step."""
    from geonp import __version__

    arrays = flatten_named(state)
    header = {"format_version": FORMAT_VERSION, "geonp_version": __version__, "step": int(step),
              "names": sorted(arrays), "extra": extra or {}}
    with _AtomicDirectory(path, marker="state.json") as tmp:
        save_file(arrays, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps(header, indent=2))
    return Path(path)


def has_training_state(path) -> bool:
    path = Path(path)
    return (path / "state.json").is_file() and (path / "state.safetensors").is_file()


def load_training_state(path, template):
    """Restore a state saved by :func:`save_training_state` into ``template``'s structure.

    Returns ``(state, step, extra)``.
    """
    path = Path(path)
    header = _read_json(path / "state.json", "training state")
    _check_format(header, path)
    arrays = _read_arrays(path / "state.safetensors", "training state")
    state = unflatten_like(template, arrays, str(path / "state.safetensors"))
    return state, int(header["step"]), header.get("extra", {})
