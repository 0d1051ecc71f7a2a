"""The imagery-source plugin interface and the selection rules every source applies."""

from __future__ import annotations

import abc
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pystac
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

DEFAULT_CLOUD_COVER_MAX = 5.0
REQUIRED_ASSETS = ("red", "nir", "scl")


@dataclass(frozen=True)
class SceneQuery:
    """What to look for.

    ``aoi`` is the area of interest in EPSG:4326 (lon/lat). Items are kept when their acquisition date lies
    in ``[start, end]`` (UTC dates, inclusive) and ``eo:cloud_cover`` is strictly below ``cloud_cover_max``
    (percent, as the notebook's ``lt`` query).
    """

    aoi: BaseGeometry
    start: dt.date
    end: dt.date
    cloud_cover_max: float = DEFAULT_CLOUD_COVER_MAX

    @classmethod
    def for_year(cls, aoi: BaseGeometry, year: int, months: tuple[int, int] = (1, 12),
                 cloud_cover_max: float = DEFAULT_CLOUD_COVER_MAX) -> SceneQuery:
        """A query for ``year``, optionally restricted to the months ``first..last`` (inclusive)."""
        first, last = months
        if not (1 <= first <= last <= 12):
            raise ValueError(f"months must be 1 <= first <= last <= 12, got {months}")
        end = dt.date(year + (last == 12), last % 12 + 1, 1) - dt.timedelta(days=1)
        return cls(aoi=aoi, start=dt.date(year, first, 1), end=end, cloud_cover_max=cloud_cover_max)

    @property
    def datetime_range(self) -> str:
        """The window as a STAC ``datetime`` interval string."""
        return f"{self.start.isoformat()}T00:00:00Z/{self.end.isoformat()}T23:59:59Z"


@dataclass
class SceneDecision:
    """Why an item was kept or dropped, for logs and asset metadata."""

    item_id: str
    kept: bool
    reason: str


@dataclass
class SceneSelection:
    """Items to composite plus a record of every decision."""

    items: list[pystac.Item] = field(default_factory=list)
    decisions: list[SceneDecision] = field(default_factory=list)

    @property
    def dropped(self) -> list[SceneDecision]:
        return [d for d in self.decisions if not d.kept]

    def summary(self) -> dict[str, Any]:
        """Counts by reason, JSON-friendly."""
        reasons: dict[str, int] = {}
        for d in self.dropped:
            key = d.reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        return {"kept": len(self.items), "dropped": len(self.dropped), "dropped_by_reason": reasons}


class ImagerySource(abc.ABC):
    """Base class of imagery plugins.

    Subclasses implement :meth:`find_items` (candidate items, possibly a superset) and get the common
    selection rules (date window, cloud cover, AOI overlap, required assets, exact-duplicate ids) from
    :meth:`select`, so every source chooses scenes the same way whatever its server supports.
    """

    #: The name users put in configuration (the entry-point name).
    name: ClassVar[str] = ""

    @abc.abstractmethod
    def find_items(self, query: SceneQuery) -> list[pystac.Item]:
        """Candidate items for ``query`` (the server may ignore some filters: :meth:`select` re-applies them)."""

    #: Items the source found but could not read, filled by :meth:`find_items` (dropped or failed on by
    #: ``imagery.on_bad_item``, like items with bad metadata).
    unreadable: list[SceneDecision]

    def select(self, query: SceneQuery) -> SceneSelection:
        """Find items and apply the selection rules, logging each decision."""
        self.unreadable = []
        candidates = self.find_items(query)
        log.info("%s: %d candidate items for %s..%s", self.name, len(candidates), query.start, query.end)
        selection = apply_selection_rules(candidates, query)
        selection.decisions.extend(self.unreadable)
        for d in selection.decisions:
            log.info("scene %s: %s (%s)", d.item_id, "kept" if d.kept else "dropped", d.reason)
        return selection


def acquired(item: pystac.Item) -> dt.date | None:
    """UTC acquisition date of an item, or None when it has no datetime."""
    when = item.datetime or item.common_metadata.start_datetime
    return when.astimezone(dt.UTC).date() if when else None


def apply_selection_rules(items: list[pystac.Item], query: SceneQuery) -> SceneSelection:
    """Keep items inside the window, under the cloud limit, overlapping the AOI, with red/nir/scl assets."""
    selection = SceneSelection()
    seen: set[str] = set()
    for item in sorted(items, key=lambda i: (acquired(i) or dt.date.min, i.id)):
        reason = _drop_reason(item, query, seen)
        seen.add(item.id)
        if reason:
            selection.decisions.append(SceneDecision(item.id, False, reason))
        else:
            selection.items.append(item)
            cover = item.properties.get("eo:cloud_cover")
            selection.decisions.append(SceneDecision(item.id, True, f"cloud cover {cover}%"))
    return selection


def _drop_reason(item: pystac.Item, query: SceneQuery, seen: set[str]) -> str | None:
    if item.id in seen:
        return "duplicate: same item id returned twice"
    day = acquired(item)
    if day is None:
        return "bad metadata: no datetime"
    if not query.start <= day <= query.end:
        return f"outside window: acquired {day}"
    cover = item.properties.get("eo:cloud_cover")
    if not isinstance(cover, int | float):
        return f"bad metadata: eo:cloud_cover is {cover!r}"
    if cover >= query.cloud_cover_max:
        return f"cloud cover: {cover}% >= {query.cloud_cover_max}%"
    if item.geometry is None or not shape(item.geometry).intersects(query.aoi):
        return "no overlap: item footprint does not intersect the area"
    missing = [key for key in REQUIRED_ASSETS if key not in item.assets]
    if missing:
        return f"missing assets: {', '.join(missing)}"
    return None
