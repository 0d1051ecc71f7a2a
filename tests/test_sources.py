"""Scene selection rules and the plugin mechanism (built-in and third-party)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import textwrap
from pathlib import Path

import geopandas as gpd
import pystac
import pytest
from shapely.geometry import box, mapping

from ingestion.sources.base import DropReason, SceneQuery, apply_selection_rules
from ingestion.sources.earth_search import EarthSearchSource
from ingestion.sources.local_stac import LocalStacSource
from ingestion.sources.registry import UnknownSourceError, available_sources, load_source
from ingestion.vector_utils import to_wgs84
from tests.helpers import stac_api

AOI = box(6.80, 52.15, 6.90, 52.25)


def _item(item_id: str, cover, geom=AOI, day=dt.datetime(2024, 6, 1, tzinfo=dt.UTC), assets=("red", "nir", "scl")):
    item = pystac.Item(item_id, mapping(geom), list(geom.bounds), day, {"eo:cloud_cover": cover})
    for key in assets:
        item.add_asset(key, pystac.Asset(f"{key}.tif"))
    return item


def test_selection_rules_give_reasons():
    items = [
        _item("ok", 1.0),
        _item("cloudy", 5.0),
        _item("far", 0.1, geom=box(10, 10, 11, 11)),
        _item("no-scl", 0.1, assets=("red", "nir")),
        _item("no-cover", None),
        _item("late", 0.1, day=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)),
        _item("ok", 1.0),
    ]
    sel = apply_selection_rules(items, SceneQuery.for_year(AOI, 2024))
    assert [i.id for i in sel.items] == ["ok"]
    reasons = {d.item_id: d.reason for d in sel.dropped}
    assert reasons["cloudy"].startswith("cloud cover: 5.0% >= 5.0%")
    assert reasons["far"].startswith("no overlap")
    assert reasons["no-scl"] == "missing assets: scl"
    assert reasons["no-cover"].startswith("bad metadata: eo:cloud_cover is None")
    assert reasons["late"].startswith("outside window")
    assert sel.summary()["dropped_by_reason"]["duplicate"] == 1
    causes = {d.item_id: d.cause for d in sel.dropped}
    assert causes == {"cloudy": DropReason.CLOUD_COVER, "far": DropReason.NO_OVERLAP,
                      "no-scl": DropReason.MISSING_ASSETS, "no-cover": DropReason.BAD_METADATA,
                      "late": DropReason.OUTSIDE_WINDOW, "ok": DropReason.DUPLICATE}
    assert {d.item_id for d in sel.dropped if d.cause.is_bad_item} == {"no-scl", "no-cover"}
    with pytest.raises(AttributeError):  # the selection is frozen: screening returns a new one
        sel.items = ()  # type: ignore[misc]
    assert isinstance(sel.items, tuple) and isinstance(sel.decisions, tuple)


def test_month_window_and_bad_months():
    q = SceneQuery.for_year(AOI, 2024, months=(4, 9))
    assert (q.start, q.end) == (dt.date(2024, 4, 1), dt.date(2024, 9, 30))
    assert SceneQuery.for_year(AOI, 2024, months=(12, 12)).end == dt.date(2024, 12, 31)
    with pytest.raises(ValueError, match="months"):
        SceneQuery.for_year(AOI, 2024, months=(9, 4))


def test_builtin_plugins_are_registered_and_unknown_names_listed():
    assert {"earth-search", "local-stac"} <= set(available_sources())
    assert isinstance(load_source("earth-search", url="http://127.0.0.1:1"), EarthSearchSource)
    with pytest.raises(UnknownSourceError, match="unknown imagery source 'sentinel-hub'.*earth-search"):
        load_source("sentinel-hub")
    with pytest.raises(ValueError, match="bad options for imagery source 'local-stac'"):
        load_source("local-stac", wrong_option=1)


def test_third_party_plugin_registers_through_an_installed_entry_point(tmp_path, monkeypatch):
    """A separate distribution (dist-info + module on sys.path) adds a source without core edits."""
    site = tmp_path / "site"
    (site / "acme_imagery-1.0.dist-info").mkdir(parents=True)
    (site / "acme_imagery-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-imagery\n"
                                                                  "Version: 1.0\n")
    (site / "acme_imagery-1.0.dist-info" / "entry_points.txt").write_text(
        "[ndvi_pipeline.imagery_sources]\nacme = acme_imagery:AcmeSource\n")
    (site / "acme_imagery.py").write_text(textwrap.dedent("""
        from ingestion.sources.base import ImagerySource, SearchResult

        class AcmeSource(ImagerySource):
            name = "acme"

            def __init__(self, items):
                self.items = items

            def find_items(self, query):
                return SearchResult(tuple(self.items))
    """))
    monkeypatch.syspath_prepend(str(site))
    assert "acme" in available_sources()
    source = load_source("acme", items=[_item("a", 1.0), _item("b", 50.0)])
    assert type(source).__module__ == "acme_imagery"
    assert [i.id for i in source.select(SceneQuery.for_year(AOI, 2024)).items] == ["a"]


def test_earth_search_against_a_real_stac_api_selects_what_local_stac_selects(sample_area):
    districts = gpd.read_file(sample_area["districts"])
    aoi = to_wgs84(districts.union_all(), districts.crs)
    local = LocalStacSource(sample_area["catalog"])
    with stac_api(sample_area["catalog"]) as url:
        remote = load_source("earth-search", url=url)
        for year in (2019, 2024):
            query = SceneQuery.for_year(aoi, year)
            remote_sel, local_sel = remote.select(query), local.select(query)
            assert [i.id for i in remote_sel.items] == [i.id for i in local_sel.items]
            assert sorted(i.id for i in local_sel.items) == sorted(sample_area["years"][str(year)]["kept"])
            # the server ignores the `query` extension: the cloudy item comes back and is dropped by us
            expected_dropped = set(sample_area["years"][str(year)]["dropped_cloud_cover"])
            assert {d.item_id for d in remote_sel.dropped} == expected_dropped
        assert remote_sel.items[0].assets["red"].href.startswith("http://127.0.0.1")


def test_local_stac_walks_a_catalog_once_until_one_of_its_files_changes(sample_area, tmp_path):
    from tests.update_env import counting_opens

    root = tmp_path / "catalog"
    shutil.copytree(Path(sample_area["catalog"]).parent, root, ignore=shutil.ignore_patterns("*.tif"))
    source = LocalStacSource(root / "catalog.json")
    query = SceneQuery.for_year(box(-180, -90, 180, 90), 2024)
    with counting_opens("catalog.json") as opened:
        first = source.find_items(query)
        assert len(opened) == 2  # parsed, then digested for the reuse check
        again = LocalStacSource(root / "catalog.json").find_items(query)  # another search, e.g. another area
        assert len(opened) == 3  # digested only: the walk is reused
    assert first.items and [i.id for i in again.items] == [i.id for i in first.items]
    assert all(a is b for a, b in zip(again.items, first.items, strict=True))

    # an item rewritten on disk (same size, at once) is parsed again, and the search sees the change
    changed = first.items[0]
    path = Path(changed.get_self_href())
    text = path.read_text()
    data = json.loads(text)
    cover = data["properties"]["eo:cloud_cover"]
    data["properties"]["eo:cloud_cover"] = 99.5 if cover != 99.5 else 98.5
    body = json.dumps(data)  # compact: shorter than the saved, indented file
    path.write_text(body + " " * (len(text) - len(body)))  # the same size, written at once: only the bytes differ
    after = source.find_items(query)
    assert next(i for i in after.items if i.id == changed.id).properties["eo:cloud_cover"] in (99.5, 98.5)
    assert not any(a is b for a, b in zip(after.items, first.items, strict=False))
