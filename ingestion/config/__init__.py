"""The pipeline configuration: the schema (:mod:`.schema`, declarative pydantic) and its loading
(:mod:`.loading`: YAML, defaults, areas of a split districts file, error messages). Loading reads the config
file and nothing else; the districts file is read by ``ndvi-pipeline areas`` (:mod:`ingestion.areas`)."""

from ingestion.config.errors import ConfigError
from ingestion.config.json_schema import config_json_schema
from ingestion.config.loading import DEFAULT_CONFIG, load_config, parse_config
from ingestion.config.schema import (
    DEFAULT_GREEN_THRESHOLDS,
    AreaConfig,
    ComputeConfig,
    DistrictsConfig,
    ExportConfig,
    GreenThreshold,
    ImageryConfig,
    PipelineConfig,
    StatisticsConfig,
)

__all__ = ["DEFAULT_CONFIG", "DEFAULT_GREEN_THRESHOLDS", "AreaConfig", "ComputeConfig", "ConfigError",
           "DistrictsConfig", "ExportConfig", "GreenThreshold", "ImageryConfig", "PipelineConfig",
           "StatisticsConfig", "config_json_schema", "load_config", "parse_config"]
