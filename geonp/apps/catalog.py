"""A small reader of intake-v1-shaped YAML catalogs (``catalogs/geonp.yaml``), without requiring intake.

    cat = geonp.apps.catalog.open_catalog()        # the repository's catalogs/geonp.yaml
    cat.list()                                # entry names
    ds = cat.open("era5_t2m_uk_1deg")         # xr.Dataset (netcdf, zarr) or pandas DataFrame (csv)

Templates: ``{{ env(NAME) }}`` (``GEONP_DATA`` defaults to the shared data folder beside
the checkout) and ``{{ CATALOG_DIR }}``. Local files that are missing and remote stores that
cannot be reached fail with a message saying what to do; nothing is downloaded unless a
remote entry is opened.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from geonp.errors import CatalogError, ConfigError

DEFAULT_CATALOG = Path(__file__).resolve().parents[2] / "catalogs" / "geonp.yaml"
DRIVERS = ("netcdf", "zarr", "csv")


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    driver: str
    description: str
    args: dict
    metadata: dict

    @property
    def remote(self) -> bool:
        return "://" in str(self.args.get("urlpath", ""))


@dataclasses.dataclass(frozen=True)
class Catalog:
    path: Path
    entries: dict

    def list(self) -> list[str]:
        return sorted(self.entries)

    def __getitem__(self, name: str) -> Entry:
        if name not in self.entries:
            raise CatalogError(f"no entry {name!r} in {self.path}; entries: {self.list()}.")
        return self.entries[name]

    def describe(self, name: str) -> dict:
        return dataclasses.asdict(self[name])

    def open(self, name: str, **kwargs):
        """Open an entry: ``xr.Dataset`` for netcdf/zarr, ``pandas.DataFrame`` for csv."""
        entry = self[name]
        url = entry.args["urlpath"]
        options = {k: v for k, v in entry.args.items() if k != "urlpath"} | kwargs
        if not entry.remote and not Path(url).exists():
            raise CatalogError(f"{name}: {url} does not exist. Set GEONP_DATA to the folder holding the shared "
                               "sample data (or edit the catalog's urlpath).")
        try:
            if entry.driver == "csv":
                import pandas as pd

                return pd.read_csv(url, **options)
            import xarray as xr

            if entry.driver == "zarr":
                return xr.open_zarr(url, **options)
            return xr.open_dataset(url, **options)
        except (OSError, ImportError, ValueError) as err:
            if entry.remote:
                raise CatalogError(
                    f"{name}: could not open the remote store {url} ({type(err).__name__}: {err}). It needs network "
                    f"access and {entry.metadata.get('needs', 'its filesystem package')} installed; geonp never "
                    "downloads unless asked, so work offline with the local entries."
                ) from err
            raise CatalogError(f"{name}: could not read {url}: {err}") from err


def _render(text: str, catalog_dir: Path) -> str:
    from geonp.apps.recipes import data_root

    def env(match):
        name = match.group(1)
        if name == "GEONP_DATA":
            return str(data_root())
        if name not in os.environ:
            raise CatalogError(f"the catalog uses env({name}) but {name} is not set.")
        return os.environ[name]

    text = re.sub(r"\{\{\s*env\((\w+)\)\s*\}\}", env, text)
    return re.sub(r"\{\{\s*CATALOG_DIR\s*\}\}", str(catalog_dir), text)


def open_catalog(path=None) -> Catalog:
    """Read a catalog (default: the repository's ``catalogs/geonp.yaml``)."""
    import yaml

    path = Path(path) if path is not None else DEFAULT_CATALOG
    if not path.is_file():
        raise CatalogError(f"catalog {path} not found; pass the path of a catalog YAML file.")
    document = yaml.safe_load(_render(path.read_text(), path.resolve().parent))
    if not isinstance(document, dict) or not isinstance(document.get("sources"), dict):
        raise ConfigError(f"{path}: a catalog is a mapping with a 'sources' mapping (intake v1 shape).")
    entries = {}
    for name, spec in document["sources"].items():
        driver = str(spec.get("driver", "")).replace("intake_xarray.", "")
        if driver not in DRIVERS:
            raise ConfigError(f"{path}: entry {name!r} has driver {driver!r}; geonp reads {DRIVERS}.")
        if "urlpath" not in spec.get("args", {}):
            raise ConfigError(f"{path}: entry {name!r} needs args.urlpath.")
        entries[name] = Entry(name, driver, spec.get("description", ""), dict(spec["args"]),
                              dict(spec.get("metadata") or {}))
    return Catalog(path, entries)
