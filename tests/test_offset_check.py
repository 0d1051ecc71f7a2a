"""The radiometric offset decided by the pixels: mis-flagged items of both kinds give the true NDVI, a desert
keeps the metadata rule, and odd real-item shapes are read or dropped with a reason."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from shapely.geometry import box

from ingestion.batch_reports import report_contradictions, report_drops
from ingestion.config import AreaConfig, load_config
from ingestion.imagery.composite import build_composite
from ingestion.imagery.grid import target_geobox
from ingestion.imagery.offset_check import (
    IN_DN_MAX_SHARE,
    MIN_VEGETATION_PIXELS,
    REMOVED_MIN_SHARE,
    OffsetEvidence,
    OffsetVerdict,
    UnreadableAssetError,
    check_offsets,
    dark_share,
)
from ingestion.sample.generator import generate
from ingestion.scenes import BadItemError, drop_unreadable, screen_items
from ingestion.sources.base import SceneQuery
from ingestion.sources.registry import load_source
from ingestion.vector_utils import to_wgs84
from tests.helpers import read_on_geobox, stac_api
from tests.range_server import RangeServer

DESERT = "S2A_29RKH_20200219_0_L2A"


# --- the statistic and its thresholds -------------------------------------------------------------------------

def _scene(red_veg: int, red_bare: int = 2500, n_veg: int = 400, n_bare: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    red = np.concatenate([rng.integers(red_veg - 150, red_veg + 150, n_veg), np.full(n_bare, red_bare)])
    scl = np.concatenate([np.full(n_veg, 4), np.full(n_bare, 5)])
    return red.astype(np.uint16), scl.astype(np.uint8)


@pytest.mark.parametrize(("red_veg", "verdict"), [
    (450, OffsetVerdict.REMOVED),        # vegetation red 0.03-0.06 with the offset removed
    (1450, OffsetVerdict.IN_DN),         # the same pixels with +1000 DN still in
    (1000, OffsetVerdict.INCONCLUSIVE),  # half below, half above 0.1: no call
])
def test_dark_share_decides_only_where_conclusive(red_veg, verdict):
    evidence = dark_share(*_scene(red_veg), scale=0.0001)
    assert evidence.vegetation_pixels == 400
    assert evidence.verdict is verdict


def test_too_few_vegetation_pixels_or_none_is_inconclusive():
    few = dark_share(*_scene(450, n_veg=MIN_VEGETATION_PIXELS - 1), scale=0.0001)
    assert few.dark_share == 1.0 and few.verdict is OffsetVerdict.INCONCLUSIVE
    assert dark_share(*_scene(450, n_veg=0), scale=0.0001).verdict is OffsetVerdict.INCONCLUSIVE
    # vegetation masked by configuration: the rule cannot look at it
    assert dark_share(*_scene(450), scale=0.0001, masked=(4,)).verdict is OffsetVerdict.INCONCLUSIVE
    assert OffsetEvidence(500, REMOVED_MIN_SHARE).verdict is OffsetVerdict.REMOVED
    assert OffsetEvidence(500, IN_DN_MAX_SHARE).verdict is OffsetVerdict.IN_DN


# --- mis-flagged items against the generator's truth ----------------------------------------------------------

@pytest.fixture(scope="module", params=["clean-flagged-false", "offset-flagged-true"])
def misflagged_area(request, tmp_path_factory) -> dict:
    """A 2024 catalog whose every item carries one kind of wrong ``earthsearch:boa_offset_applied``."""
    out = tmp_path_factory.mktemp(request.param)
    manifest = generate(out, [2024], seed=11, misflag=request.param)
    manifest["root"], manifest["misflag"] = out, request.param
    return manifest


def _select(area: dict, source_name: str, url: str | None, year: int = 2024):
    districts = gpd.read_file(area["districts"])
    aoi = districts.union_all()
    query = SceneQuery.for_year(to_wgs84(aoi, districts.crs), year)
    options = {"url": url} if source_name == "earth-search" else {"catalog_path": area["catalog"]}
    items = load_source(source_name, **options).select(query).items
    return items, target_geobox(aoi, districts.crs.to_string(), 10)


def _assert_truth(area: dict, comp, year: int = 2024) -> None:
    root = Path(area["root"]) / "truth"
    truth = read_on_geobox(root / f"ndvi_true_{year}.tif", comp.geobox)
    count = read_on_geobox(root / f"clear_count_{year}.tif", comp.geobox)
    observed = count > 0
    assert observed.mean() > 0.9
    assert np.abs(comp.ndvi[observed] - truth[observed]).max() < 1e-3
    np.testing.assert_array_equal(comp.count, count)


def _composite_and_check(area: dict, source_name: str):
    if source_name == "earth-search":
        with stac_api(Path(area["catalog"])) as url:
            items, geobox = _select(area, source_name, url)
            assert items[0].assets["red"].href.startswith("http://127.0.0.1")
            check = check_offsets(items, geobox)
            return items, check, build_composite(items, geobox, offsets=check.decisions)
    items, geobox = _select(area, source_name, None)
    check = check_offsets(items, geobox)
    return items, check, build_composite(items, geobox, offsets=check.decisions)


@pytest.mark.parametrize("source_name", ["local-stac", "earth-search"])
def test_every_item_misflagged_still_gives_the_true_ndvi(misflagged_area, source_name):
    items, check, comp = _composite_and_check(misflagged_area, source_name)
    misflagged = set(misflagged_area["years"]["2024"]["misflagged"])
    assert {i.id for i in items} <= misflagged and len(items) >= 5  # every kept item lies
    assert {d.item_id for d in check.contradicted} == {i.id for i in items}
    in_dn = misflagged_area["misflag"] == "offset-flagged-true"
    for decision in check.decisions.values():
        assert decision.red.offset == decision.nir.offset == pytest.approx(-0.1 if in_dn else 0.0)
        assert decision.evidence.verdict is (OffsetVerdict.IN_DN if in_dn else OffsetVerdict.REMOVED)
    _assert_truth(misflagged_area, comp)


def test_a_batch_warns_once_per_contradicted_item(sample_area, caplog):
    """A batch's area-years read the same scenes: each liar gets one warning for the whole batch, counting the
    area-years whose pixels overrode it among those that read it, instead of one warning per area-year."""
    items, geobox = _select(sample_area, "local-stac", None)
    liars = sorted(sample_area["years"]["2024"]["misflagged"])
    half = geobox.width // 2
    areas = {"west 2024": geobox[:, :half], "east 2024": geobox[:, half:],
             "tiny 2024": geobox[:4, :4]}  # 16 px: too few vegetation pixels, the metadata stands
    with caplog.at_level(logging.INFO, logger="ingestion.imagery.offset_check"):
        checked = [(name, check_offsets(items, area, warn=False).decisions) for name, area in areas.items()]
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # detail at info only
        assert sum("contradicted" in r.getMessage() for r in caplog.records) == 2 * len(liars)
        caplog.clear()
        lines = report_contradictions(checked)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == lines
    assert [line.split(":")[0] for line in lines] == [f"scene {liar}" for liar in liars]
    decisions = checked[0][1]
    for liar, line in zip(liars, lines, strict=True):
        assert "in 2 of the 3 area-years that read it (west 2024, east 2024)" in line, line
        assert f"metadata says {decisions[liar].metadata_text}" in line
        assert line.endswith(f"applying offset {decisions[liar].red.offset:g}")
    # many area-years: the first few named, the rest counted
    many = [(f"GM{n:04d} 2024", decisions) for n in range(1, 6)]
    assert "in 5 of the 5 area-years that read it (GM0001 2024, GM0002 2024, GM0003 2024 and 2 more)" in (
        report_contradictions(many)[0])
    assert report_contradictions([("tiny 2024", checked[2][1])]) == []


@pytest.mark.parametrize("source_name", ["local-stac", "earth-search"])
def test_liars_mixed_with_honest_items_give_the_true_ndvi(sample_area, source_name):
    """The session's sample year 2024 mixes both lies with honest items of both kinds, on one day too."""
    items, check, comp = _composite_and_check(sample_area, source_name)
    year = sample_area["years"]["2024"]
    liars = set(year["misflagged"])
    assert len(liars) == 3 and liars <= {i.id for i in items}
    assert {d.item_id for d in check.contradicted} == liars
    for item in items:
        decision = check.decisions[item.id]
        assert decision.red.offset == pytest.approx(-0.1 if item.id in year["offset_in_dn"] else 0.0)
        # the separation the thresholds rely on: near 1 for clean DN, near 0 with the offset in
        share = decision.evidence.dark_share
        assert (share <= 0.01) if item.id in year["offset_in_dn"] else (share >= 0.99)
    _assert_truth(sample_area, comp)


def test_metadata_alone_would_be_wrong_on_the_sample(sample_area):
    """Guards the test above: without the pixels' say, the lies bias the composite (so it can fail)."""
    items, geobox = _select(sample_area, "local-stac", None)
    check = check_offsets(items, geobox)
    trusting = {i: type(d)(d.item_id, d.prior, OffsetEvidence(0, None), d.prior, d.prior)
                for i, d in check.decisions.items()}
    comp = build_composite(items, geobox, offsets=trusting)
    truth = read_on_geobox(Path(sample_area["root"]) / "truth" / "ndvi_true_2024.tif", geobox)
    assert np.nanmax(np.abs(comp.ndvi - truth)) > 0.1


def test_a_small_area_is_sampled_at_sceneclassifications_20_m_not_finer(sample_area):
    """A 1.2 km area: its 120 × 120 px of 10 m red are sampled at 20 m (SCL's own pixels), 60 × 60 at most."""
    from ingestion.imagery.offset_check import SAMPLE_MIN_PIXEL_M, sample_evidence

    items, area_geobox = _select(sample_area, "local-stac", None)
    left, bottom = area_geobox.boundingbox.left, area_geobox.boundingbox.bottom
    side = 1200
    small = GeoBox.from_bbox((left + 500, bottom + 500, left + 500 + side, bottom + 500 + side),
                             area_geobox.crs, resolution=10)
    at_most = (side / SAMPLE_MIN_PIXEL_M) ** 2
    counts = [sample_evidence(item, small).vegetation_pixels for item in items]
    assert max(counts) <= at_most < (side / 10) ** 2
    assert max(counts) > at_most / 4  # mostly vegetation here: the sample is not empty either
    assert all(d.verdict is not OffsetVerdict.INCONCLUSIVE for d in
               (sample_evidence(item, small) for item in items) if d.vegetation_pixels >= MIN_VEGETATION_PIXELS)


# --- a real scene with no vegetation: inconclusive, metadata rule kept -----------------------------------------

def _real_desert_item(shared_data: Path, **props) -> pystac.Item:
    src = shared_data / "s2" / DESERT
    item = pystac.Item.from_file(str(src / f"{DESERT}.json"))
    item.properties.update(props)
    for key, name in (("red", "B04.tif"), ("nir", "B08.tif"), ("scl", "SCL.tif")):
        item.assets[key].href = str(src / name)
    return item


def _desert_geobox(shared_data: Path) -> GeoBox:
    with rasterio.open(shared_data / "s2" / DESERT / "B04.tif") as src:
        left, bottom, right, top = src.bounds
        return GeoBox.from_bbox((left + 20_000, bottom + 20_000, left + 60_000, bottom + 60_000), src.crs,
                                resolution=100)


def test_real_desert_scene_is_inconclusive_and_keeps_the_metadata_rule(shared_data):
    geobox = _desert_geobox(shared_data)
    honest = _real_desert_item(shared_data)
    decision = check_offsets([honest], geobox).decisions[honest.id]
    assert decision.evidence.vegetation_pixels == 0 and decision.evidence.verdict is OffsetVerdict.INCONCLUSIVE
    assert decision.red.offset == 0.0 and decision.red.rule == decision.prior.rule == "boa_offset_applied=false, " \
        "baseline<04.00"
    assert "inconclusive" in decision.evidence.describe() and not decision.contradicts_metadata
    # the same pixels claimed as a post-04.00 item with the offset in: still no vegetation to tell, so the
    # metadata's -0.1 stands and nothing is reported as contradicted
    relabelled = _real_desert_item(shared_data, **{"s2:processing_baseline": "05.09"})
    decision = check_offsets([relabelled], geobox).decisions[relabelled.id]
    assert decision.red.offset == pytest.approx(-0.1) and not decision.contradicts_metadata


# --- real-item shapes: read correctly or dropped with a reason ------------------------------------------------

def _odd_items(sample_area: dict, tmp_path: Path, server: RangeServer, only: tuple[str, ...] = ()
               ) -> tuple[Path, dict[str, str]]:
    """A copy of the sample's 2024 catalog with four real-world item shapes (or ``only`` those); returns it and
    item id -> shape."""
    root = tmp_path / "odd"
    shutil.copytree(Path(sample_area["catalog"]).parent, root)
    items = {p.parent.name: p for p in root.rglob("S2B_*_2024*_L2A.json")}
    shapes = {}

    def edit(item_id: str, shape: str, change) -> None:
        if only and shape not in only:
            return
        data = json.loads(items[item_id].read_text())
        change(data)
        items[item_id].write_text(json.dumps(data))
        shapes[item_id] = shape

    def proj_code(d):
        d["properties"]["proj:code"] = f"EPSG:{d['properties'].pop('proj:epsg')}"
    edit("S2B_32ULC_20240310_0_L2A", "proj:code", proj_code)
    edit("S2B_32ULC_20240715_0_L2A", "no eo:cloud_cover", lambda d: d["properties"].pop("eo:cloud_cover"))

    def interval(d):
        when = d["properties"]["datetime"]
        d["properties"].update(datetime=None, start_datetime=when, end_datetime=when)
    edit("S2B_32ULC_20240925_0_L2A", "null datetime", interval)

    def missing_nir(d):
        d["assets"]["nir"]["href"] = f"{server.url}/no/such/nir.tif"
    edit("S2B_32ULD_20240620_0_L2A", "404", missing_nir)
    return root / "catalog.json", shapes


def _area_config(sample_area: dict, catalog: Path, out: Path, on_bad_item: str = "drop") -> AreaConfig:
    config_path = out.parent / "odd.yaml"
    config_path.write_text(json.dumps({
        "area": "odd", "districts": {"path": sample_area["districts"]}, "years": [2024], "output_dir": str(out),
        "imagery": {"source": "local-stac", "options": {"catalog_path": str(catalog)},
                    "on_bad_item": on_bad_item}}))
    return load_config(config_path).areas[0]


def test_a_batch_warns_once_per_broken_scene(sample_area, tmp_path, caplog):
    """A scene with an asset that cannot be read (a real 404) or with unreadable metadata is dropped by every
    area-year that finds it; a batch warns once per scene and reason, counting those area-years among the ones
    that found the scene. The selection rules' drops (cloud cover, window, duplicates) are expected: no warning."""
    districts = gpd.read_file(sample_area["districts"])
    aoi = districts.union_all()
    query = SceneQuery.for_year(to_wgs84(aoi, districts.crs), 2024)
    geobox = target_geobox(aoi, districts.crs.to_string(), 10)
    half = geobox.width // 2
    clean = load_source("local-stac", catalog_path=sample_area["catalog"]).select(query)  # the same scenes, intact
    with RangeServer(tmp_path) as server:
        catalog, shapes = _odd_items(sample_area, tmp_path, server, only=("404", "no eo:cloud_cover"))
        found = load_source("local-stac", catalog_path=str(catalog)).select(query)
        selected = []
        with caplog.at_level(logging.INFO, logger="ingestion"):
            for name, area in (("west 2024", geobox[:, :half]), ("east 2024", geobox[:, half:])):
                screened = screen_items(found, warn=False)
                selected.append((name, drop_unreadable(screened, check_offsets(screened.items, area, warn=False),
                                                       warn=False)))
            assert server.requests > 0  # the 404 was really asked for
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING]  # detail at info only
            caplog.clear()
            lines = report_drops([*selected, ("GM0001 2024", clean)])
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == lines
    reasons = {d.item_id: d.reason for d in selected[0][1].dropped if d.item_id in shapes}
    assert len(reasons) == 2 and reasons[next(i for i, s in shapes.items() if s == "404")].startswith(
        "unreadable asset: ")
    in_clean = {d.item_id for d in clean.decisions}
    assert clean.dropped and lines == [
        f"scene {item}: dropped in 2 of the {2 + (item in in_clean)} area-years that found it (west 2024, "
        f"east 2024): {reasons[item]}" for item in sorted(reasons)]


def test_real_item_shapes_are_read_or_dropped_with_a_reason(sample_area, tmp_path):
    from ingestion import pipeline

    with RangeServer(tmp_path) as server:
        catalog, shapes = _odd_items(sample_area, tmp_path, server)
        cfg = _area_config(sample_area, catalog, tmp_path / "out")
        pipeline.build_aoi(cfg, pipeline.prepare_districts(cfg))
        result = pipeline.composite_year(cfg, 2024)
        assert server.requests > 0  # the 404 was really asked for
    reasons = {d.item_id: (d.kept, d.reason) for d in result.selection.decisions}
    by_shape = {shape: reasons[item_id] for item_id, shape in shapes.items()}
    assert by_shape["proj:code"][0] is True  # grids come from the COGs, not from proj:epsg
    assert by_shape["null datetime"][0] is True
    assert by_shape["no eo:cloud_cover"] == (False, "bad metadata: eo:cloud_cover is None")
    kept, reason = by_shape["404"]
    assert not kept and reason.startswith("unreadable asset: item S2B_32ULD_20240620_0_L2A: asset 'nir' at http")
    assert "404" in reason
    assert result.composite.days[-1] == dt.date(2024, 9, 25)  # the interval-dated item was composited
    assert set(result.composite.offsets) == {i.id for i in result.selection.items}


def test_unreadable_asset_fails_the_year_when_configured(sample_area, tmp_path):
    from ingestion import pipeline

    with RangeServer(tmp_path) as server:
        catalog, _ = _odd_items(sample_area, tmp_path, server, only=("404",))
        cfg = _area_config(sample_area, catalog, tmp_path / "out", on_bad_item="fail")
        pipeline.build_aoi(cfg, pipeline.prepare_districts(cfg))
        with pytest.raises(BadItemError, match=r"asset 'nir' at http://127\.0\.0\.1:\d+/no/such/nir.tif "
                                                        r"cannot be read: .*404.*imagery.on_bad_item: drop"):
            pipeline.composite_year(cfg, 2024)
    item = pystac.Item("lonely", box(0, 0, 1, 1).__geo_interface__, [0, 0, 1, 1], dt.datetime(2024, 1, 1), {})
    for key in ("red", "nir", "scl"):
        item.add_asset(key, pystac.Asset(str(tmp_path / f"missing-{key}.tif")))
    check = check_offsets([item], GeoBox.from_bbox((0, 0, 100, 100), "EPSG:32632", resolution=10))
    assert isinstance(check.unreadable["lonely"], UnreadableAssetError)
    assert "asset 'red' at " in str(check.unreadable["lonely"]) and "missing-red.tif" in str(check.unreadable["lonely"])
