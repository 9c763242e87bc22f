"""A tqdm progress bar over the tiles of a dask computation (local schedulers)."""

from __future__ import annotations

from dask.callbacks import Callback
from tqdm.auto import tqdm

TILE_PREFIX = "geonp-predict"


class TileProgress(Callback):
    """Counts finished prediction tiles (tasks whose key starts with :data:`TILE_PREFIX`)."""

    def __init__(self, total: int, desc: str = "predicting", enabled: bool = True):
        super().__init__()
        self.bar = tqdm(total=total, desc=desc, unit="tile", disable=not enabled, mininterval=1.0)

    def _posttask(self, key, result, dsk, state, worker_id):
        name = key[0] if isinstance(key, tuple) else key
        if isinstance(name, str) and name.startswith(TILE_PREFIX):
            self.bar.update(1)

    def _finish(self, dsk, state, errored):
        self.bar.close()
