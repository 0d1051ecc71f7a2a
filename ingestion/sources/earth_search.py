"""``earth-search``: a STAC API searched with pystac-client (default Earth Search v1, ``sentinel-2-l2a``)."""

from __future__ import annotations

import logging

import pystac_client
from pystac_client.stac_api_io import StacApiIO
from urllib3.util.retry import Retry

from ingestion.sources.base import ImagerySource, SceneQuery, SearchResult

log = logging.getLogger(__name__)

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"


class StacApiError(RuntimeError):
    """The STAC API could not be searched (after retries); the message names the URL."""


class EarthSearchSource(ImagerySource):
    """Item search against a STAC API.

    Requests that fail with 429/5xx or time out are retried ``max_retries`` times with exponential backoff
    (``backoff_seconds`` × 2^n). The cloud-cover limit is sent as a ``query`` filter and re-applied to the
    returned items, since some servers ignore the ``query`` extension.
    """

    name = "earth-search"

    def __init__(self, url: str = EARTH_SEARCH_URL, collection: str = "sentinel-2-l2a", max_items: int = 2000,
                 max_retries: int = 4, backoff_seconds: float = 0.5, timeout_seconds: float = 30.0) -> None:
        self.url = url
        self.collection = collection
        self.max_items = max_items
        self.timeout_seconds = timeout_seconds
        retry = Retry(total=max_retries, backoff_factor=backoff_seconds, status_forcelist=(429, 500, 502, 503, 504),
                      allowed_methods=None, raise_on_status=False)
        self._io = StacApiIO(max_retries=retry, timeout=timeout_seconds)

    def find_items(self, query: SceneQuery) -> SearchResult:
        log.info("earth-search: searching %s collection %s", self.url, self.collection)
        try:
            client = pystac_client.Client.open(self.url, stac_io=self._io, timeout=self.timeout_seconds)
            search = client.search(
                collections=[self.collection],
                intersects=query.aoi.__geo_interface__,
                datetime=query.datetime_range,
                query={"eo:cloud_cover": {"lt": query.cloud_cover_max}},
                max_items=self.max_items,
            )
            items = tuple(search.items())
        except Exception as exc:  # network, HTTP and JSON errors all mean: the search failed
            raise StacApiError(f"STAC search at {self.url} failed: {type(exc).__name__}: {exc}") from exc
        return SearchResult(items)
