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


def yearly_stats(conn: psycopg.Connection, area_code: str, year: int) -> gpd.GeoDataFrame:
    """Every district of the area with its statistics for ``year`` (NULL stats where none), working CRS."""
    return _frame(conn, """
        select d.district_code, d.district_name, s.year, s.pixel_count, s.valid_fraction,
               s.min_ndvi, s.max_ndvi, s.mean_ndvi, s.stddev_ndvi,
               st_asbinary(d.geometry) as wkb, st_srid(d.geometry) as srid
        from raw.districts d
        left join analytics.ndvi_stats_yearly s
            on s.area_code = d.area_code and s.district_code = d.district_code and s.year = %s
        where d.area_code = %s
        order by d.district_code""", (validate_year(year), area_code))


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


def yearly_history(conn: psycopg.Connection, area_code: str) -> list[dict]:
    """Every year's statistics of every current district of the area (no geometry), by district and year."""
    return _records(conn, """
        select s.district_code, s.year, s.pixel_count, s.valid_fraction,
               s.min_ndvi, s.max_ndvi, s.mean_ndvi, s.stddev_ndvi
        from analytics.ndvi_stats_yearly s
        join raw.districts d on d.area_code = s.area_code and d.district_code = s.district_code
        where s.area_code = %s
        order by s.district_code, s.year""", (area_code,))


def change_history(conn: psycopg.Connection, area_code: str) -> list[dict]:
    """``analytics.ndvi_change`` for every current district of the area: mean NDVI change from the previous
    valid year."""
    return _records(conn, """
        select c.district_code, c.year, c.previous_year, c.mean_ndvi_change
        from analytics.ndvi_change c
        join raw.districts d on d.area_code = c.area_code and d.district_code = c.district_code
        where c.area_code = %s
        order by c.district_code, c.year""", (area_code,))
