"""Imagery source plugins: find Sentinel-2 L2A items for an area and a date window.

A plugin is a subclass of :class:`ingestion.sources.base.ImagerySource` registered under the entry-point
group ``ndvi_pipeline.imagery_sources``; :func:`ingestion.sources.registry.load_source` picks it by name.
"""
