"""One sampled batch, several training batches: task reuse by the symmetries of the prior.

Drawing a batch of GP or field tasks (a float64 Cholesky per task) costs about
a quarter of a training step on a 2-core CPU. When the task prior is
symmetric, a drawn batch seen through a symmetry is another exact draw from
the same prior, and the network (which is not invariant to it: its attention
heads are anisotropic, its embedding is not odd) sees new inputs. So each
drawn batch can serve ``reuse`` consecutive steps (``TrainConfig(task_reuse=r)``,
opt-in), each through a different element of the group the sampler declares
(``sampler.symmetries``):

    "dihedral"  the 8 rotations by multiples of 90 degrees and reflections of
                the plane, applied to every 2-D coordinate group (exact for
                isotropic kernels and for anisotropy of uniform orientation,
                on square grids and uniform scatter);
    "sign"      y -> -y for context and targets (exact for zero-mean Gaussian
                fields with symmetric noise; never for counts).

The batch of step t is a function of t alone (the batch drawn for
``t // reuse`` through element ``order(t // reuse)[t % reuse]``), so a run
resumed from a checkpoint, or prefetched in another process, sees exactly the
batches of an uninterrupted one. With ``reuse = 1`` the batch of step t is
``sampler.sample(fold_in(seed_key, t))``, as it always was.
"""

from __future__ import annotations

import numpy as np

from geonp.errors import ConfigError
from geonp.features.support import SUPPORT
from geonp.tasks.batch import Batch

SYMMETRIES = ("dihedral", "sign")

# the dihedral group of the square: x -> x @ M^T
_ROTATIONS = [np.linalg.matrix_power(np.array([[0.0, -1.0], [1.0, 0.0]]), k) for k in range(4)]
_DIHEDRAL = [r @ m for m in (np.eye(2), np.diag([1.0, -1.0])) for r in _ROTATIONS]


def declared_symmetries(sampler) -> tuple[str, ...]:
    found = tuple(getattr(sampler, "symmetries", ()))
    unknown = set(found) - set(SYMMETRIES)
    if unknown:
        raise ConfigError(f"{type(sampler).__name__}.symmetries has unknown entries {sorted(unknown)}; "
                          f"known: {SYMMETRIES}.")
    return found


def resolve_reuse(task_reuse: int | None, sampler) -> int:
    """Steps per drawn batch: ``task_reuse`` (None: 1, each batch used once), checked against the sampler.

    Opt-in: on the 2-core CPU, reuse 4 ran 1.43x the steps of no reuse in the same 7 minutes and
    reached the same NLL (0.760 vs 0.752, benchmarks/equal_time.py), so it buys steps, not a better model.
    """
    if task_reuse is None:
        return 1
    if task_reuse < 1:
        raise ConfigError(f"task_reuse must be >= 1 (steps per sampled batch), got {task_reuse}.")
    if task_reuse > 1 and not declared_symmetries(sampler):
        raise ConfigError(
            f"task_reuse={task_reuse} needs a sampler whose task prior has symmetries to show each reused "
            f"batch differently; {type(sampler).__name__} declares none (its `symmetries` attribute). "
            "Use task_reuse=1 (or None) for it."
        )
    return task_reuse


def group_elements(symmetries: tuple[str, ...]) -> list[tuple[int, float]]:
    """Elements as ``(index into the dihedral matrices, sign of y)``; the identity first."""
    turns = range(len(_DIHEDRAL)) if "dihedral" in symmetries else [0]
    signs = (1.0, -1.0) if "sign" in symmetries else (1.0,)
    return [(m, s) for s in signs for m in turns]


def apply_element(batch: Batch, element: tuple[int, float]) -> Batch:
    """The batch seen through one group element (numpy or jax arrays alike)."""
    index, sign = element
    if index == 0 and sign == 1.0:
        return batch
    matrix = _DIHEDRAL[index].astype(np.float32)
    for name, coords in batch.meta_ctx.items():
        if name != SUPPORT and coords.shape[-1] != 2:
            raise ConfigError(f"dihedral task reuse needs 2-D coordinate groups; group {name!r} has "
                              f"{coords.shape[-1]} columns. Set task_reuse=1 for this sampler.")
    # a point's support (its footprint's size) is not a coordinate: no rotation moves it
    turn = lambda meta: {k: v if k == SUPPORT else v @ matrix.T for k, v in meta.items()}  # noqa: E731
    return batch._replace(meta_ctx=turn(batch.meta_ctx), meta_tgt=turn(batch.meta_tgt),
                          y_ctx=batch.y_ctx * sign, y_tgt=batch.y_tgt * sign)


class StepBatches:
    """The training batch of each step: ``batches(step)``. Picklable (runs in the prefetch process).

    Keeps the last drawn batch, so consecutive steps that share it draw it once.
    """

    def __init__(self, sampler, batch_size: int, seed_key, reuse: int = 1):
        self.sampler, self.batch_size, self.reuse = sampler, batch_size, reuse
        self.seed_key = np.asarray(seed_key)
        self.elements = group_elements(declared_symmetries(sampler)) if reuse > 1 else [(0, 1.0)]
        if reuse > len(self.elements):
            raise ConfigError(f"task_reuse={reuse} exceeds the {len(self.elements)} distinct views that "
                              f"{type(sampler).__name__}'s symmetries give; use at most {len(self.elements)}.")
        self._drawn = (None, None)

    def __call__(self, step: int) -> Batch:
        import jax

        drawn_index, within = divmod(step, self.reuse)
        if self._drawn[0] != drawn_index:
            key = jax.random.fold_in(self.seed_key, drawn_index)
            self._drawn = (drawn_index, self.sampler.sample(key, self.batch_size)[0])
        if self.reuse == 1:
            return self._drawn[1]
        order = np.random.default_rng([drawn_index, *self.seed_key.reshape(-1).tolist()]).permutation(
            len(self.elements))
        return apply_element(self._drawn[1], self.elements[order[within]])
