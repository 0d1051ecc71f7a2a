"""Plain-Python building blocks of the NDVI pipeline (no Dagster imports).

Sub-packages: ``db`` (connections, embedded PostGIS), ``sources`` (imagery plugins), ``imagery``
(radiometry, masking, compositing), ``vector`` (districts and boundaries), ``load`` (PostGIS loading),
``export`` (GeoJSON and map breaks), ``sample`` (synthetic demo data).
"""
