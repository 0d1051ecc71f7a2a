"""Generate the synthetic area: districts, a static STAC catalog of L2A-like items, and the true NDVI.

Everything is deterministic for a given seed. The truth (``truth/ndvi_true_{year}.tif`` and
``truth/clear_count_{year}.tif``, on the generator's 10 m grid) is what a correct pipeline must recover:
the NDVI of every pixel (constant within a year) and how many distinct days observed it clear.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pystac
import rasterio
from pyproj import Transformer
from rasterio.features import rasterize
from rasterio.transform import from_origin
from shapely.geometry import MultiPoint, MultiPolygon, Polygon, box, mapping
from shapely.ops import transform as shp_transform
from shapely.ops import voronoi_diagram

from ingestion.sample.scenes import ScenePlan, year_plan

log = logging.getLogger(__name__)

PIXEL = 10.0  # metres, red/nir
SCL_PIXEL = 20.0  # metres
SYNTHETIC_CRS = "EPSG:32632"
SYNTHETIC_ORIGIN = (340_000.0, 5_790_000.0)  # upper-left corner, UTM 32N (near Enschede)
MARGIN = 200.0  # metres of imagery around the districts
CLEAR_CLASSES = (4, 5, 6)  # vegetation, not vegetated, water
VEGETATION_NDVI = 0.3  # a 20 m SCL cell whose true NDVI is at least this is classed vegetation (4)
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.0.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.1.0/schema.json",
]


@dataclass
class SampleArea:
    """The imagery extent (aligned to 20 m, in ``crs``) and the districts inside it."""

    crs: str
    bounds: tuple[float, float, float, float]
    districts: gpd.GeoDataFrame

    @property
    def width(self) -> int:
        return round((self.bounds[2] - self.bounds[0]) / PIXEL)

    @property
    def height(self) -> int:
        return round((self.bounds[3] - self.bounds[1]) / PIXEL)

    @property
    def transform(self) -> rasterio.Affine:
        return from_origin(self.bounds[0], self.bounds[3], PIXEL, PIXEL)


def synthetic_districts(seed: int = 42, n: int = 8, size_m: tuple[float, float] = (3000.0, 2000.0)
                        ) -> gpd.GeoDataFrame:
    """``n`` Voronoi districts over a ``size_m`` (width, height in metres) rectangle in EPSG:32632."""
    rng = np.random.default_rng(seed)
    x0, y1 = SYNTHETIC_ORIGIN
    x0, y1 = x0 + MARGIN, y1 - MARGIN
    frame = box(x0, y1 - size_m[1], x0 + size_m[0], y1)
    points = rng.uniform((frame.bounds[0], frame.bounds[1]), (frame.bounds[2], frame.bounds[3]), size=(n, 2))
    pts = MultiPoint([tuple(p) for p in points])
    cells = [c.intersection(frame) for c in voronoi_diagram(pts, envelope=frame).geoms]
    cells.sort(key=lambda c: (-round(c.centroid.y, -2), c.centroid.x))
    return gpd.GeoDataFrame(
        {"district_code": [f"SD{i + 1:02d}" for i in range(len(cells))],
         "district_name": [f"District {chr(65 + i)}" for i in range(len(cells))]},
        geometry=[MultiPolygon([c]) if isinstance(c, Polygon) else c for c in cells], crs=SYNTHETIC_CRS)


def area_from_districts(districts: gpd.GeoDataFrame) -> SampleArea:
    """Imagery extent: the districts' bounds plus a margin, snapped outwards to the 20 m SCL grid."""
    if districts.crs is None or not districts.crs.is_projected:
        raise ValueError("sample districts need a projected CRS in metres")
    minx, miny, maxx, maxy = districts.total_bounds
    snap = SCL_PIXEL
    bounds = (np.floor((minx - MARGIN) / snap) * snap, np.floor((miny - MARGIN) / snap) * snap,
              np.ceil((maxx + MARGIN) / snap) * snap, np.ceil((maxy + MARGIN) / snap) * snap)
    return SampleArea(crs=districts.crs.to_string(), bounds=tuple(float(b) for b in bounds), districts=districts)


def district_raster(area: SampleArea) -> np.ndarray:
    """District index (1..n, 0 = none) of every 10 m pixel, by pixel centre."""
    shapes = [(geom, i + 1) for i, geom in enumerate(area.districts.geometry)]
    return rasterize(shapes, out_shape=(area.height, area.width), transform=area.transform, fill=0,
                     all_touched=False, dtype="int32")


def district_means(area: SampleArea, year: int, seed: int, reference: dict[str, float] | None) -> np.ndarray:
    """Target mean NDVI per district: the reference value where its code matches, else seeded random."""
    rng = np.random.default_rng([seed, year])
    means = rng.uniform(0.25, 0.65, size=len(area.districts))
    for i, code in enumerate(area.districts["district_code"]):
        if reference and code in reference:
            means[i] = reference[code]
    return means


def true_ndvi(area: SampleArea, year: int, seed: int, reference: dict[str, float] | None = None) -> np.ndarray:
    """The NDVI of every pixel in ``year``: district mean plus a texture whose mean is zero per district."""
    rng = np.random.default_rng([seed, year, 1])
    yy, xx = np.mgrid[0:area.height, 0:area.width].astype(np.float32)
    texture = np.zeros_like(xx)
    for _ in range(3):
        fx, fy, phase = rng.uniform(0.01, 0.06), rng.uniform(0.01, 0.06), rng.uniform(0, 2 * np.pi)
        texture += 0.03 * np.sin(fx * xx + fy * yy + phase)
    texture += rng.normal(0.0, 0.02, size=texture.shape).clip(-0.05, 0.05)
    ids = district_raster(area)
    values = np.full(texture.shape, 0.15, dtype=np.float32) + texture
    for i, mean in enumerate(district_means(area, year, seed, reference)):
        inside = ids == i + 1
        if inside.any():
            local = texture[inside] - texture[inside].mean()
            # shrink the texture where it would leave [-0.4, 0.8], so the district mean stays exact
            room = min(1.0, (0.8 - mean) / max(local.max(), 1e-9), (mean + 0.4) / max(-local.min(), 1e-9))
            values[inside] = mean + max(room, 0.0) * local
    return values.clip(-0.4, 0.8).astype(np.float32)


def _patches(rng: np.random.Generator, shape: tuple[int, int], classes: tuple[int, ...]) -> np.ndarray:
    """SCL-resolution array of cloud/shadow/cirrus circles (0 = none)."""
    out = np.zeros(shape, dtype=np.uint8)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    for cls in classes:
        cy, cx, r = rng.integers(0, shape[0]), rng.integers(0, shape[1]), rng.integers(4, 10)
        out[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = cls
    return out


def render_scene(plan: ScenePlan, area: SampleArea, truth: np.ndarray, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Red and nir DN (10 m, uint16, 0 = nodata), SCL (20 m, uint8) and the 10 m clear mask of one scene."""
    rng = np.random.default_rng([seed, plan.day.toordinal(), plan.sequence, sum(plan.tile.encode())])
    h20, w20 = area.height // 2, area.width // 2
    covered20 = np.zeros((h20, w20), dtype=bool)
    cols = round(w20 * plan.coverage)
    if plan.side == "west":
        covered20[:, :cols] = True
    else:
        covered20[:, w20 - cols:] = True
    # Patches depend on the day, not on the product: a _0/_1 pair sees the same clouds.
    patch_rng = np.random.default_rng([seed, plan.day.toordinal()])
    # Sen2Cor-like classes: vegetation (4) where the 20 m cell is green, else not vegetated (5).
    green = truth.reshape(h20, 2, w20, 2).mean(axis=(1, 3)) >= VEGETATION_NDVI
    scl = np.where(green, 4, 5).astype(np.uint8)
    patches = _patches(patch_rng, (h20, w20), plan.clouds)
    scl = np.where(patches > 0, patches, scl)
    scl[h20 // 3: h20 // 3 + 5, w20 // 3: w20 // 3 + 5] = 9  # a cloud seen on every day
    if plan.all_cloud:
        scl[:] = 9
    scl[~covered20] = 0
    scl10 = np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)
    # Red reflectance falls as vegetation gets denser (0.09-0.11 at NDVI <= 0, 0.03-0.05 at 0.8): what the offset
    # check relies on (ingestion.imagery.offset_check), and dark enough for the DN to round to NDVI within 1e-3.
    red = (0.10 - 0.06 * np.clip(truth, 0.0, 0.8) / 0.8
           + rng.uniform(-0.01, 0.01, size=truth.shape)).astype(np.float32)
    nir = red * (1 + truth) / (1 - truth)
    for cls, (r, n) in {9: (0.45, 0.48), 8: (0.30, 0.33), 10: (0.18, 0.22), 3: (0.02, 0.03)}.items():
        red = np.where(scl10 == cls, r, red)
        nir = np.where(scl10 == cls, n, nir)
    add = 1000 if plan.offset_in_dn else 0
    red_dn = np.where(scl10 > 0, np.round(red * 10000) + add, 0).astype(np.uint16)
    nir_dn = np.where(scl10 > 0, np.round(nir * 10000) + add, 0).astype(np.uint16)
    clear = np.isin(scl10, CLEAR_CLASSES)
    return red_dn, nir_dn, scl, clear


#: COG layouts of the generated assets: the small default, and Earth Search's own (1024 px tiles, DEFLATE with
#: horizontal differencing) for benchmarks of remote reads.
COG_LAYOUTS: dict[str, dict[str, object]] = {
    "sample": {"blocksize": 256},
    "earth-search": {"blocksize": 1024, "predictor": 2},
}


def _write_cog(path: Path, data: np.ndarray, area: SampleArea, pixel: float, layout: str = "sample") -> None:
    transform = from_origin(area.bounds[0], area.bounds[3], pixel, pixel)
    with rasterio.open(path, "w", driver="COG", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=area.crs, transform=transform, nodata=0, compress="deflate",
                       **COG_LAYOUTS[layout]) as dst:
        dst.write(data, 1)


def _footprint(plan: ScenePlan, area: SampleArea) -> tuple[Polygon, Polygon]:
    """Covered part of the area, in the area CRS and in EPSG:4326."""
    minx, miny, maxx, maxy = area.bounds
    w20 = area.width // 2
    cols = round(w20 * plan.coverage) * SCL_PIXEL
    local = box(minx, miny, minx + cols, maxy) if plan.side == "west" else box(maxx - cols, miny, maxx, maxy)
    to_wgs84 = Transformer.from_crs(area.crs, "EPSG:4326", always_xy=True).transform
    return local, shp_transform(to_wgs84, local.segmentize(50))


def _item(plan: ScenePlan, area: SampleArea, footprint_4326: Polygon) -> pystac.Item:
    when = dt.datetime.combine(plan.day, dt.time(10, 47, 31), tzinfo=dt.UTC)
    epsg = int(area.crs.split(":")[1]) if area.crs.upper().startswith("EPSG:") else None
    props = {
        "platform": "sentinel-2b", "constellation": "sentinel-2", "instruments": ["msi"],
        "eo:cloud_cover": plan.cloud_cover, "proj:epsg": epsg,
        "mgrs:utm_zone": int(plan.tile[:2]), "mgrs:latitude_band": plan.tile[2], "mgrs:grid_square": plan.tile[3:],
        "grid:code": f"MGRS-{plan.tile}", "s2:processing_baseline": plan.baseline, "s2:sequence": str(plan.sequence),
        "s2:product_type": "S2MSI2A", "earthsearch:boa_offset_applied": plan.boa_offset_applied,
        "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z",
    }
    item = pystac.Item(id=plan.item_id, geometry=mapping(footprint_4326), bbox=list(footprint_4326.bounds),
                       datetime=when, properties=props, stac_extensions=list(EXTENSIONS))
    cog = "image/tiff; application=geotiff; profile=cloud-optimized"
    for key, title, pixel, dtype, radiometric in (("red", "Red (band 4) - 10m", PIXEL, "uint16", True),
                                                  ("nir", "NIR 1 (band 8) - 10m", PIXEL, "uint16", True),
                                                  ("scl", "Scene classification map (SCL)", SCL_PIXEL, "uint8", False)):
        band = {"nodata": 0, "data_type": dtype, "spatial_resolution": pixel}
        if radiometric:
            band.update(bits_per_sample=15, scale=0.0001, offset=plan.raster_offset)
        item.add_asset(key, pystac.Asset(
            href=f"./{key}.tif", media_type=cog, title=title, roles=["data"],
            extra_fields={"raster:bands": [band],
                          "proj:shape": [round(area.height * PIXEL / pixel), round(area.width * PIXEL / pixel)],
                          "proj:transform": [pixel, 0, area.bounds[0], 0, -pixel, area.bounds[3]]}))
    return item


def generate(out_dir: Path, years: list[int], seed: int = 42, districts_path: Path | None = None,
             reference_means: dict[int, dict[str, float]] | None = None, all_cloud_years: tuple[int, ...] = (),
             misflag: str | None = None, cog_layout: str = "sample") -> dict:
    """Write the sample area into ``out_dir`` and return its manifest (also saved as ``truth/truth.json``).

    Layout: ``catalog/catalog.json`` (static STAC), ``districts.gpkg`` (synthetic districts; absent when
    ``districts_path`` is given), ``truth/ndvi_true_{year}.tif``, ``truth/clear_count_{year}.tif``.
    ``misflag``: every item from baseline 04.00 carries that wrong offset flag (``scenes.MISFLAGS``); by default
    one item of each kind lies. ``cog_layout``: a key of :data:`COG_LAYOUTS`.
    """
    if cog_layout not in COG_LAYOUTS:
        raise ValueError(f"cog_layout must be one of {', '.join(COG_LAYOUTS)}, got {cog_layout!r}")
    out_dir = Path(out_dir)
    (out_dir / "truth").mkdir(parents=True, exist_ok=True)
    if districts_path is None:
        districts = synthetic_districts(seed)
        districts_path = out_dir / "districts.gpkg"
        districts.to_file(districts_path, layer="districts", driver="GPKG")
    else:
        districts = gpd.read_file(districts_path)
    area = area_from_districts(districts)
    log.info("sample area %s, %dx%d pixels at 10 m, %d districts", area.crs, area.width, area.height,
             len(districts))

    catalog = pystac.Catalog(id="ndvi-sample", description="Synthetic Sentinel-2 L2A-like scenes (generated)")
    _, extent_4326 = _footprint(year_plan(years[0])[0], area)
    collection = pystac.Collection(
        id="sentinel-2-l2a", description="Synthetic Sentinel-2 L2A (Earth Search v1 field names)",
        extent=pystac.Extent(pystac.SpatialExtent([list(extent_4326.bounds)]),
                             pystac.TemporalExtent([[dt.datetime(min(years), 1, 1, tzinfo=dt.UTC),
                                                     dt.datetime(max(years), 12, 31, tzinfo=dt.UTC)]])),
        license="CC0-1.0")
    catalog.add_child(collection)
    rasters: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    manifest: dict = {"crs": area.crs, "bounds": area.bounds, "districts": str(districts_path), "years": {}}
    for year in years:
        reference = (reference_means or {}).get(year)
        truth = true_ndvi(area, year, seed, reference)
        plans = year_plan(year, all_cloud=year in all_cloud_years, misflag=misflag)
        clear_days: dict[dt.date, np.ndarray] = {}
        for plan in plans:
            red, nir, scl, clear = render_scene(plan, area, truth, seed)
            _, footprint = _footprint(plan, area)
            collection.add_item(_item(plan, area, footprint))
            rasters[plan.item_id] = (red, nir, scl)
            if plan.cloud_cover < 5:  # kept by the default filter
                clear_days[plan.day] = clear_days.get(plan.day, np.zeros_like(clear)) | clear
        count = np.sum(list(clear_days.values()), axis=0).astype(np.uint16)
        with rasterio.open(out_dir / "truth" / f"ndvi_true_{year}.tif", "w", driver="GTiff", width=area.width,
                           height=area.height, count=1, dtype="float32", crs=area.crs,
                           transform=area.transform) as dst:
            dst.write(truth, 1)
        with rasterio.open(out_dir / "truth" / f"clear_count_{year}.tif", "w", driver="GTiff", width=area.width,
                           height=area.height, count=1, dtype="uint16", crs=area.crs,
                           transform=area.transform) as dst:
            dst.write(count, 1)
        manifest["years"][str(year)] = {
            "items": [p.item_id for p in plans],
            "kept": [p.item_id for p in plans if p.cloud_cover < 5],
            "dropped_cloud_cover": [p.item_id for p in plans if p.cloud_cover >= 5],
            "all_cloud": year in all_cloud_years,
            "misflagged": [p.item_id for p in plans if p.misflagged],
            "offset_in_dn": [p.item_id for p in plans if p.offset_in_dn],
        }
    catalog_dir = out_dir / "catalog"
    catalog.normalize_hrefs(str(catalog_dir))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    for item in collection.get_items():
        item_dir = Path(item.get_self_href()).parent
        red, nir, scl = rasters[item.id]
        _write_cog(item_dir / "red.tif", red, area, PIXEL, cog_layout)
        _write_cog(item_dir / "nir.tif", nir, area, PIXEL, cog_layout)
        _write_cog(item_dir / "scl.tif", scl, area, SCL_PIXEL, cog_layout)
    manifest["catalog"] = str(catalog_dir / "catalog.json")
    (out_dir / "truth" / "truth.json").write_text(json.dumps(manifest, indent=2))
    log.info("sample catalog written to %s", manifest["catalog"])
    return manifest
