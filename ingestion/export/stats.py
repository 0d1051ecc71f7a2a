"""Read one area's district statistics from the analytics schema, joined to the published districts."""

from __future__ import annotations

import geopandas as gpd
import psycopg
import shapely

from ingestion.config import validate_year


def _frame(conn: psycopg.Connection, query: str, params: tuple) -> gpd.GeoDataFrame:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    rows = cur.fetchall()
    data = {n: [r[i] for r in rows] for i, n in enumerate(names) if n not in ("wkb", "srid")}
    geoms = shapely.from_wkb([bytes(r[names.index("wkb")]) for r in rows]) if rows else []
    srid = rows[0][names.index("srid")] if rows else 4326
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=f"EPSG:{srid}")


YEARLY_COLUMNS = ("pixel_count", "valid_fraction", "min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi")


def district_shapes(conn: psycopg.Connection, area_code: str) -> gpd.GeoDataFrame:
    """The area's published districts (code, name, geometry in the working CRS), by district code."""
    return _frame(conn, """
        select d.district_code, d.district_name, st_asbinary(d.geometry) as wkb, st_srid(d.geometry) as srid
        from raw.districts d
        where d.area_code = %s
        order by d.district_code""", (area_code,))


def yearly_frame(districts: gpd.GeoDataFrame, history: list[dict], year: int) -> gpd.GeoDataFrame:
    """Every district of ``districts`` (:func:`district_shapes`) with its statistics for ``year`` from
    ``history`` (:func:`yearly_history` rows), NULL (None) where it has none; working CRS.

    Built in Python so that the latest export can write every year's file from one read of the districts
    and the statistics, with no transaction open (see ``pipeline.read_latest_inputs``).
    """
    year = validate_year(year)
    by_code = {row["district_code"]: row for row in history if row["year"] == year}
    rows = [by_code.get(code, {}) for code in districts["district_code"]]
    data = {"district_code": list(districts["district_code"]), "district_name": list(districts["district_name"]),
            "year": [row.get("year") for row in rows]}
    data.update({column: [row.get(column) for row in rows] for column in YEARLY_COLUMNS})
    return gpd.GeoDataFrame(data, geometry=list(districts.geometry), crs=districts.crs)


def yearly_stats(conn: psycopg.Connection, area_code: str, year: int) -> gpd.GeoDataFrame:
    """Every district of the area with its statistics for ``year`` (NULL stats where none), working CRS."""
    year = validate_year(year)
    return yearly_frame(district_shapes(conn, area_code), yearly_history(conn, area_code, year), year)


def latest_stats(conn: psycopg.Connection, area_code: str) -> gpd.GeoDataFrame:
    """Every district of the area with its latest statistics and ``source_year`` (NULL where never valid)."""
    return _frame(conn, """
        select d.district_code, d.district_name, l.source_year, l.pixel_count, l.valid_fraction,
               l.min_ndvi, l.max_ndvi, l.mean_ndvi, l.stddev_ndvi, l.updated_at,
               st_asbinary(d.geometry) as wkb, st_srid(d.geometry) as srid
        from raw.districts d
        left join analytics.ndvi_stats_latest l on l.area_code = d.area_code and l.district_code = d.district_code
        where d.area_code = %s
        order by d.district_code""", (area_code,))


def stats_years(conn: psycopg.Connection, area_code: str) -> list[int]:
    """The years of the area in ``analytics.ndvi_stats_yearly``."""
    return [r[0] for r in conn.execute("select distinct year from analytics.ndvi_stats_yearly where area_code = %s"
                                       " order by 1", (area_code,))]


def _records(conn: psycopg.Connection, query: str, params: tuple) -> list[dict]:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def yearly_history(conn: psycopg.Connection, area_code: str, year: int | None = None) -> list[dict]:
    """Every year's (or only ``year``'s) statistics of every current district of the area (no geometry), by
    district and year."""
    return _records(conn, """
        select s.district_code, s.year, s.pixel_count, s.valid_fraction,
               s.min_ndvi, s.max_ndvi, s.mean_ndvi, s.stddev_ndvi
        from analytics.ndvi_stats_yearly s
        join raw.districts d on d.area_code = s.area_code and d.district_code = s.district_code
        where s.area_code = %s and (%s::integer is null or s.year = %s::integer)
        order by s.district_code, s.year""", (area_code, year, year))


def change_history(conn: psycopg.Connection, area_code: str) -> list[dict]:
    """``analytics.ndvi_change`` for every current district of the area: mean NDVI change from the previous
    valid year."""
    return _records(conn, """
        select c.district_code, c.year, c.previous_year, c.mean_ndvi_change
        from analytics.ndvi_change c
        join raw.districts d on d.area_code = c.area_code and d.district_code = c.district_code
        where c.area_code = %s
        order by c.district_code, c.year""", (area_code,))
