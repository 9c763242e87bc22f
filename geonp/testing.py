"""Random inputs for checking and benchmarking attention (used by tests/ and benchmarks/)."""

from __future__ import annotations

import functools

import jax

from geonp.nn import bias as bias_lib

SPACE_TIME = (
    bias_lib.CoordinateGroup("space", 2, "euclidean", num_basis=5),
    bias_lib.CoordinateGroup("time", 1, "euclidean", num_basis=3),
)


def random_attention_inputs(seed, B, Nq, Nk, H=2, Dh=8, groups=SPACE_TIME, amplitude_std=1.0):
    """q, k, v ``[B, N, H, Dh]``, metadata on [-2, 2], random bias parameters and the bias function."""
    ks = jax.random.split(jax.random.PRNGKey(seed), 6)
    q = jax.random.normal(ks[0], (B, Nq, H, Dh))
    k = jax.random.normal(ks[1], (B, Nk, H, Dh))
    v = jax.random.normal(ks[2], (B, Nk, H, Dh))
    q_meta = {g.name: jax.random.uniform(jax.random.fold_in(ks[3], i), (B, Nq, g.dim), minval=-2, maxval=2)
              for i, g in enumerate(groups)}
    k_meta = {g.name: jax.random.uniform(jax.random.fold_in(ks[4], i), (B, Nk, g.dim), minval=-2, maxval=2)
              for i, g in enumerate(groups)}
    params = bias_lib.init_rbf_bias(ks[5], groups, H, amplitude_mean=0.0, amplitude_std=amplitude_std)
    bias_fn = functools.partial(bias_lib.rbf_bias, groups=groups)
    return q, k, v, q_meta, k_meta, params, bias_fn
