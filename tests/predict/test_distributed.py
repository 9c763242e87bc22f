"""Tiled prediction on a dask.distributed LocalCluster (worker processes) equals the local result."""

import pytest
import xarray as xr

distributed = pytest.importorskip("distributed")


def test_local_cluster_matches_threaded(gappy, calibrated, tmp_path):
    expected = gappy.np.predict(model=calibrated, tile=12)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        lazy = gappy.np.predict(model=calibrated, tile=12, lazy=True)
        remote = lazy.compute()
        assert all(client.run(lambda: "geonp.predict.context" in __import__("sys").modules).values())  # ran on workers
        path = lazy.np.to_zarr(tmp_path / "pred.zarr", progress=False)
    xr.testing.assert_allclose(remote[["mean", "std"]], expected[["mean", "std"]])
    xr.testing.assert_allclose(xr.open_zarr(path)[["mean", "std"]].load(), expected[["mean", "std"]])
