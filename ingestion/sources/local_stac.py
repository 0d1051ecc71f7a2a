"""``local-stac``: a static STAC catalog on disk (offline runs and tests)."""

from __future__ import annotations

from pathlib import Path

import pystac

from ingestion.sources.base import ImagerySource, SceneQuery, acquired


class LocalStacSource(ImagerySource):
    """Walks a static catalog (``catalog_path`` to its ``catalog.json``); optional ``collection`` filter.

    pystac-client cannot search a static catalog, so items are read by walking it; the common selection
    rules then apply exactly as for a STAC API.
    """

    name = "local-stac"

    def __init__(self, catalog_path: str | Path, collection: str | None = "sentinel-2-l2a") -> None:
        self.catalog_path = Path(catalog_path)
        self.collection = collection

    def find_items(self, query: SceneQuery) -> list[pystac.Item]:
        if not self.catalog_path.exists():
            raise FileNotFoundError(f"local-stac: catalog not found at {self.catalog_path}")
        catalog = pystac.Catalog.from_file(str(self.catalog_path))
        items = []
        for item in catalog.get_items(recursive=True):
            if self.collection and item.collection_id not in (None, self.collection):
                continue
            day = acquired(item)
            if day is not None and not query.start <= day <= query.end:
                continue  # as a STAC API's datetime filter would
            item.make_asset_hrefs_absolute()
            items.append(item)
        return items
