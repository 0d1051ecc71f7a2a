"""The areas of a districts file split by ``districts.area_column``: read the file once and record them.

This is the one place that reads a districts file to learn which areas exist (``ndvi-pipeline areas``, and
``ndvi-pipeline run`` before it loads the config); loading a config, and so Dagster's code location, reads only
the record (:mod:`ingestion.config.area_index`).
"""

from __future__ import annotations

from pathlib import Path

from ingestion.config import ConfigError, PipelineConfig, load_config
from ingestion.config.area_index import record_areas
from ingestion.config.loading import area_entries, config_path, read_yaml, splits_by_column, validate_area
from ingestion.vector import area_values


def record_split_areas(path: str | Path | None = None) -> list[Path]:
    """Read the area column of every split districts file of the config at ``path`` (default
    ``$NDVI_CONFIG``) and record its values; returns the records written. Raises ConfigError for a bad config
    and :class:`~ingestion.vector.VectorInputError` for an unreadable file or a missing column."""
    source = config_path(path)
    written = []
    for data, where in area_entries(read_yaml(source), source):
        if not splits_by_column(data):
            continue
        template = validate_area(data, source, where)
        values = area_values(template.districts)
        if not values:
            raise ConfigError(f"{source}: {where}districts.area_column: column {template.districts.area_column!r} "
                              f"of {template.districts.path} has no values")
        written.append(record_areas(template.districts, template.output_dir, values))
    return written


def load_config_reading_areas(path: str | Path | None = None) -> PipelineConfig:
    """:func:`record_split_areas`, then :func:`~ingestion.config.load_config`: the config with the areas the
    districts files hold now (for headless runs; the code location loads the record only)."""
    record_split_areas(path)
    return load_config(path)
