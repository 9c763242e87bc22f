from pathlib import Path

import nbformat as nbf


def nb(cells):
    n = nbf.v4.new_notebook()
    n.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    n.cells = [nbf.v4.new_markdown_cell(c[1]) if c[0] == "md" else nbf.v4.new_code_cell(c[1]) for c in cells]
    return n

SETUP = """import os
from pathlib import Path

import numpy as np
import xarray as xr

import geonp
from geonp.apps.recipes import data_root

SMALL = os.environ.get("GEONP_NOTEBOOK_SIZE", "small") == "small"  # CI runs the small sizes
DATA = data_root()
OUT = Path("notebook-output").resolve()
OUT.mkdir(exist_ok=True)"""

books = {
"01-quickstart.ipynb": [
("md", "# geonp quickstart: fill the gaps of a field\n\nA field on a lon/lat grid with 90% of its cells missing (scattered gaps plus a block, like a cloud). `da.np.predict()` fills every cell with the bundled `gp2d-normal` model, calibrated on this data without training, and returns mean and standard deviation as an `xr.Dataset` with the units kept. Nothing is downloaded."),
("code", SETUP),
("code", """from geonp.apps.demo import synthetic_field

truth = synthetic_field(seed=0)
if SMALL:
    truth = truth.isel(latitude=slice(0, 60), longitude=slice(0, 90))
rng = np.random.default_rng(1)
observed = truth.where(rng.random(truth.shape) > 0.9)
observed"""),
("code", """pred = observed.np.predict(quantiles=[0.05, 0.95], progress=False)
pred"""),
("code", """hidden = observed.isnull().values
err = (pred["mean"] - truth).values[hidden]
inside = ((pred["quantiles"].sel(quantile=0.05) <= truth) & (truth <= pred["quantiles"].sel(quantile=0.95))).values[hidden]
print(f"RMSE on the hidden cells: {np.sqrt(np.mean(err ** 2)):.3f} K; 90% interval coverage: {inside.mean():.2f}")"""),
("code", """fig = pred.np.plot(["mean", "std"])"""),
("md", "Predictions stream to disk tile by tile; an interrupted write resumes, and the file appears only when complete."),
("code", """pred.np.to_netcdf(OUT / "quickstart.nc", overwrite=True, progress=False)
xr.open_dataset(OUT / "quickstart.nc")["mean"].attrs"""),
],
"02-era5-downscaling.ipynb": [
("md", "# Downscaling ERA5 2 m temperature\n\nERA5 over the UK, 1 degree (block-averaged) to 0.25 degree, scored on the fine cells against bilinear and bicubic interpolation and ordinary kriging, all in one run (`recipes/downscale-uk-1deg.yaml`). The full recipe scores 24 time steps; this notebook uses 2 when `GEONP_NOTEBOOK_SIZE=small`."),
("code", SETUP),
("code", """import pandas as pd
from geonp.apps.recipes import run_recipe

if not (DATA / "era5_t2m_uk").is_dir():
    print(f"the shared ERA5 sample is not in {DATA}; set GEONP_DATA to run this notebook")
    report = None
else:
    report = run_recipe("../recipes/downscale-uk-1deg.yaml", {"output": str(OUT / "downscale-uk"), "times": 2 if SMALL else 24})
    display(pd.DataFrame(report["methods"]).T)"""),
("code", """if report is not None:
    pred = xr.open_dataset(OUT / "downscale-uk" / "downscaled.nc")
    fig = pred.np.plot(["truth", "mean", "std", "error"])"""),
("md", "With elevation as a covariate (ERA5-Land, central Norway, 0.3 to 0.1 degree) the bundled `t2m-elevation` model takes the elevation in its tokens: `recipes/downscale-norway.yaml`."),
("code", """from geonp.estimator.releases import available

if (DATA / "era5land_t2m_norway_krigr").is_dir() and "t2m-elevation" in available():
    norway = run_recipe("../recipes/downscale-norway.yaml", {"output": str(OUT / "downscale-norway"), "plot": not SMALL})
    display(pd.DataFrame(norway["methods"]).T)"""),
],
"03-prevalence-mapping.ipynb": [
("md", "# Mapping malaria prevalence from village surveys\n\nThe Gambia, 65 villages (positives out of children examined). The bundled binomial model (a GP prior through a logit link, meta-trained on simulated surveys) is calibrated on the villages without training. Leave-village-out cross-validation compares it with ordinary kriging of the empirical logit; the map shows mean prevalence, the width of its 95% interval and the probability that prevalence exceeds 30%."),
("code", SETUP),
("code", """import pandas as pd
from geonp.features.tables import dataframe_to_dataset
from geonp.apps.flows.prevalence import cross_validate, read_surveys

path = DATA / "disease_prevalence" / "gambia_villages.csv"
have_data = path.is_file()
if have_data:
    villages = read_surveys(path, lon="lon", lat="lat", positives="n_positive", examined="n_tested")
    surveys = dataframe_to_dataset(villages[["lon", "lat", "positive", "examined"]], "location")
    model = geonp.pretrained("prevalence-binomial").fit(surveys, "positive", trials="examined", steps=0)
    print(model)
else:
    print(f"the shared survey sample is not in {DATA}; set GEONP_DATA to run this notebook")"""),
("code", """if have_data:
    grid = xr.Dataset(coords={"lat": ("lat", np.linspace(13.0, 13.9, 30 if SMALL else 90), {"units": "degrees_north"}),
                              "lon": ("lon", np.linspace(-16.9, -13.7, 100 if SMALL else 300), {"units": "degrees_east"})})
    pred = model.predict(surveys, target=grid, quantiles=[0.025, 0.975], exceedance=[0.3], progress=False)
    pred["interval_width"] = (pred["quantiles"].sel(quantile=0.975) - pred["quantiles"].sel(quantile=0.025)).assign_attrs(
        long_name="width of the 95% interval", units="1")
    fig = geonp.plot(pred, ["mean", "interval_width", "exceedance"], points=(villages.lon, villages.lat))"""),
("md", "## Region-level prevalence from joint draws\n\nProgramme managers act on district means, not on pixels. A district's mean prevalence is a function of every cell in it, so its interval needs draws that are coherent across cells: `predict(..., samples=n, joint=True)` draws them autoregressively (coarse to fine), and `geonp.aggregate` turns them into region means with quantiles and P(mean > 30%). The regions here are three longitude bands of the country, for illustration; pass your district polygons (a dict of shapely geometries, a GeoDataFrame, or an integer label raster) and a population raster as `weights=`. Independent (marginal) draws would make every interval far too narrow."),
("code", """import shapely

if have_data:
    coarse = grid.isel(lat=slice(None, None, 3), lon=slice(None, None, 3))
    draws = model.predict(surveys, target=coarse, samples=32 if SMALL else 200, joint=True, progress=False)
    bands = {"west": shapely.box(-17.0, 13.0, -15.6, 13.9), "central": shapely.box(-15.6, 13.0, -14.6, 13.9),
             "east": shapely.box(-14.6, 13.0, -13.6, 13.9)}
    districts = geonp.aggregate(draws, bands, exceedance=[0.3])
    display(pd.DataFrame({"mean": districts["mean"].values,
                          "2.5%": districts["quantiles"].sel(quantile=0.025).values,
                          "97.5%": districts["quantiles"].sel(quantile=0.975).values,
                          "P(mean > 0.3)": districts["exceedance"].sel(threshold=0.3).values},
                         index=districts.region.values))"""),
("code", """if have_data:
    scores = cross_validate(model, villages, folds=3 if SMALL else 10)
    display(pd.DataFrame(scores).T)"""),
("md", "## Where to survey next\n\n`geonp.design.next_sites` picks new sites greedily: each step scores the candidates (here the predictive variance of prevalence; also `criterion=\"exceedance\"` with a threshold, or `\"integrated\"` for the whole map's variance), takes the best and adds a fantasised survey there, so the next pick moves elsewhere."),
("code", """if have_data:
    lon, lat = np.meshgrid(coarse.lon.values, coarse.lat.values)
    candidates = pd.DataFrame({"lon": lon.ravel(), "lat": lat.ravel()})
    sites = geonp.design.next_sites(model, villages[["lon", "lat", "positive", "examined"]], candidates, n=5)
    display(sites)
    fig = geonp.plot(pred, ["std"], points=(sites.lon, sites.lat))"""),
("md", "Bad survey rows are errors, not silent drops: positives above the number examined, negative or fractional counts, or rows without coordinates."),
("code", """if have_data:
    broken = villages.assign(positive=villages.positive + villages.examined)
    try:
        model.predict(dataframe_to_dataset(broken[["lon", "lat", "positive", "examined"]], "location"))
    except geonp.GeonpError as err:
        print(type(err).__name__, err)"""),
],
"04-epidemic-surface.ipynb": [
("md", "# Filling in an epidemic surface\n\nAn SIR epidemic simulated on a lattice (in JAX); a fraction of the cells is observed and the bundled `sir-categorical` model, trained on 64 x 64 lattices, predicts the probability of each state everywhere. The recipe `recipes/epidemic-1024.yaml` does this at 1024 x 1024 from ~100K observed cells; this notebook uses 128 x 128 when `GEONP_NOTEBOOK_SIZE=small`."),
("code", SETUP),
("code", """from geonp.apps.flows.epidemic import simulate_observations, nearest_baseline
from geonp.estimator.releases import available

size = 128 if SMALL else 512
truth, observed = simulate_observations(size, beta=0.25, gamma=0.1, steps=40 if SMALL else 120, seeds=6,
                                        observed_fraction=0.1)
print(observed.sizes, int(observed.notnull().sum()), "observed cells")"""),
("code", """if "sir-categorical" in available():
    pred = observed.np.predict(model="sir-categorical", progress=False)
    hidden = observed.isnull().values
    accuracy = (pred["mode"].values == truth)[hidden].mean()
    nearest = (nearest_baseline(observed) == truth)[hidden].mean()
    print(f"state accuracy on hidden cells: geonp {accuracy:.3f}, nearest observed cell {nearest:.3f}")
    view = pred.assign(truth=(("y", "x"), truth), observed=observed,
                       p_infected=pred["probs"].sel({"class": "infected"}))
    fig = geonp.plot(view, ["truth", "observed", "p_infected"])"""),
],
}
for name, cells in books.items():
    nbf.write(nb(cells), Path("notebooks") / name)
print("ok")
