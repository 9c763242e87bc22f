"""Streaming writes: zarr and netCDF, resumable after an interruption, never a complete-looking partial file."""

import numpy as np
import pytest
import xarray as xr

from geonp.predict.tiles import TilePredictor
from geonp.xr import io as gio


@pytest.fixture()
def lazy_pred(gappy, calibrated):
    return gappy.np.predict(model=calibrated, tile=12, lazy=True, quantiles=[0.1, 0.9])


def test_zarr_round_trip(lazy_pred, tmp_path):
    path = lazy_pred.np.to_zarr(tmp_path / "pred.zarr", progress=False)
    stored = xr.open_zarr(path)
    xr.testing.assert_allclose(stored[["mean", "std", "quantiles"]].load(),
                               lazy_pred[["mean", "std", "quantiles"]].compute())
    assert stored["mean"].attrs["units"] == "K" and stored.attrs["Conventions"] == "CF-1.8"
    with pytest.raises(gio.OutputExistsError, match="overwrite=True"):
        gio.to_zarr(lazy_pred, path, progress=False)


def _interrupt_after(monkeypatch, n):
    calls = {"n": 0}
    original = TilePredictor.__call__

    def flaky(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n:
            raise KeyboardInterrupt("simulated interruption")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TilePredictor, "__call__", flaky)
    return calls


def test_interrupted_zarr_write_resumes_and_leaves_no_complete_looking_store(lazy_pred, tmp_path, monkeypatch):
    path = tmp_path / "pred.zarr"
    expected = lazy_pred.compute()
    calls = _interrupt_after(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        gio.to_zarr(lazy_pred, path, progress=False)
    assert not path.exists() and gio.manifest_path(tmp_path / "pred.zarr.partial").is_file()
    done_before = len(__import__("json").loads(gio.manifest_path(tmp_path / "pred.zarr.partial").read_text())["done"])
    assert done_before >= 1
    monkeypatch.undo()
    counted = _interrupt_after(monkeypatch, 10_000)
    gio.to_zarr(lazy_pred, path, progress=False)
    total_tiles = int(np.prod(lazy_pred["mean"].data.numblocks))
    assert counted["n"] == total_tiles - done_before  # finished tiles were not recomputed
    assert calls["n"] > 0 and sorted(p.name for p in tmp_path.iterdir()) == ["pred.zarr"]
    xr.testing.assert_allclose(xr.open_zarr(path)[["mean", "std"]].load(), expected[["mean", "std"]])


def test_netcdf_is_written_atomically_and_resumes(lazy_pred, tmp_path, monkeypatch):
    path = tmp_path / "pred.nc"
    _interrupt_after(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        gio.to_netcdf(lazy_pred, path, progress=False)
    assert not path.exists()
    monkeypatch.undo()
    lazy_pred.np.to_netcdf(path, progress=False)
    with xr.open_dataset(path) as stored:
        xr.testing.assert_allclose(stored[["mean", "std"]], lazy_pred[["mean", "std"]].compute())
        assert stored["std"].attrs["standard_name"] == "air_temperature standard_error"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pred.nc"]


def test_in_memory_prediction_is_written_too(gappy, calibrated, tmp_path):
    pred = gappy.isel(time=0).np.predict(model=calibrated)
    path = gio.to_zarr(pred, tmp_path / "eager.zarr", progress=False)
    xr.testing.assert_allclose(xr.open_zarr(path)[["mean", "std", "filled"]].load(), pred[["mean", "std", "filled"]])
    assert float(xr.open_zarr(path)["time"].values.astype("datetime64[ns]").astype(np.int64)) == \
        float(pred["time"].values.astype(np.int64))
