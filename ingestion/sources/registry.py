"""Find imagery plugins by name through the ``ndvi_pipeline.imagery_sources`` entry-point group."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from ingestion.sources.base import ImagerySource

ENTRY_POINT_GROUP = "ndvi_pipeline.imagery_sources"


class UnknownSourceError(ValueError):
    """No plugin is registered under the configured name."""


def available_sources() -> list[str]:
    """Names of every installed imagery plugin."""
    return sorted(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))


def source_class(name: str) -> type[ImagerySource]:
    """The plugin class registered as ``name``; raises naming the installed plugins when there is none."""
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        raise UnknownSourceError(
            f"unknown imagery source {name!r}; installed: {', '.join(available_sources()) or 'none'} "
            f"(plugins register under the entry-point group {ENTRY_POINT_GROUP!r})"
        )
    cls = matches[0].load()
    if not (isinstance(cls, type) and issubclass(cls, ImagerySource)):
        raise TypeError(f"entry point {name!r} ({matches[0].value}) is not an ImagerySource subclass")
    return cls


def load_source(name: str, **options: Any) -> ImagerySource:
    """Instantiate the plugin registered as ``name`` with its ``options`` (from the area config)."""
    cls = source_class(name)
    try:
        return cls(**options)
    except TypeError as exc:
        raise ValueError(f"bad options for imagery source {name!r}: {exc}") from None
