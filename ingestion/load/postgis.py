"""Write districts and yearly composites into PostGIS, each replacement in one transaction.

Tables (created when missing, schema ``raw``):
- ``raw.districts_staged``: the districts of the area file, validated, waiting to be published;
- ``raw.districts(district_code text primary key, district_name text, geometry geometry(MultiPolygon, srid),
  districts_version text)``: the published districts every statistic is computed for;
- ``raw.ndvi_composites(year int, rid int, rast raster, primary key (year, rid))``: band 1 median NDVI,
  band 2 clear-observation count, both float32 with nodata -9999, SRID of the working CRS.

New districts are published only together with a year's composite, in the same transaction: a run whose
imagery then fails (no scenes, a bad file) leaves the published districts, and every statistic, as they were.
``districts_version`` (a hash of codes, names and geometries) tells dbt which years were computed for other
districts, so that it recomputes them.
"""

from __future__ import annotations

import hashlib
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


def districts_version(districts: gpd.GeoDataFrame) -> str:
    """A short hash of the districts' codes, names, geometries and CRS: equal content, equal version."""
    digest = hashlib.sha256(str(_srid_of(districts.crs, "districts")).encode())
    for code, name, geom in sorted(zip(districts["district_code"], districts["district_name"].fillna(""),
                                       shapely.to_wkb(districts.geometry.values, output_dimension=2),
                                       strict=True)):
        digest.update(f"{code}\x1f{name}\x1f".encode())
        digest.update(geom)
    return digest.hexdigest()[:16]


def _create_districts_table(conn: psycopg.Connection, table: str, srid: int) -> None:
    """(Re)create ``raw.<table>`` for ``srid``; a table of another SRID is dropped first."""
    current = conn.execute(
        "select find_srid('raw', %s, 'geometry'), exists (select from information_schema.columns where"
        " table_schema = 'raw' and table_name = %s and column_name = 'districts_version')"
        " where to_regclass(%s) is not null", (table, table, f"raw.{table}")).fetchone()
    if current and (current[0] != srid or not current[1]):
        log.info("raw.%s had SRID %s (or an older layout), recreating it with SRID %s", table, current[0], srid)
        conn.execute(sql.SQL("drop table raw.{} cascade").format(sql.Identifier(table)))
    conn.execute(sql.SQL("""
        create table if not exists raw.{table} (
            district_code text primary key,
            district_name text,
            geometry geometry(MultiPolygon, {srid}) not null,
            districts_version text not null
        )""").format(table=sql.Identifier(table), srid=sql.Literal(srid)))


def stage_districts(conn: psycopg.Connection, districts: gpd.GeoDataFrame) -> tuple[int, str]:
    """Replace ``raw.districts_staged`` with ``districts`` in one transaction; returns (rows, version).

    Nothing reads the staged table but :func:`publish_districts`, which the next successful year load calls.
    """
    srid = _srid_of(districts.crs, "districts")
    version = districts_version(districts)
    ensure_raw_schema(conn)
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
        _create_districts_table(conn, "districts_staged", srid)
        conn.execute("delete from raw.districts_staged")
        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw.districts_staged (district_code, district_name, geometry, districts_version)"
                " values (%s, %s, st_multi(st_geomfromwkb(%s, %s)), %s)",
                [(code, name, shapely.to_wkb(geom), srid, version) for code, name, geom in
                 zip(districts["district_code"], districts["district_name"], districts.geometry, strict=True)])
    log.info("raw.districts_staged: %d districts (version %s, SRID %d)", len(districts), version, srid)
    return len(districts), version


def published_districts_version(conn: psycopg.Connection) -> str | None:
    """The version of ``raw.districts`` (None before the first publication)."""
    if conn.execute("select to_regclass('raw.districts')").fetchone()[0] is None:
        return None
    row = conn.execute("select min(districts_version) from raw.districts").fetchone()
    return row[0] if row else None


def publish_districts(conn: psycopg.Connection) -> bool:
    """Make the staged districts the published ones when they differ. Call inside a transaction.

    Returns True when ``raw.districts`` changed (every year's statistics are then stale, and dbt recomputes
    them at its next run).
    """
    if conn.execute("select to_regclass('raw.districts_staged')").fetchone()[0] is None:
        raise DistrictsNotStagedError("no districts staged: materialise the `districts` asset first")
    staged = conn.execute("select min(districts_version), find_srid('raw', 'districts_staged', 'geometry')"
                          " from raw.districts_staged").fetchone()
    if staged[0] is None:
        raise DistrictsNotStagedError("raw.districts_staged is empty: materialise the `districts` asset first")
    if published_districts_version(conn) == staged[0]:
        return False
    _create_districts_table(conn, "districts", staged[1])
    conn.execute("delete from raw.districts")
    conn.execute("insert into raw.districts select district_code, district_name, geometry, districts_version"
                 " from raw.districts_staged")
    log.info("raw.districts: published district version %s", staged[0])
    return True


class DistrictsNotStagedError(RuntimeError):
    """A year is loaded before any districts were staged."""


def load_composite(conn: psycopg.Connection, year: int, cog_path: Path, tile: int = DEFAULT_LOAD_TILE,
                   publish: bool = True) -> int:
    """Replace ``year`` in ``raw.ndvi_composites`` with the COG's tiles, in one transaction.

    With ``publish``, the staged districts are published in the same transaction (see the module doc).
    A failure (bad file, killed process, lost connection) rolls back: the previous rows of that year and
    all other years stay, and so do the published districts. Returns the number of tiles written.
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
            if publish:  # last, so the lock that serialises district changes is held only briefly
                conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
                publish_districts(conn)
            log.info("raw.ndvi_composites: year %d replaced with %d tiles from %s", year, rid, cog_path)
    return rid
