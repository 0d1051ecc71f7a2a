"""Find imagery plugins by name through the ``ndvi_pipeline.imagery_sources`` entry-point group."""

from __future__ import annotations

import sys
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from ingestion.sources.base import ImagerySource

ENTRY_POINT_GROUP = "ndvi_pipeline.imagery_sources"


class UnknownSourceError(ValueError):
    """No plugin is registered under the configured name."""


def _registered() -> tuple[EntryPoint, ...]:
    """The group's entry points, scanned once per ``sys.path`` (a scan reads every installed distribution's
    metadata, about 10 ms; a province looks a plugin up for each of its areas and area-years)."""
    return _scan(tuple(sys.path))


@cache
def _scan(path: tuple[str, ...]) -> tuple[EntryPoint, ...]:
    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def available_sources() -> list[str]:
    """Names of every installed imagery plugin."""
    return sorted(ep.name for ep in _registered())


def source_class(name: str) -> type[ImagerySource]:
    """The plugin class registered as ``name``; raises naming the installed plugins when there is none."""
    matches = [ep for ep in _registered() if ep.name == name]
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
