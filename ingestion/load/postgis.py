"""Write districts and yearly composites into PostGIS, each replacement in one transaction.

Tables (created when missing, schema ``raw``):
- ``raw.districts(district_code text primary key, district_name text, geometry geometry(MultiPolygon, srid))``
- ``raw.ndvi_composites(year int, rid int, rast raster, primary key (year, rid))``: band 1 median NDVI,
  band 2 clear-observation count, both float32 with nodata -9999, SRID of the working CRS.
"""

from __future__ import annotations

import logging
from pathlib import Path

import geopandas as gpd
import psycopg
import rasterio
import rasterio.windows
import shapely
from psycopg import sql

from ingestion.config import validate_year
from ingestion.load.raster_wkb import raster_wkb

log = logging.getLogger(__name__)

SCHEMA = "raw"
DEFAULT_LOAD_TILE = 1024  # pixels; dbt re-tiles to 256 in stg_ndvi_tiles
_SETUP_LOCK = 7_214_001  # advisory lock key: DDL of the raw schema, so concurrent runs do not race


def _srid_of(crs: object, what: str) -> int:
    epsg = rasterio.crs.CRS.from_user_input(crs).to_epsg()
    if epsg is None:
        raise ValueError(f"{what}: CRS {crs} has no EPSG code; reproject to an EPSG CRS (imagery.working_crs)")
    return epsg


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create schema ``raw`` and ``raw.ndvi_composites`` if missing (serialised by an advisory lock)."""
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        conn.execute("create schema if not exists raw")
        conn.execute("""
            create table if not exists raw.ndvi_composites (
                year integer not null,
                rid integer not null,
                rast raster not null,
                loaded_at timestamptz not null default now(),
                primary key (year, rid)
            )""")


def load_districts(conn: psycopg.Connection, districts: gpd.GeoDataFrame) -> int:
    """Replace ``raw.districts`` with ``districts`` in one transaction; returns the row count."""
    srid = _srid_of(districts.crs, "districts")
    ensure_raw_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        current = conn.execute("select find_srid('raw', 'districts', 'geometry')"
                               " where to_regclass('raw.districts') is not null").fetchone()
        if current and current[0] != srid:
            log.info("raw.districts had SRID %s, recreating with %s", current[0], srid)
            conn.execute("drop table raw.districts cascade")
        conn.execute(sql.SQL("""
            create table if not exists raw.districts (
                district_code text primary key,
                district_name text,
                geometry geometry(MultiPolygon, {srid}) not null
            )""").format(srid=sql.Literal(srid)))
        conn.execute("delete from raw.districts")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw.districts (district_code, district_name, geometry)"
                " values (%s, %s, st_multi(st_geomfromwkb(%s, %s)))",
                [(code, name, shapely.to_wkb(geom), srid) for code, name, geom in
                 zip(districts["district_code"], districts["district_name"], districts.geometry, strict=True)])
        count = conn.execute("select count(*) from raw.districts").fetchone()[0]
    log.info("raw.districts: %d rows (SRID %d)", count, srid)
    return count


def load_composite(conn: psycopg.Connection, year: int, cog_path: Path, tile: int = DEFAULT_LOAD_TILE) -> int:
    """Replace ``year`` in ``raw.ndvi_composites`` with the COG's tiles, in one transaction.

    A failure (bad file, killed process, lost connection) rolls back: the previous rows of that year and
    all other years stay. Returns the number of tiles written.
    """
    year = validate_year(year)
    ensure_raw_schema(conn)
    with rasterio.open(cog_path) as src:
        srid = _srid_of(src.crs, str(cog_path))
        nodata = src.nodata
        xres, yres = src.res
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s, %s)", (_SETUP_LOCK, year))
            conn.execute("delete from raw.ndvi_composites where year = %s", (year,))
            rid = 0
            with conn.cursor().copy("copy raw.ndvi_composites (year, rid, rast) from stdin") as copy:
                for row in range(0, src.height, tile):
                    for col in range(0, src.width, tile):
                        window = rasterio.windows.Window(col, row, min(tile, src.width - col),
                                                         min(tile, src.height - row))
                        data = src.read(window=window)
                        ulx, uly = src.transform * (col, row)
                        wkb = raster_wkb(list(data), nodata, (ulx, uly, xres, yres), srid)
                        rid += 1
                        copy.write_row((year, rid, wkb.hex()))
            log.info("raw.ndvi_composites: year %d replaced with %d tiles from %s", year, rid, cog_path)
    return rid
