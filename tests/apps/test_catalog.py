"""The YAML catalog: entries resolve against the shared data; remote entries fail clearly offline."""

import pytest

from geonp.apps.catalog import CatalogError, open_catalog
from geonp.apps.recipes import data_root


def test_catalog_lists_shared_samples_and_the_remote_store():
    cat = open_catalog()
    assert {"era5_t2m_uk_1deg", "gambia_villages", "arco_era5"} <= set(cat.list())
    assert cat["arco_era5"].remote and not cat["gambia_villages"].remote
    assert str(data_root()) in cat["gambia_villages"].args["urlpath"]


@pytest.mark.skipif(not (data_root() / "disease_prevalence").is_dir(), reason="shared data not present")
def test_local_entries_open():
    cat = open_catalog()
    frame = cat.open("gambia_villages")
    assert {"n_positive", "n_tested"} <= set(frame.columns) and len(frame) == 65
    ds = cat.open("era5_t2m_uk_1deg")
    assert "t2m" in ds


def test_missing_and_unreachable_entries_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("GEONP_DATA", str(tmp_path))
    cat = open_catalog()
    with pytest.raises(CatalogError, match="GEONP_DATA"):
        cat.open("gambia_villages")
    with pytest.raises(CatalogError, match="network"):
        cat.open("arco_era5")
    with pytest.raises(CatalogError, match="entries"):
        cat.open("nope")
