"""Skip work whose inputs did not change: the composite's inputs version, its sidecar, the load's record, and
what the dbt step still has to build.

The *inputs version* of an area-year's composite is a hash of

- the scenes version (:func:`ingestion.observe.scenes_version`: the selected items, their ``updated`` time and
  the offset their metadata claims),
- the config that decides the pixels (:func:`config_version`: the whole ``imagery`` section, the AOI
  geometry and CRS, the target grid) and
- :data:`CODE_VERSION`, raised whenever a code change alters the composite's pixels.

The composite step writes it, with the composite's summary figures, to a sidecar beside the COG
(``ndvi_composite_{year}.inputs.json``) after the COG is published; a re-run whose inputs version equals the
sidecar's (and whose COG is the one the sidecar describes) returns the recorded result without reading a
pixel. The sidecar is removed before a composite is rewritten, so a run that dies in between leaves no
sidecar and the next run recomputes. The load records the version per area-year in
``raw.ndvi_composite_inputs`` in the same transaction as the rows, and skips a reload of the same version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import psycopg
import shapely
from odc.geo.geobox import GeoBox
from shapely.geometry.base import BaseGeometry

from ingestion.area_outputs import composite_path, read_aoi
from ingestion.atomic import write_text
from ingestion.config import AreaConfig
from ingestion.imagery.cog import CogStats
from ingestion.imagery.composite import CompositeSummary
from ingestion.imagery.grid import target_geobox
from ingestion.imagery.offset_check import OffsetDecision, OffsetEvidence
from ingestion.imagery.radiometry import Radiometry
from ingestion.load.inputs import loaded_inputs_version
from ingestion.load.postgis import _lock_setup, ensure_raw_schema, load_composite, publish_districts
from ingestion.sources.base import DropReason, SceneDecision, SceneSelection
from ingestion.years import validate_year

log = logging.getLogger(__name__)

#: Raise when a code change alters the composite's pixels: every area-year then recomputes once.
CODE_VERSION = "composite-1"
SIDECAR_FORMAT = 1


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, separators=(",", ":")).encode()
                          ).hexdigest()[:16]


def config_version(cfg: AreaConfig, aoi: BaseGeometry, crs: str, geobox: GeoBox) -> str:
    """Hash of what in the config decides the pixels: the ``imagery`` section (source and options, months,
    cloud limit, masked SCL classes, resolution, working CRS, bad-item policy), the AOI (WKB of the geometry
    in ``crs``) and the target grid (``geobox``: shape, affine, CRS), plus :data:`CODE_VERSION`. The
    ``compute`` section (where and in what blocks it runs) does not change the pixels and is left out."""
    aoi_hash = hashlib.sha256(shapely.to_wkb(aoi, output_dimension=2, byte_order=1)).hexdigest()
    grid = [list(geobox.shape), list(geobox.affine)[:6], str(geobox.crs)]
    return _hash(cfg.imagery.model_dump(mode="json"), aoi_hash, crs, grid, CODE_VERSION)


def inputs_version(scenes: str, config: str) -> str:
    """The composite's inputs version from a scenes version and a :func:`config_version`."""
    return _hash("inputs", scenes, config)


def sidecar_path(cog: Path) -> Path:
    """``ndvi_composite_{year}.inputs.json`` beside ``ndvi_composite_{year}.tif``."""
    return cog.with_name(f"{cog.stem}.inputs.json")


def _radiometry(r: Radiometry) -> list:
    return [r.scale, r.offset, r.rule]


def write_sidecar(cog: Path, version: str, scenes: str, summary: CompositeSummary,
                  selection: SceneSelection) -> Path:
    """Record, beside the published ``cog``, its inputs version and what the asset metadata shows (days,
    offset decisions, pixel statistics, scene decisions), plus the COG's size and mtime (ns) so that a COG
    replaced by other means is never taken for this one. Published atomically."""
    stat = cog.stat()
    record = {
        "format": SIDECAR_FORMAT, "inputs_version": version, "scenes_version": scenes,
        "code_version": CODE_VERSION, "cog": {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns},
        "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "days": [d.isoformat() for d in summary.days],
        "offsets": {i: {"prior": _radiometry(d.prior), "evidence": [d.evidence.vegetation_pixels,
                                                                     d.evidence.dark_share],
                        "red": _radiometry(d.red), "nir": _radiometry(d.nir)} for i, d in summary.offsets.items()},
        "stats": asdict(summary.stats),
        "decisions": [[d.item_id, d.cause.value if d.cause else None, d.detail] for d in selection.decisions],
    }
    return write_text(sidecar_path(cog), json.dumps(record, indent=1))


def discard_sidecar(cog: Path) -> None:
    """Remove the sidecar before the COG is rewritten (a run that dies meanwhile then leaves none)."""
    sidecar_path(cog).unlink(missing_ok=True)


def read_sidecar(cog: Path) -> dict | None:
    """The sidecar of ``cog`` when it exists, parses, and describes the COG that is there now; else None."""
    try:
        record = json.loads(sidecar_path(cog).read_text())
        stat = cog.stat()
    except (OSError, ValueError):
        return None
    if record.get("format") != SIDECAR_FORMAT or record.get("cog") != {"size": stat.st_size,
                                                                       "mtime_ns": stat.st_mtime_ns}:
        return None
    return record


def recorded_version(cog: Path) -> str | None:
    """The inputs version the sidecar records for the COG there now (None: none, or not for this COG)."""
    record = read_sidecar(cog)
    return record["inputs_version"] if record else None


def unchanged_composite(cog: Path, version: str, selection: SceneSelection, geobox: GeoBox
                        ) -> tuple[CompositeSummary, SceneSelection] | None:
    """When the COG at ``cog`` was made from inputs ``version``: its summary and the selection as it was
    after the pixel screening (``selection`` is the search's, identical item for item since the version is),
    read back from the sidecar; else None."""
    record = read_sidecar(cog)
    if record is None or record["inputs_version"] != version:
        return None

    def radio(values: list) -> Radiometry:
        return Radiometry(float(values[0]), float(values[1]), str(values[2]))

    offsets = {i: OffsetDecision(i, radio(o["prior"]), OffsetEvidence(int(o["evidence"][0]), o["evidence"][1]),
                                 radio(o["red"]), radio(o["nir"])) for i, o in record["offsets"].items()}
    summary = CompositeSummary(geobox, [dt.date.fromisoformat(d) for d in record["days"]], offsets,
                               CogStats(**record["stats"]))
    decisions = tuple(SceneDecision(i, DropReason(cause) if cause else None, detail)
                      for i, cause, detail in record["decisions"])
    kept = {d.item_id for d in decisions if d.kept}
    return summary, SceneSelection(tuple(i for i in selection.items if i.id in kept), decisions)


# --- the load ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadResult:
    """``tiles``: the area-year's rows in ``raw.ndvi_composites``; ``skipped``: they were already from the same
    inputs and were left as they were (their ``loaded_at`` too)."""

    tiles: int
    skipped: bool
    inputs_version: str | None


def load_composite_if_changed(conn: psycopg.Connection, area_code: str, year: int, cog: Path,
                              force: bool = False) -> LoadResult:
    """Load the COG into ``raw.ndvi_composites`` (:func:`ingestion.load.postgis.load_composite`) unless its
    rows already come from the inputs version its sidecar records; ``force`` reloads anyway.

    A skipped load still publishes the area's staged districts when they changed (as a load would), so a
    re-districting is never held back by an unchanged composite.
    """
    year = validate_year(year)
    version = recorded_version(cog)
    ensure_raw_schema(conn)
    if not force and version is not None and loaded_inputs_version(conn, area_code, year) == version:
        with conn.transaction():
            _lock_setup(conn)
            publish_districts(conn, area_code)
        tiles = conn.execute("select count(*) from raw.ndvi_composites where area_code = %s and year = %s",
                             (area_code, year)).fetchone()[0]
        log.info("raw.ndvi_composites: %s %d unchanged (inputs %s): load skipped", area_code, year, version)
        return LoadResult(tiles, True, version)
    return LoadResult(load_composite(conn, area_code, year, cog, inputs_version=version), False, version)


# --- the dbt step -----------------------------------------------------------------------------------------

_NEEDING_DBT = """
with wanted as (
    select * from unnest(%(areas)s::text[], %(years)s::int[]) as w(area_code, year)
),
loads as (
    select c.area_code, c.year, max(c.loaded_at) as loaded_at
    from raw.ndvi_composites c join wanted using (area_code, year)
    group by 1, 2
),
current_districts as (
    select area_code, min(districts_version) as districts_version from raw.districts group by 1
),
thresholds as (
    select area_code, array_agg(threshold_name::text order by ndvi_threshold)::text as names,
           array_agg(ndvi_threshold::double precision order by ndvi_threshold)::text as ndvi
    from raw.green_share_thresholds group by 1
),
tiles as (
    select t.area_code, t.year, max(t.composite_loaded_at) as loaded_at
    from analytics.stg_ndvi_tiles t join wanted using (area_code, year) group by 1, 2
),
yearly as (
    select s.area_code, s.year, max(s.composite_loaded_at) as loaded_at, max(s.districts_version) as dv
    from analytics.ndvi_stats_yearly s join wanted using (area_code, year) group by 1, 2
),
distribution as (
    select s.area_code, s.year, max(s.composite_loaded_at) as loaded_at, max(s.districts_version) as dv,
           max(s.green_threshold_names::text) as names, max(s.green_ndvi_thresholds::text) as ndvi
    from analytics.ndvi_stats_yearly_distribution s join wanted using (area_code, year) group by 1, 2
)
select w.area_code, w.year
from wanted w
left join loads l using (area_code, year)
left join tiles t using (area_code, year)
left join yearly y using (area_code, year)
left join distribution d using (area_code, year)
left join current_districts cd using (area_code)
left join thresholds th using (area_code)
where (l.loaded_at is not null or y.year is not null)
  and (l.loaded_at is distinct from t.loaded_at
       or l.loaded_at is distinct from y.loaded_at
       or l.loaded_at is distinct from d.loaded_at
       or y.dv is distinct from cd.districts_version
       or d.dv is distinct from cd.districts_version
       or d.names is distinct from coalesce(th.names, '{}')
       or d.ndvi is distinct from coalesce(th.ndvi, '{}'))
order by 1, 2
"""


def area_years_needing_dbt(conn: psycopg.Connection, area_years: Iterable[tuple[str, int]]
                           ) -> list[tuple[str, int]]:
    """The ``(area_code, year)`` pairs of ``area_years`` for which the yearly dbt models (``stg_ndvi_tiles``,
    ``ndvi_stats_yearly``, ``ndvi_stats_yearly_distribution``) would compute something: the composite was
    (re)loaded since they were built (``raw.ndvi_composites.loaded_at`` against their
    ``composite_loaded_at``), the area's published ``districts_version`` or green-share thresholds differ from
    the ones they were built for, or they were never built. An empty list: the dbt step can be skipped.

    Mirrors the incremental conditions of those models; when a table is missing (first run) every area-year
    with a loaded composite is returned. Reads only; ``conn`` may be in autocommit.
    """
    pairs = sorted({(str(a), int(y)) for a, y in area_years})
    if not pairs:
        return []
    missing = conn.execute(
        "select count(*) from unnest(array['raw.ndvi_composites', 'raw.districts', 'raw.green_share_thresholds',"
        " 'analytics.stg_ndvi_tiles', 'analytics.ndvi_stats_yearly', 'analytics.ndvi_stats_yearly_distribution'])"
        " as t(name) where to_regclass(t.name) is null").fetchone()[0]
    if missing:
        if conn.execute("select to_regclass('raw.ndvi_composites')").fetchone()[0] is None:
            return []
        loaded = {tuple(r) for r in conn.execute(
            "select distinct area_code, year from raw.ndvi_composites").fetchall()}
        return [p for p in pairs if p in loaded]
    rows = conn.execute(_NEEDING_DBT, {"areas": [a for a, _ in pairs], "years": [y for _, y in pairs]}).fetchall()
    return [(a, int(y)) for a, y in rows]


# --- what an observation makes stale ----------------------------------------------------------------------

def area_config_version(cfg: AreaConfig) -> str:
    """:func:`config_version` of the area as it is now (reads its AOI, ``aoi/aoi_boundary.gpkg``; no search,
    no pixels)."""
    aoi, crs = read_aoi(cfg)
    return config_version(cfg, aoi, crs, target_geobox(aoi, crs, cfg.imagery.resolution))


def stale_area_years(areas: Iterable[AreaConfig], observed: dict[tuple[str, int], str]
                     ) -> list[tuple[str, int, str]]:
    """The area-years whose composite exists but was made from other inputs than the observed scenes (and the
    current config and code) give: ``(area_code, year, expected inputs version)``. ``observed`` maps
    ``(area_code, year)`` to an observed scenes version. An area-year without a composite (never
    materialised) or without an observation is not stale; it is left alone."""
    stale = []
    for cfg in areas:
        config = None
        for year in cfg.years:
            scenes = observed.get((cfg.code, year))
            path = composite_path(cfg, year)
            if scenes is None or not path.exists():
                continue
            config = config or area_config_version(cfg)
            expected = inputs_version(scenes, config)
            if recorded_version(path) != expected:
                stale.append((cfg.code, year, expected))
    return stale
