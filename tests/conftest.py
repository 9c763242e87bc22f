import os

# Tests compare float32 results to 1e-5; keep XLA from using faster, less exact paths.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_enable_fast_math=false")
