"""Dagster wiring of the NDVI pipeline: thin assets that call into ``ingestion``."""
