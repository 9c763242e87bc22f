"""Shared settings (one jax cache, cores split between workers) and the small fields and models of the tests."""

import atexit
import os
import shutil
import tempfile

# Tests compare float32 results to 1e-5; keep XLA from using faster, less exact paths.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")

# One jax compilation cache for the session, on disk: the notebook kernels and dask workers are processes
# of their own that would otherwise compile again the programs the tests already compiled. Removed at exit.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="geonp-test-jax-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.3")


def _share_the_cores_between_workers():
    """Give each pytest-xdist worker its own share of the cores, before jax starts its thread pools.

    Each jax process sizes its thread pools to the cores it may run on. Two workers that may both run on
    both cores of a 2-core machine start four busy threads, which wait on one another at every parallel
    loop. Pinned, each worker's pool has one thread per core it owns. The processes a worker starts
    (notebook kernels, dask workers) inherit its share.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ...
    if workers < 2 or not worker.startswith("gw") or not hasattr(os, "sched_setaffinity"):
        return
    cores = sorted(os.sched_getaffinity(0))
    share = len(cores) // workers
    if share < 1:
        return
    index = int(worker[2:]) % workers
    os.sched_setaffinity(0, cores[index * share:(index + 1) * share])


_share_the_cores_between_workers()


def pytest_collection_modifyitems(config, items):
    """Run the long modules first: notebooks, and modules with a test marked ``slow``.

    With ``--dist loadfile`` each module goes to one worker as a whole, in this order. A long module
    started last leaves the other worker idle for its whole length; started first, it overlaps with
    the many short ones.
    """
    long_modules = {item.path for item in items if item.path.suffix == ".ipynb" or item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in long_modules)  # stable: the order within each group stays


# The small fields and models shared by the tests (session-wide: built once, only where a test asks).
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from geonp.testing import TINY, smooth_field, with_gaps  # noqa: E402,F401


@pytest.fixture(scope="session")
def field():
    return smooth_field(np.arange(50.0, 56.0, 0.25), np.arange(-4.0, 3.0, 0.25))  # 3 x 24 x 28


@pytest.fixture(scope="session")
def gappy(field):
    return with_gaps(field)


@pytest.fixture(scope="session")
def calibrated(gappy):
    """The bundled model calibrated on the gappy field (no training)."""
    import geonp

    return geonp.NeuralProcess(pretrained="gp2d-normal", steps=0).fit(gappy)


@pytest.fixture(scope="session")
def tiny(gappy):
    """A tiny model trained for a few steps (for fit/save/load mechanics, not accuracy)."""
    import geonp

    return geonp.NeuralProcess(steps=12, seed=3, **TINY).fit(gappy)
