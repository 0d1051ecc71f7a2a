"""Two areas (the sample's districts split west / east) over a copy of the sample catalog, and a way to add a
scene that only one area-year sees: what the update-pipeline tests (issue 20) need."""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import geopandas as gpd
import pystac
import yaml
from shapely.geometry import mapping

from ingestion.config import AreaConfig, PipelineConfig, load_config
from ingestion.pipeline import build_aoi, prepare_districts

YEARS = [2019, 2024]
AREAS = ("west", "east")


def two_areas(sample_area: dict, root: Path) -> PipelineConfig:
    """A config of areas ``west`` and ``east`` (4 and 4 districts of the sample), years 2019 and 2024, reading a
    private copy of the sample catalog (``root/catalog``); their AOIs are written (``aoi_boundary``)."""
    shutil.copytree(Path(sample_area["catalog"]).parent, root / "catalog")
    districts = gpd.read_file(sample_area["districts"])
    districts = districts.assign(x=districts.geometry.centroid.x).sort_values("x").drop(columns="x")
    half = len(districts) // 2
    entries = []
    for name, part in zip(AREAS, (districts.iloc[:half], districts.iloc[half:]), strict=True):
        path = root / f"districts-{name}.gpkg"
        part.to_file(path, layer="districts", driver="GPKG")
        entries.append({"area": name, "districts": {"path": str(path)}})
    config_path = root / "areas.yaml"
    config_path.write_text(yaml.safe_dump({
        "areas": entries, "years": YEARS, "output_dir": str(root / "data"),
        "imagery": {"source": "local-stac", "options": {"catalog_path": str(root / "catalog" / "catalog.json")}},
    }))
    config = load_config(config_path)
    for area in config.areas:
        build_aoi(area, prepare_districts(area))
    return config


def add_scene(config: PipelineConfig, area: AreaConfig, year: int) -> str:
    """Add to the catalog a clear scene of ``year`` whose footprint lies inside ``area``'s AOI only (a copy of
    one of that year's kept items on a new day, pixels and all); returns its id."""
    catalog_path = Path(area.imagery.options["catalog_path"])
    catalog = pystac.Catalog.from_file(str(catalog_path))
    collection = next(catalog.get_children())
    template = next(i for i in collection.get_items()
                    if i.datetime.year == year and i.properties["eo:cloud_cover"] < 5 and i.id.endswith("_0_L2A"))
    template.make_asset_hrefs_absolute()
    aoi = gpd.read_file(area.area_dir / "aoi" / "aoi_boundary.gpkg").to_crs("EPSG:4326").union_all()
    footprint = aoi.buffer(-0.002)  # well inside this area, away from the other
    item = template.clone()
    day = dt.datetime(year, 8, 3, 10, 47, 31, tzinfo=dt.UTC)
    item.id = f"S2B_32ULC_{day:%Y%m%d}_0_L2A"
    item.datetime = day
    item.geometry, item.bbox = mapping(footprint), list(footprint.bounds)
    collection.add_item(item)
    catalog.normalize_hrefs(str(catalog_path.parent))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return item.id


@contextmanager
def counting_opens(name: str) -> Iterator[list[str]]:
    """Count the files named ``name`` that the process opens meanwhile (a real audit hook, no patching)."""
    opened: list[str] = []
    _HOOK_TARGETS.append((name, opened))
    try:
        yield opened
    finally:
        _HOOK_TARGETS.remove((name, opened))


_HOOK_TARGETS: list[tuple[str, list[str]]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _HOOK_TARGETS and isinstance(args[0], str | Path):
        for name, opened in _HOOK_TARGETS:
            if Path(args[0]).name == name:
                opened.append(str(args[0]))


sys.addaudithook(_audit)
