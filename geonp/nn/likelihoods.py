"""Likelihood heads: how the network's raw outputs become a predictive distribution.

A likelihood is a small frozen object with pure methods, so that a model is
"network + likelihood", chosen by name:

* ``num_outputs``: raw outputs per point the network must produce for each
  output dimension;
* ``log_prob(raw, y, **extra)``: per-point log density ``[B, N]``;
* ``predict(raw)``: a dict of arrays (``mean``, ``std``, ...) for users;
* ``quantile(raw, q)``: predictive quantiles;
* ``sample(raw, key, n)``: draws from each point's predictive marginal.

Only the Gaussian exists now; binomial, Bernoulli, Poisson and categorical
heads implement the same members (``extra`` carries trials or exposure).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtri

from geonp.errors import ConfigError

LOG_2PI = 1.8378770664093453


@dataclasses.dataclass(frozen=True)
class Normal:
    """Independent Gaussian per point: raw = (mean, std_raw), std = floor + softplus(std_raw).

    The floor keeps the NLL bounded when the network is over-confident early in training.
    """

    min_std: float = 1e-3
    name: str = "normal"
    num_outputs: int = 2

    def mean_std(self, raw):
        """raw ``[B, N, 2 * Dy]`` -> mean, std ``[B, N, Dy]``."""
        mean, std_raw = jnp.split(raw, 2, axis=-1)
        return mean, self.min_std + jax.nn.softplus(std_raw)

    def log_prob(self, raw, y, **extra):
        """Log density ``[B, N]`` of y ``[B, N, Dy]``, summed over output dimensions."""
        mean, std = self.mean_std(raw)
        z = (y - mean) / std
        return jnp.sum(-0.5 * z * z - jnp.log(std) - 0.5 * LOG_2PI, axis=-1)

    def predict(self, raw) -> dict:
        mean, std = self.mean_std(raw)
        return {"mean": mean, "std": std}

    def quantile(self, raw, q):
        mean, std = self.mean_std(raw)
        return mean + std * ndtri(jnp.asarray(q, raw.dtype))

    def sample(self, raw, key, num_samples: int):
        """``[S, B, N, Dy]`` draws from each point's predictive marginal (independent across points)."""
        mean, std = self.mean_std(raw)
        return mean + std * jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)

    def to_dict(self) -> dict:
        return {"name": self.name, "min_std": self.min_std}


LIKELIHOODS = {"normal": Normal}


def get_likelihood(spec) -> Normal:
    """A likelihood from its name (``"normal"``), a dict from :meth:`to_dict`, or an instance."""
    if isinstance(spec, Normal):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict) and spec.get("name") in LIKELIHOODS:
        options = {k: v for k, v in spec.items() if k != "name"}
        return LIKELIHOODS[spec["name"]](**options)
    raise ConfigError(
        f"unknown likelihood {spec!r}; available: {sorted(LIKELIHOODS)}. "
        "Pass likelihood='normal' for real-valued fields."
    )
