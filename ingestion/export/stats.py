"""Read district statistics from the analytics schema, joined to district geometries."""

from __future__ import annotations

import geopandas as gpd
import psycopg
import shapely

from ingestion.config import validate_year


def _frame(conn: psycopg.Connection, query: str, params: tuple) -> gpd.GeoDataFrame:
    srid = conn.execute("select find_srid('raw', 'districts', 'geometry')").fetchone()[0]
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    rows = cur.fetchall()
    data = {n: [r[i] for r in rows] for i, n in enumerate(names) if n != "wkb"}
    geoms = shapely.from_wkb([bytes(r[names.index("wkb")]) for r in rows]) if rows else []
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=f"EPSG:{srid}")


def yearly_stats(conn: psycopg.Connection, year: int) -> gpd.GeoDataFrame:
    """Every district with its statistics for ``year`` (NULL stats where none), in the working CRS."""
    return _frame(conn, """
        select d.district_code, d.district_name, s.year, s.pixel_count, s.valid_fraction,
               s.min_ndvi, s.max_ndvi, s.mean_ndvi, s.stddev_ndvi, st_asbinary(d.geometry) as wkb
        from raw.districts d
        left join analytics.ndvi_stats_yearly s on s.district_code = d.district_code and s.year = %s
        order by d.district_code""", (validate_year(year),))


def latest_stats(conn: psycopg.Connection) -> gpd.GeoDataFrame:
    """Every district with its latest statistics and ``source_year`` (NULL where never valid)."""
    return _frame(conn, """
        select d.district_code, d.district_name, l.source_year, l.pixel_count, l.valid_fraction,
               l.min_ndvi, l.max_ndvi, l.mean_ndvi, l.stddev_ndvi, l.updated_at,
               st_asbinary(d.geometry) as wkb
        from raw.districts d
        left join analytics.ndvi_stats_latest l on l.district_code = d.district_code
        order by d.district_code""", ())


def yearly_history(conn: psycopg.Connection) -> list[dict]:
    """Every year's statistics of every current district (no geometry), ordered by district and year."""
    cur = conn.execute("""
        select s.district_code, s.year, s.pixel_count, s.valid_fraction,
               s.min_ndvi, s.max_ndvi, s.mean_ndvi, s.stddev_ndvi
        from analytics.ndvi_stats_yearly s
        join raw.districts d on d.district_code = s.district_code
        order by s.district_code, s.year""")
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def change_history(conn: psycopg.Connection) -> list[dict]:
    """``analytics.ndvi_change`` for every current district: mean NDVI change from the previous valid year."""
    cur = conn.execute("""
        select c.district_code, c.year, c.previous_year, c.mean_ndvi_change
        from analytics.ndvi_change c
        join raw.districts d on d.district_code = c.district_code
        order by c.district_code, c.year""")
    names = [d.name for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
