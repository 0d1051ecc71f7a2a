"""The pipeline configuration: one YAML file describing one or more areas, validated up front.

Three shapes, all giving a :class:`PipelineConfig` with a list of :class:`AreaConfig`:
- one area: ``area``, ``districts``, ``years``, ``imagery``, ``exports`` at the top level;
- a list: ``areas: [{area: ..., districts: ..., ...}, ...]``; top-level ``years``, ``imagery``, ``exports`` and
  ``output_dir`` are defaults each area may override (key by key within a section);
- one districts file for many areas: ``districts.area_column`` (e.g. the municipality code of the CBS wijken)
  makes one area per distinct value of that column (optionally only ``districts.areas``).

The schema is a set of pydantic models with ``extra="forbid"`` at every depth: an unknown key is an error that
names the file, the key path and the nearest valid key. ``ndvi-config-schema`` prints the JSON schema for
editors (``dagster_project/configs/area.schema.json`` is a copy of it).

Paths may use ``${NDVI_DATA_DIR}``, ``${NDVI_HOME}`` or any environment variable; relative paths are relative
to the config file. ``NDVI_CONFIG`` names the file Dagster loads (default: the demo config).
"""

from __future__ import annotations

import datetime as dt
import difflib
import inspect
import json
import os
import re
import string
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES, validate_classes
from ingestion.paths import PROJECT_ROOT, data_dir, project_home
from ingestion.sources.registry import available_sources, source_class

DEFAULT_CONFIG = PROJECT_ROOT / "dagster_project" / "configs" / "demo.yaml"
FIRST_SENTINEL2_YEAR = 2015
SCHEMES = ("FisherJenks", "NaturalBreaks", "Quantiles", "EqualInterval", "JenksCaspall")
_AREA_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_SECTIONS = ("districts", "imagery", "exports", "compute", "statistics")
_INDICATOR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file, the field and the value."""


def validate_year(value: Any, where: str = "year") -> int:
    """An integer year between 2015 (Sentinel-2) and next year; anything else raises ConfigError."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise ConfigError(f"{where}: {value!r} is not a year (expected e.g. 2024)")
    year = int(value)
    last = dt.date.today().year + 1
    if not FIRST_SENTINEL2_YEAR <= year <= last:
        raise ConfigError(f"{where}: {year} is outside {FIRST_SENTINEL2_YEAR}..{last} (Sentinel-2 years)")
    return year


def _expand(value: str, base: Path | None) -> str:
    """Environment variables substituted; a relative local path made absolute against ``base``."""
    mapping = {"NDVI_DATA_DIR": str(data_dir()), "NDVI_HOME": str(project_home()), **os.environ}
    expanded = string.Template(value).safe_substitute(mapping)
    if "://" in expanded or expanded.startswith("/vsi"):
        return expanded
    path = Path(expanded).expanduser()
    return str(path if path.is_absolute() or base is None else (base / path).resolve())


def _expand_path(value: Any, info: ValidationInfo) -> Any:
    base = (info.context or {}).get("base")
    return _expand(str(value), base) if value is not None else None


#: A path or URL: ``${VARS}`` expanded and relative paths resolved against the config file's folder.
ConfigPath = Annotated[str, BeforeValidator(_expand_path)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DistrictsConfig(_Section):
    """Where the districts come from and which columns hold their code and name."""

    path: ConfigPath = Field(description="OGR-readable districts file or URL (GeoPackage, GeoJSON, Shapefile, WFS)")
    layer: str | None = Field(None, description="layer name; default the first layer")
    code_column: str = Field("district_code", description="column with a unique, non-empty district code")
    name_column: str | None = Field("district_name", description="column with the district name")
    area_column: str | None = Field(None, description="column whose values split one file into areas")
    areas: tuple[str, ...] | None = Field(None, description="with area_column: only these areas (default all)")
    area_value: str | None = Field(None, exclude=True, description="the area_column value of this area's rows")


class ImageryConfig(_Section):
    """Which imagery plugin to search and how scenes and pixels are selected."""

    source: str = Field("earth-search", description="imagery plugin name (earth-search, local-stac, ...)")
    options: dict[str, Any] = Field(default_factory=dict, description="constructor arguments of the plugin")
    months: tuple[int, int] = Field((1, 12), description="first and last month of the window (inclusive)")
    cloud_cover_max: float = Field(5.0, description="keep items with eo:cloud_cover strictly below this (%)")
    masked_scl_classes: frozenset[int] = Field(DEFAULT_MASKED_CLASSES,
                                               description="SCL classes dropped per pixel (ids or names)")
    resolution: float = Field(10.0, description="pixel size of the common grid, metres")
    working_crs: str | None = Field(None, description="projected CRS of the grid; default the districts' CRS")
    on_bad_item: Literal["drop", "fail"] = Field("drop", description="drop (and log) or fail on a bad item")

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value not in available_sources():
            raise ValueError(f"unknown plugin {value!r}; installed: {', '.join(available_sources())}")
        return value

    @field_validator("months", mode="before")
    @classmethod
    def _months(cls, value: Any) -> Any:
        ok = (isinstance(value, list | tuple) and len(value) == 2
              and all(isinstance(m, int) and not isinstance(m, bool) for m in value)
              and 1 <= value[0] <= value[1] <= 12)
        if not ok:
            raise ValueError(f"must be [first, last] with 1 <= first <= last <= 12, got {value!r}")
        return value

    @field_validator("cloud_cover_max", mode="before")
    @classmethod
    def _cloud(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 100:
            raise ValueError(f"must be a number in (0, 100] percent, got {value!r}")
        return value

    @field_validator("masked_scl_classes", mode="before")
    @classmethod
    def _classes(cls, value: Any) -> frozenset[int]:
        if not isinstance(value, list | tuple | set | frozenset):
            raise ValueError(f"must be a list of SCL class ids or names, got {value!r}")
        return validate_classes(value)

    @field_validator("resolution", mode="before")
    @classmethod
    def _resolution(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ValueError(f"must be a positive number of metres, got {value!r}")
        return value

    @field_validator("on_bad_item", mode="before")
    @classmethod
    def _on_bad_item(cls, value: Any) -> Any:
        if value not in ("drop", "fail"):
            raise ValueError(f"must be 'drop' or 'fail', got {value!r}")
        return value

    @model_validator(mode="after")
    def _plugin_options(self, info: ValidationInfo) -> ImageryConfig:
        """Options are checked against the plugin's constructor; ``*_path`` options are expanded like paths."""
        accepted = _constructor_arguments(self.source)
        for key in self.options:
            if accepted is not None and key not in accepted:
                raise ValueError(_unknown_key_message(f"options.{key}", key, accepted,
                                                      what=f"option of plugin {self.source!r}"))
        base = (info.context or {}).get("base")
        expanded = {k: (_expand(v, base) if k.endswith("_path") and isinstance(v, str) else v)
                    for k, v in self.options.items()}
        object.__setattr__(self, "options", expanded)
        return self


class ExportConfig(_Section):
    """Rounding and map classification of the exported layers."""

    decimals: int = Field(2, description="decimals of NDVI statistics in GeoJSON (0..8)")
    scheme: Literal[SCHEMES] = Field("FisherJenks", description="mapclassify scheme")  # type: ignore[valid-type]
    k: int = Field(5, description="number of classes (2..12)")
    colormap: str = Field("RdYlGn", description="matplotlib colormap for the class colours")
    basemap_url: str | None = Field(None, description="XYZ tile URL template for the web map's basemap, e.g. "
                                                      "https://tile.openstreetmap.org/{z}/{x}/{y}.png; default none")

    @field_validator("basemap_url", mode="before")
    @classmethod
    def _basemap(cls, value: Any) -> Any:
        ok = value is None or (isinstance(value, str) and value.startswith(("https://", "http://"))
                               and all(p in value for p in ("{z}", "{x}", "{y}")))
        if not ok:
            raise ValueError(f"must be an http(s) URL with {{z}}, {{x}}, {{y}}, got {value!r}")
        return value

    @field_validator("decimals", mode="before")
    @classmethod
    def _decimals(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 8:
            raise ValueError(f"must be an integer 0..8, got {value!r}")
        return value

    @field_validator("k", mode="before")
    @classmethod
    def _k(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 12:
            raise ValueError(f"must be an integer 2..12, got {value!r}")
        return value

    @field_validator("scheme", mode="before")
    @classmethod
    def _scheme(cls, value: Any) -> Any:
        if value not in SCHEMES:
            raise ValueError(f"must be one of {', '.join(SCHEMES)}, got {value!r}")
        return value


class ComputeConfig(_Section):
    """Where and how the composite runs: a Dask scheduler (else local threads), block size, GDAL read options."""

    dask_scheduler: str | None = Field(None, description="Dask scheduler address (tcp://host:8786); default "
                                                         "$DASK_SCHEDULER_ADDRESS, else local threads")
    chunk_size: int = Field(1024, description="block size of the composite in pixels (a multiple of 256)")
    io_concurrency: int = Field(16, ge=1, le=256, description="COG reads in flight per process (the items and "
                                                              "bands of a block, and the offset check, at once)")
    gdal_options: dict[str, Any] = Field(default_factory=dict, description="GDAL config options over the cloud "
                                                                           "defaults (e.g. GDAL_HTTP_MAX_RETRY)")

    @field_validator("dask_scheduler", mode="before")
    @classmethod
    def _scheduler(cls, value: Any) -> Any:
        if value is not None and (not isinstance(value, str) or "://" not in value):
            raise ValueError(f"must be an address like tcp://host:8786, got {value!r}")
        return value

    @field_validator("chunk_size", mode="before")
    @classmethod
    def _chunk(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or value < 256 or value % 256:
            raise ValueError(f"must be a multiple of 256 pixels (e.g. 1024), got {value!r}")
        return value

    @field_validator("gdal_options", mode="before")
    @classmethod
    def _gdal(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not all(isinstance(k, str) and k.isupper() for k in value):
            raise ValueError(f"must map GDAL option names (e.g. GDAL_HTTP_MAX_RETRY) to values, got {value!r}")
        return value


class GreenThreshold(_Section):
    """One green-share class: the share of a district's valid pixels with NDVI >= ``ndvi``."""

    name: str = Field(description="identifier used in column and GeoJSON field names (green_share_<name>): "
                                  "lower-case letters, digits and '_'")
    label: str | None = Field(None, description="human-readable label for the map legend; default the name "
                                                "with spaces")
    ndvi: float = Field(description="NDVI threshold (-1..1); a pixel counts when its NDVI >= this value")

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _INDICATOR_NAME.match(value):
            raise ValueError(f"must be lower-case letters, digits or '_', starting with a letter, got {value!r}")
        return value

    @field_validator("ndvi", mode="before")
    @classmethod
    def _ndvi(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
            raise ValueError(f"must be an NDVI value in -1..1, got {value!r}")
        return float(value)

    @property
    def display_label(self) -> str:
        """The legend label: ``label``, else the name with spaces."""
        return self.label or self.name.replace("_", " ")


def histogram_edges(thresholds: list[float]) -> list[float]:
    """The bin edges PostGIS's _ST_Histogram builds for the ascending ``thresholds`` in the
    ``threshold_bin_counts`` dbt macro: min 0, 2 t1 or -1 (t1 >0, <0, = 0) and first width t1, -t1 or 1, so
    the first edge is t1 exactly; then widths t2 - t1, ...; each edge the previous one plus a width, in IEEE
    double arithmetic exactly as the C code and PostgreSQL compute them."""
    edges: list[float] = []
    edge, previous = 0.0, None
    for t in thresholds:
        if previous is None:
            start, width = (0.0, t) if t > 0 else (2 * t, -t) if t < 0 else (-1.0, 1.0)
            edge = start + width
        else:
            edge = edge + (t - previous)
        edges.append(edge)
        previous = t
    return edges


def edge_matches_threshold(edge: float, threshold: float) -> bool:
    """True when every float32 value (the composite's NDVI) lies on the same side of ``edge`` as of
    ``threshold``: then counting values >= edge equals counting values >= threshold, exactly. Only float32
    values next to the two numbers can fall between them."""
    import numpy as np

    candidates = set()
    for x in (threshold, edge):
        f = np.float32(x)
        for _ in range(3):
            f = np.nextafter(f, np.float32(-np.inf))
        for _ in range(7):
            candidates.add(float(f))
            f = np.nextafter(f, np.float32(np.inf))
    return all((c >= edge) == (c >= threshold) for c in candidates)


DEFAULT_GREEN_THRESHOLDS = (
    GreenThreshold(name="vegetated", label="vegetated", ndvi=0.2),
    GreenThreshold(name="dense_vegetation", label="dense vegetation", ndvi=0.5),
)


class StatisticsConfig(_Section):
    """Green-share thresholds and the baseline year of the change models (written to raw.* for dbt)."""

    green_thresholds: tuple[GreenThreshold, ...] = Field(
        DEFAULT_GREEN_THRESHOLDS, description="green-share classes (default vegetated >= 0.2, dense_vegetation "
                                              ">= 0.5); names and thresholds unique")
    baseline_year: int | None = Field(None, description="year the change models compare against (one of the "
                                                        "area's years); default the area's earliest year")

    @field_validator("green_thresholds", mode="after")
    @classmethod
    def _unique(cls, value: tuple[GreenThreshold, ...]) -> tuple[GreenThreshold, ...]:
        names = [t.name for t in value]
        if len(set(names)) != len(names):
            raise ValueError(f"threshold names must be unique, got {names}")
        levels = [t.ndvi for t in value]
        if len(set(levels)) != len(levels):
            raise ValueError(f"threshold values must be unique, got {levels}")
        ordered = tuple(sorted(value, key=lambda t: t.ndvi))
        for threshold, edge in zip(ordered, histogram_edges([t.ndvi for t in ordered]), strict=True):
            if not edge_matches_threshold(edge, threshold.ndvi):
                raise ValueError(f"threshold {threshold.ndvi!r} ({threshold.name}) cannot be counted exactly by "
                                 "the SQL histogram after the lower thresholds (its bin edge, built by adding "
                                 f"the differences, is {edge!r}); shift it or a lower threshold by 0.001")
        return ordered

    @field_validator("baseline_year", mode="before")
    @classmethod
    def _baseline(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return validate_year(value, "baseline_year")
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("baseline_year: ")) from None


class AreaConfig(_Section):
    """Everything the pipeline needs to know about one area."""

    name: str = Field("area", alias="area", description="the area's code: a partition key, a folder name under "
                                                        "output_dir and raw.*.area_code; default the file name")
    districts: DistrictsConfig
    years: tuple[int, ...] = Field(description="the year partitions (2015..next year)")
    imagery: ImageryConfig = Field(default_factory=ImageryConfig)
    exports: ExportConfig = Field(default_factory=ExportConfig)
    boundary: ConfigPath | None = Field(None, description="boundary file for the search and grid; default the "
                                                          "union of the districts")
    output_dir: Path = Field(default_factory=data_dir, description="where outputs go; default $NDVI_DATA_DIR")
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    statistics: StatisticsConfig = Field(default_factory=StatisticsConfig)
    source_file: Path | None = Field(None, exclude=True, description="the file this config was read from")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("years", mode="before")
    @classmethod
    def _years(cls, value: Any) -> tuple[int, ...]:
        if not isinstance(value, list | tuple) or not value:
            raise ValueError(f"must be a non-empty list of years, got {value!r}")
        try:
            return tuple(sorted({validate_year(y, "years") for y in value}))
        except ConfigError as exc:
            raise ValueError(str(exc).removeprefix("years: ")) from None

    @field_validator("name", mode="before")
    @classmethod
    def _code(cls, value: Any) -> Any:
        if not isinstance(value, str) or not _AREA_CODE.match(value):
            raise ValueError(f"{value!r} is not an area code (letters, digits, '_' or '-', at most 63)")
        return value

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir(cls, value: Any, info: ValidationInfo) -> Any:
        return Path(_expand_path(value, info)) if value else data_dir()

    @model_validator(mode="after")
    def _baseline_in_years(self) -> AreaConfig:
        baseline = self.statistics.baseline_year
        if baseline is not None and baseline not in self.years:
            raise ValueError(f"statistics.baseline_year {baseline} is not one of the area's years {list(self.years)}")
        return self

    @property
    def code(self) -> str:
        """The area code (``area`` in the file)."""
        return self.name

    @property
    def baseline_year(self) -> int:
        """The year the change models compare against: ``statistics.baseline_year``, else the earliest year."""
        return self.statistics.baseline_year or min(self.years)

    @property
    def area_dir(self) -> Path:
        """Outputs of this area: ``<output_dir>/<area>/``."""
        return self.output_dir / self.name


class PipelineConfig(BaseModel):
    """Every area one deployment serves, in file order; codes are unique."""

    model_config = ConfigDict(frozen=True)

    areas: tuple[AreaConfig, ...]
    source_file: Path | None = None

    @property
    def years(self) -> tuple[int, ...]:
        """Every year of any area (the year partitions)."""
        return tuple(sorted({y for a in self.areas for y in a.years}))

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(a.code for a in self.areas)

    def area(self, code: str) -> AreaConfig:
        """The area ``code``; raises naming the configured areas."""
        for a in self.areas:
            if a.code == code:
                return a
        raise ConfigError(f"{self.source_file}: no area {code!r}; configured: {', '.join(self.codes)}")


def _constructor_arguments(source: str) -> list[str] | None:
    """Keyword arguments a plugin's constructor accepts (None when it takes ``**kwargs``)."""
    params = inspect.signature(source_class(source).__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _unknown_key_message(path: str, key: str, valid: list[str], what: str = "key") -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"valid: {', '.join(sorted(valid))}"
    return f"{path}: unknown {what}; {hint}"


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
    loc = tuple(error["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    if error["type"] == "extra_forbidden":
        parent = _model_at(AreaConfig, loc[:-1])
        valid = [f.alias or name for name, f in parent.model_fields.items()
                 if not f.exclude] if parent else []
        return _unknown_key_message(path, str(loc[-1]), valid)
    if error["type"] == "missing":
        hint = " (an OGR-readable file or URL)" if loc == ("districts", "path") else ""
        return f"{path}: required{hint}"
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("options."):  # from the plugin-options check, which knows the key below `imagery`
        return f"{path}.{message}"
    return f"{path}: {message}"


def _validate_area(data: dict[str, Any], source: Path, where: str = "") -> AreaConfig:
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


def _split_by_area_column(data: dict[str, Any], source: Path) -> list[dict[str, Any]]:
    """One area per distinct value of ``districts.area_column`` in the districts file."""
    from ingestion.vector import area_values  # reads the file; imported here to keep config light

    template = _validate_area(data, source)  # the file and the column names are valid before reading
    values = area_values(template.districts)
    wanted = template.districts.areas
    if wanted:
        if missing := sorted(set(wanted) - set(values)):
            raise ConfigError(f"{source}: districts.areas: {missing} not found in column "
                              f"{template.districts.area_column!r} of {template.districts.path}")
        values = [v for v in values if v in wanted]
    areas = []
    for value in values:
        districts = {**data["districts"], "area_value": value}
        areas.append({**data, "area": value, "districts": districts})
    return areas


def parse_config(raw: dict[str, Any], source: Path) -> PipelineConfig:
    """Validate a config mapping (one area, ``areas:``, or ``districts.area_column``); errors name ``source``,
    the key path and the problem."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, got {type(raw).__name__}")
    if "areas" in raw:
        entries = raw["areas"]
        if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
            raise ConfigError(f"{source}: areas: must be a non-empty list of area mappings")
        defaults = {k: v for k, v in raw.items() if k != "areas"}
        if "area" in defaults:
            raise ConfigError(f"{source}: area: set `area` inside each entry of `areas`, not at the top level")
        datas = [(_merged(defaults, e), f"areas[{i}].") for i, e in enumerate(entries)]
    else:
        datas = [({"area": source.stem, **raw}, "")]
    areas: list[AreaConfig] = []
    for data, where in datas:
        data = {**data, "source_file": source}
        if isinstance(data.get("districts"), dict) and data["districts"].get("area_column"):
            areas += [_validate_area(d, source, where) for d in _split_by_area_column(data, source)]
        else:
            areas.append(_validate_area(data, source, where))
    codes = [a.code for a in areas]
    if duplicates := sorted({c for c in codes if codes.count(c) > 1}):
        raise ConfigError(f"{source}: area codes must be unique; repeated: {', '.join(duplicates)}")
    return PipelineConfig(areas=tuple(areas), source_file=source)


def load_config(path: str | Path | None = None) -> PipelineConfig:
    """Read and validate a config file (default ``$NDVI_CONFIG`` or the demo config)."""
    path = Path(path or os.environ.get("NDVI_CONFIG") or DEFAULT_CONFIG).resolve()
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist (set NDVI_CONFIG)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, path)


def config_json_schema() -> dict[str, Any]:
    """The JSON schema of a config file, for editors (YAML language server, VS Code): one area at the top
    level, or ``areas`` (a list of areas) with top-level defaults."""
    schema = AreaConfig.model_json_schema(by_alias=True, mode="validation")
    schema["properties"].pop("source_file", None)
    schema["$defs"]["DistrictsConfig"]["properties"].pop("area_value", None)
    area = {k: schema.pop(k) for k in ("properties", "required", "additionalProperties", "description")}
    area["type"] = "object"
    area["title"] = "Area"
    schema["$defs"]["Area"] = area
    defaults = {**area, "required": [], "title": "Defaults for every area"}
    defaults["properties"] = {**area["properties"], "areas": {
        "type": "array", "minItems": 1, "items": {"$ref": "#/$defs/Area"},
        "description": "the areas; top-level keys are defaults each area may override"}}
    defaults["properties"].pop("area")
    schema["title"] = "NDVI pipeline config"
    schema["anyOf"] = [{"$ref": "#/$defs/Area"}, {**defaults, "required": ["areas"]}]
    schema.pop("type", None)
    return schema


def main() -> int:
    """``ndvi-config-schema``: print the config's JSON schema."""
    json.dump(config_json_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
