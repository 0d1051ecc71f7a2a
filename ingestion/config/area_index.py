"""The recorded areas of a districts file split by ``districts.area_column``.

Loading a config must not read the districts file (it may be a national file or a WFS URL, and Dagster loads
the config every time the code location loads). The distinct values of the area column are read once, by
``ndvi-pipeline areas`` (or before ``ndvi-pipeline run``), and recorded in a small JSON file under the
area's ``output_dir``; loading reads only that record.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ingestion.atomic import write_text
from ingestion.config.schema import DistrictsConfig

INDEX_FOLDER = ".area_index"


def area_index_path(districts: DistrictsConfig, output_dir: Path) -> Path:
    """Where the areas of ``districts`` (file, layer, column) are recorded."""
    key = json.dumps([districts.path, districts.layer, districts.area_column])
    return output_dir / INDEX_FOLDER / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"


def recorded_areas(districts: DistrictsConfig, output_dir: Path) -> tuple[str, ...] | None:
    """The recorded area values, sorted, or None when the file was never read (or the record is unreadable)."""
    path = area_index_path(districts, output_dir)
    try:
        record = json.loads(path.read_text())
        return tuple(str(v) for v in record["areas"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_areas(districts: DistrictsConfig, output_dir: Path, values: list[str]) -> Path:
    """Record ``values`` as the areas of ``districts``, atomically (a reader sees the old or the new list)."""
    record = {"path": districts.path, "layer": districts.layer, "area_column": districts.area_column,
              "areas": sorted(values)}
    return write_text(area_index_path(districts, output_dir), json.dumps(record, indent=1))
