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
