"""Maps of predictions: mean and uncertainty side by side, with coastlines drawn offline.

    pred.np.plot()                                  # mean | std
    geonp.plot(pred, ["mean", "exceedance"], threshold=0.3)

Geographic data is drawn on a cartopy map (PlateCarree) with coastlines from
data already on disk: Natural Earth or GSHHS shapefiles under cartopy's data
directories. Nothing is downloaded; when no coastline data is found the map is
drawn without coastlines and a warning says how to add them.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from geonp.errors import ConfigError
from geonp.features.coordinates import find_coordinates

_WARNED: list = []
CMAPS = {"mean": "viridis", "std": "magma", "exceedance": "RdYlBu_r", "filled": "viridis", "mode": "Set1",
         "probs": "viridis"}


def coastline_files() -> list[Path]:
    """Coastline shapefiles already on disk (never downloads): Natural Earth first, then GSHHS (coarse)."""
    import cartopy

    roots = {Path(cartopy.config.get(key) or ".") for key in ("pre_existing_data_dir", "data_dir")}
    found = []
    for root in roots:
        if root.is_dir() and str(root) not in (".", ""):
            found += sorted(root.glob("**/ne_*_coastline.shp")) + sorted(root.glob("**/GSHHS_c_L1.shp"))
    return found


def _add_coastlines(ax) -> bool:
    import cartopy.crs as ccrs
    import cartopy.feature as cfeature
    from cartopy.io.shapereader import Reader

    files = coastline_files()
    if not files:
        if _WARNED:
            return False
        _WARNED.append(True)  # once per session, not once per panel
        warnings.warn(
            "no coastline data on disk, so the map has none (geonp never downloads at run time). To add "
            "coastlines, put Natural Earth ne_*_coastline.shp (or GSHHS) shapefiles under "
            "cartopy.config['pre_existing_data_dir'].", UserWarning, stacklevel=3)
        return False
    feature = cfeature.ShapelyFeature(Reader(str(files[0])).geometries(), ccrs.PlateCarree(), facecolor="none",
                                      edgecolor="black", linewidth=0.6)
    ax.add_feature(feature)
    return True


def _field(ds: xr.Dataset, name: str, select: dict) -> xr.DataArray:
    if name not in ds:
        raise ConfigError(f"no variable {name!r} to plot; the dataset has {list(ds.data_vars)}.")
    da = ds[name]
    for dim, value in select.items():
        if dim in da.dims:
            da = da.sel({dim: value}, method="nearest") if np.issubdtype(da[dim].dtype, np.number) else \
                da.sel({dim: value})
    return da


def plot(ds: xr.Dataset, variables: Sequence[str] = ("mean", "std"), *, threshold: float | None = None,
         quantile: float | None = None, points=None, title: str | None = None, path=None, **select):
    """Plot ``variables`` of a prediction side by side; returns the matplotlib Figure.

    Extra dimensions (time, member ...) are reduced by selecting the first index unless
    given as keywords (``time="2019-03-01"``). ``threshold=`` picks the exceedance
    threshold, ``quantile=`` the quantile; ``points`` (x, y arrays) are drawn on top,
    e.g. the survey locations. ``path`` saves the figure (PNG, ...).
    """
    import matplotlib.pyplot as plt

    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=ds.name or "value")
        variables = [next(iter(ds.data_vars))]
    if threshold is not None:
        select["threshold"] = threshold
    if quantile is not None:
        select["quantile"] = quantile
    layout = find_coordinates(ds)
    geographic = layout.kind == "geographic"
    fields = []
    for name in variables:
        da = _field(ds, name, select)
        spatial_dims = {d for c in (layout.x, layout.y) for d in ds[c].dims}
        extra = [d for d in da.dims if d not in spatial_dims]
        fields.append((name, da.isel({d: 0 for d in extra})))

    kw = {}
    if geographic:
        import cartopy.crs as ccrs

        kw["subplot_kw"] = {"projection": ccrs.PlateCarree()}
    fig, axes = plt.subplots(1, len(fields), figsize=(5.2 * len(fields), 4.4), squeeze=False, **kw)
    has_coast = None
    for ax, (name, da) in zip(axes[0], fields, strict=True):
        x, y = ds[layout.x], ds[layout.y]
        style = {"cmap": CMAPS.get(name, "viridis"), "shading": "auto"}
        if name == "exceedance":
            style.update(vmin=0.0, vmax=1.0)
        if geographic:
            style["transform"] = ccrs.PlateCarree()
        if x.ndim == 1 and y.ndim == 1 and {x.dims[0], y.dims[0]} <= set(da.dims) and x.dims != y.dims:
            mesh = ax.pcolormesh(x.values, y.values, da.transpose(y.dims[0], x.dims[0]).values, **style)
        else:  # points (a site dimension): a scatter coloured by value
            style.pop("shading")
            mesh = ax.scatter(np.broadcast_to(x.values, da.shape), np.broadcast_to(y.values, da.shape),
                              c=da.values, s=12, **style)
        if points is not None:
            px, py = points
            ax.scatter(px, py, s=6, c="white", edgecolors="black", linewidths=0.4,
                       **({"transform": ccrs.PlateCarree()} if geographic else {}))
        label = da.attrs.get("long_name", name)
        units = da.attrs.get("units")
        fig.colorbar(mesh, ax=ax, shrink=0.8, label=f"{units}" if units else None)
        ax.set_title(textwrap.fill(str(label), 48), fontsize=9)
        if geographic:
            if has_coast is None:
                has_coast = _add_coastlines(ax)
            elif has_coast:
                _add_coastlines(ax)
            ax.set_extent([float(x.min()), float(x.max()), float(y.min()), float(y.max())], crs=ccrs.PlateCarree())
        else:
            ax.set_aspect("equal")
            ax.set_xlabel(layout.x)
            ax.set_ylabel(layout.y)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig

