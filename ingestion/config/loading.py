"""Reading a config file: YAML, top-level defaults merged into each area, areas of a split districts file,
and validation errors that name the file, the key path and the value.

Three shapes, all giving a :class:`~ingestion.config.schema.PipelineConfig`:
- one area: ``area``, ``districts``, ``years``, ``imagery``, ``exports`` at the top level;
- a list: ``areas: [{area: ..., districts: ..., ...}, ...]``; top-level keys are defaults each area may
  override (key by key within a section);
- one districts file for many areas: ``districts.area_column`` makes one area per value of that column: the
  values listed in ``districts.areas``, else those recorded by ``ndvi-pipeline areas``
  (:mod:`ingestion.config.area_index`). Loading never reads the districts file.

Paths may use ``${NDVI_DATA_DIR}``, ``${NDVI_HOME}`` or any environment variable; relative paths are relative
to the config file. ``NDVI_CONFIG`` names the file Dagster loads (default: the demo config).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ingestion.config.area_index import recorded_areas
from ingestion.config.errors import ConfigError, unknown_key_message
from ingestion.config.schema import PATTERN_MEANINGS, AreaConfig, PipelineConfig
from ingestion.paths import PROJECT_ROOT

DEFAULT_CONFIG = PROJECT_ROOT / "dagster_project" / "configs" / "demo.yaml"
_SECTIONS = ("districts", "imagery", "exports", "compute", "statistics")


def config_path(path: str | Path | None = None) -> Path:
    """The config file to read: ``path``, else ``$NDVI_CONFIG``, else the demo config (absolute)."""
    return Path(path or os.environ.get("NDVI_CONFIG") or DEFAULT_CONFIG).resolve()


def read_yaml(path: Path) -> Any:
    """The parsed YAML of a config file; a missing file or bad YAML raises :class:`ConfigError`."""
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist (set NDVI_CONFIG)")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that holds the field at ``loc`` (for suggesting the nearest key)."""
    for part in loc:
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _format_error(error: dict[str, Any]) -> str:
    """One pydantic error as ``key.path: problem, got value``."""
    # pydantic's own location steps (a validator function, a dict key) are no keys of the file
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "[key]"))))
    path = ".".join(str(p) for p in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        parent = _model_at(AreaConfig, loc[:-1])
        valid = [f.alias or name for name, f in parent.model_fields.items() if not f.exclude] if parent else []
        return unknown_key_message(path, str(loc[-1]), valid)
    if error["type"] == "missing":
        hint = " (an OGR-readable file or URL)" if loc == ("districts", "path") else ""
        return f"{path}: required{hint}"
    if error["type"] == "value_error":  # our own validators' messages already show the value
        message = error["msg"].removeprefix("Value error, ")
        if message.startswith("options."):  # from the plugin-options check, which knows the key below `imagery`
            return f"{path}.{message}"
        return f"{path}: {message.removeprefix('year: ')}"
    if error["type"] == "too_short":
        return f"{path}: must have at least {error['ctx']['min_length']} item(s), got {error['input']!r}"
    if error["type"] == "string_pattern_mismatch" and error["ctx"]["pattern"] in PATTERN_MEANINGS:
        return f"{path}: {PATTERN_MEANINGS[error['ctx']['pattern']]}, got {error['input']!r}"
    message = error["msg"]
    return f"{path}: {message[0].lower()}{message[1:]}, got {error['input']!r}"


def validate_area(data: dict[str, Any], source: Path, where: str = "") -> AreaConfig:
    """One area's mapping validated; errors name ``source``, ``where`` (e.g. ``areas[1].``) and the key path."""
    try:
        return AreaConfig.model_validate(data, context={"base": source.parent})
    except ValidationError as exc:
        problems = "; ".join(where + _format_error(e) for e in exc.errors())
        raise ConfigError(f"{source}: {problems}") from None


def _merged(defaults: dict[str, Any], area: dict[str, Any]) -> dict[str, Any]:
    """An area's keys over the top-level defaults; sections (imagery, exports, districts) merge key by key."""
    out = {**defaults, **area}
    for section in _SECTIONS:
        if isinstance(defaults.get(section), dict) and isinstance(area.get(section), dict):
            out[section] = {**defaults[section], **area[section]}
    return out


def area_entries(raw: Any, source: Path) -> list[tuple[dict[str, Any], str]]:
    """Each area entry of a config mapping with the top-level defaults merged in, and its place in the file
    (``""`` or ``areas[i].``), before any split by ``districts.area_column``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}")
    if "areas" not in raw:
        return [({"area": source.stem, **raw, "source_file": source}, "")]
    entries = raw["areas"]
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"{source}: areas: must be a non-empty list of area mappings")
    defaults = {k: v for k, v in raw.items() if k != "areas"}
    if "area" in defaults:
        raise ConfigError(f"{source}: area: set `area` inside each entry of `areas`, not at the top level")
    return [({**_merged(defaults, e), "source_file": source}, f"areas[{i}].") for i, e in enumerate(entries)]


def splits_by_column(data: dict[str, Any]) -> bool:
    """True when an area entry is one districts file split by ``districts.area_column``."""
    return isinstance(data.get("districts"), dict) and bool(data["districts"].get("area_column"))


def _split_by_area_column(data: dict[str, Any], source: Path, where: str) -> list[AreaConfig]:
    """One area per value of ``districts.area_column``: ``districts.areas``, else the recorded values."""
    template = validate_area(data, source, where)  # the file and the column names are valid before reading
    districts = template.districts
    recorded = recorded_areas(districts, template.output_dir)
    wanted = districts.areas
    if wanted and recorded is not None and (missing := sorted(set(wanted) - set(recorded))):
        raise ConfigError(f"{source}: {where}districts.areas: {missing} not found in column "
                          f"{districts.area_column!r} of {districts.path}")
    values = wanted or recorded
    if values is None:
        raise ConfigError(f"{source}: {where}districts.area_column: the areas of {districts.path} (column "
                          f"{districts.area_column!r}) are not recorded yet; run `ndvi-pipeline areas --config "
                          f"{source}` once (it reads the districts file), or list them in districts.areas")
    return [validate_area({**data, "area": value, "districts": {**data["districts"], "area_value": value}},
                          source, where) for value in values]


def parse_config(raw: Any, source: Path) -> PipelineConfig:
    """Validate a config mapping (one area, ``areas:``, or ``districts.area_column``); errors name ``source``,
    the key path and the problem. Reads no file but the area records of split districts files."""
    areas: list[AreaConfig] = []
    for data, where in area_entries(raw, source):
        if splits_by_column(data):
            areas += _split_by_area_column(data, source, where)
        else:
            areas.append(validate_area(data, source, where))
    codes = [a.code for a in areas]
    if duplicates := sorted({c for c in codes if codes.count(c) > 1}):
        raise ConfigError(f"{source}: area codes must be unique; repeated: {', '.join(duplicates)}")
    return PipelineConfig(areas=tuple(areas), source_file=source)


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate a config file (default ``$NDVI_CONFIG`` or the demo config)."""
    source = config_path(path)
    return parse_config(read_yaml(source), source)
