"""Maps of predictions that read at a glance, offline: coastlines, degree labels, robust colours.

    pred.np.plot()                                          # mean | std
    geonp.plot(pred, ["mean", "exceedance"], threshold=0.3, mask="land")

Longitude/latitude data is drawn on a cartopy map (PlateCarree) with a
coastline and gridlines labelled in degrees. The coastline is the GSHHS
crude land boundary bundled with geonp (``geonp/data/coastlines``, LGPL-3.0+,
see its README); Natural Earth coastlines that cartopy finds on disk (its
``pre_existing_data_dir`` or ``data_dir``) take precedence. Nothing is ever
downloaded.

Colours follow what a variable is:

- values (``mean``, ``filled``, ``quantiles``, anything else): limits at the 2nd and
  98th percentiles (as xarray's ``robust=True``), so a few outliers do not wash
  out the map; when the limits straddle zero (anomalies, errors) a diverging map
  centred on zero (``diverging=`` forces or forbids it);
- ``std``: a sequential map from zero;
- ``exceedance``: probabilities on [0, 1], titled ``P(<quantity> > <threshold>)``;
- categories (a variable with ``flag_meanings``, e.g. ``mode``): one colour per
  class and a legend of class names instead of a colour bar.

Colour bars name the quantity and its units (``1`` reads as a fraction).
``mask="land"`` (or ``"sea"``, or any shapely polygon in the map's
coordinates) blanks the map outside it, e.g. so a prevalence surface does not
spill over the sea; the polygon test is shapely's.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from geonp.errors import ConfigError, warn
from geonp.features.coordinates import find_coordinates

BUNDLED_COASTLINE = Path(__file__).resolve().parents[1] / "data" / "coastlines" / "GSHHS_c_L1.shp"
ROBUST_PERCENTILES = (2.0, 98.0)
SEQUENTIAL, DIVERGING, STD, PROBABILITY = "viridis", "RdBu_r", "magma", "RdYlBu_r"
WHAT = {"mean": "mean", "filled": "", "std": "standard deviation", "quantiles": "quantile",
        "samples": "sample", "probs": "probability"}
_WARNED: list = []


def coastline_files() -> list[Path]:
    """Coastline shapefiles, best first: Natural Earth found by cartopy on disk, then the bundled GSHHS."""
    import cartopy

    found = []
    for key in ("pre_existing_data_dir", "data_dir"):
        root = Path(cartopy.config.get(key) or ".")
        if str(root) not in (".", "") and root.is_dir():
            found += sorted(root.glob("**/ne_*_coastline.shp"))
    return found + ([BUNDLED_COASTLINE] if BUNDLED_COASTLINE.is_file() else [])


@functools.lru_cache(maxsize=1)
def land():
    """The land polygons of the bundled GSHHS coastline as one shapely geometry (longitude/latitude)."""
    import shapely
    from cartopy.io.shapereader import Reader

    if not BUNDLED_COASTLINE.is_file():
        raise ConfigError(f"the bundled coastline {BUNDLED_COASTLINE} is missing; reinstall geonp "
                          "(pip install --force-reinstall geonp) or pass mask= a shapely polygon of your own.")
    with _quiet_shapefile_reader():
        land = shapely.union_all([shapely.make_valid(g) for g in Reader(str(BUNDLED_COASTLINE)).geometries()])
    shapely.prepare(land)
    return land


@functools.lru_cache(maxsize=4)
def _coastline(path: Path):
    """One shapefile's coastline as a cartopy feature, read once per session (every panel shares it)."""
    import cartopy.crs as ccrs
    import cartopy.feature as cfeature
    from cartopy.io.shapereader import Reader

    with _quiet_shapefile_reader():
        geometries = list(Reader(str(path)).geometries())
    return cfeature.ShapelyFeature(geometries, ccrs.PlateCarree(), facecolor="none", edgecolor="black",
                                   linewidth=0.6)


@contextlib.contextmanager
def _quiet_shapefile_reader():
    """pyshp logs a warning for every GSHHS polygon stored as holes only (it reads them correctly as rings);
    keep those out of the user's output."""
    logger = logging.getLogger("shapefile")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _add_coastlines(ax) -> bool:
    files = coastline_files()
    if not files:
        if not _WARNED:
            _WARNED.append(True)  # once per session, not once per panel
            warn(f"no coastline data: the bundled {BUNDLED_COASTLINE.name} is missing (a broken "
                 "install?), so the map has none; reinstall geonp.")
        return False
    ax.add_feature(_coastline(files[0]))
    return True


def robust_limits(values, diverging: bool | None = None) -> tuple[float, float, bool]:
    """``(vmin, vmax, diverging)``: the 2nd-98th percentiles of the finite values, symmetric about
    zero when they straddle it (or ``diverging=True``)."""
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return 0.0, 1.0, False
    vmin, vmax = (float(v) for v in np.percentile(finite, ROBUST_PERCENTILES))
    if vmin == vmax:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    diverging = (vmin < 0 < vmax) if diverging is None else diverging
    if diverging:
        reach = max(abs(vmin), abs(vmax))
        vmin, vmax = -reach, reach
    return vmin, vmax, diverging


def mask_outside(da: xr.DataArray, x: xr.DataArray, y: xr.DataArray, region) -> xr.DataArray:
    """``da`` blanked (NaN) outside ``region``: ``"land"``, ``"sea"`` or a shapely geometry in ``x``/``y``."""
    import shapely

    if isinstance(region, str):
        if region not in ("land", "sea"):
            raise ConfigError(f"mask must be 'land', 'sea' or a shapely polygon; got {region!r}.")
        geometry = land()
    elif isinstance(region, shapely.Geometry):
        geometry = region
    else:
        raise ConfigError(f"mask must be 'land', 'sea' or a shapely polygon; got a {type(region).__name__}.")
    xv, yv = xr.broadcast(x, y)
    lon = xv.values if isinstance(region, shapely.Geometry) else ((xv.values + 180.0) % 360.0) - 180.0
    inside = shapely.contains_xy(geometry, lon, yv.values) | shapely.intersects_xy(geometry, lon, yv.values)
    if region == "sea":
        inside = ~inside
    return da.where(xr.DataArray(inside, dims=xv.dims, coords=xv.coords))


def _field(ds: xr.Dataset, name: str, select: dict) -> xr.DataArray:
    if name not in ds:
        raise ConfigError(f"no variable {name!r} to plot; the dataset has {list(ds.data_vars)}.")
    da = ds[name]
    for dim, value in select.items():
        if dim in da.dims:
            da = da.sel({dim: value}, method="nearest") if np.issubdtype(da[dim].dtype, np.number) else \
                da.sel({dim: value})
    return da


def _quantity(da: xr.DataArray) -> str:
    """What the values are of: the predicted variable's name, else its long name."""
    name = da.attrs.get("standard_name") or da.attrs.get("name")
    long_name = str(da.attrs.get("long_name", ""))
    if long_name.startswith("probability that ") and " exceeds" in long_name:  # an exceedance
        return long_name[len("probability that "):long_name.index(" exceeds")]
    if " of " in long_name:  # 'predictive mean of 2 metre temperature'
        return long_name.split(" of ", 1)[1]
    return str(name or long_name or da.name or "value").replace("_", " ")


def colorbar_label(name: str, da: xr.DataArray) -> str:
    """E.g. ``standard deviation of 2 metre temperature [K]``, ``mean of prevalence (fraction)``."""
    what = WHAT.get(name, "")
    label = f"{what} of {_quantity(da)}" if what else _quantity(da)
    units = str(da.attrs.get("units", "")).strip()
    if name in ("exceedance", "probs"):
        return "probability"
    if units in ("1", "-"):
        return f"{label} (fraction)"
    return f"{label} [{units}]" if units else label


def panel_title(name: str, da: xr.DataArray) -> str:
    if name == "exceedance" and "threshold" in da.coords and da["threshold"].size == 1:
        return f"P({_quantity(da)} > {float(da['threshold']):g})"
    return str(da.attrs.get("long_name", name))


def _classes(da: xr.DataArray) -> list[str] | None:
    meanings = da.attrs.get("flag_meanings")
    return str(meanings).split() if meanings else None


def plot(ds: xr.Dataset, variables: Sequence[str] = ("mean", "std"), *, threshold: float | None = None,
         quantile: float | None = None, points=None, title: str | None = None, path=None, mask=None,
         diverging: bool | None = None, **select):
    """Plot ``variables`` of a prediction side by side; returns the matplotlib Figure.

    Extra dimensions (time, member ...) are reduced by selecting the first index unless
    given as keywords (``time="2019-03-01"``). ``threshold=`` picks the exceedance
    threshold, ``quantile=`` the quantile; ``points`` (x, y arrays) are drawn on top,
    e.g. the survey locations; ``mask`` (``"land"``, ``"sea"``, a shapely polygon) blanks
    the maps outside it; ``diverging`` forces (True) or forbids (False) a map centred on
    zero (default: when the values straddle zero). ``path`` saves the figure (PNG, ...).
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
    x, y = ds[layout.x], ds[layout.y]
    fields = []
    for name in variables:
        da = _field(ds, name, select)
        spatial_dims = {d for c in (layout.x, layout.y) for d in ds[c].dims}
        extra = [d for d in da.dims if d not in spatial_dims]
        da = da.isel({d: 0 for d in extra})
        if mask is not None:
            da = mask_outside(da, x, y, mask)
        fields.append((name, da))

    kw = {}
    if geographic:
        import cartopy.crs as ccrs

        kw["subplot_kw"] = {"projection": ccrs.PlateCarree()}
    fig, axes = plt.subplots(1, len(fields), figsize=(5.4 * len(fields), 4.6), squeeze=False, **kw)
    has_coast = None
    for ax, (name, da) in zip(axes[0], fields, strict=True):
        style, classes = _style(name, da, diverging)
        if geographic:
            style["transform"] = ccrs.PlateCarree()
        gridded = x.ndim == 1 and y.ndim == 1 and {x.dims[0], y.dims[0]} <= set(da.dims) and x.dims != y.dims
        if gridded:
            mesh = ax.pcolormesh(x.values, y.values, da.transpose(y.dims[0], x.dims[0]).values, shading="auto",
                                 **style)
        else:  # points (a site dimension): a scatter coloured by value
            mesh = ax.scatter(np.broadcast_to(x.values, da.shape), np.broadcast_to(y.values, da.shape),
                              c=da.values, s=12, **style)
        if points is not None:
            px, py = points
            ax.scatter(px, py, s=6, c="white", edgecolors="black", linewidths=0.4,
                       **({"transform": ccrs.PlateCarree()} if geographic else {}))
        if classes is not None:
            _class_legend(ax, mesh, classes)
        else:
            fig.colorbar(mesh, ax=ax, shrink=0.8, label=colorbar_label(name, da))
        ax.set_title(textwrap.fill(panel_title(name, da), 48), fontsize=9)
        if geographic:
            if has_coast is None:
                has_coast = _add_coastlines(ax)
            elif has_coast:
                _add_coastlines(ax)
            ax.set_extent([float(x.min()), float(x.max()), float(y.min()), float(y.max())], crs=ccrs.PlateCarree())
            lines = ax.gridlines(draw_labels=True, linewidth=0.3, color="grey", alpha=0.6)
            lines.top_labels = lines.right_labels = False
            lines.xlabel_style = lines.ylabel_style = {"size": 7}
        else:
            ax.set_aspect("equal")
            ax.set_xlabel(f"{layout.x} [{x.attrs['units']}]" if "units" in x.attrs else layout.x)
            ax.set_ylabel(f"{layout.y} [{y.attrs['units']}]" if "units" in y.attrs else layout.y)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
    return fig


def _style(name: str, da: xr.DataArray, diverging: bool | None) -> tuple[dict, list | None]:
    """Colour map and limits of one panel, and the class names of a categorical one."""
    import matplotlib.colors as mcolors
    import matplotlib.pyplot as plt

    classes = _classes(da)
    if classes is not None:
        k = len(classes)
        colours = plt.get_cmap("tab10" if k <= 10 else "tab20")(np.arange(k) % 20)
        return {"cmap": mcolors.ListedColormap(colours),
                "norm": mcolors.BoundaryNorm(np.arange(k + 1) - 0.5, k)}, classes
    if name in ("exceedance", "probs"):
        return {"cmap": PROBABILITY, "vmin": 0.0, "vmax": 1.0}, None
    if name == "std":
        return {"cmap": STD, "vmin": 0.0, "vmax": robust_limits(da.values, False)[1]}, None
    vmin, vmax, centred = robust_limits(da.values, diverging)
    return {"cmap": DIVERGING if centred else SEQUENTIAL, "vmin": vmin, "vmax": vmax}, None


def _class_legend(ax, mesh, classes: list[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=mesh.cmap(mesh.norm(i)), edgecolor="black", linewidth=0.3, label=c)
               for i, c in enumerate(classes)]
    ax.legend(handles=handles, loc="lower left", fontsize=7, framealpha=0.85, title="class", title_fontsize=7)
