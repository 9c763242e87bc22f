"""Batches drawn ahead of the training step, in a separate process.

The batch of step t is still ``batch_of_step(t)`` (``geonp.training.reuse.StepBatches``), in
order, so a prefetched run sees exactly the batches of an unprefetched one and
resumes exactly. Sampling (a float64 Cholesky per GP task, for instance) then
overlaps the optimiser step instead of waiting for it.

A process, not a thread: two XLA executions in flight at once in one process
share its CPU thread pool, and on a 2-core machine each can end up waiting for
pool threads that the other holds (seen here as a hang of the training loop).
The sampler process runs its own single-threaded XLA runtime and sends plain
numpy arrays back.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import traceback

import numpy as np

SAMPLER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _produce(batch_of_step, start: int, stop: int, out, stop_event):
    """The sampler process: put ``(step, batch as numpy, None)`` or ``(step, None, message)`` on ``out``."""
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + SAMPLER_XLA_FLAGS).strip()
    import jax  # initialised here, after the flags

    for step in range(start, stop):
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


class Prefetcher:
    """Iterator over ``(step, batch)`` for ``step = start .. stop - 1``, ``depth`` batches ahead.

    ``batch_of_step`` must be picklable (the task samplers are frozen dataclasses).
    Use as a context manager (or call :meth:`close`). An exception in the
    sampler is re-raised here, at the step it belongs to, with its traceback.
    """

    def __init__(self, batch_of_step, start: int, stop: int, depth: int = 2):
        ctx = multiprocessing.get_context("spawn")  # never fork a process that holds an XLA runtime
        self._queue = ctx.Queue(maxsize=max(depth, 1))
        self._stop = ctx.Event()
        self._process = ctx.Process(
            target=_produce, name="geonp-prefetch", daemon=True,
            args=(batch_of_step, start, stop, self._queue, self._stop),
        )
        self._process.start()
        self._remaining = stop - start

    def __iter__(self):
        return self

    def __next__(self):
        if self._remaining <= 0:
            raise StopIteration
        while True:
            try:
                step, batch, error = self._queue.get(timeout=0.5)
                break
            except queue.Empty:
                if not self._process.is_alive():
                    raise RuntimeError(
                        f"the task sampler process stopped unexpectedly (exit code {self._process.exitcode}); "
                        "rerun with TrainConfig(prefetch=0) to sample in this process and see the error."
                    ) from None
        if error is not None:
            self.close()
            raise RuntimeError(f"sampling the batch of step {step} failed:\n{error}")
        self._remaining -= 1
        return step, batch

    def close(self):
        self._stop.set()
        self._process.join(timeout=5.0)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
