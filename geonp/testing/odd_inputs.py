"""Odd inputs for the public API, and the promise every one of them must keep.

Each case drawn here goes through a public entry point (the ``.np`` accessor, ``fit``, ``predict``,
``load``/``save``, ``to_zarr``/``to_netcdf``, :func:`geonp.aggregate`, :func:`geonp.design.next_sites`) and
must end in one of two ways:

    "typed error"     a :class:`geonp.GeonpError` (which says what was wrong and how to fix it), or
    "correct output"  a finite, correctly shaped output, with the inputs left as they were.

Anything else is a broken promise: ``"bare exception"`` (numpy, scipy, jax or Python escaping) or
``"wrong output"`` (non-finite or misshapen where the data had an answer, or an input changed).

``tests/test_odd_inputs.py`` draws a few hundred cases with hypothesis; ``benchmarks/fuzz.py`` draws
thousands and counts the outcomes. Cases are built by :func:`cases` (a hypothesis strategy) and run by
:func:`check`. Grids keep a few fixed shapes so that compiled networks are reused (a case takes ~0.1 s).
hypothesis is a test dependency: import this module from tests and benchmarks only.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
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

    def run():
        model = geonp.pretrained("gp2d-normal").fit(da, **extra, **options)
        return model.predict(da, progress=False)

    return Case("fit", f"fit on {da.dtype} options={options} {extra}", run, (da,),
                _finite_prediction({"lat": 6, "lon": 7}))


# --------------------------------------------------------------------------- checkpoints and paths


JSON_VALUES = (None, [], {}, "x", -1, 0, 1e308, True, [None])


def _json_paths(obj, prefix=()):
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key != "history":
                yield prefix + (key,)
                yield from _json_paths(value, prefix + (key,))
    elif isinstance(obj, list) and 0 < len(obj) <= 8:
        for i, value in enumerate(obj):
            yield prefix + (i,)
            yield from _json_paths(value, prefix + (i,))


@functools.cache
def _config_paths() -> tuple:
    return tuple(_json_paths(json.loads((saved_model() / "config.json").read_text())))


@st.composite
def checkpoint_cases(draw) -> Case:
    import shutil

    import geonp

    corruption = draw(st.sampled_from(("config field", "config field", "config field", "nan weight", "truncated",
                                       "not json", "missing params")))
    field, value = draw(st.sampled_from(_config_paths())), draw(st.sampled_from(JSON_VALUES))
    position = draw(st.integers(0, 10**6))

    def run():
        folder = Path(tempfile.mkdtemp(prefix="geonp-odd-")) / "model"
        shutil.copytree(saved_model(), folder)
        config = json.loads((folder / "config.json").read_text())
        if corruption == "config field":
            node = config
            for key in field[:-1]:
                node = node[key]
            node[field[-1]] = value
            (folder / "config.json").write_text(json.dumps(config))
        elif corruption == "nan weight":
            from safetensors.numpy import load_file, save_file

            tensors = load_file(folder / "params.safetensors")
            name = sorted(tensors)[position % len(tensors)]
            tensors[name] = tensors[name].copy()
            tensors[name].flat[position % tensors[name].size] = np.nan
            save_file(tensors, folder / "params.safetensors")
        elif corruption == "truncated":
            data = (folder / "params.safetensors").read_bytes()
            (folder / "params.safetensors").write_bytes(data[: position % len(data)])
        elif corruption == "not json":
            (folder / "config.json").write_text("{not json")
        else:
            (folder / "params.safetensors").unlink()
        try:
            return geonp.load(folder).predict(base_grid(), progress=False)
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)

    label = f"checkpoint {corruption}" + (f" {field}={value!r}" if corruption == "config field" else "")
    return Case("checkpoint", label, run, (), _finite_prediction({"lat": 12, "lon": 14}))


PATHS = ("none", "int", "empty", "existing file", "under a file", "non-model folder", "fresh", "nested fresh")


@st.composite
def path_cases(draw) -> Case:
    import geonp

    style = draw(st.sampled_from(PATHS))
    action = draw(st.sampled_from(("save", "load", "to_zarr", "to_netcdf")))

    def run():
        root = Path(tempfile.mkdtemp(prefix="geonp-odd-"))
        (root / "notes.txt").write_text("keep me")
        (root / "photos").mkdir()
        (root / "photos" / "a.jpg").write_text("keep me too")
        path = {"none": None, "int": 123, "empty": "", "existing file": root / "notes.txt",
                "under a file": root / "notes.txt" / "out", "non-model folder": root / "photos",
                "fresh": root / "out", "nested fresh": root / "a" / "b" / "out"}[style]
        try:
            if action == "save":
                fitted_model().save(path)
            elif action == "load":
                geonp.load(path)
            elif action == "to_zarr":
                joint_prediction()[["mean"]].np.to_zarr(path, progress=False)
            else:
                joint_prediction()[["mean"]].np.to_netcdf(path, progress=False)
        finally:
            intact = (root / "notes.txt").read_text() == "keep me" and \
                (root / "photos" / "a.jpg").read_text() == "keep me too"
            import shutil

            shutil.rmtree(root, ignore_errors=True)
        return intact

    return Case("path", f"{action}({style})", run, (), lambda intact: None if intact else "a user's file was lost")


# --------------------------------------------------------------------------- aggregate and next_sites


@st.composite
def aggregate_cases(draw) -> Case:
    import geonp

    pred = joint_prediction()
    regions_style = draw(st.sampled_from(("labels", "labels float nan", "labels all negative", "labels strings",
                                          "labels other grid", "polygons", "polygon table", "polygon table names",
                                          "empty dict", "a number")))
    weights_style = draw(st.sampled_from(("none", "ones", "one inf", "negative", "nan", "strings", "other grid")))
    names = draw(st.sampled_from((None, "district", "name")))
    options = draw(st.sampled_from(({}, {"quantiles": [0.5]}, {"quantiles": 0.5}, {"quantiles": [1.5]},
                                    {"exceedance": [0.2]}, {"exceedance": 0.2}, {"fraction_above": [0.0]},
                                    {"fraction_above": ["x"]})))
    labels = xr.DataArray((np.arange(12)[:, None] // 6 + 2 * (np.arange(14)[None, :] // 7)).astype("int64"),
                          dims=("lat", "lon"), coords={"lat": pred.lat, "lon": pred.lon})

    def regions():
        import shapely

        box = shapely.box(-5.0, 50.0, -1.0, 53.0)
        if regions_style == "labels":
            return labels
        if regions_style == "labels float nan":
            return labels.astype(float).where(labels > 0)
        if regions_style == "labels all negative":
            return labels * 0 - 1
        if regions_style == "labels strings":
            return labels.astype(str)
        if regions_style == "labels other grid":
            return labels.assign_coords(lat=labels.lat + 0.01)
        if regions_style == "polygons":
            return {"south-west": box}
        if regions_style.startswith("polygon table"):
            return pd.DataFrame({"name": ["south-west"], "geometry": [box]})
        if regions_style == "empty dict":
            return {}
        return 3

    def weights():
        ones = xr.ones_like(labels, dtype=float)
        return {"none": None, "ones": ones, "one inf": ones.where(labels != 0, np.inf), "negative": -ones,
                "nan": ones * np.nan, "strings": ones.astype(str),
                "other grid": ones.isel(lat=slice(0, 5))}[weights_style]

    def run():
        return geonp.aggregate(pred, regions(), weights(), names=names, **options)

    def expect(out):
        if not isinstance(out, xr.Dataset) or "mean" not in out:
            return "no region means"
        finite = np.isfinite(out["mean"].values)
        return None if finite.any() or weights_style == "nan" else "every region mean is non-finite"

    return Case("aggregate", f"aggregate regions={regions_style} weights={weights_style} names={names} {options}",
                run, (pred,), expect)


@st.composite
def site_cases(draw) -> Case:
    from geonp.design import next_sites

    n = draw(st.sampled_from((1, 2, 0, -1, 1.5, "2", None, 100)))
    criterion = draw(st.sampled_from(("variance", "exceedance", "integrated", "nope")))
    threshold = draw(st.sampled_from((None, 0.5, "x", float("nan"))))
    candidates_style = draw(st.sampled_from(("plain", "missing column", "inf", "empty", "not a table")))
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"lat": rng.uniform(50, 55, 6), "lon": rng.uniform(-5, 1, 6)})
    candidates = {"plain": frame, "missing column": frame[["lat"]], "inf": frame.assign(lon=np.inf),
                  "empty": frame.iloc[:0], "not a table": frame.values}[candidates_style]

    def run():
        return next_sites(fitted_model(), base_grid(), candidates, n, criterion, threshold=threshold,
                          targets=base_grid().isel(lat=slice(0, 4), lon=slice(0, 4)))

    def expect(out):
        if not isinstance(out, pd.DataFrame) or "order" not in out:
            return "no table of chosen sites"
        return None if np.isfinite(out["score"].to_numpy(float)).all() else "non-finite scores"

    return Case("sites", f"next_sites(n={n!r}, {criterion}, threshold={threshold!r}, {candidates_style})", run,
                (base_grid(),) + ((candidates,) if isinstance(candidates, pd.DataFrame) else ()), expect)


# --------------------------------------------------------------------------- counts: binomial surveys


COUNT_STYLES = ("plain", "negative positives", "fractional positives", "fractional examined", "zero examined",
                "positives above examined", "nan coordinates", "string counts", "inf examined", "one site",
                "all zero", "huge examined", "duplicated sites")


@st.composite
def survey_cases(draw) -> Case:
    import geonp

    style = draw(_mostly_plain(COUNT_STYLES))
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    n = 30
    examined = rng.integers(5, 60, n).astype(float)
    frame = pd.DataFrame({"lat": rng.uniform(13.0, 14.0, n), "lon": rng.uniform(-16.5, -14.0, n),
                          "examined": examined, "positive": np.floor(examined * rng.uniform(0, 0.6, n))})
    if style == "negative positives":
        frame.loc[0, "positive"] = -2
    elif style == "fractional positives":
        frame.loc[1, "positive"] = 2.5
    elif style == "fractional examined":
        frame.loc[2, "examined"] = 10.5
    elif style == "zero examined":
        frame.loc[3, ["examined", "positive"]] = 0
    elif style == "positives above examined":
        frame.loc[4, "positive"] = frame.loc[4, "examined"] + 3
    elif style == "nan coordinates":
        frame.loc[5, "lat"] = np.nan
    elif style == "string counts":
        frame["positive"] = frame["positive"].astype(int).astype(str)
    elif style == "inf examined":
        frame.loc[6, "examined"] = np.inf
    elif style == "one site":
        frame = frame.iloc[:1]
    elif style == "all zero":
        frame["positive"] = 0.0
    elif style == "huge examined":
        frame["examined"] *= 1e9
    elif style == "duplicated sites":
        frame = pd.concat([frame, frame.iloc[:5]], ignore_index=True)
    options = draw(st.sampled_from(({}, {"exceedance": [0.2]}, {"quantiles": [0.1, 0.9]}, {"samples": 3},
                                    {"exceedance": [1.5]}, {"exceedance": 0.2})))
    targets = pd.DataFrame({"lat": [13.2, 13.8], "lon": [-15.0, -14.5]})

    def run():
        model = geonp.pretrained("prevalence-binomial").fit(frame, "positive", trials="examined", steps=0,
                                                             progress=False)
        return model.predict(frame, targets, progress=False, **options)

    return Case("survey", f"survey {style} {options}", run, (frame, targets), _finite_prediction({"point": 2}))


# --------------------------------------------------------------------------- models by name, the estimator


@st.composite
def model_cases(draw) -> Case:
    import geonp

    style = draw(st.sampled_from(("pretrained name", "pretrained params", "predict model", "unfitted",
                                  "accessor fit", "condition", "set_params")))
    name = draw(st.sampled_from(("gp2d-normal", "field-normal", "nope", None, 123, "", "../etc")))
    value = draw(st.sampled_from((None, 123, "nope", 1.5, -1, [1], {"a": 1})))
    da = base_grid()

    def run():
        if style == "pretrained name":
            return geonp.pretrained(name).fit(da, steps=0, progress=False).predict(da, progress=False)
        if style == "pretrained params":
            return geonp.pretrained("gp2d-normal", steps=0, window_points=value).fit(da, progress=False).predict(
                da, progress=False)
        if style == "predict model":
            return da.np.predict(model=value, progress=False)
        if style == "unfitted":
            return geonp.NeuralProcess().predict(da)
        if style == "accessor fit":
            return da.np.fit(model=name, steps=0, progress=False).predict(da, progress=False)
        if style == "condition":
            model = copy.copy(fitted_model())
            return model.condition(da if value is None else value).predict(target=da, progress=False)
        return fitted_model().set_params(**{str(value): 1})

    expect = _finite_prediction({"lat": 12, "lon": 14})
    return Case("models", f"{style} name={name!r} value={value!r}", run, (da,),
                (lambda out: None) if style == "set_params" else expect)


# --------------------------------------------------------------------------- the command line


@st.composite
def cli_cases(draw) -> Case:
    from geonp.apps import cli

    data = draw(st.sampled_from(("good", "missing", "garbage", "folder", "text nc")))
    extra = draw(st.lists(st.sampled_from((("--factor", "2"), ("--factor", "0"), ("--factor", "x"),
                                           ("--var", "nope"), ("--var", "t2m"), ("--model", "nope"),
                                           ("--quantiles", "0.1", "0.9"), ("--quantiles", "2"),
                                           ("--target", "missing.nc"), ("--covariates", "z"),
                                           ("--trials", "n"), ("--exceedance", "1"))), max_size=2, unique=True))

    def run():
        import contextlib
        import io
        import shutil

        root = Path(tempfile.mkdtemp(prefix="geonp-odd-"))
        try:
            path = root / "data.nc"
            if data == "good":
                base_grid().to_netcdf(path)
            elif data == "garbage":
                path.write_bytes(b"\x00garbage" * 50)
            elif data == "folder":
                path.mkdir()
            elif data == "text nc":
                path.write_text("lat,lon,t2m\n1,2,3\n")
            argv = ["predict", str(path), "-o", str(root / "out.nc"), *[a for pair in extra for a in pair]]
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                try:
                    code = cli.main(argv)
                except SystemExit as exit_:  # argparse: usage and one error line
                    code = exit_.code
            lines = [line for line in stderr.getvalue().splitlines() if line.startswith("geonp")]
            if code == 3:
                raise RuntimeError(stderr.getvalue())  # an internal error reached the user
            if code and not lines and code != 2:
                raise RuntimeError(f"exit code {code} without an error line")
            if code:
                raise GeonpError(lines[-1] if lines else "usage error")
            return (root / "out.nc").is_file()
        finally:
            shutil.rmtree(root, ignore_errors=True)

    return Case("cli", f"geonp predict {data} {extra}", run, (),
                lambda written: None if written else "exit 0 without the output file")


def cases() -> st.SearchStrategy:
    """Every kind of odd case, predict weighted most (it has the most options)."""
    return st.one_of(predict_cases(), predict_cases(), predict_cases(), fit_cases(), checkpoint_cases(),
                     path_cases(), aggregate_cases(), site_cases(), model_cases(), cli_cases(), survey_cases())
