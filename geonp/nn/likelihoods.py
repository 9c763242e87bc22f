"""Likelihood heads: how the network's raw outputs become a predictive distribution.

A likelihood is a small frozen object with pure methods, so that a model is
"network + likelihood", chosen by name:

* ``num_outputs``: raw outputs per point the network must produce for each
  output dimension;
* ``observation_columns``: columns of ``y`` per output dimension (a binomial
  observation is ``(successes, trials)``, a Poisson one ``(count, exposure)``);
* ``encode(y)``: context observations -> the features that enter the tokens
  (``encoded_columns`` per output; the empirical logit and log trials for a survey);
* ``standardise``: whether the estimator may shift and scale the values (Gaussian
  only; counts and classes are used as they are);
* ``log_prob(raw, y)``: per-point log density ``[B, N]``;
* ``predict(raw)``: a dict of arrays (``mean``, ``std``, ...) for users;
* ``quantile(raw, q)``: predictive quantiles;
* ``sample(raw, key, n)``: draws from each point's predictive marginal.

Heads: Gaussian; binomial and Bernoulli (logit-normal prevalence), Poisson
(log-normal rate with exposure), categorical (states). The count heads put a
latent Gaussian on the link scale and integrate it out by Gauss-Hermite
quadrature, so their predictive carries uncertainty about the prevalence or
rate itself.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln, logsumexp, ndtr, ndtri

from geonp.errors import ConfigError
from geonp.options import check_field_types

LOG_2PI = 1.8378770664093453


@dataclasses.dataclass(frozen=True)
class Normal:
    """Independent Gaussian per point: raw = (mean, std_raw), std = floor + softplus(std_raw).

    The floor keeps the NLL bounded when the network is over-confident early in training.
    """

    min_std: float = 1e-3
    name: str = "normal"
    num_outputs: int = 2
    observation_columns = 1
    encoded_columns = 1
    standardise = True

    def __post_init__(self):
        check_field_types(self)
        if not 0 < self.min_std < 1:  # a floor in standardised units: far below the data's own spread
            raise ConfigError(f"min_std must lie in (0, 1) (standardised units), got {self.min_std}.")

    def encode(self, y):
        return y

    def mean_std(self, raw):
        """raw ``[B, N, 2 * Dy]`` -> mean, std ``[B, N, Dy]``."""
        mean, std_raw = jnp.split(raw, 2, axis=-1)
        return mean, self.min_std + jax.nn.softplus(std_raw)

    def log_prob(self, raw, y):
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


def _gauss_hermite(order: int):
    """Nodes and weights for E[f(z)], z ~ N(0, 1): sum_i w_i f(z_i) (probabilists' Hermite rule)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(order)
    return jnp.asarray(nodes, jnp.float32), jnp.asarray(weights / weights.sum(), jnp.float32)


@dataclasses.dataclass(frozen=True)
class _LatentGaussian:
    """A count head with a Gaussian latent on the link scale: eta = loc + scale * z, z ~ N(0, 1).

    raw ``[B, N, 2 * Dy]`` -> (loc, scale = min_scale + softplus); subclasses give
    the inverse link and the log-likelihood of the counts given eta; the latent
    is integrated out by Gauss-Hermite quadrature with ``order`` nodes.
    """

    min_scale: float = 1e-3
    order: int = 40
    num_outputs: int = 2
    observation_columns = 2
    encoded_columns = 2
    standardise = False

    def __post_init__(self):
        check_field_types(self)
        if not (0 < self.min_scale < 1 and 2 <= self.order <= 200):
            raise ConfigError(f"min_scale must lie in (0, 1) and order (quadrature nodes) in 2..200; got "
                              f"{self.min_scale}, {self.order}.")

    def columns(self, y):
        """``[B, N, 2 * Dy]`` observations -> the two columns ``[B, N, Dy]`` each (count, trials/exposure)."""
        pairs = y.reshape(y.shape[:-1] + (-1, 2))
        return pairs[..., 0], pairs[..., 1]

    def latent(self, raw):
        """location, scale ``[B, N, Dy]`` of the latent Gaussian."""
        loc, scale_raw = jnp.split(raw, 2, axis=-1)
        return loc, self.min_scale + jax.nn.softplus(scale_raw)

    def nodes(self, raw):
        """eta at the quadrature nodes ``[B, N, Dy, Q]`` and the log weights ``[Q]``."""
        loc, scale = self.latent(raw)
        z, w = _gauss_hermite(self.order)
        return loc[..., None] + scale[..., None] * z, jnp.log(w)

    def marginal_log_prob(self, raw, conditional_log_lik):
        """log E_z[p(y | eta(z))] summed over output dims ``[B, N]``; the callback maps eta to log p."""
        eta, log_w = self.nodes(raw)
        return jnp.sum(logsumexp(conditional_log_lik(eta) + log_w, axis=-1), axis=-1)

    def quantile(self, raw, q):
        loc, scale = self.latent(raw)
        return self.inverse_link(loc + scale * ndtri(jnp.asarray(q, raw.dtype)))  # exact: the link is monotone

    def exceedance(self, raw, threshold):
        """P(prevalence or rate > threshold) per point ``[B, N, Dy]`` = Phi((loc - link(t)) / scale)."""
        loc, scale = self.latent(raw)
        return ndtr((loc - self.link(jnp.asarray(threshold, raw.dtype))) / scale)

    def sample(self, raw, key, num_samples: int):
        loc, scale = self.latent(raw)
        return self.inverse_link(loc + scale * jax.random.normal(key, (num_samples,) + loc.shape, loc.dtype))

    def to_dict(self) -> dict:
        return {"name": self.name, "min_scale": self.min_scale, "order": self.order}


@dataclasses.dataclass(frozen=True)
class Binomial(_LatentGaussian):
    """Successes out of trials with a logit-normal prevalence: p = sigmoid(loc + scale * z), z ~ N(0, 1).

    The network predicts the latent (loc, scale) per point, so the predictive
    says how sure it is about the prevalence itself, not only about the counts:

        log p(k | n) = log E_z[Binom(k | n, p(z))]      (Gauss-Hermite, ``order`` nodes)
        mean, std    = E[p], sd[p]                       (same rule)
        quantile(q)  = sigmoid(loc + scale * Phi^-1(q))  (exact: sigmoid is monotone)
        exceedance t = P(p > t) = Phi((loc - logit t) / scale)

    ``y = (successes, trials)`` per point; the tokens see the empirical logit
    log((k + 1/2) / (n - k + 1/2)) and log(1 + n), so a village of 200 weighs more than one of 5.
    """

    name: str = "binomial"

    inverse_link = staticmethod(jax.nn.sigmoid)

    @staticmethod
    def link(p):
        return jnp.log(p) - jnp.log1p(-p)

    def encode(self, y):
        k, n = self.columns(y)
        features = jnp.stack([jnp.log((k + 0.5) / (n - k + 0.5)), jnp.log1p(n)], axis=-1)
        return features.reshape(y.shape)

    def log_prob(self, raw, y):
        k, n = self.columns(y)
        return self._log_prob(raw, k, n)

    def _log_prob(self, raw, k, n):
        log_comb = (gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1))[..., None]
        return self.marginal_log_prob(raw, lambda eta: log_comb + k[..., None] * jax.nn.log_sigmoid(eta)
                                      + (n - k)[..., None] * jax.nn.log_sigmoid(-eta))

    def predict(self, raw) -> dict:
        eta, log_w = self.nodes(raw)
        w, p = jnp.exp(log_w), jax.nn.sigmoid(eta)
        mean = jnp.sum(w * p, axis=-1)
        var = jnp.sum(w * (p - mean[..., None]) ** 2, axis=-1)
        return {"mean": mean, "std": jnp.sqrt(jnp.maximum(var, 0.0))}


@dataclasses.dataclass(frozen=True)
class Bernoulli(Binomial):
    """Presence/absence (0/1) per point: a :class:`Binomial` with one trial everywhere."""

    name: str = "bernoulli"
    observation_columns = 1
    encoded_columns = 1

    def encode(self, y):
        return 2.0 * y - 1.0

    def log_prob(self, raw, y):
        return self._log_prob(raw, y, jnp.ones_like(y))


@dataclasses.dataclass(frozen=True)
class Poisson(_LatentGaussian):
    """Counts with exposure and a log-normal rate: rate = exp(loc + scale * z), count ~ Poisson(exposure * rate).

        log p(k | E) = log E_z[Poisson(k | E * rate(z))]   (Gauss-Hermite)
        mean, std    = of the rate (closed form, log-normal)
        quantile(q)  = exp(loc + scale * Phi^-1(q))

    ``y = (count, exposure)`` per point (exposure: person-years, population ... in the rate's units).
    """

    name: str = "poisson"

    inverse_link = staticmethod(jnp.exp)
    link = staticmethod(jnp.log)

    def encode(self, y):
        k, e = self.columns(y)
        return jnp.stack([jnp.log((k + 0.5) / e), jnp.log1p(k)], axis=-1).reshape(y.shape)

    def log_prob(self, raw, y):
        k, e = self.columns(y)
        log_e, log_fact = jnp.log(e)[..., None], gammaln(k + 1)[..., None]
        return self.marginal_log_prob(
            raw, lambda eta: k[..., None] * (log_e + eta) - jnp.exp(log_e + eta) - log_fact)

    def predict(self, raw) -> dict:
        loc, scale = self.latent(raw)
        mean = jnp.exp(loc + 0.5 * scale**2)
        return {"mean": mean, "std": mean * jnp.sqrt(jnp.expm1(scale**2))}


@dataclasses.dataclass(frozen=True)
class Categorical:
    """One of ``num_classes`` states per point (e.g. S/I/R): raw = logits, y = class index (``[B, N, 1]``).

    ``predict`` gives ``probs [B, N, K]``; there is no mean or quantile of a category.
    """

    num_classes: int = 3
    name: str = "categorical"
    observation_columns = 1
    standardise = False

    def __post_init__(self):
        check_field_types(self)
        if self.num_classes < 2:
            raise ConfigError(f"a categorical likelihood needs at least 2 classes, got {self.num_classes}.")

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    @property
    def encoded_columns(self) -> int:
        return self.num_classes

    def encode(self, y):
        """class index ``[B, N, 1]`` -> one-hot ``[B, N, K]``."""
        return jax.nn.one_hot(jnp.asarray(y[..., 0], jnp.int32), self.num_classes, dtype=jnp.float32)

    def log_prob(self, raw, y):
        log_probs = jax.nn.log_softmax(raw[..., : self.num_classes], axis=-1)  # [B, N, K]
        index = jnp.asarray(y[..., 0], jnp.int32)
        return jnp.take_along_axis(log_probs, index[..., None], axis=-1)[..., 0]

    def predict(self, raw) -> dict:
        return {"probs": jax.nn.softmax(raw[..., : self.num_classes], axis=-1)}

    def sample(self, raw, key, num_samples: int):
        logits = raw[..., : self.num_classes]
        return jax.random.categorical(key, logits, axis=-1, shape=(num_samples,) + logits.shape[:-1])[..., None]

    def to_dict(self) -> dict:
        return {"name": self.name, "num_classes": self.num_classes}


LIKELIHOODS = {"normal": Normal, "binomial": Binomial, "bernoulli": Bernoulli, "poisson": Poisson,
               "categorical": Categorical}


def get_likelihood(spec):
    """A likelihood from its name (``"normal"``), a dict from :meth:`to_dict`, or an instance."""
    if isinstance(spec, tuple(LIKELIHOODS.values())):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if isinstance(spec, dict) and spec.get("name") in LIKELIHOODS:
        options = {k: v for k, v in spec.items() if k != "name"}
        known = {f.name for f in dataclasses.fields(LIKELIHOODS[spec["name"]])} - {"name"}
        if set(options) - known:
            raise ConfigError(f"likelihood {spec['name']!r} takes options {sorted(known)}; got "
                              f"{sorted(set(options) - known)}.")
        return LIKELIHOODS[spec["name"]](**options)
    raise ConfigError(
        f"unknown likelihood {spec!r}; available: {sorted(LIKELIHOODS)}. "
        "Pass 'normal' for real-valued fields, 'binomial' for survey counts, 'poisson' for counts."
    )
