"""Scenes of an area-year: search the configured imagery source, apply the selection rules, screen the items.

:func:`select_scenes` is the one public entry point ("which items would the composite of this area-year
use, and why were the others left out"); it reads no pixels. The composite step then reads each kept
item's pixels for the offset check and drops the items whose assets cannot be read (:func:`drop_unreadable`).
Every step returns a new, frozen :class:`~ingestion.sources.base.SceneSelection`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Literal

from shapely.geometry.base import BaseGeometry

from ingestion.config import AreaConfig
from ingestion.imagery.offset_check import OffsetCheck
from ingestion.imagery.radiometry import ItemMetadataError, radiometry
from ingestion.sources.base import REQUIRED_ASSETS, DropReason, SceneQuery, SceneSelection
from ingestion.sources.registry import load_source
from ingestion.vector_utils import to_wgs84
from ingestion.years import validate_year

log = logging.getLogger(__name__)

OnBadItem = Literal["drop", "fail"]
_HINT = "(set imagery.on_bad_item: drop to skip such items)"
#: Searches in flight at once in :func:`select_many` (threads; each mostly waits on the STAC API).
SEARCHES_AT_ONCE = 8


class BadItemError(ValueError):
    """A selected item cannot be used and ``imagery.on_bad_item`` is ``fail``; the message names it."""


def scene_query(cfg: AreaConfig, year: int, aoi: BaseGeometry, crs: str) -> SceneQuery:
    """The search of ``year`` over ``aoi`` (in ``crs``, sent as EPSG:4326) with the area's month window and
    cloud limit (percent)."""
    return SceneQuery.for_year(to_wgs84(aoi, crs), validate_year(year), cfg.imagery.months,
                               cfg.imagery.cloud_cover_max)


def select_scenes(cfg: AreaConfig, year: int, aoi: BaseGeometry, crs: str) -> SceneSelection:
    """Search the area's imagery source for ``year`` over ``aoi`` (geometry in ``crs``), apply the selection
    rules and screen each kept item's radiometric metadata (:func:`screen_items` under
    ``imagery.on_bad_item``). Reads no pixels; raises :class:`BadItemError` under ``fail``."""
    source = load_source(cfg.imagery.source, **cfg.imagery.options)
    return screen_items(source.select(scene_query(cfg, year, aoi, crs)), cfg.imagery.on_bad_item)


def _source_key(cfg: AreaConfig) -> str:
    return json.dumps([cfg.imagery.source, cfg.imagery.options], sort_keys=True, default=str)


def select_many(searches: Sequence[tuple[AreaConfig, SceneQuery]], max_workers: int = SEARCHES_AT_ONCE
                ) -> list[SceneSelection | Exception]:
    """The searches of many area-years, each with the selection rules applied (not yet screened: see
    :func:`screen_items`), in the order of ``searches``; a failed search gives its exception in its place.

    Searches that share an imagery source (same ``imagery.source`` and options) share one plugin instance and one
    :meth:`~ingestion.sources.base.ImagerySource.select_many` call: at most ``max_workers`` in flight at once
    (a STAC API answers each in a few hundred ms), and ``local-stac`` walks its catalog once for all of them.
    The same selections as one :func:`select_scenes` per area-year, before screening.
    """
    groups: dict[str, list[int]] = {}
    for number, (cfg, _) in enumerate(searches):
        groups.setdefault(_source_key(cfg), []).append(number)
    out: list[SceneSelection | Exception | None] = [None] * len(searches)
    for numbers in groups.values():
        first = searches[numbers[0]][0]
        try:
            source = load_source(first.imagery.source, **first.imagery.options)
            found: list[SceneSelection | Exception] = source.select_many([searches[n][1] for n in numbers],
                                                                         max_workers)
        except Exception as exc:  # the plugin could not be loaded: every search of that source failed
            found = [exc] * len(numbers)
        for number, result in zip(numbers, found, strict=True):
            out[number] = result
    return out  # type: ignore[return-value]  # every slot was filled


def screen_items(selection: SceneSelection, policy: OnBadItem = "drop", warn: bool = True) -> SceneSelection:
    """``selection`` without the kept items whose radiometric metadata cannot be read (a new selection, each
    drop logged with its reason: a warning, at info with ``warn`` False, for a batch that reports each such
    item once, :func:`ingestion.batch_reports.report_drops`); under ``fail`` the first bad item, dropped earlier
    or now, raises."""
    if policy == "fail":
        for d in selection.dropped:
            if d.cause is not None and d.cause.is_bad_item:
                raise BadItemError(f"item {d.item_id}: {d.reason} {_HINT}")
    drops: dict[str, tuple[DropReason, str]] = {}
    for item in selection.items:
        try:
            for key in REQUIRED_ASSETS[:2]:
                radiometry(item, key)
        except ItemMetadataError as exc:
            if policy == "fail":
                raise BadItemError(f"{exc} {_HINT}") from None
            log.log(logging.WARNING if warn else logging.INFO, "scene %s: dropped (%s)", item.id, exc)
            drops[item.id] = (DropReason.BAD_METADATA, str(exc))
    return selection.dropping(drops)


def drop_unreadable(selection: SceneSelection, check: OffsetCheck, policy: OnBadItem = "drop",
                    warn: bool = True) -> SceneSelection:
    """``selection`` without the items whose assets the offset check could not read (a new selection, with
    the reason, logged as a warning, at info with ``warn`` False as :func:`screen_items`); under ``fail`` the
    first such item raises."""
    if check.unreadable and policy == "fail":
        raise BadItemError(f"{next(iter(check.unreadable.values()))} {_HINT}")
    for item_id, exc in check.unreadable.items():
        log.log(logging.WARNING if warn else logging.INFO, "scene %s: dropped (%s)", item_id, exc)
    return selection.dropping({i: (DropReason.UNREADABLE_ASSET, str(exc)) for i, exc in check.unreadable.items()})
