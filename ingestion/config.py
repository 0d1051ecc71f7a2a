"""The area configuration: one YAML file per area (districts, years, imagery, exports), validated up front.

Paths may use ``${NDVI_DATA_DIR}``, ``${NDVI_HOME}`` or any environment variable; relative paths are relative
to the config file. ``NDVI_CONFIG`` names the file Dagster loads (default: the demo config).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ingestion.imagery.masking import DEFAULT_MASKED_CLASSES, validate_classes
from ingestion.paths import PROJECT_ROOT, data_dir, project_home
from ingestion.sources.registry import available_sources

DEFAULT_CONFIG = PROJECT_ROOT / "dagster_project" / "configs" / "demo.yaml"
FIRST_SENTINEL2_YEAR = 2015
SCHEMES = ("FisherJenks", "NaturalBreaks", "Quantiles", "EqualInterval", "JenksCaspall")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the file, the field and the value."""


@dataclass(frozen=True)
class DistrictsConfig:
    path: str
    layer: str | None = None
    code_column: str = "district_code"
    name_column: str | None = "district_name"


@dataclass(frozen=True)
class ImageryConfig:
    source: str = "earth-search"
    options: dict[str, Any] = field(default_factory=dict)
    months: tuple[int, int] = (1, 12)
    cloud_cover_max: float = 5.0
    masked_scl_classes: frozenset[int] = DEFAULT_MASKED_CLASSES
    resolution: float = 10.0
    working_crs: str | None = None
    on_bad_item: str = "drop"


@dataclass(frozen=True)
class ExportConfig:
    decimals: int = 2
    scheme: str = "FisherJenks"
    k: int = 5
    colormap: str = "RdYlGn"
    #: Optional XYZ tile URL template for the web map's basemap (e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png)
    basemap_url: str | None = None


@dataclass(frozen=True)
class AreaConfig:
    """Everything the pipeline needs to know about one area."""

    name: str
    districts: DistrictsConfig
    years: tuple[int, ...]
    imagery: ImageryConfig
    exports: ExportConfig
    boundary: str | None = None
    output_dir: Path = field(default_factory=data_dir)
    source_file: Path | None = None


def validate_year(value: Any, where: str = "year") -> int:
    """An integer year between 2015 (Sentinel-2) and next year; anything else raises ConfigError."""
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise ConfigError(f"{where}: {value!r} is not a year (expected e.g. 2024)")
    year = int(value)
    last = dt.date.today().year + 1
    if not FIRST_SENTINEL2_YEAR <= year <= last:
        raise ConfigError(f"{where}: {year} is outside {FIRST_SENTINEL2_YEAR}..{last} (Sentinel-2 years)")
    return year


def validate_identifier(value: str, where: str) -> str:
    """A plain SQL-safe column or layer name (letters, digits, underscore)."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ConfigError(f"{where}: {value!r} is not a plain name (letters, digits, underscore)")
    return value


def _expand(value: str, base: Path) -> str:
    mapping = {"NDVI_DATA_DIR": str(data_dir()), "NDVI_HOME": str(project_home()), **os.environ}
    expanded = string.Template(value).safe_substitute(mapping)
    if "://" in expanded or expanded.startswith("/vsi"):
        return expanded
    path = Path(expanded).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def load_config(path: str | Path | None = None) -> AreaConfig:
    """Read and validate an area config (default ``$NDVI_CONFIG`` or the demo config)."""
    path = Path(path or os.environ.get("NDVI_CONFIG") or DEFAULT_CONFIG).resolve()
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist (set NDVI_CONFIG)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, path)


def parse_config(raw: dict[str, Any], source: Path) -> AreaConfig:
    """Validate a config mapping; errors name ``source`` and the field."""
    base = source.parent

    def fail(field_name: str, message: str) -> ConfigError:
        return ConfigError(f"{source}: {field_name}: {message}")

    known = {"area", "districts", "boundary", "years", "imagery", "exports", "output_dir"}
    if unknown := set(raw) - known:
        raise fail(", ".join(sorted(unknown)), f"unknown key(s); known: {', '.join(sorted(known))}")
    d = raw.get("districts") or {}
    if not isinstance(d, dict) or not d.get("path"):
        raise fail("districts.path", "required (an OGR-readable file or URL)")
    districts = DistrictsConfig(
        path=_expand(str(d["path"]), base), layer=d.get("layer"),
        code_column=str(d.get("code_column", "district_code")),
        name_column=d.get("name_column", "district_name"))
    years_raw = raw.get("years")
    if not isinstance(years_raw, list) or not years_raw:
        raise fail("years", f"must be a non-empty list of years, got {years_raw!r}")
    years = tuple(sorted({validate_year(y, f"{source}: years") for y in years_raw}))

    im = raw.get("imagery") or {}
    source_name = im.get("source", "earth-search")
    if source_name not in available_sources():
        raise fail("imagery.source", f"unknown plugin {source_name!r}; installed: {', '.join(available_sources())}")
    cloud = im.get("cloud_cover_max", 5.0)
    if isinstance(cloud, bool) or not isinstance(cloud, int | float) or not 0 < cloud <= 100:
        raise fail("imagery.cloud_cover_max", f"must be a number in (0, 100] percent, got {cloud!r}")
    months = tuple(im.get("months", (1, 12)))
    if len(months) != 2 or not all(isinstance(m, int) for m in months) or not 1 <= months[0] <= months[1] <= 12:
        raise fail("imagery.months", f"must be [first, last] with 1 <= first <= last <= 12, got {months!r}")
    try:
        masked = validate_classes(im.get("masked_scl_classes", sorted(DEFAULT_MASKED_CLASSES)))
    except ValueError as exc:
        raise fail("imagery.masked_scl_classes", str(exc)) from None
    resolution = im.get("resolution", 10.0)
    if not isinstance(resolution, int | float) or resolution <= 0:
        raise fail("imagery.resolution", f"must be a positive number of metres, got {resolution!r}")
    on_bad = im.get("on_bad_item", "drop")
    if on_bad not in ("drop", "fail"):
        raise fail("imagery.on_bad_item", f"must be 'drop' or 'fail', got {on_bad!r}")
    options = {k: (_expand(v, base) if k.endswith("_path") and isinstance(v, str) else v)
               for k, v in (im.get("options") or {}).items()}
    imagery = ImageryConfig(source=source_name, options=options, months=months, cloud_cover_max=float(cloud),
                            masked_scl_classes=masked, resolution=float(resolution),
                            working_crs=im.get("working_crs"), on_bad_item=on_bad)

    ex = raw.get("exports") or {}
    decimals, k, scheme = ex.get("decimals", 2), ex.get("k", 5), ex.get("scheme", "FisherJenks")
    if not isinstance(decimals, int) or not 0 <= decimals <= 8:
        raise fail("exports.decimals", f"must be an integer 0..8, got {decimals!r}")
    if not isinstance(k, int) or not 2 <= k <= 12:
        raise fail("exports.k", f"must be an integer 2..12, got {k!r}")
    if scheme not in SCHEMES:
        raise fail("exports.scheme", f"must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    basemap_url = ex.get("basemap_url")
    if basemap_url is not None and not (isinstance(basemap_url, str) and basemap_url.startswith(("https://", "http://"))
                                        and all(p in basemap_url for p in ("{z}", "{x}", "{y}"))):
        raise fail("exports.basemap_url", f"must be an http(s) URL with {{z}}, {{x}}, {{y}}, got {basemap_url!r}")
    exports = ExportConfig(decimals=decimals, scheme=scheme, k=k, colormap=str(ex.get("colormap", "RdYlGn")),
                           basemap_url=basemap_url)
    name = str(raw.get("area", source.stem))
    output_dir = Path(_expand(str(raw["output_dir"]), base)) if raw.get("output_dir") else data_dir()
    boundary = _expand(str(raw["boundary"]), base) if raw.get("boundary") else None
    return AreaConfig(name=name, districts=districts, years=years, imagery=imagery, exports=exports,
                      boundary=boundary, output_dir=output_dir, source_file=source)
