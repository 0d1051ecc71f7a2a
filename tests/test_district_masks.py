"""Every pixel counts for exactly one district, whatever the tile size, grid origin or layout of areas.

Districts whose edges lie exactly on tile edges used to get a mask for a tile they only touch: ST_Clip burns
the touching line, so a full row or column of the neighbour's pixels counted twice (issue 21). These tests
run the real dbt models (``dbt run`` up to ``ndvi_stats_yearly``) on the embedded cluster's ``ndvi_bench``
database with the zonal benchmark's loaders, and check them against rasterio's pixel-centre rasterisation
(``all_touched=False``), pixel for pixel for the masks and district by district for the statistics.

Grids are 10 m in EPSG:28992; sizes are in pixels unless they say metres.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import pytest
import shapely
from affine import Affine
from odc.geo.geobox import GeoBox
from psycopg import sql
from rasterio.features import rasterize
from shapely import MultiPoint, box, voronoi_polygons

from ingestion.imagery.cog import write_composite_cog
from ingestion.imagery.composite import Composite
from ingestion.load.postgis import load_composite, stage_districts
from tests.helpers import zonal_benchmark

zonal_stats = zonal_benchmark()

PIXEL = 10.0  # metres
CRS = "EPSG:28992"
YEAR = zonal_stats.YEAR


def _frame(codes: list[str], polygons: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"district_code": codes, "district_name": codes}, geometry=polygons, crs=CRS)


def _block_districts(x0: float, y0: float, width: int, height: int, block: int, n: int,
                     seed: int) -> gpd.GeoDataFrame:
    """A partition of the raster into ``n`` districts made of ``block`` px squares (each block goes to the
    nearest of ``n`` random seeds): every edge lies on the block grid, so at a tile size that is a multiple of
    ``block`` many edges run along tile edges, and districts touch tiles they do not enter, by an edge or a
    corner, or enter a tile and run along one of its edges."""
    rng = np.random.default_rng(seed)
    cols, rows = width // block, height // block
    seeds = rng.uniform((0, 0), (cols, rows), (n, 2))
    centres = np.stack(np.meshgrid(np.arange(cols) + 0.5, np.arange(rows) + 0.5), axis=-1).reshape(-1, 2)
    owner = np.argmin(((centres[:, None, :] - seeds[None, :, :]) ** 2).sum(-1), axis=1)
    size = block * PIXEL
    polygons, codes = [], []
    for district in np.unique(owner):
        squares = [box(x0 + c * size, y0 - (r + 1) * size, x0 + (c + 1) * size, y0 - r * size)
                   for r, c in zip(*np.unravel_index(np.flatnonzero(owner == district), (rows, cols)), strict=True)]
        polygons.append(shapely.union_all(squares))
        codes.append(f"B{district:03d}")
    return _frame(codes, polygons)


def _square_districts(x0: float, y0: float, width: int, height: int, side: int) -> gpd.GeoDataFrame:
    """Square cells of ``side`` px aligned to the raster origin (CBS-style square statistics)."""
    size = side * PIXEL
    polygons, codes = [], []
    for r in range(height // side):
        for c in range(width // side):
            polygons.append(box(x0 + c * size, y0 - (r + 1) * size, x0 + (c + 1) * size, y0 - r * size))
            codes.append(f"S{r:02d}{c:02d}")
    return _frame(codes, polygons)


def _case(name: str, x0: float, y0: float, width: int, height: int, districts: gpd.GeoDataFrame,
          seed: int) -> zonal_stats.Case:
    ndvi, count = zonal_stats._paint((height, width), np.random.default_rng(seed))
    return zonal_stats.Case(name, ndvi, count, Affine(PIXEL, 0, x0, 0, -PIXEL, y0), CRS, districts)


def _zones(case: zonal_stats.Case) -> np.ndarray:
    """numpy's pixel-centre rasterisation: 1 + the district's row number, 0 outside every district."""
    return rasterize([(g, i + 1) for i, g in enumerate(case.districts.geometry)], out_shape=case.ndvi.shape,
                     transform=case.transform, all_touched=False, fill=0, dtype="int32")


def _mask_zones(conn: psycopg.Connection, case: zonal_stats.Case, area: str) -> tuple[np.ndarray, np.ndarray]:
    """The district of every pixel according to ``analytics.district_tile_masks`` (same numbering as
    :func:`_zones`), and how many districts claim each pixel."""
    number = {code: i + 1 for i, code in enumerate(case.districts["district_code"])}
    zones = np.zeros(case.ndvi.shape, dtype=np.int32)
    claims = np.zeros(case.ndvi.shape, dtype=np.int32)
    inverse = ~case.transform
    rows = conn.execute("select district_code, st_xmin(cell), st_ymax(cell), st_xmax(cell), st_ymin(cell),"
                        " covers_cell, pixel_mask from analytics.district_tile_masks where area_code = %s",
                        (area,)).fetchall()
    for code, xmin, ymax, xmax, ymin, covers, mask in rows:
        col0, row0 = (round(v) for v in inverse * (xmin, ymax))
        col1, row1 = (round(v) for v in inverse * (xmax, ymin))
        if covers:
            inside = np.ones((row1 - row0, col1 - col0), dtype=bool)
        else:
            inside = np.array([[v is not None for v in line] for line in mask], dtype=bool)
            assert inside.shape == (row1 - row0, col1 - col0)
        window = (slice(row0, row1), slice(col0, col1))
        zones[window][inside] = number[code]
        claims[window] += inside
    return zones, claims


LAYOUTS = {
    # tile size, raster origin (x0, y0 in metres), raster size (px), districts
    "squares on 32 px tiles": (32, (252_000.0, 480_000.0), (160, 96),
                               lambda x0, y0, w, h: _square_districts(x0, y0, w, h, 32)),
    "blocks of 16 px on 32 px tiles": (32, (252_000.0, 480_000.0), (160, 96),
                                       lambda x0, y0, w, h: _block_districts(x0, y0, w, h, 16, 9, seed=4)),
    # an odd origin and a raster that is no multiple of the tile: edge tiles are narrower
    "blocks of 16 px on 64 px tiles, odd origin": (64, (203_457.3, 471_233.9), (176, 112),
                                                   lambda x0, y0, w, h: _block_districts(x0, y0, w, h, 16, 12,
                                                                                         seed=8)),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_pixel_in_exactly_one_district_when_edges_lie_on_tile_edges(bench_dsn, tmp_path, layout):
    tile, (x0, y0), (width, height), make_districts = LAYOUTS[layout]
    case = _case("edges", x0, y0, width, height, make_districts(x0, y0, width, height), seed=21)
    zonal_stats.load_case(case, bench_dsn, tmp_path)
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size=str(tile))

    expected = _zones(case)
    assert (expected > 0).all()  # the districts partition the raster
    with psycopg.connect(bench_dsn) as conn:
        got, claims = _mask_zones(conn, case, zonal_stats.AREA)
        stats = zonal_stats.table_stats(conn)
    assert int((claims > 1).sum()) == 0  # pixels claimed by two or more districts
    np.testing.assert_array_equal(got, expected)  # pixel for pixel
    assert zonal_stats.compare(stats, zonal_stats.numpy_stats(case)) == []
    assert sum(s["district_pixel_count"] for s in stats.values()) == width * height


# -- a province: many areas (A) against one area (B) ---------------------------------------------------------

MUNICIPALITY = (64, 96)  # px (rows, columns): multiples of the 32 px tile, so B's borders lie on tile edges
GRID = (2, 3)  # municipalities (rows, columns)
PAD = 5  # px of imagery beyond its municipality in each area of A: A's tiles start elsewhere than B's


def _province(x0: float, y0: float, seed: int) -> tuple[zonal_stats.Case, dict[str, tuple[slice, slice]]]:
    """Municipalities of Voronoi districts clipped to their rectangle (codes ``GMrc-Dn``); returns the whole
    province as one case and each municipality's pixel window."""
    rng = np.random.default_rng(seed)
    m_rows, m_cols = MUNICIPALITY
    polygons, codes, windows = [], [], {}
    for r in range(GRID[0]):
        for c in range(GRID[1]):
            gm = f"GM{r}{c}"
            frame = box(x0 + c * m_cols * PIXEL, y0 - (r + 1) * m_rows * PIXEL,
                        x0 + (c + 1) * m_cols * PIXEL, y0 - r * m_rows * PIXEL)
            minx, miny, maxx, maxy = frame.bounds
            points = MultiPoint(rng.uniform((minx, miny), (maxx, maxy), (5, 2)))
            for i, cell in enumerate(voronoi_polygons(points, extend_to=frame).geoms):
                polygons.append(cell.intersection(frame))
                codes.append(f"{gm}-D{i}")
            windows[gm] = (slice(r * m_rows, (r + 1) * m_rows), slice(c * m_cols, (c + 1) * m_cols))
    height, width = GRID[0] * m_rows, GRID[1] * m_cols
    return _case("province", x0, y0, width, height, _frame(codes, polygons), seed=seed), windows


def _load_area(conn: psycopg.Connection, area: str, case: zonal_stats.Case, window: tuple[slice, slice],
               districts: gpd.GeoDataFrame, workdir) -> None:
    """One area of the province: its districts, and the composite's pixels in ``window`` on the same grid."""
    rows, cols = window
    ndvi, count = case.ndvi[window], case.count[window]
    transform = case.transform * Affine.translation(cols.start, rows.start)
    composite = Composite(ndvi=ndvi, count=count, days=[], offsets={},
                          geobox=GeoBox(ndvi.shape, transform, case.crs))
    cog = write_composite_cog(composite, workdir / f"{area}.tif")
    stage_districts(conn, area, districts.reset_index(drop=True))
    load_composite(conn, area, YEAR, cog)  # publishes the staged districts in the same transaction


def test_many_areas_and_one_area_give_identical_rows(bench_dsn, tmp_path):
    case, windows = _province(252_000.0, 480_000.0, seed=17)
    height, width = case.ndvi.shape
    with psycopg.connect(bench_dsn) as conn:
        zonal_stats.clear_database(conn)
        _load_area(conn, "PROVINCE", case, (slice(0, height), slice(0, width)), case.districts, tmp_path)
        for gm, (rows, cols) in windows.items():
            padded = (slice(max(rows.start - PAD, 0), min(rows.stop + PAD, height)),
                      slice(max(cols.start - PAD, 0), min(cols.stop + PAD, width)))
            mine = case.districts[case.districts["district_code"].str.startswith(gm + "-")]
            _load_area(conn, gm, case, padded, mine, tmp_path)
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="32")

    with psycopg.connect(bench_dsn) as conn:
        cur = conn.execute("select area_code, district_code, pixel_count, district_pixel_count, min_ndvi,"
                           " max_ndvi, mean_ndvi, stddev_ndvi, mean_clear_observations"
                           " from analytics.ndvi_stats_yearly where year = %s", (YEAR,))
        rows = cur.fetchall()
        _, claims = _mask_zones(conn, case, "PROVINCE")
    one_area = {r[1]: r[2:] for r in rows if r[0] == "PROVINCE"}
    many_areas = {r[1]: r[2:] for r in rows if r[0] != "PROVINCE"}
    assert set(one_area) == set(many_areas) == set(case.districts["district_code"])
    for code in sorted(one_area):
        a, b = many_areas[code], one_area[code]
        assert a[:4] == b[:4], code  # pixel counts, min and max: exactly equal
        assert a[4:] == pytest.approx(b[4:], abs=1e-9, rel=0), code  # sums in another order: within 1e-9
    assert int((claims > 1).sum()) == 0  # pixels of the one area claimed by two or more districts

    reference = zonal_stats.numpy_stats(case)
    names = ("pixel_count", "district_pixel_count", "min", "max", "mean", "stddev", "mean_clear_observations")
    assert zonal_stats.compare({code: dict(zip(names, values, strict=True)) for code, values in one_area.items()},
                               reference, percentiles=False) == []


def _build_constant_case(bench_dsn: str, tmp_path: Path) -> None:
    """A constant composite (NDVI 0.5, 3 clear days) of 160 x 96 px under 9 block districts, loaded and built
    with the models at 64 px tiles."""
    x0, y0, width, height = 252_000.0, 480_000.0, 160, 96
    districts = _block_districts(x0, y0, width, height, 16, 9, seed=4)
    case = zonal_stats.Case("constant", np.full((height, width), 0.5, dtype=np.float32),
                            np.full((height, width), 3, dtype=np.int16), Affine(PIXEL, 0, x0, 0, -PIXEL, y0),
                            CRS, districts)
    zonal_stats.load_case(case, bench_dsn, tmp_path)
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="64")


def test_rasters_and_masks_are_written_with_lz4_where_the_server_has_it(bench_dsn, tmp_path):
    """The loader and the models that write rasters or masks compress with lz4, not pglz (a float32 composite
    is incompressible, and pglz spent more time trying than the rest of the load). A constant composite and
    block districts compress well, so every big value is stored compressed, and its method shows."""
    with psycopg.connect(bench_dsn) as conn:
        has_lz4 = conn.execute("select 'lz4' = any(enumvals) from pg_settings"
                               " where name = 'default_toast_compression'").fetchone()[0]
        default = conn.execute("show default_toast_compression").fetchone()[0]
    if not has_lz4:
        pytest.skip("this PostgreSQL was built without lz4")
    assert default == "pglz"  # else this test could not tell the loader's setting from the server's
    _build_constant_case(bench_dsn, tmp_path)
    with psycopg.connect(bench_dsn) as conn:
        query = sql.SQL("select array_agg(distinct pg_column_compression({column})) from {table}"
                        " where pg_column_compression({column}) is not null")
        methods = {table: conn.execute(query.format(column=sql.Identifier(column),
                                                    table=sql.Identifier(*table.split(".")))).fetchone()[0]
                   for table, column in (("raw.ndvi_composites", "rast"), ("analytics.stg_ndvi_tiles", "rast"),
                                         ("analytics.district_tile_masks", "pixel_mask"))}
    # every compressed value (small ones are stored as they are) with lz4
    assert methods == {"raw.ndvi_composites": ["lz4"], "analytics.stg_ndvi_tiles": ["lz4"],
                       "analytics.district_tile_masks": ["lz4"]}


def test_years_tiled_at_different_tile_sizes_each_count_every_pixel_once(bench_dsn, tmp_path):
    """When an area's tile size changes (``tile_size: auto`` chooses anew after a re-districting; here the var
    changes) while a later year is loaded, every year of the area is tiled at the new size, and the masks of the
    old size are deleted. Before, the earlier year kept its 64 px tiles, the masks were cut on a grid of 64 px
    steps, and the later year's 32 px tiles got masks of the wrong cells: 1,930 pixels for a district of 1,447."""
    x0, y0, width, height = 203_457.3, 471_233.9, 176, 112
    districts = _block_districts(x0, y0, width, height, 16, 12, seed=8)
    first = _case("first", x0, y0, width, height, districts, seed=31)
    zonal_stats.load_case(first, bench_dsn, tmp_path)  # year YEAR
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="64")
    later = _case("later", x0, y0, width, height, districts, seed=32)
    composite = Composite(ndvi=later.ndvi, count=later.count, days=[], offsets={},
                          geobox=GeoBox(later.ndvi.shape, later.transform, CRS))
    with psycopg.connect(bench_dsn) as conn:
        load_composite(conn, zonal_stats.AREA, YEAR + 1, write_composite_cog(composite, tmp_path / "later.tif"))
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="32")

    with psycopg.connect(bench_dsn) as conn:
        sizes = conn.execute("select year, max(st_width(rast)), min(tile_size), max(tile_size)"
                             " from analytics.stg_ndvi_tiles group by year order by year").fetchall()
        stats = {year: zonal_stats.table_stats(conn, year) for year in (YEAR, YEAR + 1)}
        zones, claims = _mask_zones(conn, later, zonal_stats.AREA)
        mask_sizes = conn.execute("select distinct round((st_xmax(cell) - st_xmin(cell)) / 10)"
                                  " from analytics.district_tile_masks order by 1").fetchall()
    assert mask_sizes == [(16,), (32,)]  # the 64 px cells' masks are gone (16: the narrower edge tiles)
    assert int((claims > 1).sum()) == 0
    np.testing.assert_array_equal(zones, _zones(later))
    assert sizes == [(YEAR, 32, 32, 32), (YEAR + 1, 32, 32, 32)]  # the first year was tiled again
    for year, case in ((YEAR, first), (YEAR + 1, later)):
        assert zonal_stats.compare(stats[year], zonal_stats.numpy_stats(case)) == [], year
        assert sum(s["district_pixel_count"] for s in stats[year].values()) == width * height, year


def test_years_on_grids_with_different_origins_each_count_every_pixel_once(bench_dsn, tmp_path):
    """A re-districting that moves the AOI moves the grid of the years composited after it (the grid follows
    the AOI), while the earlier years keep theirs: every year is then recomputed for the new districts, and
    the masks of both grids are built in one run. Each year's statistics must be numpy's."""
    x0, y0, width, height = 203_457.3, 471_233.9, 176, 112
    first = _case("first", x0, y0, width, height, _block_districts(x0, y0, width, height, 16, 12, seed=8),
                  seed=31)
    zonal_stats.load_case(first, bench_dsn, tmp_path)  # year YEAR
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="32")
    # new districts, and a composite 5 px further west and 3 px further north: another tile grid
    districts = _block_districts(x0, y0, width, height, 16, 7, seed=9)
    later = _case("later", x0 - 5 * PIXEL, y0 + 3 * PIXEL, width + 9, height + 7, districts, seed=32)
    composite = Composite(ndvi=later.ndvi, count=later.count, days=[], offsets={},
                          geobox=GeoBox(later.ndvi.shape, later.transform, CRS))
    with psycopg.connect(bench_dsn) as conn:
        stage_districts(conn, zonal_stats.AREA, districts)
        load_composite(conn, zonal_stats.AREA, YEAR + 1, write_composite_cog(composite, tmp_path / "later.tif"))
    zonal_stats.build_model(bench_dsn, tmp_path / "target", tile_size="32")

    earlier = zonal_stats.Case("first", first.ndvi, first.count, first.transform, CRS, districts)
    with psycopg.connect(bench_dsn) as conn:
        stats = {year: zonal_stats.table_stats(conn, year) for year in (YEAR, YEAR + 1)}
        origins = conn.execute("select distinct st_upperleftx(rast) from raw.ndvi_composites order by 1").fetchall()
    assert len(origins) == 2
    for year, case in ((YEAR, earlier), (YEAR + 1, later)):
        assert zonal_stats.compare(stats[year], zonal_stats.numpy_stats(case)) == [], year


def test_tiles_and_masks_are_analyzed_without_sampling_rasters_or_masks(bench_dsn, tmp_path):
    """Both models ANALYZE what they wrote (the statistics models plan on it right away), but leave out what no
    query filters on and ANALYZE would have to detoast: the masks' arrays (0.5 s of 0.6 s at 14,000
    districts) and the tiles' index expressions over the raster (0.4 s against 0.01 s for the columns)."""
    _build_constant_case(bench_dsn, tmp_path)
    with psycopg.connect(bench_dsn) as conn:
        analyzed = {(table, column) for table, column in conn.execute(
            "select tablename, attname from pg_stats where schemaname = 'analytics'"
            " and tablename in ('stg_ndvi_tiles', 'district_tile_masks',"
            " 'stg_ndvi_tiles_cell_idx', 'stg_ndvi_tiles_hull_gix')")}
    assert {("stg_ndvi_tiles", "area_code"), ("stg_ndvi_tiles", "year"), ("district_tile_masks", "district_code"),
            ("district_tile_masks", "cell")} <= analyzed
    assert not {(table, column) for table, column in analyzed
                if column == "pixel_mask" or table.startswith("stg_ndvi_tiles_")}, analyzed
