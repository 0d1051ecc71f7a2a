"""The area config this code location serves (``NDVI_CONFIG``, default the demo) and its year partitions."""

from __future__ import annotations

import dagster as dg

from ingestion.config import AreaConfig, load_config

AREA: AreaConfig = load_config()

#: One partition per configured year; the key reaches dbt as --vars '{"year": <key>}'.
year_partitions = dg.StaticPartitionsDefinition([str(y) for y in AREA.years])
