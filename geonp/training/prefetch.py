"""Batches drawn ahead of the training step, in a separate process.

The batch of step t is still ``batch_of_step(t)`` (``geonp.training.reuse.StepBatches``), in
order, so a prefetched run sees exactly the batches of an unprefetched one and
resumes exactly. Sampling (a float64 Cholesky per GP task, for instance) then
overlaps the optimiser step instead of waiting for it. On an accelerator one
sampler process is the bottleneck (a batch of 32 field tasks takes ~1 s of CPU,
a step of the network far less), so ``workers`` processes take turns: worker w
samples steps ``start + w, start + w + workers, ...`` and the trainer reads them
back in step order.

A process, not a thread: two XLA executions in flight at once in one process
share its CPU thread pool, and on a 2-core machine each can end up waiting for
pool threads that the other holds (seen here as a hang of the training loop).
Each sampler process runs its own single-threaded XLA runtime on the CPU and
sends plain numpy arrays back.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import traceback

import numpy as np

SAMPLER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
SAMPLER_THREADS = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _produce(batch_of_step, start: int, stop: int, stride: int, out, stop_event):
    """A sampler process: put ``(step, batch as numpy, None)`` or ``(step, None, message)`` on ``out``
    for ``step = start, start + stride, ... < stop``."""
    import jax  # its runtime set up by the environment Prefetcher started this process with

    for step in range(start, stop, stride):
        if stop_event.is_set():
            return
        try:
            batch = batch_of_step(step)
            item = (step, jax.tree_util.tree_map(np.asarray, batch), None)
        except Exception:  # handed to the trainer, never lost
            item = (step, None, traceback.format_exc())
        while not stop_event.is_set():
            try:
                out.put(item, timeout=0.2)
                break
            except queue.Full:
                continue
        if item[2] is not None:
            return


@contextlib.contextmanager
def _environment(**variables):
    """Set environment variables for the duration of the block, then restore them."""
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Prefetcher:
    """Iterator over ``(step, batch)`` for ``step = start .. stop - 1``, ``depth`` batches ahead per worker.

    ``batch_of_step`` must be picklable (the task samplers are frozen dataclasses).
    Use as a context manager (or call :meth:`close`). An exception in the
    sampler is re-raised here, at the step it belongs to, with its traceback.
    """

    def __init__(self, batch_of_step, start: int, stop: int, depth: int = 2, workers: int = 1):
        ctx = multiprocessing.get_context("spawn")  # never fork a process that holds an XLA runtime
        workers = max(1, min(int(workers), stop - start))
        self._queues = [ctx.Queue(maxsize=max(depth, 1)) for _ in range(workers)]
        self._stop = ctx.Event()
        self._processes = [
            ctx.Process(target=_produce, name=f"geonp-prefetch-{w}", daemon=True,
                        args=(batch_of_step, start + w, stop, workers, queue_, self._stop))
            for w, queue_ in enumerate(self._queues)
        ]
        # A spawned process copies the environment as it starts. The samplers run on the CPU only: one that woke a
        # GPU's runtime (unpickling the key already does) would take most of its memory from the trainer. And each
        # runs on one BLAS thread: on the 16-core GPU machine, 12 samplers with a thread per core each (their
        # float64 Choleskys) took ~20 s a batch instead of ~2, and starved the trainer's compilation.
        flags = (os.environ.get("XLA_FLAGS", "") + " " + SAMPLER_XLA_FLAGS).strip()
        with _environment(JAX_PLATFORMS="cpu", XLA_FLAGS=flags, **SAMPLER_THREADS):
            for process in self._processes:
                process.start()
        self._start, self._next, self._stop_step = start, start, stop

    def __iter__(self):
        return self

    def __next__(self):
        if self._next >= self._stop_step:
            raise StopIteration
        worker = (self._next - self._start) % len(self._queues)
        source, process = self._queues[worker], self._processes[worker]
        while True:
            try:
                step, batch, error = source.get(timeout=0.5)
                break
            except queue.Empty:
                if not process.is_alive():
                    raise RuntimeError(
                        f"the task sampler process stopped unexpectedly (exit code {process.exitcode}); "
                        "rerun with TrainConfig(prefetch=0) to sample in this process and see the error."
                    ) from None
        if error is not None:
            self.close()
            raise RuntimeError(f"sampling the batch of step {step} failed:\n{error}")
        self._next += 1
        return step, batch

    def close(self):
        self._stop.set()
        for process in self._processes:
            process.join(timeout=5.0)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
