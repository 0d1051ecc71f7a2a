"""Write districts and yearly composites into PostGIS, each replacement in one transaction.

Tables (created when missing, schema ``raw``), every one keyed by ``area_code``:
- ``raw.districts_staged``: each area's districts as read from its file, validated, waiting to be published;
- ``raw.districts(area_code, district_code, district_name, geometry, districts_version)``: the published
  districts every statistic is computed for; geometry MultiPolygon in the area's working CRS (its SRID);
- ``raw.ndvi_composites(area_code, year, rid, rast, loaded_at)``: band 1 median NDVI, band 2 clear-observation
  count, both float32 with nodata -9999, SRID of the area's working CRS.

An area's new districts are published only together with one of its years' composites, in the same
transaction: a run whose imagery then fails (no scenes, a bad file) leaves the published districts, and every
statistic, as they were. ``districts_version`` (a hash of the area's codes, names and geometries) tells dbt
which years were computed for other districts, so that it recomputes them; ``loaded_at`` tells it which
composites are new since its last run.
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

from ingestion.load.inputs import ensure_inputs_table, record_loaded_inputs
from ingestion.load.layout import LAYOUT_VERSION, upgrade_layout
from ingestion.load.raster_wkb import raster_wkb
from ingestion.load.settings import ensure_settings_tables
from ingestion.years import validate_year

log = logging.getLogger(__name__)

DEFAULT_LOAD_TILE = 1024  # pixels; dbt re-tiles in stg_ndvi_tiles at a size that divides it (macro zonal_tile_sizes)
_SETUP_LOCK = 7_214_001  # advisory lock key: DDL of the raw schema and district changes, so runs do not race


class DistrictsNotStagedError(RuntimeError):
    """A year is loaded before the area's districts were staged."""


def _srid_of(crs: object, what: str) -> int:
    epsg = rasterio.crs.CRS.from_user_input(crs).to_epsg()
    if epsg is None:
        raise ValueError(f"{what}: CRS {crs} has no EPSG code; reproject to an EPSG CRS (imagery.working_crs)")
    return epsg


def _lock_setup(conn: psycopg.Connection) -> None:
    """Serialise schema changes and district publication until the end of the transaction."""
    conn.execute("select pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))


#: Every table :func:`ensure_raw_schema` makes (``tests/test_layout.py`` checks the list against what it makes).
RAW_TABLES = ("raw.ndvi_composites", "raw.districts", "raw.districts_staged", "raw.green_share_thresholds",
              "raw.change_baselines", "raw.ndvi_composite_inputs", "raw.layout_version")


def raw_schema_ready(conn: psycopg.Connection) -> bool:
    """Whether every table of :data:`RAW_TABLES` exists and the layout is current: two queries, no lock."""
    if not conn.execute("select bool_and(to_regclass(t) is not null) from unnest(%s::text[]) as t",
                        (list(RAW_TABLES),)).fetchone()[0]:
        return False
    # the table exists (raw.layout_version is in RAW_TABLES)
    return (conn.execute("select max(version) from raw.layout_version").fetchone()[0] or 0) >= LAYOUT_VERSION


def ensure_raw_schema(conn: psycopg.Connection) -> None:
    """Create schema ``raw`` and its tables if missing (serialised by an advisory lock), and upgrade an old
    layout. A database that has them all (:func:`raw_schema_ready`) costs two queries: a batch loads and stages
    each area-year and area through here, and the DDL's dozen statements (all no-ops then) took a fifth of a
    small area-year's load."""
    if raw_schema_ready(conn):
        return
    with conn.transaction():
        _lock_setup(conn)
        conn.execute("create schema if not exists raw")
        upgrade_layout(conn)  # once per database (layout 1 had no area_code)
        conn.execute("""
            create table if not exists raw.ndvi_composites (
                area_code text not null,
                year integer not null,
                rid integer not null,
                rast raster not null,
                loaded_at timestamptz not null default clock_timestamp(),
                primary key (area_code, year, rid)
            )""")
        for table in ("districts", "districts_staged"):
            conn.execute(f"""
                create table if not exists raw.{table} (
                    area_code text not null,
                    district_code text not null,
                    district_name text,
                    geometry geometry(MultiPolygon) not null,
                    districts_version text not null,
                    primary key (area_code, district_code)
                )""")
        # the statistics settings tables (dbt sources) exist from the first load on, even before any is written
        ensure_settings_tables(conn)
        ensure_inputs_table(conn)  # issue 20: the inputs version of each loaded area-year


def districts_version(districts: gpd.GeoDataFrame) -> str:
    """A short hash of the districts' codes, names, geometries and CRS: equal content, equal version."""
    digest = hashlib.sha256(str(_srid_of(districts.crs, "districts")).encode())
    for code, name, geom in sorted(zip(districts["district_code"], districts["district_name"].fillna(""),
                                       shapely.to_wkb(districts.geometry.values, output_dimension=2),
                                       strict=True)):
        digest.update(f"{code}\x1f{name}\x1f".encode())
        digest.update(geom)
    return digest.hexdigest()[:16]


def stage_districts(conn: psycopg.Connection, area_code: str, districts: gpd.GeoDataFrame) -> tuple[int, str]:
    """Replace the area's rows of ``raw.districts_staged`` in one transaction; returns (rows, version).

    Nothing reads the staged table but :func:`publish_districts`, which the area's next successful year load
    calls.
    """
    srid = _srid_of(districts.crs, "districts")
    version = districts_version(districts)
    ensure_raw_schema(conn)
    with conn.transaction():
        _lock_setup(conn)
        conn.execute("delete from raw.districts_staged where area_code = %s", (area_code,))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw.districts_staged (area_code, district_code, district_name, geometry,"
                " districts_version) values (%s, %s, %s, st_multi(st_geomfromwkb(%s, %s)), %s)",
                [(area_code, code, name, shapely.to_wkb(geom), srid, version) for code, name, geom in
                 zip(districts["district_code"], districts["district_name"], districts.geometry, strict=True)])
    log.info("raw.districts_staged: %s: %d districts (version %s, SRID %d)", area_code, len(districts), version,
             srid)
    return len(districts), version


def published_districts_version(conn: psycopg.Connection, area_code: str) -> str | None:
    """The version of the area's rows in ``raw.districts`` (None before the first publication)."""
    if conn.execute("select to_regclass('raw.districts')").fetchone()[0] is None:
        return None
    return conn.execute("select min(districts_version) from raw.districts where area_code = %s",
                        (area_code,)).fetchone()[0]


def publish_districts(conn: psycopg.Connection, area_code: str) -> bool:
    """Make the area's staged districts the published ones when they differ. Call inside a transaction.

    Returns True when ``raw.districts`` changed (every year of the area is then stale, and dbt recomputes
    them at its next run).
    """
    staged = conn.execute("select min(districts_version) from raw.districts_staged where area_code = %s",
                          (area_code,)).fetchone()[0]
    if staged is None:
        raise DistrictsNotStagedError(f"no districts staged for area {area_code!r}: materialise the `districts` "
                                      "asset of that area first")
    if published_districts_version(conn, area_code) == staged:
        return False
    conn.execute("delete from raw.districts where area_code = %s", (area_code,))
    conn.execute("insert into raw.districts select area_code, district_code, district_name, geometry,"
                 " districts_version from raw.districts_staged where area_code = %s", (area_code,))
    log.info("raw.districts: %s: published district version %s", area_code, staged)
    return True


def use_lz4_compression(conn: psycopg.Connection) -> None:
    """Compress the big values this transaction writes (raster tiles) with lz4 instead of PostgreSQL's default
    pglz, if the server has lz4 (else nothing changes). float32 NDVI does not compress: pglz spends its time
    trying, then stores the value as is. Measured on a 36 Mpx composite: its load 6.9 -> 3.9 s, same size.
    The dbt models that write rasters do the same (macro ``lz4_toast_compression``)."""
    conn.execute("select set_config('default_toast_compression', 'lz4', true) from pg_settings"
                 " where name = 'default_toast_compression' and 'lz4' = any(enumvals)")


def load_composite(conn: psycopg.Connection, area_code: str, year: int, cog_path: Path,
                   tile: int = DEFAULT_LOAD_TILE, publish: bool = True, inputs_version: str | None = None) -> int:
    """Replace the area's ``year`` in ``raw.ndvi_composites`` with the COG's tiles, in one transaction.

    With ``publish``, the area's staged districts are published in the same transaction (see the module
    doc). A failure (bad file, killed process, lost connection) rolls back: the previous rows of that year,
    all other years and areas, and the published districts stay. Returns the number of tiles written.
    ``inputs_version`` (the composite's, :mod:`ingestion.updates`) is recorded with the rows.
    """
    year = validate_year(year)
    ensure_raw_schema(conn)
    area_key = int(hashlib.sha256(area_code.encode()).hexdigest()[:7], 16)  # an int4 lock key per area
    with rasterio.open(cog_path) as src:
        srid = _srid_of(src.crs, str(cog_path))
        nodata = src.nodata
        xres, yres = src.res
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s, %s)", (area_key, year))
            use_lz4_compression(conn)
            conn.execute("delete from raw.ndvi_composites where area_code = %s and year = %s", (area_code, year))
            rid = 0
            with conn.cursor().copy("copy raw.ndvi_composites (area_code, year, rid, rast) from stdin") as copy:
                for row in range(0, src.height, tile):
                    for col in range(0, src.width, tile):
                        window = rasterio.windows.Window(col, row, min(tile, src.width - col),
                                                         min(tile, src.height - row))
                        data = src.read(window=window)
                        ulx, uly = src.transform * (col, row)
                        wkb = raster_wkb(list(data), nodata, (ulx, uly, xres, yres), srid)
                        rid += 1
                        copy.write_row((area_code, year, rid, wkb.hex()))
            record_loaded_inputs(conn, area_code, year, inputs_version)
            if publish:  # last, so the lock that serialises district changes is held only briefly
                _lock_setup(conn)
                publish_districts(conn, area_code)
            log.info("raw.ndvi_composites: %s %d replaced with %d tiles from %s", area_code, year, rid, cog_path)
    return rid
