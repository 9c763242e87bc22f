"""The learned distance bias of biased attention.

For every head h and every coordinate group g (space, time, ...), the bias
added to the attention logit between query point i and key point j is an RBF
network over their distance d_g(i, j):

    bias_h(i, j) = sum_g sum_f a[g, h, f] * exp(-b[g, h, f] * d_g(i, j)^2)

with ``b = softplus(b_raw) > 0``. The rates are initialised at distinct,
log-spaced length scales: basis functions that start identical receive
identical gradients and never separate.

Coordinates enter the model only here, so attention (and hence the whole
model) is invariant to any transformation that preserves the distances:
translations for Euclidean groups, rotations of the sphere for great-circle
groups.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from geonp.errors import ConfigError
from geonp.nn import distances, kernel_bias, quadratic_bias
from geonp.options import check_field_types, check_numbers

EARTH_RADIUS_KM = 6371.0088


@dataclasses.dataclass(frozen=True)
class CoordinateGroup:
    """One group of coordinates that shares a distance: e.g. space or time.

    Attributes:
        name: key of the group in the metadata mapping (``"space"``, ``"time"``).
        dim: number of raw coordinate columns (2 for lon/lat or x/y, 1 for time).
        metric: ``"euclidean"`` or ``"great_circle"`` (lon/lat in degrees).
        num_basis: number of RBF basis functions per head.
        init_length_scales: (shortest, longest) initial length scale, in the
            units of the distance; the basis functions start log-spaced between them.
        radius: great-circle only: distance = radius * central angle (radians).
    """

    name: str
    dim: int
    metric: str = "euclidean"
    num_basis: int = 5
    init_length_scales: tuple[float, float] = (0.05, 3.0)
    radius: float = 1.0

    def __post_init__(self):
        check_field_types(self)
        check_numbers(self.init_length_scales, f"coordinate group {self.name!r}: init_length_scales")
        if len(self.init_length_scales) != 2:
            raise ConfigError(f"coordinate group {self.name!r}: init_length_scales must be (shortest, longest); "
                              f"got {self.init_length_scales!r}.")
        if self.metric not in distances.METRICS:
            raise ConfigError(
                f"coordinate group {self.name!r}: unknown metric {self.metric!r}; "
                f"expected one of {distances.METRICS}."
            )
        if self.dim < 1 or self.num_basis < 1:
            raise ConfigError(
                f"coordinate group {self.name!r}: dim and num_basis must be >= 1, "
                f"got dim={self.dim}, num_basis={self.num_basis}."
            )
        lo, hi = self.init_length_scales
        if not (0 < lo <= hi):
            raise ConfigError(
                f"coordinate group {self.name!r}: init_length_scales must satisfy "
                f"0 < shortest <= longest, got {self.init_length_scales}."
            )
        distances.prepared_dim(self.metric, self.dim)  # validates great-circle dims

    def log_spaced_scales(self, n: int):
        """``[n]`` length scales log-spaced over ``init_length_scales`` (their geometric mean when n = 1)."""
        lo, hi = self.init_length_scales
        return jnp.array([math.sqrt(lo * hi)]) if n == 1 else jnp.geomspace(lo, hi, n)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["init_length_scales"] = list(self.init_length_scales)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> CoordinateGroup:
        d = dict(d)
        d["init_length_scales"] = tuple(d["init_length_scales"])
        return cls(**d)


def initial_rates(group: CoordinateGroup):
    """Raw (pre-softplus) rates ``[F]`` with length scales log-spaced over the group's range.

    A Gaussian basis exp(-b d^2) with length scale l has b = 1 / (2 l^2).
    """
    scales = group.log_spaced_scales(group.num_basis)
    return kernel_bias.inverse_softplus(1.0 / (2.0 * scales**2))


def init_rbf_bias(key, groups: Sequence[CoordinateGroup], num_heads: int, amplitude_mean: float = 2.0,
                  amplitude_std: float = 0.3):
    """Parameters ``{group: {"amplitude": [H, F], "rate_raw": [H, F]}}``.

    Positive initial amplitudes start every head as a local smoother (nearby
    points weigh more), which the network can unlearn; in short runs on GP
    tasks this reached a lower NLL than amplitudes centred on zero. The random
    part makes heads differ.
    """
    params = {}
    for group, k in zip(groups, jax.random.split(key, max(len(groups), 1))[: len(groups)], strict=True):
        rate_raw = jnp.broadcast_to(initial_rates(group), (num_heads, group.num_basis))
        params[group.name] = {
            "amplitude": amplitude_mean + amplitude_std * jax.random.normal(k, (num_heads, group.num_basis)),
            "rate_raw": jnp.array(rate_raw),
        }
    return params


def prepare_metadata(groups: Sequence[CoordinateGroup], metadata: Mapping):
    """Per-point preprocessing (O(N)): raw coordinates -> what the tile kernel needs."""
    return {g.name: distances.prepare(g.metric, metadata[g.name]) for g in groups}


def rbf_bias(params, q_meta, k_meta, groups: Sequence[CoordinateGroup]):
    """Bias tile ``[B, H, Tq, Tk]`` from prepared metadata tiles ``[B, Tq, d]`` and ``[B, Tk, d]``."""
    total = None
    for g in groups:
        sq = distances.tile_sq_dist(g.metric, q_meta[g.name], k_meta[g.name], g.radius)  # [B, Tq, Tk]
        a = params[g.name]["amplitude"]  # [H, F]
        b = jax.nn.softplus(params[g.name]["rate_raw"])  # [H, F]
        sq = sq[:, None, :, :]  # [B, 1, Tq, Tk]
        # an unrolled sum over the F basis functions: XLA fuses it into one elementwise
        # pass over the tile instead of materialising [B, H, F, Tq, Tk]
        for f in range(g.num_basis):
            term = a[None, :, f, None, None] * jnp.exp(-b[None, :, f, None, None] * sq)  # [B, H, Tq, Tk]
            total = term if total is None else total + term
    return total


def length_scales(params) -> dict:
    """The learned length scales ``{group: [H, F]}`` (1 / sqrt(2 b)), e.g. to choose a halo."""
    return {
        name: 1.0 / jnp.sqrt(2.0 * jax.nn.softplus(p["rate_raw"])) for name, p in params.items()
    }


# --------------------------------------------------------------------------- one Gaussian per head


def init_gaussian_bias(key, groups: Sequence[CoordinateGroup], num_heads: int):
    """Parameters ``{group: {"gamma_raw": [H]}}``: bias ``-gamma_h d^2``, heads at log-spaced length scales.

    The single-Gaussian bias is the one Deep Kernel Attention folds into its
    random features (``geonp.nn.random_features``); with dense or scan attention
    it is the exact reference of that approximation.
    """
    del key
    params = {}
    for g in groups:
        gamma = 1.0 / (2.0 * g.log_spaced_scales(num_heads) ** 2)
        params[g.name] = {"gamma_raw": kernel_bias.inverse_softplus(gamma)}
    return params


def gaussian_bias(params, q_meta, k_meta, groups: Sequence[CoordinateGroup]):
    """Bias tile ``[B, H, Tq, Tk]`` = ``-sum_g gamma[g, h] d_g^2``."""
    total = 0.0
    for g in groups:
        sq = distances.tile_sq_dist(g.metric, q_meta[g.name], k_meta[g.name], g.radius)  # [B, Tq, Tk]
        gamma = jax.nn.softplus(params[g.name]["gamma_raw"])  # [H]
        total = total - gamma[None, :, None, None] * sq[:, None]
    return total


def no_bias(params, q_meta, k_meta, groups: Sequence[CoordinateGroup] = ()):
    """No bias at all (TNP-D, CMANP): coordinates must then be embedded in the tokens."""
    return 0.0


def _init_none(key, groups, num_heads):
    return {}


# --------------------------------------------------------------------------- the families, by name


def _rbf_profile(table, d):
    # float64 on the host: the halo search wants a smooth profile, not a traced one
    a = np.asarray(table["amplitude"], np.float64)  # [H, F]
    b = np.asarray(jax.nn.softplus(np.asarray(table["rate_raw"], np.float32)), np.float64)
    d = np.asarray(d, np.float64)
    return np.einsum("hf,hfd->hd", a, np.exp(-b[:, :, None] * d[None, None, :] ** 2))


def _gaussian_profile(table, d):
    return -jax.nn.softplus(jnp.asarray(table["gamma_raw"]))[:, None] * d[None, :] ** 2


def bias_family(name: str, kernels: Sequence[str] = ()):
    """``(init(key, groups, H), bias(params, q_meta, k_meta, groups), profile(group_table, d) -> [H, D])``.

    ``"quadratic"`` (BSA-TNP default: an anisotropic Gaussian per head, folded into q k^T,
    :mod:`geonp.nn.quadratic_bias`), ``"rbf-per-head"`` (an RBF network per head, this
    module; ``"rbf"`` is its old name), ``"kernel"`` (TNP-KR, with ``kernels``),
    ``"gaussian"`` (DKA's), ``"none"``.
    """
    name = canonical_bias(name)
    if name == "quadratic":
        return quadratic_bias.init_quadratic_bias, quadratic_bias.quadratic_bias, quadratic_bias.profile
    if name == "rbf-per-head":
        return init_rbf_bias, rbf_bias, _rbf_profile
    if name == "gaussian":
        return init_gaussian_bias, gaussian_bias, _gaussian_profile
    if name == "none":
        return _init_none, no_bias, None
    if name == "kernel":
        kernels = kernel_bias.check_kernels(kernels)
        return (
            lambda key, groups, heads: kernel_bias.init_kernel_bias(key, groups, heads, kernels),
            _KernelBias(kernels),
            lambda table, d: kernel_bias.kernel_profile(table, d, kernels),
        )
    raise ConfigError(f"unknown bias {name!r}; expected one of {BIASES}.")


BIASES = ("quadratic", "rbf-per-head", "kernel", "gaussian", "none")
FOLDED = ("quadratic",)  # biases computed inside the q k^T product, never pair by pair
LEGACY_NAMES = {"rbf": "rbf-per-head"}  # the name before the quadratic bias became the default


def canonical_bias(name: str) -> str:
    """The bias family's current name (``"rbf"`` -> ``"rbf-per-head"``)."""
    return LEGACY_NAMES.get(name, name)


@dataclasses.dataclass(frozen=True)
class _KernelBias:
    """A hashable ``bias_fn`` for the kernel family (scan attention needs a static function)."""

    kernels: tuple[str, ...]

    def __call__(self, params, q_meta, k_meta, groups):
        return kernel_bias.kernel_bias(params, q_meta, k_meta, groups, self.kernels)
