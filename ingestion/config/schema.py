"""The configuration schema: what a config file may say, as declarative pydantic models.

Constraints are stated on the fields (``Literal``, ``Field(ge=..., le=..., multiple_of=..., pattern=...)``,
``strict`` numbers so that ``true`` is no number); validators remain only for what a field constraint cannot
say: plugin names and options (installed plugins), SCL class names, Sentinel-2 years (up to next year), the
order of a month window and the green-share thresholds' SQL histogram. ``extra="forbid"`` at every depth.

Reading a file (YAML, defaults, one districts file split into areas) is :mod:`ingestion.config.loading`.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)

from ingestion.config.errors import ConfigError, unknown_key_message
from ingestion.config.expand import ConfigPath, base_folder, expand
from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES, validate_classes
from ingestion.paths import data_dir
from ingestion.sources.registry import available_sources, source_class
from ingestion.years import validate_year

SCHEMES = ("FisherJenks", "NaturalBreaks", "Quantiles", "EqualInterval", "JenksCaspall")
AREA_CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
INDICATOR_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
URL_PATTERN = r"^[a-z][a-z0-9+.-]*://"
HTTP_PATTERN = r"^https?://"
GDAL_OPTION_PATTERN = r"^[A-Z][A-Z0-9_]*$"
#: What each ``pattern`` constraint means, for error messages.
PATTERN_MEANINGS = {
    AREA_CODE_PATTERN: "must be an area code: letters, digits, '_' or '-', at most 63",
    INDICATOR_NAME_PATTERN: "must be lower-case letters, digits or '_', starting with a letter (at most 40)",
    URL_PATTERN: "must be an address like tcp://host:8786",
    HTTP_PATTERN: "must be an http(s) URL",
    GDAL_OPTION_PATTERN: "must be a GDAL option name in upper case (e.g. GDAL_HTTP_MAX_RETRY)",
}


def _year(value: Any) -> int:
    return validate_year(value, "year")  # InvalidYearError is a ValueError: pydantic reports it at its key


def _scl_classes(value: Any) -> frozenset[int]:
    if not isinstance(value, list | tuple | set | frozenset):
        raise ValueError(f"must be a list of SCL class ids or names, got {value!r}")
    return validate_classes(value)


def _known_source(value: str) -> str:
    if value not in available_sources():
        raise ValueError(f"unknown plugin {value!r}; installed: {', '.join(available_sources())}")
    return value


def _ordered_window(value: tuple[int, int]) -> tuple[int, int]:
    if value[0] > value[1]:
        raise ValueError(f"must be [first, last] with first <= last, got {list(value)}")
    return value


def _basemap(value: str | None) -> str | None:
    if value is not None and not all(p in value for p in ("{z}", "{x}", "{y}")):
        raise ValueError(f"must contain {{z}}, {{x}} and {{y}}, got {value!r}")
    return value


#: A Sentinel-2 year: 2015..next year (the bound moves with the date, so it is not a static constraint).
Year = Annotated[int, BeforeValidator(_year)]
Month = Annotated[StrictInt, Field(ge=1, le=12)]
#: A number given as an int or a float (never a bool or a string), kept as a float.
Number = Annotated[StrictInt | StrictFloat, AfterValidator(float)]
PluginName = Annotated[str, AfterValidator(_known_source)]
SclClasses = Annotated[frozenset[int], BeforeValidator(_scl_classes)]


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

    source: PluginName = Field("earth-search", description="imagery plugin name (earth-search, local-stac, ...)")
    options: dict[str, Any] = Field(default_factory=dict, description="constructor arguments of the plugin")
    months: Annotated[tuple[Month, Month], AfterValidator(_ordered_window)] = Field(
        (1, 12), description="first and last month of the window (inclusive)")
    cloud_cover_max: Number = Field(5.0, gt=0, le=100,
                                    description="keep items with eo:cloud_cover strictly below this (%)")
    masked_scl_classes: SclClasses = Field(DEFAULT_MASKED_CLASSES,
                                           description="SCL classes dropped per pixel (ids or names)")
    resolution: Number = Field(10.0, gt=0, description="pixel size of the common grid, metres")
    working_crs: str | None = Field(None, description="projected CRS of the grid; default the districts' CRS")
    on_bad_item: Literal["drop", "fail"] = Field("drop", description="drop (and log) or fail on a bad item")

    @model_validator(mode="after")
    def _plugin_options(self, info: ValidationInfo) -> ImageryConfig:
        """Options are checked against the plugin's constructor; ``*_path`` options are expanded like paths."""
        accepted = _constructor_arguments(self.source)
        for key in self.options:
            if accepted is not None and key not in accepted:
                raise ValueError(unknown_key_message(f"options.{key}", key, accepted,
                                                     what=f"option of plugin {self.source!r}"))
        base = base_folder(info)
        expanded = {k: (expand(v, base) if k.endswith("_path") and isinstance(v, str) else v)
                    for k, v in self.options.items()}
        object.__setattr__(self, "options", expanded)
        return self


class ExportConfig(_Section):
    """Rounding and map classification of the exported layers."""

    decimals: StrictInt = Field(2, ge=0, le=8, description="decimals of NDVI statistics in GeoJSON (0..8)")
    scheme: Literal[SCHEMES] = Field("FisherJenks", description="mapclassify scheme")  # type: ignore[valid-type]
    k: StrictInt = Field(5, ge=2, le=12, description="number of classes (2..12)")
    colormap: str = Field("RdYlGn", description="matplotlib colormap for the class colours")
    basemap_url: Annotated[str | None, AfterValidator(_basemap)] = Field(
        None, pattern=HTTP_PATTERN, description="XYZ tile URL template for the web map's basemap, e.g. "
                                                 "https://tile.openstreetmap.org/{z}/{x}/{y}.png; default none")


class ComputeConfig(_Section):
    """Where and how the composite runs: a Dask scheduler (else local threads), block size, GDAL read options."""

    dask_scheduler: str | None = Field(None, pattern=URL_PATTERN,
                                       description="Dask scheduler address (tcp://host:8786); default "
                                                   "$DASK_SCHEDULER_ADDRESS, else local threads")
    chunk_size: StrictInt = Field(1024, ge=256, multiple_of=256,
                                  description="block size of the composite in pixels (a multiple of 256)")
    io_concurrency: StrictInt = Field(16, ge=1, le=256, description="COG reads in flight per process (the items "
                                                                    "and bands of a block, and the offset check, "
                                                                    "at once)")
    area_years_at_once: StrictInt = Field(2, ge=1, le=16,
                                          description="area-years a batch composites at once in one process, "
                                                      "and areas whose latest layers it exports at once (a batch "
                                                      "takes the smallest value of its areas); the composites' "
                                                      "reads share the io_concurrency pool")
    gdal_options: dict[Annotated[str, Field(pattern=GDAL_OPTION_PATTERN)], Any] = Field(
        default_factory=dict, description="GDAL config options over the cloud defaults (upper-case names, e.g. "
                                          "GDAL_HTTP_MAX_RETRY)")


class GreenThreshold(_Section):
    """One green-share class: the share of a district's valid pixels with NDVI >= ``ndvi``."""

    name: str = Field(pattern=INDICATOR_NAME_PATTERN,
                      description="identifier used in column and GeoJSON field names (green_share_<name>): "
                                  "lower-case letters, digits and '_', starting with a letter")
    label: str | None = Field(None, description="human-readable label for the map legend; default the name "
                                                "with spaces")
    ndvi: Number = Field(
        ge=-1, le=1, description="NDVI threshold (-1..1); a pixel counts when its NDVI >= this value")

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
    baseline_year: Year | None = Field(None, description="year the change models compare against (one of the "
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


def _expand_output_dir(value: Any, info: ValidationInfo) -> Any:
    return Path(expand(str(value), base_folder(info))) if value else data_dir()


class AreaConfig(_Section):
    """Everything the pipeline needs to know about one area."""

    name: str = Field("area", alias="area", pattern=AREA_CODE_PATTERN,
                      description="the area's code (letters, digits, '_' or '-', at most 63): a partition key, "
                                  "a folder name under output_dir and raw.*.area_code; default the file name")
    districts: DistrictsConfig
    years: Annotated[tuple[Year, ...], AfterValidator(lambda v: tuple(sorted(set(v))))] = Field(
        min_length=1, description="the year partitions (2015..next year)")
    imagery: ImageryConfig = Field(default_factory=ImageryConfig)
    exports: ExportConfig = Field(default_factory=ExportConfig)
    boundary: ConfigPath | None = Field(None, description="boundary file for the search and grid; default the "
                                                          "union of the districts")
    output_dir: Annotated[Path, BeforeValidator(_expand_output_dir)] = Field(
        default_factory=data_dir, description="where outputs go; default $NDVI_DATA_DIR")
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    statistics: StatisticsConfig = Field(default_factory=StatisticsConfig)
    source_file: Path | None = Field(None, exclude=True, description="the file this config was read from")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

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
