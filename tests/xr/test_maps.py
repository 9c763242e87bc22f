"""Maps that read at a glance, offline: coastlines, degree labels, robust and diverging colours, classes."""

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import shapely  # noqa: E402
import xarray as xr  # noqa: E402
from cartopy.mpl.feature_artist import FeatureArtist  # noqa: E402
from matplotlib.collections import QuadMesh  # noqa: E402

import geonp  # noqa: E402
from geonp.errors import ConfigError  # noqa: E402
from geonp.xr import maps  # noqa: E402

# the PNGs are kept here when GEONP_MAPS_DIR is set (to look at them), else in pytest's tmp_path
KEEP = os.environ.get("GEONP_MAPS_DIR")


def _grid(lat, lon, values, name, **attrs):
    return xr.DataArray(np.asarray(values, np.float32), dims=("lat", "lon"), coords={"lat": lat, "lon": lon},
                        name=name, attrs=attrs)


def _prediction():
    """A prevalence-like prediction over East Africa (land and sea), with an outlier."""
    lat, lon = np.arange(-12.0, 0.0, 0.25), np.arange(29.0, 45.0, 0.25)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    mean = 0.2 + 0.15 * np.sin(la / 2.0) * np.cos(lo / 3.0)
    mean[3, 3] = 40.0  # one wild value must not wash out the colours
    attrs = {"units": "1", "standard_name": "prevalence"}
    ds = xr.Dataset({
        "mean": _grid(lat, lon, mean, "mean", long_name="predictive mean of prevalence", **attrs),
        "std": _grid(lat, lon, 0.05 + 0.02 * np.abs(np.cos(la)), "std",
                     long_name="predictive standard deviation of prevalence", **attrs),
        "anomaly": _grid(lat, lon, np.sin(la) - 0.2, "anomaly", units="K", long_name="anomaly of temperature"),
    })
    exceed = 1.0 / (1.0 + np.exp(-(mean - 0.2) * 30.0))
    ds["exceedance"] = xr.DataArray(exceed[None].astype(np.float32), dims=("threshold", "lat", "lon"),
                                    coords={"threshold": [0.2], "lat": lat, "lon": lon},
                                    attrs={"units": "1",
                                           "long_name": "probability that prevalence exceeds the threshold"})
    ds["mode"] = _grid(lat, lon, (la > -6).astype(int) + (lo > 37).astype(int), "mode",
                       long_name="most probable class of state", flag_values=np.arange(3),
                       flag_meanings="susceptible infected recovered")
    return ds


def _coastline_artists(fig):
    return [a for ax in fig.axes for a in ax.get_children() if isinstance(a, FeatureArtist)]


def _save(fig, tmp_path, name):
    folder = KEEP or tmp_path
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"map-{name}.png")
    fig.savefig(path, dpi=80)
    plt.close(fig)
    assert os.path.getsize(path) > 10_000
    return path


@pytest.mark.parametrize("variables", [["mean", "std"], ["exceedance"], ["anomaly"], ["mode"]])
def test_every_lonlat_map_has_the_bundled_coastline_and_degree_labels(variables, tmp_path):
    fig = geonp.plot(_prediction(), variables, threshold=0.2)
    assert len(_coastline_artists(fig)) == len(variables)  # offline: the bundled GSHHS, no warning
    ax = fig.axes[0]
    gridliners = [c for c in ax.get_children() if type(c).__name__ == "Gridliner"]
    assert gridliners and gridliners[0].left_labels and not gridliners[0].top_labels
    _save(fig, tmp_path, "-".join(variables))


def test_coastline_data_is_bundled_and_user_natural_earth_comes_first(tmp_path, monkeypatch):
    import cartopy

    assert maps.coastline_files()[-1] == maps.BUNDLED_COASTLINE and maps.BUNDLED_COASTLINE.is_file()
    assert (maps.BUNDLED_COASTLINE.parent / "COPYING.LESSER").is_file()  # the LGPL travels with the data
    own = tmp_path / "shapefiles" / "natural_earth" / "physical" / "ne_110m_coastline.shp"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"")
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", str(tmp_path))
    assert maps.coastline_files()[0] == own


def test_robust_limits_ignore_outliers_and_centre_anomalies():
    values = np.r_[np.linspace(0.0, 1.0, 1000), 500.0]
    vmin, vmax, diverging = maps.robust_limits(values)
    assert vmax < 1.0 and vmin >= 0.0 and not diverging
    vmin, vmax, diverging = maps.robust_limits(np.linspace(-1.0, 3.0, 1000))
    assert diverging and vmin == -vmax
    fig = geonp.plot(_prediction(), ["mean", "anomaly"])
    means, anomalies = ([c for c in ax.collections if isinstance(c, QuadMesh)][0] for ax in fig.axes[:2])
    assert means.norm.vmax < 1.0  # the 40.0 outlier is clipped
    assert anomalies.cmap.name == maps.DIVERGING and anomalies.norm.vmin == -anomalies.norm.vmax
    plt.close(fig)


def test_colour_bars_and_titles_say_what_they_show():
    ds = _prediction()
    assert maps.colorbar_label("mean", ds["mean"]) == "mean of prevalence (fraction)"
    assert maps.colorbar_label("std", ds["anomaly"].rename("std").assign_attrs(
        long_name="predictive standard deviation of 2 metre temperature")) == \
        "standard deviation of 2 metre temperature [K]"
    assert maps.panel_title("exceedance", ds["exceedance"].sel(threshold=0.2)) == "P(prevalence > 0.2)"
    fig = geonp.plot(ds, ["mode"])
    legend = fig.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["susceptible", "infected", "recovered"]
    assert len(fig.axes) == 1  # a legend, no continuous colour bar
    plt.close(fig)


def test_mask_to_land_blanks_the_sea(tmp_path):
    ds = _prediction()
    masked = maps.mask_outside(ds["mean"], ds["lon"], ds["lat"], "land")
    assert bool(masked.sel(lat=-6.0, lon=33.0).notnull())  # Tanzania
    assert bool(masked.sel(lat=-6.0, lon=44.0).isnull())  # the Indian Ocean
    assert bool(maps.mask_outside(ds["mean"], ds["lon"], ds["lat"], "sea").sel(lat=-6.0, lon=44.0).notnull())
    box = shapely.box(30.0, -10.0, 35.0, -5.0)
    inside = maps.mask_outside(ds["mean"], ds["lon"], ds["lat"], box)
    assert int(inside.notnull().sum()) == 21 * 21
    _save(geonp.plot(ds, ["mean"], mask="land"), tmp_path, "mean-land")
    with pytest.raises(ConfigError, match="land"):
        maps.mask_outside(ds["mean"], ds["lon"], ds["lat"], "lakes")


def test_projected_maps_label_their_axes_with_units(tmp_path):
    x, y = np.arange(0.0, 50_000.0, 1000.0), np.arange(0.0, 30_000.0, 1000.0)
    da = xr.DataArray(np.random.default_rng(0).standard_normal((30, 50)).astype(np.float32), dims=("y", "x"),
                      coords={"y": ("y", y, {"units": "m"}), "x": ("x", x, {"units": "m"})}, name="mean",
                      attrs={"units": "K", "long_name": "predictive mean of land surface temperature"})
    fig = geonp.plot(da.to_dataset(), ["mean"])
    assert fig.axes[0].get_xlabel() == "x [m]"
    _save(fig, tmp_path, "projected")
