"""An SIR epidemic on a lattice (in JAX), and meta-training tasks cut from its snapshots.

Each cell is Susceptible (0), Infected (1) or Recovered (2). One step:

    pressure(s) = number of infected cells among the 8 neighbours of s
    S -> I      with probability 1 - (1 - beta)^pressure
    I -> R      with probability gamma

starting from ``seeds`` infected cells. A task is a snapshot after a random
number of steps: a random subset of cells is observed (the context) and the
model predicts the state of other cells (categorical likelihood). Cell
coordinates are in cell units; the sampler maps a 64 x 64 lattice onto the
[-2, 2]^2 box of the other bundled models (``CELL`` model units per cell).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp

from geonp.errors import ConfigError
from geonp.tasks.batch import Batch

SUSCEPTIBLE, INFECTED, RECOVERED = 0, 1, 2
STATE_NAMES = ("susceptible", "infected", "recovered")
CELL = 4.0 / 64  # model units per lattice cell (64 cells span the [-2, 2] training box)
_NEIGHBOURS = jnp.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], jnp.float32)


def sir_step(state, key, beta, gamma):
    """One synchronous update of the lattice ``state [H, W]`` (int8)."""
    infected = (state == INFECTED).astype(jnp.float32)
    pressure = jax.scipy.signal.convolve2d(infected, _NEIGHBOURS, mode="same")
    k_inf, k_rec = jax.random.split(key)
    catch = jax.random.uniform(k_inf, state.shape) < 1.0 - (1.0 - beta) ** pressure
    recover = jax.random.uniform(k_rec, state.shape) < gamma
    new = jnp.where((state == SUSCEPTIBLE) & catch, INFECTED, state)
    return jnp.where((state == INFECTED) & recover, RECOVERED, new).astype(jnp.int8)


@functools.partial(jax.jit, static_argnames=("shape", "max_steps", "seeds"))
def simulate_sir(key, shape: tuple[int, int], beta, gamma, steps, seeds: int = 3, max_steps: int = 256):
    """The lattice after ``steps`` (<= ``max_steps``) updates from ``seeds`` random infected cells."""
    k_seed, k_run = jax.random.split(key)
    flat = jnp.zeros(shape[0] * shape[1], jnp.int8)
    where = jax.random.choice(k_seed, flat.size, (seeds,), replace=False)
    state = flat.at[where].set(INFECTED).reshape(shape)

    def body(i, state):
        updated = sir_step(state, jax.random.fold_in(k_run, i), beta, gamma)
        return jnp.where(i < steps, updated, state)

    return jax.lax.fori_loop(0, max_steps, body, state)


@dataclasses.dataclass(frozen=True)
class SIRLatticeSampler:
    """``sample(key, batch_size) -> (Batch, params)``: observed cells of SIR snapshots; ``y`` = state index."""

    size: int = 64
    beta: tuple[float, float] = (0.08, 0.5)
    gamma: tuple[float, float] = (0.05, 0.4)
    steps: tuple[int, int] = (8, 64)
    seeds: int = 3
    num_context: tuple[int, int] = (64, 512)
    num_target: int = 256

    def __post_init__(self):
        fits = self.num_context[1] + self.num_target <= self.size**2
        if not (1 <= self.num_context[0] <= self.num_context[1]) or not fits:
            raise ConfigError(f"num_context {self.num_context} + num_target {self.num_target} must fit in the "
                              f"{self.size}x{self.size} lattice.")
        if not (0 < self.beta[0] <= self.beta[1] <= 1 and 0 < self.gamma[0] <= self.gamma[1] <= 1):
            raise ConfigError("beta and gamma are probabilities: (min, max) within (0, 1].")

    def sample(self, key, batch_size: int):
        return _sample(self, key, batch_size)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _sample(sampler: SIRLatticeSampler, key, batch_size: int):
    n = sampler.size
    nc, nt = sampler.num_context[1], sampler.num_target
    ii, jj = jnp.meshgrid(jnp.arange(n), jnp.arange(n), indexing="ij")
    cells = jnp.stack([jj.ravel(), ii.ravel()], -1).astype(jnp.float32) * CELL - 2.0  # [n*n, 2] (x, y)

    def one_task(key):
        k_b, k_g, k_t, k_sim, k_perm, k_n = jax.random.split(key, 6)
        beta = jax.random.uniform(k_b, (), minval=sampler.beta[0], maxval=sampler.beta[1])
        gamma = jax.random.uniform(k_g, (), minval=sampler.gamma[0], maxval=sampler.gamma[1])
        steps = jax.random.randint(k_t, (), sampler.steps[0], sampler.steps[1] + 1)
        state = simulate_sir(k_sim, (n, n), beta, gamma, steps, sampler.seeds, sampler.steps[1]).ravel()
        order = jax.random.permutation(k_perm, n * n)
        ctx, tgt = order[:nc], order[nc:nc + nt]
        n_ctx = jax.random.randint(k_n, (), sampler.num_context[0], sampler.num_context[1] + 1)
        y = state.astype(jnp.float32)[:, None]
        return cells[ctx], y[ctx], jnp.arange(nc) < n_ctx, cells[tgt], y[tgt], jnp.stack([beta, gamma])

    x_c, y_c, m_c, x_t, y_t, params = jax.vmap(one_task)(jax.random.split(key, batch_size))
    empty = lambda m: jnp.zeros((batch_size, m, 0))  # noqa: E731
    batch = Batch(x_ctx=empty(nc), y_ctx=y_c, meta_ctx={"space": x_c}, mask_ctx=m_c, x_tgt=empty(nt), y_tgt=y_t,
                  meta_tgt={"space": x_t}, mask_tgt=jnp.ones((batch_size, nt), bool))
    return batch, params
