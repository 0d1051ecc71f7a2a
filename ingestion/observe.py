"""Observe the scenes of many area-years cheaply: the set of items each search selects, as a version string.

An observation runs the composite's own search and selection (:func:`ingestion.scenes.select_scenes`'s rules
and metadata screening) for every area-year, and reduces each selection to a *scenes version*: a hash of the
kept items' ids, their ``updated`` (else ``s2:generation_time``, else ``created``) time and the radiometry
their METADATA claims (scale and offset of red and nir, :func:`ingestion.imagery.radiometry.radiometry`). The
version changes exactly when Earth Search adds, removes or reprocesses a scene the composite would use.

It reads no pixels: the composite's pixel-based offset check (``ingestion.imagery.offset_check``) opens every
item's COGs, which costs as much as a good part of the composite itself, so an observation records only the
offset the metadata claims; a reprocessed item gets a new ``updated`` time, which changes the version anyway.

Cost: one search per area-year, at most ``max_workers`` at once (threads), each retried as the composite's
search is (the plugin's own retries, e.g. ``earth-search``'s HTTP retry with backoff); area-years that share
an imagery source share one plugin instance and one :meth:`~ingestion.sources.base.ImagerySource.find_items_many`
call, so ``local-stac`` walks its catalog once per observation, not once per area.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pystac

from ingestion.area_outputs import read_aoi
from ingestion.atomic import write_text
from ingestion.config import AreaConfig
from ingestion.imagery.radiometry import radiometry
from ingestion.scenes import SEARCHES_AT_ONCE, scene_query, screen_items, select_many
from ingestion.sources.base import SceneQuery, SceneSelection

log = logging.getLogger(__name__)

DEFAULT_MAX_WORKERS = SEARCHES_AT_ONCE
#: Per area, the last observation of each of its years (under the area's output folder).
OBSERVATION_FILE = "scenes_observed.json"


def item_updated(item: pystac.Item) -> str:
    """When the item's content last changed, as the catalog says: ``updated``, else ``s2:generation_time``,
    else ``created`` (ISO 8601 text as given), else ``""``."""
    props = item.properties
    return str(props.get("updated") or props.get("s2:generation_time") or props.get("created") or "")


def scenes_fingerprint(selection: SceneSelection) -> list[list]:
    """The kept items of ``selection`` in acquisition order: ``[id, updated, red scale, red offset, nir scale,
    nir offset]`` (offsets in reflectance units, as the item's metadata claims)."""
    rows = []
    for item in selection.items:
        red, nir = radiometry(item, "red"), radiometry(item, "nir")
        rows.append([item.id, item_updated(item), red.scale, red.offset, nir.scale, nir.offset])
    return rows


def scenes_version(selection: SceneSelection) -> str:
    """A 16-hex-digit hash of :func:`scenes_fingerprint`: equal selections, equal version."""
    text = json.dumps(scenes_fingerprint(selection), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ObservedScenes:
    """One area-year's observation: ``version`` and ``items`` (kept scenes), or ``error`` (one line) when its
    search or its area's AOI failed. ``changed``: the version differs from the previous recorded observation
    (None when there was none, or when this one failed)."""

    area: str
    year: int
    version: str | None
    items: int
    error: str | None = None
    changed: bool | None = None


def observe(areas: Sequence[AreaConfig], years: Iterable[int] | None = None,
            max_workers: int = DEFAULT_MAX_WORKERS) -> list[ObservedScenes]:
    """Observe every area-year of ``areas`` (each area's configured years, or those of ``years`` it lists).

    Needs each area's AOI (``aoi_boundary`` materialised, read from ``aoi/aoi_boundary.gpkg``; geometry in the
    area's working CRS, sent to the source in EPSG:4326). Returns one :class:`ObservedScenes` per area-year in
    the order of ``areas`` and years; never raises for one area-year's failure (it is in ``error``).
    """
    wanted = None if years is None else set(years)
    out: dict[tuple[str, int], ObservedScenes] = {}
    searches: list[tuple[AreaConfig, int, SceneQuery]] = []
    for cfg in areas:
        area_years = [y for y in cfg.years if wanted is None or y in wanted]
        if not area_years:
            continue
        try:
            aoi, crs = read_aoi(cfg)
        except Exception as exc:
            for y in area_years:
                out[cfg.code, y] = ObservedScenes(cfg.code, y, None, 0, f"no AOI: {_one_line(exc)}")
            continue
        searches += [(cfg, y, scene_query(cfg, y, aoi, crs)) for y in area_years]
    found = select_many([(cfg, query) for cfg, _, query in searches], max_workers)
    for (cfg, y, _), result in zip(searches, found, strict=True):
        out[cfg.code, y] = _reduce(cfg, y, result)
    return [out[cfg.code, y] for cfg in areas for y in cfg.years if (cfg.code, y) in out]


def _reduce(cfg: AreaConfig, year: int, found: SceneSelection | Exception) -> ObservedScenes:
    if isinstance(found, Exception):
        return ObservedScenes(cfg.code, year, None, 0, f"search failed: {_one_line(found)}")
    try:
        selection = screen_items(found, cfg.imagery.on_bad_item)
        return ObservedScenes(cfg.code, year, scenes_version(selection), len(selection.items))
    except Exception as exc:  # imagery.on_bad_item: fail
        return ObservedScenes(cfg.code, year, None, 0, _one_line(exc))


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def observation_path(cfg: AreaConfig) -> Path:
    """``<output_dir>/<area>/scenes_observed.json``: the area's last observation per year."""
    return cfg.area_dir / OBSERVATION_FILE


def last_observations(cfg: AreaConfig) -> dict[int, dict]:
    """The area's last recorded observation per year (``{"version", "items", "observed_at"}``), or ``{}``."""
    try:
        return {int(y): v for y, v in json.loads(observation_path(cfg).read_text()).items()}
    except (OSError, ValueError):
        return {}


def record_observations(areas: Sequence[AreaConfig], observed: Sequence[ObservedScenes]) -> list[ObservedScenes]:
    """Compare ``observed`` with each area's last recorded observation, record the successful ones (file
    published atomically) and return them with ``changed`` set."""
    by_area: dict[str, list[ObservedScenes]] = {}
    for o in observed:
        by_area.setdefault(o.area, []).append(o)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    result: dict[tuple[str, int], ObservedScenes] = {}
    for cfg in areas:
        if cfg.code not in by_area:
            continue
        previous = last_observations(cfg)
        record = {str(y): v for y, v in previous.items()}
        for o in by_area[cfg.code]:
            if o.version is None:
                result[o.area, o.year] = o
                continue
            before = previous.get(o.year, {}).get("version")
            result[o.area, o.year] = ObservedScenes(**{**asdict(o), "changed": None if before is None
                                                       else before != o.version})
            record[str(o.year)] = {"version": o.version, "items": o.items, "observed_at": now}
        if record:
            write_text(observation_path(cfg), json.dumps(record, indent=1, sort_keys=True))
    return [result[o.area, o.year] for o in observed]
