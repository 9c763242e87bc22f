"""The configuration every model of the family shares, and the tokens it builds from a batch.

:class:`BSATNPConfig` names the pieces (see :mod:`geonp.nn.models`); ``context_features`` and
``target_features`` turn observations and covariates into token features (coordinates stay
out of them unless ``embed_coordinates``). Both model families (:class:`geonp.nn.models.BSATNP`,
:class:`geonp.nn.cmanp.CMANP`) import from here, so neither imports the other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import jax.numpy as jnp

from geonp.errors import ConfigError, reject_unknown_fields
from geonp.features.support import context_support
from geonp.nn import bias as bias_lib
from geonp.nn import kernel_bias, likelihoods
from geonp.options import check_field_types


def default_groups(spatial_dim: int = 2, temporal: bool = False, spatial_metric: str = "euclidean",
                   bias: str = "quadratic"):
    """Coordinate groups. The quadratic bias spreads its heads' length scales over ``QUADRATIC_SCALES``."""
    if bias_lib.canonical_bias(bias) == "quadratic":
        space = bias_lib.CoordinateGroup("space", spatial_dim, spatial_metric, init_length_scales=QUADRATIC_SCALES)
        time = bias_lib.CoordinateGroup("time", 1, "euclidean", init_length_scales=QUADRATIC_SCALES)
    else:
        space = bias_lib.CoordinateGroup("space", spatial_dim, spatial_metric, num_basis=5)
        time = bias_lib.CoordinateGroup("time", 1, "euclidean", num_basis=3)
    return (space, time) if temporal else (space,)


QUADRATIC_SCALES = (0.05, 5.0)  # model units: the initial length scales of the heads, log-spaced


@dataclasses.dataclass(frozen=True)
class BSATNPConfig:
    """Hyperparameters of a BSA-TNP. Defaults are the reference sizes (about 0.5M parameters)."""

    x_dim: int = 0  # covariates per point (elevation, ...), embedded in the tokens
    y_dim: int = 1  # output dimensions per point (a binomial observation (k, n) is one output of 2 columns)
    groups: tuple[bias_lib.CoordinateGroup, ...] | None = None  # None: default_groups(bias=bias)
    num_blocks: int = 6
    width: int = 64
    num_heads: int = 4
    head_dim: int = 32
    ff_dim: int = 256
    likelihood: likelihoods.Normal = likelihoods.Normal()  # any head from geonp.nn.likelihoods
    attention: str = "scan"  # "scan" (constant memory), "dense" (reference) or "performer" (DKA)
    q_block: int = 256  # tiles of the scan; 256 x 512 measured fastest for training on CPU (benchmarks/speed.py)
    k_block: int = 512
    embed_coordinates: bool = False  # also put raw coordinates in the tokens (breaks invariance)
    support: bool = False  # context tokens carry log2 of their footprint in target cells (geonp.features.support)
    covariate_slots: int = 0  # K > 0: takes 0..K covariates of any meaning, x_dim = 2K (geonp.tasks.covariates)
    covariate_trend: bool = False  # tokens also carry the covariates' context trend (geonp.nn.covariate_trend)
    bias: str = "quadratic"  # "quadratic", "rbf-per-head", "kernel", "gaussian", "none"; see bias.bias_family
    kernels: tuple[str, ...] = kernel_bias.KERNELS  # bias="kernel" only
    num_features: int = 64  # random features per head, attention="performer" only
    family: str = "tnp"  # "tnp" or "cmanp"
    num_latents: int = 64  # cmanp only: latent vectors per block
    cmab_block: int = 256  # cmanp only: context points per step of the running softmax

    def __post_init__(self):
        check_field_types(self)
        checks = {
            "num_blocks": self.num_blocks >= 1, "width": self.width >= 1,
            "num_heads": self.num_heads >= 1, "head_dim": self.head_dim >= 1,
            "ff_dim": self.ff_dim >= 1, "y_dim": self.y_dim >= 1, "x_dim": self.x_dim >= 0,
            "q_block": self.q_block >= 1, "k_block": self.k_block >= 1, "num_features": self.num_features >= 1,
            "num_latents": self.num_latents >= 1, "cmab_block": self.cmab_block >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(f"BSATNPConfig: {', '.join(bad)} out of range; sizes must be positive "
                              "(x_dim may be 0).")
        if self.covariate_slots and self.x_dim != 2 * self.covariate_slots:
            raise ConfigError(f"a model with {self.covariate_slots} covariate slots takes x_dim = "
                              f"{2 * self.covariate_slots} (values and in-use flags); got x_dim={self.x_dim}.")
        if self.covariate_trend and not (self.x_dim and self.family == "tnp"):
            raise ConfigError("covariate_trend regresses the context on its covariates: it needs x_dim > 0 and "
                              f"family='tnp' (got x_dim={self.x_dim}, family={self.family!r}).")
        if self.attention not in ("scan", "dense", "performer"):
            raise ConfigError(f"attention must be 'scan', 'dense' or 'performer', got {self.attention!r}.")
        object.__setattr__(self, "bias", bias_lib.canonical_bias(self.bias))
        if self.groups is None:
            object.__setattr__(self, "groups", default_groups(bias=self.bias))
        if self.bias not in bias_lib.BIASES:
            raise ConfigError(f"bias must be one of {bias_lib.BIASES}, got {self.bias!r}.")
        if self.family not in ("tnp", "cmanp"):
            raise ConfigError(f"family must be 'tnp' or 'cmanp', got {self.family!r}.")
        object.__setattr__(self, "kernels", kernel_bias.check_kernels(self.kernels))
        if self.attention == "performer" and self.bias != "gaussian":
            raise ConfigError(f"performer attention (DKA) carries a Gaussian distance bias; set bias='gaussian' "
                              f"(got {self.bias!r}).")
        if self.family == "cmanp" and (self.bias != "none" or not self.embed_coordinates):
            raise ConfigError("a CMANP's latents have no coordinates, so it takes bias='none' and "
                              "embed_coordinates=True.")
        if self.bias == "none" and not self.embed_coordinates:
            raise ConfigError("bias='none' without embed_coordinates=True would never show the model a coordinate; "
                              "set embed_coordinates=True (TNP-D) or choose a bias.")
        names = [g.name for g in self.groups]
        if len(set(names)) != len(names) or not names:
            raise ConfigError(f"coordinate groups need distinct names and at least one group; got {names}.")
        # accept a name or dict too, so BSATNPConfig(likelihood="normal") works
        object.__setattr__(self, "likelihood", likelihoods.get_likelihood(self.likelihood))

    @property
    def y_columns(self) -> int:
        """Columns of an observation ``y``: output dims x the likelihood's columns (2 for (k, n))."""
        return self.y_dim * self.likelihood.observation_columns

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["groups"] = [g.to_dict() for g in self.groups]
        d["likelihood"] = self.likelihood.to_dict()
        d["kernels"] = list(self.kernels)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> BSATNPConfig:
        d = dict(d)
        reject_unknown_fields(cls, d, "BSATNPConfig")
        # configs written before the bias field existed carried the per-head RBF network
        d.setdefault("bias", "rbf-per-head")
        d["groups"] = tuple(bias_lib.CoordinateGroup.from_dict(g) for g in d.get("groups", ()))
        return cls(**d)


def token_layout(cfg: BSATNPConfig) -> dict[str, slice]:
    """Which columns of the token features (:func:`context_features`) hold what, in order: ``flag``,
    ``observation``, ``covariates`` (slot models: values then in-use flags), ``coordinates``, ``support``,
    ``trend``; absent inputs are left out. Row ``i`` of the embedding's first kernel reads column ``i``."""
    widths = {"flag": 1, "observation": cfg.likelihood.encoded_columns * cfg.y_dim, "covariates": cfg.x_dim,
              "coordinates": sum(g.dim for g in cfg.groups) if cfg.embed_coordinates else 0,
              "support": int(cfg.support), "trend": int(cfg.covariate_trend)}
    layout, start = {}, 0
    for name, width in widths.items():
        if width:
            layout[name] = slice(start, start + width)
            start += width
    return layout


def token_width(cfg: BSATNPConfig) -> int:
    """Columns of the token features: rows of the embedding's first kernel."""
    return max(columns.stop for columns in token_layout(cfg).values())


def context_features(cfg: BSATNPConfig, x_ctx, y_ctx, meta_ctx, mask_ctx, trend=None):
    """Context token features ``[B, Nc, 1 + E*Dy + Dx (+ coordinates) (+ support) (+ trend)]`` before the
    embedding MLP; ``trend [B, Nc, 1]`` from :func:`geonp.nn.covariate_trend.covariate_trend` when the config
    has one."""
    real = mask_ctx[..., None]
    # padded context values never leak in (and a valid dummy keeps log/logit encodings finite)
    y_enc = jnp.where(real, cfg.likelihood.encode(jnp.where(real, y_ctx, 1.0)), 0.0)  # [B, Nc, E * Dy]
    parts = [jnp.ones_like(y_enc[..., :1]), y_enc, x_ctx.astype(y_enc.dtype)]
    if cfg.embed_coordinates:
        parts += [meta_ctx[g.name].astype(y_enc.dtype) for g in cfg.groups]
    if cfg.support:  # a release given new inputs keeps its rows wherever they sit (warm_start.with_token_layout)
        parts.append(jnp.where(real, context_support(meta_ctx, y_enc).astype(y_enc.dtype), 0.0))
    if cfg.covariate_trend:
        parts.append(trend.astype(y_enc.dtype))
    return jnp.concatenate(parts, axis=-1)


def target_features(cfg: BSATNPConfig, x_tgt, meta_tgt, trend=None):
    """Test token features ``[B, Nt, same width]``: flag 0 and no observation (and the trend at the targets)."""
    n = x_tgt.shape[:2]
    dtype = jnp.promote_types(x_tgt.dtype, jnp.float32)
    parts = [jnp.zeros(n + (1 + cfg.likelihood.encoded_columns * cfg.y_dim,), dtype), x_tgt.astype(dtype)]
    if cfg.embed_coordinates:
        parts += [meta_tgt[g.name].astype(dtype) for g in cfg.groups]
    if cfg.support:  # the targets are the unit of support
        parts.append(jnp.zeros(n + (1,), dtype))
    if cfg.covariate_trend:
        parts.append(trend.astype(dtype))
    return jnp.concatenate(parts, axis=-1)
