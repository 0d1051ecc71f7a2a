"""``local-stac``: a static STAC catalog on disk (offline runs and tests)."""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pystac

from ingestion.sources.base import DropReason, ImagerySource, SceneDecision, SceneQuery, SearchResult, acquired

log = logging.getLogger(__name__)


#: Each walked catalog (by path): the files the walk read with a digest of their bytes, and what it found. A
#: later search whose files all read the same reuses it: one parse per process, not one per area-year (parsing
#: is what costs: pystac migrates and deep-copies every item). Adding, removing or changing an item changes its
#: parent's or its own file, and so the signature; a content digest, unlike a modification time, also sees a
#: file rewritten within the file system's timestamp granularity.
_WALKS: dict[Path, tuple[list[str], tuple[tuple[str, str] | None, ...], list[pystac.Item], list[SceneDecision]]] = {}
_WALKS_LOCK = threading.Lock()


def _signature(files: Sequence[str]) -> tuple[tuple[str, str] | None, ...]:
    """(path, BLAKE2 digest of its bytes) of each file, None for one that cannot be read."""
    def digest(path: str) -> tuple[str, str] | None:
        try:
            return path, hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()
        except OSError:
            return None
    return tuple(digest(f) for f in files)


class CatalogError(ValueError):
    """The configured catalog cannot be opened as a STAC catalog; the message names the path and config key."""


class LocalStacSource(ImagerySource):
    """Walks a static catalog (``catalog_path`` to its ``catalog.json``); optional ``collection`` filter.

    pystac-client cannot search a static catalog, so items are read by walking it; the common selection
    rules then apply exactly as for a STAC API. An item (or sub-catalog) whose JSON cannot be read is not
    fatal here: it is returned among the search's ``failures`` and dropped or failed on by
    ``imagery.on_bad_item``.
    """

    name = "local-stac"

    def __init__(self, catalog_path: str | Path, collection: str | None = "sentinel-2-l2a") -> None:
        self.catalog_path = Path(catalog_path)
        self.collection = collection

    def _open_root(self) -> pystac.Catalog:
        where = f"local-stac: imagery.options.catalog_path {self.catalog_path}"
        if not self.catalog_path.exists():
            raise FileNotFoundError(f"{where} does not exist")
        try:
            return pystac.Catalog.from_file(str(self.catalog_path))
        except Exception as exc:  # pystac raises JSON, type and key errors alike
            raise CatalogError(f"{where} is not a STAC catalog or collection JSON: {_reason(exc)}") from None

    def _walk(self, catalog: pystac.Catalog, failures: list[SceneDecision], read: list[str]
              ) -> Iterator[pystac.Item]:
        """Every item below ``catalog``; unreadable JSON files are added to ``failures`` and skipped; every file
        the walk reads (or tried to) is added to ``read``."""
        for link in catalog.get_links():
            if link.rel not in ("child", "item"):
                continue
            href = link.get_absolute_href() or link.href
            read.append(href)
            try:
                obj = link.resolve_stac_object(root=catalog.get_root()).target
            except Exception as exc:  # a broken file must not hide the other items
                failure = SceneDecision.drop(Path(href).stem, DropReason.UNREADABLE_ITEM, f"{href}: {_reason(exc)}")
                log.warning("local-stac: %s", failure.reason)
                failures.append(failure)
                continue
            if isinstance(obj, pystac.Item):
                yield obj
            elif isinstance(obj, pystac.Catalog):
                yield from self._walk(obj, failures, read)

    def _all_items(self) -> tuple[list[pystac.Item], list[SceneDecision]]:
        """Every item of the collection (asset hrefs absolute) and the failures: from the last walk of this
        catalog in this process while none of the files it read changed (:data:`_WALKS`), else from a new walk.
        Items are shared between searches: callers must not modify them."""
        key = self.catalog_path.resolve()
        with _WALKS_LOCK:
            cached = _WALKS.get(key)
        if cached is not None:
            read, signature, items, failures = cached
            if None not in signature and _signature(read) == signature:  # an unreadable file: walk again
                return list(items), list(failures)
        items, failures, read = [], [], [str(key)]
        for item in self._walk(self._open_root(), failures, read):
            if self.collection and item.collection_id not in (None, self.collection):
                continue
            item.make_asset_hrefs_absolute()
            items.append(item)
        with _WALKS_LOCK:
            _WALKS[key] = (read, _signature(read), items, failures)
        return list(items), list(failures)

    @staticmethod
    def _in_window(items: list[pystac.Item], failures: list[SceneDecision], query: SceneQuery) -> SearchResult:
        """The items acquired in the query's window, as a STAC API's datetime filter would return them."""
        return SearchResult(tuple(i for i in items if (day := acquired(i)) is None or query.start <= day <= query.end),
                            tuple(failures))

    def find_items(self, query: SceneQuery) -> SearchResult:
        return self._in_window(*self._all_items(), query)

    def find_items_many(self, queries: Sequence[SceneQuery], max_workers: int = 8
                        ) -> list[SearchResult | Exception]:
        """One walk of the catalog for all ``queries`` (an observation of many area-years reads each item's
        JSON once, not once per area-year); a catalog that cannot be opened fails every query alike."""
        try:
            items, failures = self._all_items()
        except Exception as exc:
            return [exc for _ in queries]
        return [self._in_window(items, failures, q) for q in queries]


def _reason(exc: Exception) -> str:
    """The innermost cause of a pystac error (e.g. the JSON decode error), in one line."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return f"{type(exc).__name__}: {exc}".splitlines()[0]
