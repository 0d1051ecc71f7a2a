"""Read one area's district statistics from the analytics schema, joined to the published districts.

Field names of the exported layers (GeoJSON, web map): besides the statistics of ``ndvi_stats_yearly``,
``p10_ndvi``, ``p25_ndvi``, ``median_ndvi``, ``p75_ndvi``, ``p90_ndvi`` (NDVI percentiles) and one
``green_share_<class>`` per green-share class of the area (fraction 0..1 of the valid pixels with NDVI >= the
class threshold); the latest layer also has ``baseline_year``, ``<indicator>_change_baseline`` (change of the
indicator from the baseline year to ``source_year``), ``change_null_reason``, and ``<indicator>_trend``
(Theil-Sen slope per year), ``trend_years``, ``trend_first_year``, ``trend_last_year``, ``trend_null_reason``,
where ``<indicator>`` is ``mean_ndvi``, ``median_ndvi`` or ``green_share_<class>``.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import geopandas as gpd
import pandas as pd
import psycopg
import shapely

from ingestion.years import validate_year

PERCENTILE_FIELDS = ("p10_ndvi", "p25_ndvi", "median_ndvi", "p75_ndvi", "p90_ndvi")


def _frame(conn: psycopg.Connection, query: str, params: tuple) -> gpd.GeoDataFrame:
    cur = conn.execute(query, params)
    names = [d.name for d in cur.description]
    rows = cur.fetchall()
    data = {n: [r[i] for r in rows] for i, n in enumerate(names) if n not in ("wkb", "srid")}
    geoms = shapely.from_wkb([bytes(r[names.index("wkb")]) for r in rows]) if rows else []
    srid = rows[0][names.index("srid")] if rows else 4326
    return gpd.GeoDataFrame(data, geometry=list(geoms), crs=f"EPSG:{srid}")


def green_share_names(conn: psycopg.Connection, area_code: str) -> list[str]:
    """The area's green-share classes, by ascending threshold (``raw.green_share_thresholds``)."""
    if conn.execute("select to_regclass('raw.green_share_thresholds')").fetchone()[0] is None:
        return []
    return [r[0] for r in conn.execute("select threshold_name from raw.green_share_thresholds where area_code = %s"
                                       " order by ndvi_threshold", (area_code,))]


def _green_shares(row: dict[str, Any], names: list[str]) -> dict[str, float | None]:
    """``green_share_<class>`` of one distribution row (its arrays), for the area's current classes."""
    counts = dict(zip(row.get("green_threshold_names") or [], row.get("green_pixel_counts") or [], strict=True))
    pixels = row.get("distribution_pixel_count")
    return {f"green_share_{name}": (counts[name] / pixels if pixels and name in counts else None)
            for name in names}


def _with_distribution(frame: gpd.GeoDataFrame, names: list[str]) -> gpd.GeoDataFrame:
    """Replace the distribution arrays of ``frame`` by one ``green_share_<class>`` column per class."""
    shares = [_green_shares(row, names) for row in frame.to_dict("records")]
    for name in names:
        frame[f"green_share_{name}"] = pd.array([s[f"green_share_{name}"] for s in shares], dtype="Float64")
    return frame.drop(columns=["green_threshold_names", "green_pixel_counts", "distribution_pixel_count"])


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
    # the percentiles and one green_share_<class> per class of the area (as yearly_history names them)
    shares = [k for k in (history[0] if history else {}) if k.startswith("green_share_")
              and not k.endswith("_change_baseline")]
    data.update({column: [row.get(column) for row in rows] for column in (*YEARLY_COLUMNS, *PERCENTILE_FIELDS)})
    frame = gpd.GeoDataFrame(data, geometry=list(districts.geometry), crs=districts.crs)
    for column in shares:
        frame[column] = pd.array([row.get(column) for row in rows], dtype="Float64")
    return frame


def yearly_stats(conn: psycopg.Connection, area_code: str, year: int) -> gpd.GeoDataFrame:
    """Every district of the area with its statistics for ``year`` (NULL stats where none), working CRS:
    those of ``ndvi_stats_yearly``, the percentiles and a ``green_share_<class>`` per class."""
    year = validate_year(year)
    return yearly_frame(district_shapes(conn, area_code), yearly_history(conn, area_code, year), year)


def latest_stats(conn: psycopg.Connection, area_code: str) -> gpd.GeoDataFrame:
    """Every district of the area with its latest statistics and ``source_year`` (NULL where never valid), the
    percentiles and green shares of that year, its change against the baseline year and the trends."""
    frame = _with_distribution(_frame(conn, """
        select d.district_code, d.district_name, l.source_year, l.pixel_count, l.valid_fraction,
               l.min_ndvi, l.max_ndvi, l.mean_ndvi, l.stddev_ndvi, l.updated_at,
               dist.p10_ndvi, dist.p25_ndvi, dist.median_ndvi, dist.p75_ndvi, dist.p90_ndvi,
               dist.green_threshold_names, dist.green_pixel_counts, dist.pixel_count as distribution_pixel_count,
               st_asbinary(d.geometry) as wkb, st_srid(d.geometry) as srid
        from raw.districts d
        left join analytics.ndvi_stats_latest l on l.area_code = d.area_code and l.district_code = d.district_code
        left join analytics.ndvi_stats_yearly_distribution dist
            on dist.area_code = d.area_code and dist.district_code = d.district_code and dist.year = l.source_year
        where d.area_code = %s
        order by d.district_code""", (area_code,)), green_share_names(conn, area_code))
    return _with_change_and_trend(conn, area_code, frame)


def indicator_names(conn: psycopg.Connection, area_code: str) -> list[str]:
    """The indicators the change and trend models cover: mean, median and each green share of the area."""
    return ["mean_ndvi", "median_ndvi", *(f"green_share_{n}" for n in green_share_names(conn, area_code))]


def _with_change_and_trend(conn: psycopg.Connection, area_code: str, frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Add, per district, the change of each indicator from the baseline year to ``source_year`` and the
    Theil-Sen trend of each indicator (``ndvi_change_baseline``, ``ndvi_trend``)."""
    indicators = indicator_names(conn, area_code)
    change: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in _records(conn, """
            select c.district_code, c.indicator, c.baseline_year, c.change, c.change_null_reason
            from analytics.ndvi_change_baseline c
            join analytics.ndvi_stats_latest l
                on l.area_code = c.area_code and l.district_code = c.district_code and l.source_year = c.year
            where c.area_code = %s""", (area_code,)):
        entry = change[row["district_code"]]
        entry["baseline_year"] = row["baseline_year"]
        entry[f"{row['indicator']}_change_baseline"] = row["change"]
        if row["indicator"] == "mean_ndvi":
            entry["change_null_reason"] = row["change_null_reason"]
    trend: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in _records(conn, "select district_code, indicator, n_years, first_year, last_year, slope_per_year,"
                              " trend_null_reason from analytics.ndvi_trend where area_code = %s", (area_code,)):
        entry = trend[row["district_code"]]
        entry[f"{row['indicator']}_trend"] = row["slope_per_year"]
        if row["indicator"] == "mean_ndvi":
            entry.update(trend_years=row["n_years"], trend_first_year=row["first_year"],
                         trend_last_year=row["last_year"], trend_null_reason=row["trend_null_reason"])
    baseline = conn.execute("select baseline_year from raw.change_baselines where area_code = %s",
                            (area_code,)).fetchone()
    codes = list(frame["district_code"])
    columns: dict[str, tuple[list[Any], str]] = {
        "baseline_year": ([change[c].get("baseline_year", baseline[0] if baseline else None) for c in codes],
                          "Int64")}
    for name in indicators:
        columns[f"{name}_change_baseline"] = ([change[c].get(f"{name}_change_baseline") for c in codes], "Float64")
    columns["change_null_reason"] = ([change[c].get("change_null_reason", "no valid pixels in this year")
                                      if change[c].get("mean_ndvi_change_baseline") is None else None
                                      for c in codes], "string")
    for name in indicators:
        columns[f"{name}_trend"] = ([trend[c].get(f"{name}_trend") for c in codes], "Float64")
    for key, dtype in (("trend_years", "Int64"), ("trend_first_year", "Int64"), ("trend_last_year", "Int64"),
                       ("trend_null_reason", "string")):
        columns[key] = ([trend[c].get(key) for c in codes], dtype)
    for key, (values, dtype) in columns.items():
        frame[key] = pd.array(values, dtype=dtype)
    return frame


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
    district and year, with the percentiles and a ``green_share_<class>`` per class (from the distribution
    model's counts: no view needed, so the yearly job can export before any per-area model exists)."""
    names = green_share_names(conn, area_code)
    rows = _records(conn, """
        select s.district_code, s.year, s.pixel_count, s.valid_fraction,
               s.min_ndvi, s.max_ndvi, s.mean_ndvi, s.stddev_ndvi,
               dist.p10_ndvi, dist.p25_ndvi, dist.median_ndvi, dist.p75_ndvi, dist.p90_ndvi,
               dist.green_threshold_names, dist.green_pixel_counts, dist.pixel_count as distribution_pixel_count
        from analytics.ndvi_stats_yearly s
        join raw.districts d on d.area_code = s.area_code and d.district_code = s.district_code
        left join analytics.ndvi_stats_yearly_distribution dist
            on dist.area_code = s.area_code and dist.district_code = s.district_code and dist.year = s.year
        where s.area_code = %s and (%s::integer is null or s.year = %s::integer)
        order by s.district_code, s.year""", (area_code, year, year))
    for row in rows:
        row.update(_green_shares(row, names))
        for key in ("green_threshold_names", "green_pixel_counts", "distribution_pixel_count"):
            row.pop(key)
    return rows


def with_baseline_changes(conn: psycopg.Connection, area_code: str, rows: list[dict]) -> list[dict]:
    """``rows`` (:func:`yearly_history`) with ``<indicator>_change_baseline`` per indicator added
    (``analytics.ndvi_change_baseline``; a per-area view, so for the latest export only)."""
    changes = {(r["district_code"], r["year"], r["indicator"]): r["change"] for r in _records(
        conn, "select district_code, year, indicator, change from analytics.ndvi_change_baseline"
              " where area_code = %s", (area_code,))}
    indicators = indicator_names(conn, area_code)
    for row in rows:
        for name in indicators:
            row[f"{name}_change_baseline"] = changes.get((row["district_code"], row["year"], name))
    return rows


def change_history(conn: psycopg.Connection, area_code: str) -> list[dict]:
    """``analytics.ndvi_change`` for every current district of the area: mean NDVI change from the previous
    valid year."""
    return _records(conn, """
        select c.district_code, c.year, c.previous_year, c.mean_ndvi_change
        from analytics.ndvi_change c
        join raw.districts d on d.area_code = c.area_code and d.district_code = c.district_code
        where c.area_code = %s
        order by c.district_code, c.year""", (area_code,))
