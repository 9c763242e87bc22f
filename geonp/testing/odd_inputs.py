"""Odd inputs for the public API, and the promise every one of them must keep.

Each case drawn here goes through a public entry point (the ``.np`` accessor, ``fit``, ``predict``,
``load``/``save``, ``to_zarr``/``to_netcdf``, :func:`geonp.aggregate`, :func:`geonp.design.next_sites`) and
must end in one of two ways:

    "typed error"     a :class:`geonp.GeonpError` (which says what was wrong and how to fix it), or
    "correct output"  a finite, correctly shaped output, with the inputs left as they were.

Anything else is a broken promise: ``"bare exception"`` (numpy, scipy, jax or Python escaping) or
``"wrong output"`` (non-finite or misshapen where the data had an answer, or an input changed).

``tests/test_odd_inputs.py`` draws a few hundred cases with hypothesis; ``benchmarks/fuzz.py`` draws
thousands and counts the outcomes. Cases are built by :func:`geonp.testing.odd_cases.cases` (a hypothesis
strategy) and run by :func:`check`. Grids keep a few fixed shapes so that compiled networks are reused (a case
takes ~0.1 s).
hypothesis is a test dependency: import this module from tests and benchmarks only.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from hypothesis import strategies as st

from geonp.errors import GeonpError

OUTCOMES = ("typed error", "correct output", "bare exception", "wrong output")
SHAPES = ((12, 14), (6, 7), (1, 14), (12, 1), (1, 1), (0, 14))
ODD_NUMBERS = (None, float("nan"), float("inf"), -1, 0, 1.5, "8", [1.0], True, 10**12)


@dataclasses.dataclass
class Case:
    """One call: ``run()`` does it; ``inputs`` must come back unchanged; ``expect(out)`` says what is wrong
    with a returned output (``None``: nothing)."""

    kind: str
    label: str
    run: Callable
    inputs: tuple = ()
    expect: Callable = lambda out: None


@dataclasses.dataclass
class Outcome:
    kind: str  # one of OUTCOMES
    case: str
    detail: str = ""


def check(case: Case) -> Outcome:
    """Run one case and say which of :data:`OUTCOMES` it ended in."""
    before = [copy.deepcopy(x) for x in case.inputs]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = case.run()
    except GeonpError as err:
        return Outcome("typed error", case.label, str(err)[:200])
    except Exception as err:  # noqa: BLE001 - counting what escapes is the point
        return Outcome("bare exception", case.label, f"{type(err).__name__}: {str(err)[:200]}")
    changed = [i for i, (b, a) in enumerate(zip(before, case.inputs, strict=True)) if not _same(b, a)]
    if changed:
        return Outcome("wrong output", case.label, f"input(s) {changed} changed")
    problem = case.expect(out)
    return Outcome("wrong output", case.label, problem) if problem else Outcome("correct output", case.label)


def _same(a, b) -> bool:
    if isinstance(a, xr.DataArray | xr.Dataset):
        return a.identical(b)
    if isinstance(a, pd.DataFrame):
        return a.equals(b) and list(a.columns) == list(b.columns)
    return True


# --------------------------------------------------------------------------- shared fixtures (built once)


def base_grid(shape=(12, 14), seed=0) -> xr.DataArray:
    """A float32 lat/lon field with a gap, over the British Isles."""
    rng = np.random.default_rng(seed)
    lat, lon = np.linspace(50.0, 55.5, shape[0]), np.linspace(-5.0, 1.5, shape[1])
    values = (np.sin(lat[:, None] / 2) + np.cos(lon[None, :] / 3) + 0.3 * rng.normal(size=shape)).astype("float32")
    if shape[0] > 4 and shape[1] > 4:
        values[shape[0] // 4: shape[0] // 2, shape[1] // 4: shape[1] // 2] = np.nan
    da = xr.DataArray(values, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="t2m")
    da.attrs["units"] = "K"
    return da


@functools.cache
def fitted_model():
    """``gp2d-normal`` calibrated on :func:`base_grid` (shared by every case)."""
    import geonp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return geonp.pretrained("gp2d-normal").fit(base_grid(), steps=0, progress=False)


@functools.cache
def saved_model() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="geonp-odd-")) / "model"
    fitted_model().save(folder)
    return folder


@functools.cache
def joint_prediction() -> xr.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fitted_model().predict(base_grid(), samples=16, joint=True, progress=False)


# --------------------------------------------------------------------------- expectations


def _finite_prediction(expected_sizes: dict, context: xr.DataArray | None = None) -> Callable:
    """Sizes as expected, and every output finite (but in the steps of ``context`` with no observation at
    all: those are NaN, with a warning)."""
    def expect(out):
        if not isinstance(out, xr.Dataset) or "mean" not in out:
            return f"returned {type(out).__name__} without 'mean'"
        sizes = {d: out["mean"].sizes[d] for d in expected_sizes if d in out["mean"].dims}
        if sizes != expected_sizes:
            return f"mean has sizes {dict(out['mean'].sizes)}, expected {expected_sizes}"
        if context is not None and "time" in context.dims and "time" in out.dims:
            spatial = [d for d in context.dims if d != "time"]
            observed = np.isfinite(np.asarray(context.values, np.float64)).any(
                axis=tuple(context.dims.index(d) for d in spatial))
            out = out.isel(time=np.flatnonzero(observed))
        for name in ("mean", "std", "filled", "quantiles", "samples"):
            if name in out and not np.isfinite(np.asarray(out[name].values, np.float64)).all():
                return f"{name} holds non-finite values"
        return None
    return expect


# --------------------------------------------------------------------------- grids


COORDINATE_STYLES = ("plain", "0..360", "descending", "projected", "nan lat", "inf lon", "string lon",
                     "datetime lon", "bool lat", "lat beyond 90", "duplicated lon", "unsorted lat", "transposed",
                     "integer coords", "time of 1", "time of 2", "no coords")
VALUE_STYLES = ("plain", "float64", "int32", "bool", "complex", "timedelta", "strings", "all nan", "one inf",
                "constant", "1e30", "1e-30", "1e300", "1e-310", "one observed", "negative huge")


def _mostly_plain(styles) -> st.SearchStrategy:
    return st.one_of(st.just("plain"), st.sampled_from(styles))


@st.composite
def grids(draw) -> tuple[xr.DataArray, str]:
    """An odd grid and a label saying how it is odd."""
    shape = draw(st.sampled_from(SHAPES))
    # half the grids are odd in one way only, so that the options and targets are reached too
    coords, values = draw(_mostly_plain(COORDINATE_STYLES)), draw(_mostly_plain(VALUE_STYLES))
    da = base_grid(shape) if shape[0] else base_grid((12, 14)).isel(lat=slice(0, 0))
    da = _with_coordinates(da, coords)
    da = _with_values(da, values)
    return da, f"grid {shape} coords={coords} values={values}"


def _with_coordinates(da, style):
    n_lat, n_lon = da.sizes["lat"], da.sizes["lon"]
    if style == "0..360":
        return da.assign_coords(lon=da.lon % 360)
    if style == "descending":
        return da.isel(lat=slice(None, None, -1))
    if style == "projected":
        return da.rename(lat="y", lon="x").assign_coords(y=da.lat.values * 1e5, x=da.lon.values * 1e5)
    if style == "nan lat" and n_lat:
        return da.assign_coords(lat=np.where(np.arange(n_lat) == 0, np.nan, da.lat.values))
    if style == "inf lon" and n_lon:
        return da.assign_coords(lon=np.where(np.arange(n_lon) == n_lon - 1, np.inf, da.lon.values))
    if style == "string lon":
        return da.assign_coords(lon=[f"{v:.1f}" for v in da.lon.values])
    if style == "datetime lon":
        return da.assign_coords(lon=pd.date_range("2000-01-01", periods=n_lon))
    if style == "bool lat":
        return da.assign_coords(lat=np.arange(n_lat) % 2 == 0)
    if style == "lat beyond 90":
        return da.assign_coords(lat=da.lat.values + 60.0)
    if style == "duplicated lon" and n_lon > 1:
        return da.assign_coords(lon=np.r_[da.lon.values[:1], da.lon.values[:-1]])
    if style == "unsorted lat" and n_lat > 2:
        return da.isel(lat=[1, 0] + list(range(2, n_lat)))
    if style == "transposed":
        return da.transpose("lon", "lat")
    if style == "integer coords":
        return da.assign_coords(lat=np.arange(50, 50 + n_lat), lon=np.arange(-5, -5 + n_lon))
    if style == "time of 1":
        return da.expand_dims(time=pd.date_range("2000-01-01", periods=1))
    if style == "time of 2":
        return xr.concat([da, da + 1.0], dim=xr.DataArray(pd.date_range("2000-01-01", periods=2), dims="time"))
    if style == "no coords":
        return da.drop_vars(["lat", "lon"])
    return da


def _with_values(da, style):
    v = da.values
    if style == "float64":
        return da.astype("float64")
    if style == "int32":
        return da.fillna(0).astype("int32")
    if style == "bool":
        return da > float(np.nanmean(v)) if np.isfinite(v).any() else da.fillna(0).astype(bool)
    if style == "complex":
        return da.astype("complex64")
    if style == "timedelta":
        return (da.fillna(0) * 3600).astype("int64").astype("timedelta64[s]")
    if style == "strings":
        return da.astype(str)
    if style == "all nan":
        return da * np.nan
    if style == "one inf" and v.size:
        return da.where(np.arange(v.size).reshape(v.shape) != 0, np.inf)
    if style == "constant":
        return da * 0 + 3.0
    if style in ("1e30", "1e-30", "1e300", "1e-310", "negative huge"):
        factor = {"1e30": 1e30, "1e-30": 1e-30, "1e300": 1e300, "1e-310": 1e-310, "negative huge": -1e20}[style]
        return da.astype("float64") * factor
    if style == "one observed" and v.size:
        return da.where(np.arange(v.size).reshape(v.shape) == v.size // 2)
    return da


# --------------------------------------------------------------------------- predict


PREDICT_OPTIONS = {
    "quantiles": ([0.1, 0.9], 0.5, "0.5", [1 - 1e-12], [float("nan")], [], [0.0], (0.5,)),
    "samples": (0, 3, 2.0, -1, None, float("nan"), "3", 10**7),
    "exceedance": ([0.0], 0.5, [float("inf")], ["x"]),
    "tile": (8, 1, 0, 1.5, "8", float("nan"), None),
    "halo": (None, "all", 50.0, 0.0, -1.0, float("inf"), [1.0], "x"),
    "calibrated": (True, False, None, "yes"),
    "conserve": ("auto", True, False, "x"),
    "without": ((), ["blend"], ["spread", "drift"], ["kriging"], "blend", None),
    "joint": (False, True, "x"),
    "seed": (0, 3, -1, "x", 1.5),
}


@st.composite
def predict_options(draw) -> dict:
    names = draw(st.lists(st.sampled_from(sorted(PREDICT_OPTIONS)), max_size=3, unique=True))
    return {n: draw(st.sampled_from(PREDICT_OPTIONS[n])) for n in names}


TARGETS = ("none", "factor 2", "factor 0", "factor -1", "factor 1.5", "factor '2'", "points", "points empty",
           "points inf", "points nan", "points projected", "points strings", "grid subset", "grid other kind",
           "a list")


def _target(style, da):
    if style == "none":
        return None, None
    if style.startswith("factor"):
        value = {"factor 2": 2, "factor 0": 0, "factor -1": -1, "factor 1.5": 1.5, "factor '2'": "2"}[style]
        return value, None
    lat = np.array([50.5, 52.0, 54.2])
    lon = np.array([-4.0, -1.0, 0.5])
    if style == "points":
        return pd.DataFrame({"lat": lat, "lon": lon}), {"point": 3}
    if style == "points empty":
        return pd.DataFrame({"lat": lat[:0], "lon": lon[:0]}), {"point": 0}
    if style == "points inf":
        return pd.DataFrame({"lat": lat, "lon": [np.inf, -1.0, 0.5]}), {"point": 3}
    if style == "points nan":
        return pd.DataFrame({"lat": [np.nan, 52.0, 54.2], "lon": lon}), {"point": 3}
    if style == "points projected":
        return pd.DataFrame({"y": lat * 1e5, "x": lon * 1e5}), {"point": 3}
    if style == "points strings":
        return pd.DataFrame({"lat": lat.astype(str), "lon": lon}), {"point": 3}
    if style == "grid subset":
        sub = base_grid().isel(lat=slice(2, 7), lon=slice(3, 9))
        return sub, {"lat": 5, "lon": 6}
    if style == "grid other kind":
        return base_grid().rename(lat="y", lon="x"), {"y": 12, "x": 14}
    return [1, 2], None


@st.composite
def predict_cases(draw) -> Case:
    da, label = draw(grids())
    options = draw(predict_options())
    target_style = draw(st.sampled_from(TARGETS))
    target, target_sizes = _target(target_style, da)
    model = fitted_model()
    sizes = target_sizes
    if sizes is None:
        spatial = [d for d in da.dims if d in ("lat", "lon", "y", "x")]
        factor = target if isinstance(target, int) and not isinstance(target, bool) else 1
        sizes = {d: da.sizes[d] * factor for d in spatial}
    use_accessor = draw(st.booleans())

    def run():
        if use_accessor:
            return da.np.predict(target=target, model=model, progress=False, **options)
        return model.predict(da, target, progress=False, **options)

    return Case("predict", f"{label} target={target_style} options={options}", run,
                (da,) + ((target,) if isinstance(target, pd.DataFrame | xr.DataArray) else ()),
                _finite_prediction(sizes, da if np.issubdtype(da.dtype, np.number) else None))


# --------------------------------------------------------------------------- fit


FIT_OPTIONS = {
    "steps": (0, -1, 1.5, "0", None),
    "seed": (0, "x", -3, 2.5, None),
    "learning_rate": (1e-4, 0.0, -1.0, float("nan"), "fast"),
    "time_budget": (None, 0.0, -5.0, float("inf"), "1"),
    "batch_size": (8, 0, 2.5, None),
    "trend": ("auto", 0, 2, 5, "x", True),
    "validation_fraction": (0.1, 1.0, -0.1, "x"),
    "context_fraction": ((0.1, 0.9), (0.9, 0.1), 0.5, (0.0, 1.0)),
    "progress": (False, "no"),
    "likelihood": ("normal", "poisson", "gamma", {"name": "normal", "min_std": "x"}),
    "arch": ("bsa-tnp", "nope"),
}


@st.composite
def fit_cases(draw) -> Case:
    import geonp

    da = base_grid((6, 7))
    da = _with_values(da, draw(_mostly_plain(VALUE_STYLES)))
    names = draw(st.lists(st.sampled_from(sorted(FIT_OPTIONS)), max_size=2, unique=True))
    options = {"steps": 0, "progress": False, **{n: draw(st.sampled_from(FIT_OPTIONS[n])) for n in names}}
    extra = draw(st.sampled_from(({}, {"trials": "n"}, {"exposure": "pop"}, {"var": "nope"}, {"covariates": ["z"]},
                                  {"target": "x"})))
    layout = draw(st.sampled_from(("plain",) * 12 + COVARIATE_LAYOUTS))  # rare: each costs a calibration
    model_name, data = "gp2d-normal", da
    if layout != "plain":  # a grid large enough to hold cells out, and a model that takes covariates
        model_name, data = "field-normal", _with_covariate(base_grid((16, 20)).astype(da.dtype), layout)
        extra = {"var": "t2m", "covariates": ["z"]}

    def run():
        model = geonp.pretrained(model_name).fit(data, **extra, **options)
        return model.predict(data, progress=False)

    return Case("fit", f"fit on {da.dtype} {layout} options={options} {extra}", run, (data,),
                _finite_prediction({"lat": data.sizes["lat"], "lon": data.sizes["lon"]}))


# a covariate z beside the field: the same on every step, or changing with time (one step or two)
COVARIATE_LAYOUTS = ("z", "z, time of 1", "z over time, time of 1", "z over time, time of 2")


def _with_covariate(da: xr.DataArray, layout: str):
    if layout == "plain":
        return da
    z = xr.DataArray(np.add.outer(np.arange(da.sizes["lat"]), np.arange(da.sizes["lon"]) ** 2).astype("float32"),
                     dims=("lat", "lon"))
    steps = {"z": 0, "z, time of 1": 1, "z over time, time of 1": 1, "z over time, time of 2": 2}[layout]
    ds = xr.Dataset({"t2m": da, "z": z})
    if steps:
        ds = xr.concat([ds + k for k in range(steps)], dim=xr.DataArray(pd.date_range("2000-01-01", periods=steps),
                                                                         dims="time"))
        if "over time" not in layout:
            ds["z"] = z
    return ds


# --------------------------------------------------------------------------- checkpoints and paths
