"""The imagery-source plugin contract and the selection rules every source applies.

A plugin implements one method, :meth:`ImagerySource.find_items`, which returns a :class:`SearchResult`: the
candidate items and the items it found but could not read. It keeps no state between calls, so one instance
can serve any number of searches, at once too. :meth:`ImagerySource.select` applies the common rules to the
result and returns a frozen :class:`SceneSelection`; every dropped item carries a :class:`DropReason`.
"""

from __future__ import annotations

import abc
import datetime as dt
import enum
import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import pystac
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

log = logging.getLogger(__name__)

DEFAULT_CLOUD_COVER_MAX = 5.0
REQUIRED_ASSETS = ("red", "nir", "scl")


class DropReason(enum.Enum):
    """Why an item was not used. The value is the label shown in logs, asset metadata and summaries."""

    DUPLICATE = "duplicate"
    OUTSIDE_WINDOW = "outside window"
    CLOUD_COVER = "cloud cover"
    NO_OVERLAP = "no overlap"
    MISSING_ASSETS = "missing assets"
    BAD_METADATA = "bad metadata"
    UNREADABLE_ITEM = "unreadable item"
    UNREADABLE_ASSET = "unreadable asset"

    @property
    def is_bad_item(self) -> bool:
        """True for a broken item (``imagery.on_bad_item`` decides: drop it or fail the year); False for an
        item the rules leave out by design (window, cloud cover, overlap, duplicate)."""
        return self in _BAD_ITEM


_BAD_ITEM = frozenset({DropReason.MISSING_ASSETS, DropReason.BAD_METADATA, DropReason.UNREADABLE_ITEM,
                       DropReason.UNREADABLE_ASSET})


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


@dataclass(frozen=True)
class SceneDecision:
    """One item kept (``cause`` None) or dropped (``cause`` the reason), with a human-readable ``detail``."""

    item_id: str
    cause: DropReason | None
    detail: str

    @classmethod
    def keep(cls, item_id: str, detail: str) -> SceneDecision:
        return cls(item_id, None, detail)

    @classmethod
    def drop(cls, item_id: str, cause: DropReason, detail: str) -> SceneDecision:
        return cls(item_id, cause, detail)

    @property
    def kept(self) -> bool:
        return self.cause is None

    @property
    def reason(self) -> str:
        """``"<label>: <detail>"`` for a dropped item (``"cloud cover: 7.0% >= 5.0%"``), the detail when kept."""
        return self.detail if self.cause is None else f"{self.cause.value}: {self.detail}"


@dataclass(frozen=True)
class SearchResult:
    """What a plugin's search found: candidate ``items`` (possibly a superset of what the query asks for) and
    ``failures``, items it found but could not read (each a dropped :class:`SceneDecision`, usually
    :attr:`DropReason.UNREADABLE_ITEM`)."""

    items: tuple[pystac.Item, ...]
    failures: tuple[SceneDecision, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "failures", tuple(self.failures))
        if any(f.kept for f in self.failures):
            raise ValueError("SearchResult.failures holds dropped decisions only")


@dataclass(frozen=True)
class SceneSelection:
    """Items to composite plus a record of every decision, in acquisition order. Frozen: the screening steps
    return a new selection (:meth:`dropping`)."""

    items: tuple[pystac.Item, ...] = ()
    decisions: tuple[SceneDecision, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "items", tuple(self.items))
        object.__setattr__(self, "decisions", tuple(self.decisions))

    @property
    def dropped(self) -> list[SceneDecision]:
        return [d for d in self.decisions if not d.kept]

    def dropping(self, drops: Mapping[str, tuple[DropReason, str]]) -> SceneSelection:
        """A new selection without the items in ``drops`` (item id → reason and detail); their earlier
        decision is replaced by the drop."""
        if not drops:
            return self
        kept = tuple(i for i in self.items if i.id not in drops)
        decisions = [d for d in self.decisions if d.item_id not in drops]
        decisions += [SceneDecision.drop(item_id, cause, detail) for item_id, (cause, detail) in drops.items()]
        return SceneSelection(kept, tuple(decisions))

    def summary(self) -> dict[str, Any]:
        """Counts by reason, JSON-friendly."""
        reasons = Counter(d.cause.value for d in self.dropped if d.cause is not None)
        return {"kept": len(self.items), "dropped": len(self.dropped), "dropped_by_reason": dict(reasons)}


class ImagerySource(abc.ABC):
    """Base class of imagery plugins.

    Subclasses implement :meth:`find_items` and get the common selection rules (date window, cloud cover, AOI
    overlap, required assets, exact-duplicate ids) from :meth:`select`, so every source chooses scenes the
    same way whatever its server supports. A plugin keeps no per-search state on the instance.
    """

    #: The name users put in configuration (the entry-point name).
    name: ClassVar[str] = ""

    @abc.abstractmethod
    def find_items(self, query: SceneQuery) -> SearchResult:
        """Candidate items for ``query`` and the items that could not be read (the server may ignore some
        filters: :meth:`select` re-applies them). Raise for a failed search (network, server)."""

    def find_items_many(self, queries: Sequence[SceneQuery], max_workers: int = 8
                        ) -> list[SearchResult | Exception]:
        """:meth:`find_items` for each of ``queries`` (in order), at most ``max_workers`` at once in threads; a
        failed search gives its exception in its place instead of stopping the others.

        A plugin whose searches share work (``local-stac`` walks its catalog once for all of them) overrides
        this; the instance still keeps no state between calls: what is shared lives in this call only.
        """
        def one(query: SceneQuery) -> SearchResult | Exception:
            try:
                return self.find_items(query)
            except Exception as exc:  # one area-year's failed search must not hide the others'
                return exc

        if len(queries) <= 1 or max_workers <= 1:
            return [one(q) for q in queries]
        with ThreadPoolExecutor(max_workers=min(max_workers, len(queries)),
                                thread_name_prefix=f"{self.name}-search") as pool:
            return list(pool.map(one, queries))

    def select_many(self, queries: Sequence[SceneQuery], max_workers: int = 8) -> list[SceneSelection | Exception]:
        """:meth:`select` for each of ``queries`` through :meth:`find_items_many` (same rules, same result as
        one :meth:`select` per query); a failed search gives its exception in its place."""
        return [found if isinstance(found, Exception) else self._selection(found, query)
                for found, query in zip(self.find_items_many(queries, max_workers), queries, strict=True)]

    def select(self, query: SceneQuery) -> SceneSelection:
        """Find items and apply the selection rules, logging each decision."""
        return self._selection(self.find_items(query), query)

    def _selection(self, found: SearchResult, query: SceneQuery) -> SceneSelection:
        if not isinstance(found, SearchResult):
            raise TypeError(f"{type(self).__name__}.find_items must return a SearchResult, "
                            f"got {type(found).__name__}")
        log.info("%s: %d candidate items for %s..%s", self.name, len(found.items), query.start, query.end)
        rules = apply_selection_rules(found.items, query)
        selection = SceneSelection(rules.items, rules.decisions + found.failures)
        for d in selection.decisions:
            log.info("scene %s: %s (%s)", d.item_id, "kept" if d.kept else "dropped", d.reason)
        return selection


def acquired(item: pystac.Item) -> dt.date | None:
    """UTC acquisition date of an item, or None when it has no datetime."""
    when = item.datetime or item.common_metadata.start_datetime
    return when.astimezone(dt.UTC).date() if when else None


def apply_selection_rules(items: Iterable[pystac.Item], query: SceneQuery) -> SceneSelection:
    """Keep items inside the window, under the cloud limit, overlapping the AOI, with red/nir/scl assets."""
    kept: list[pystac.Item] = []
    decisions: list[SceneDecision] = []
    seen: set[str] = set()
    for item in sorted(items, key=lambda i: (acquired(i) or dt.date.min, i.id)):
        drop = _drop_reason(item, query, seen)
        seen.add(item.id)
        if drop:
            decisions.append(SceneDecision.drop(item.id, *drop))
        else:
            kept.append(item)
            decisions.append(SceneDecision.keep(item.id, f"cloud cover {item.properties.get('eo:cloud_cover')}%"))
    return SceneSelection(tuple(kept), tuple(decisions))


#: Footprints built from items' GeoJSON, by the identity of the geometry dict (held here, so the identity is
#: never reused while cached): a batch searches the same items (one catalog walk, or one API page) once per
#: area-year, and ``shapely.geometry.shape`` builds a Sentinel-2 footprint point by point, about 4 ms each.
_FOOTPRINTS: OrderedDict[int, tuple[dict[str, Any], BaseGeometry]] = OrderedDict()
_FOOTPRINTS_KEPT = 4096
_FOOTPRINTS_LOCK = threading.Lock()


def footprint(geometry: dict[str, Any]) -> BaseGeometry:
    """A GeoJSON geometry (an item's footprint, EPSG:4326) as shapely, built once per geometry object."""
    with _FOOTPRINTS_LOCK:
        kept = _FOOTPRINTS.get(id(geometry))
        if kept is not None and kept[0] is geometry:
            return kept[1]
    built = shape(geometry)
    with _FOOTPRINTS_LOCK:
        _FOOTPRINTS[id(geometry)] = (geometry, built)
        while len(_FOOTPRINTS) > _FOOTPRINTS_KEPT:
            _FOOTPRINTS.popitem(last=False)
    return built


def _drop_reason(item: pystac.Item, query: SceneQuery, seen: set[str]) -> tuple[DropReason, str] | None:
    if item.id in seen:
        return DropReason.DUPLICATE, "same item id returned twice"
    day = acquired(item)
    if day is None:
        return DropReason.BAD_METADATA, "no datetime"
    if not query.start <= day <= query.end:
        return DropReason.OUTSIDE_WINDOW, f"acquired {day}"
    cover = item.properties.get("eo:cloud_cover")
    if not isinstance(cover, int | float):
        return DropReason.BAD_METADATA, f"eo:cloud_cover is {cover!r}"
    if cover >= query.cloud_cover_max:
        return DropReason.CLOUD_COVER, f"{cover}% >= {query.cloud_cover_max}%"
    if item.geometry is None or not footprint(item.geometry).intersects(query.aoi):
        return DropReason.NO_OVERLAP, "item footprint does not intersect the area"
    missing = [key for key in REQUIRED_ASSETS if key not in item.assets]
    if missing:
        return DropReason.MISSING_ASSETS, ", ".join(missing)
    return None
