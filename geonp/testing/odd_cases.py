"""Every odd case (:func:`cases`): those of fit and predict (:mod:`geonp.testing.odd_inputs`, which also holds
the promise and its checker) and those of the other public entry points: corrupted saved models, odd paths for
save/load/to_zarr/to_netcdf, region aggregates, survey sites, surveys, models by name, and the command line."""

from __future__ import annotations

import copy
import functools
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from hypothesis import strategies as st

from geonp.errors import GeonpError
from geonp.testing import odd_inputs
from geonp.testing.odd_inputs import (
    Case,
    _finite_prediction,
    _mostly_plain,
    base_grid,
    fitted_model,
    joint_prediction,
    saved_model,
)

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
    from geonp.testing.odd_cases import (
        aggregate_cases,
        checkpoint_cases,
        cli_cases,
        model_cases,
        path_cases,
        site_cases,
        survey_cases,
    )

    return st.one_of(odd_inputs.predict_cases(), odd_inputs.predict_cases(), odd_inputs.predict_cases(),
                     odd_inputs.fit_cases(), checkpoint_cases(),
                     path_cases(), aggregate_cases(), site_cases(), model_cases(), cli_cases(), survey_cases())
