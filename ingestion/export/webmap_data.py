"""The data a web map page embeds: districts in EPSG:4326 with latest, per-year and change statistics.

Values are rounded like the GeoJSON exports (NDVI statistics to ``decimals``, ``valid_fraction`` to 4), so the
map shows exactly what the GeoJSON layers hold.
"""

from __future__ import annotations

import bisect
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from matplotlib import colormaps
from matplotlib.colors import to_hex

NDVI_FIELDS = ("min_ndvi", "max_ndvi", "mean_ndvi", "stddev_ndvi")

#: Upper bounds of the change classes (NDVI units); a value above the last bound is in one more class.
#: Fixed, not data-driven, so that "no change" always looks the same from map to map.
CHANGE_BINS = (-0.1, -0.05, -0.02, 0.02, 0.05, 0.1)
CHANGE_COLORMAP = "BrBG"
#: Coordinates are rounded to 1e-6 degrees (about 0.1 m), far below the 10 m pixel size.
COORDINATE_DECIMALS = 6


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA or NaT (what a NULL becomes in a data frame).

    Checked by identity and ``value != value`` (true only for NaN): ``pd.isna`` on a scalar took 0.4 s of the
    half a million values of a 14,000-district map."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return bool(pd.isna(value))


def _number(value: Any, decimals: int | None) -> float | int | None:
    """A JSON-safe number (None for NULL or NaN), rounded to ``decimals`` when given."""
    if _missing(value):
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, decimals) if decimals is not None else value


def rounded_stats(row: Mapping[str, Any], decimals: int) -> dict[str, float | int | None]:
    """The statistics of one row, rounded as in the GeoJSON exports."""
    out: dict[str, float | int | None] = {}
    count = row.get("pixel_count")
    out["pixel_count"] = None if _missing(count) else int(count)
    out["valid_fraction"] = _number(row.get("valid_fraction"), 4)
    for field in NDVI_FIELDS:
        out[field] = _number(row.get(field), decimals)
    return out


def class_index(value: Any, bins: Sequence[float], classes: int) -> int | None:
    """The class of ``value``: the first whose upper bound is >= value, values above the last bound in the last
    class (``classes - 1``); None for NULL. Computed on full-precision values, so a district whose mean equals a
    break (FisherJenks breaks are data values) stays in its class, whatever the rounding of the shown numbers.
    """
    number = _number(value, None)
    if number is None:
        return None
    return min(bisect.bisect_left(list(bins), number), classes - 1)


#: shapely's type ids of the district shapes.
POLYGON, MULTIPOLYGON = shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON


def geojson_geometries(geometries: Sequence[shapely.Geometry]) -> list[dict]:
    """GeoJSON geometries of (multi)polygons, coordinates rounded to :data:`COORDINATE_DECIMALS`.

    Parts, rings and coordinates are taken apart for all geometries at once (shapely and numpy, one list per
    ring): a Python call per coordinate, or per ring accessor, took 0.8 s of a 14,000-district map. Any other
    geometry type (districts are (multi)polygons) goes through GEOS's GeoJSON writer.
    """
    geometries = np.asarray(geometries, dtype=object)
    types = shapely.get_type_id(geometries)
    polygonal = np.isin(types, (POLYGON, MULTIPOLYGON))
    parts, part_of = shapely.get_parts(geometries[polygonal], return_index=True)
    rings, ring_of = shapely.get_rings(parts, return_index=True)  # each part's exterior, then its holes
    coords, coord_of = shapely.get_coordinates(rings, return_index=True)
    coords = np.round(coords, COORDINATE_DECIMALS)
    ring_lists = [c.tolist() for c in np.split(coords, np.cumsum(np.bincount(coord_of, minlength=len(rings)))[:-1])]
    part_rings: list[list] = [[] for _ in parts]
    for ring, part in zip(ring_lists, ring_of.tolist(), strict=True):
        part_rings[part].append(ring)
    geometry_parts: list[list] = [[] for _ in range(int(polygonal.sum()))]
    for rings_of_part, geometry in zip(part_rings, part_of.tolist(), strict=True):
        geometry_parts[geometry].append(rings_of_part)
    out, polygonal_parts = [], iter(geometry_parts)
    for geometry, type_id in zip(geometries, types.tolist(), strict=True):
        if type_id not in (POLYGON, MULTIPOLYGON):
            out.append(json.loads(shapely.to_geojson(
                shapely.transform(geometry, lambda xy: np.round(xy, COORDINATE_DECIMALS)))))
        elif type_id == POLYGON:
            out.append({"type": "Polygon", "coordinates": next(polygonal_parts)[0]})
        else:
            out.append({"type": "MultiPolygon", "coordinates": next(polygonal_parts)})
    return out


def change_scale() -> dict:
    """Classes of the change layer: upper bounds and one colour per class (len(bins) + 1)."""
    cmap = colormaps[CHANGE_COLORMAP]
    n = len(CHANGE_BINS) + 1
    return {"bins": list(CHANGE_BINS), "colors": [to_hex(cmap(0.1 + 0.8 * i / (n - 1))) for i in range(n)]}


def indicator_decimals(indicator: str, decimals: int) -> int:
    """Rounding of an indicator as in the GeoJSON exports: NDVI statistics and their changes to ``decimals``,
    shares, their changes and trend slopes to 4 (ingestion.export.geojson)."""
    return 4 if indicator.startswith("green_share_") or indicator.endswith("_trend") else decimals


def indicator_label(indicator: str, labels: Mapping[str, str] | None = None) -> str:
    """A legend title for an indicator field name (``green_share_dense_vegetation_change_baseline`` ...)."""
    labels = labels or {}
    base, suffix = indicator, ""
    for end, text in (("_change_baseline", " – change against the baseline year"), ("_trend", " – trend per year")):
        if indicator.endswith(end):
            base, suffix = indicator[: -len(end)], text
    if base == "mean_ndvi":
        name = "Mean NDVI"
    elif base == "median_ndvi":
        name = "Median NDVI"
    elif base.startswith("green_share_"):
        cls = base.removeprefix("green_share_")
        name = f"Green share ({labels.get(cls, cls.replace('_', ' '))})"
    else:
        name = base
    return name + suffix


def _short_label(field: str, labels: Mapping[str, str] | None) -> str:
    """A popup column header: ``Median``, the green-share class label, or ``Mean vs baseline``."""
    if field == "median_ndvi":
        return "Median"
    if field == "mean_ndvi_change_baseline":
        return "Mean vs baseline"
    cls = field.removeprefix("green_share_")
    return (labels or {}).get(cls, cls.replace("_", " "))


def indicator_kind(indicator: str) -> str:
    """``ndvi``, ``share``, ``change`` or ``trend``: how the page formats an indicator's values."""
    if indicator.endswith("_change_baseline"):
        return "change"
    if indicator.endswith("_trend"):
        return "trend"
    return "share" if indicator.startswith("green_share_") else "ndvi"


def _indicator_views(latest: gpd.GeoDataFrame, indicators: Mapping[str, Mapping[str, Any]], decimals: int,
                     labels: Mapping[str, str] | None) -> tuple[list[dict], dict[str, dict[str, Any]]]:
    """The indicator selector's entries (id, label, kind, scale) and, per district code, its values and classes."""
    entries, per_district = [], defaultdict(lambda: {"values": {}, "classes": {}})
    for name, scale in indicators.items():
        if name not in latest:
            continue
        entries.append({"id": name, "label": indicator_label(name, labels), "kind": indicator_kind(name),
                        "decimals": indicator_decimals(name, decimals),
                        "scale": {key: scale[key] for key in ("scheme", "k", "bins", "min", "max", "colors")}})
        for code, value in zip(latest["district_code"], latest[name], strict=True):
            entry = per_district[str(code)]
            entry["values"][name] = _number(value, indicator_decimals(name, decimals))
            entry["classes"][name] = class_index(value, scale["bins"], len(scale["colors"]))
    return entries, per_district


def map_payload(latest: gpd.GeoDataFrame, yearly: Iterable[Mapping[str, Any]],
                change: Iterable[Mapping[str, Any]], breaks: Mapping[str, Any], *, title: str,
                decimals: int = 2, basemap_url: str | None = None,
                indicators: Mapping[str, Mapping[str, Any]] | None = None,
                labels: Mapping[str, str] | None = None) -> dict:
    """Everything the page needs, as plain JSON-ready data.

    ``latest`` is the latest layer (``stats.latest_stats``: one row per current district, any CRS);
    ``yearly`` and ``change`` are rows of ``analytics.ndvi_stats_yearly`` and ``analytics.ndvi_change``.
    Rows of districts that are not in ``latest`` are ignored. Views: latest, each year, and the change of each
    year that has a previous year with valid pixels. ``indicators`` (``breaks.json``'s ``indicators``: field
    name -> breaks) feed the indicator selector: each district's latest value of each indicator, rounded as in
    the GeoJSON, and its class. ``labels``: green-share class name -> legend label. The yearly rows may carry
    ``median_ndvi``, ``green_share_<class>`` and ``mean_ndvi_change_baseline`` for the popup's series.
    """
    selector, selector_values = _indicator_views(latest, indicators or {}, decimals, labels)
    series_fields = sorted({key for row in yearly for key in row
                            if key in ("median_ndvi", "mean_ndvi_change_baseline") or
                            (key.startswith("green_share_") and not key.endswith("_change_baseline"))},
                           key=lambda k: (k != "median_ndvi", k.startswith("mean"), k))
    ndvi_bins, ndvi_classes = breaks["bins"], len(breaks["colors"])
    changes = change_scale()
    per_year: dict[str, dict[str, dict]] = defaultdict(dict)
    classes: dict[str, dict[str, int | None]] = defaultdict(dict)
    years: set[int] = set()
    for row in yearly:
        code, year = row["district_code"], int(row["year"])
        per_year[code][str(year)] = rounded_stats(row, decimals)
        for field in series_fields:
            per_year[code][str(year)][field] = _number(row.get(field), indicator_decimals(field, decimals))
        classes[code][f"year-{year}"] = class_index(row.get("mean_ndvi"), ndvi_bins, ndvi_classes)
        years.add(year)
    per_change: dict[str, dict[str, dict]] = defaultdict(dict)
    change_years: set[int] = set()
    for row in change:
        if row.get("previous_year") is None or _number(row.get("mean_ndvi_change"), None) is None:
            continue
        code, year = row["district_code"], int(row["year"])
        per_change[code][str(year)] = {"previous_year": int(row["previous_year"]),
                                       "mean_ndvi_change": _number(row["mean_ndvi_change"], decimals)}
        classes[code][f"change-{year}"] = class_index(row["mean_ndvi_change"], changes["bins"],
                                                      len(changes["colors"]))
        change_years.add(year)

    features = []
    wgs84 = latest.to_crs("EPSG:4326")
    # plain dicts, not iterrows: a Series per row took 0.9 s of 14,000 districts
    for row, geometry in zip(wgs84.drop(columns=wgs84.geometry.name).to_dict("records"),
                             geojson_geometries(wgs84.geometry.values),
                             strict=True):
        code = str(row["district_code"])
        name = row.get("district_name")
        source_year = row.get("source_year")
        features.append({"type": "Feature", "geometry": geometry, "properties": {
            "district_code": code,
            "district_name": None if _missing(name) else str(name),
            "source_year": None if _missing(source_year) else int(source_year),
            "latest": rounded_stats(row, decimals),
            "years": per_year.get(code, {}),
            "change": per_change.get(code, {}),
            # class index per view id (latest, year-YYYY, change-YYYY); missing or None = no value
            "classes": {"latest": class_index(row.get("mean_ndvi"), ndvi_bins, ndvi_classes), **classes[code]},
            # the indicator selector: latest value and class per indicator field
            "indicators": selector_values[code]["values"] if code in selector_values else {},
            "indicator_classes": selector_values[code]["classes"] if code in selector_values else {},
        }})

    views = [{"id": "latest", "kind": "latest", "label": "Latest mean NDVI"}]
    views += [{"id": f"year-{y}", "kind": "year", "year": str(y), "label": f"Mean NDVI {y}"} for y in sorted(years)]
    views += [{"id": f"change-{y}", "kind": "change", "year": str(y), "label": f"Change in mean NDVI to {y}"}
              for y in sorted(change_years)]
    return {
        "title": title,
        "decimals": decimals,
        "years": [str(y) for y in sorted(years)],
        "views": views,
        "ndvi_scale": {key: breaks[key] for key in ("scheme", "k", "bins", "min", "max", "colors")},
        "indicators": selector,
        "series_fields": [{"id": f, "label": indicator_label(f, labels), "short": _short_label(f, labels),
                           "kind": indicator_kind(f), "decimals": indicator_decimals(f, decimals)}
                          for f in series_fields],
        "change_scale": changes,
        "basemap_url": basemap_url,
        "districts": {"type": "FeatureCollection", "features": features},
    }
