{#-
  Session settings for the zonal statistics: no NOTICE flood from ST_SummaryStats on tiles whose pixels are all
  nodata once masked. (Parallel-plan settings were dropped: the model's LATERAL plan never goes parallel, and a
  parallel join measured slower because ST_SummaryStatsAgg, having no combine function, still runs in the leader.)
-#}
{% macro zonal_session_settings() -%}
    set client_min_messages = warning
{%- endmacro %}

{#-
  For models that write big values (rasters, mask arrays): compress them with lz4 instead of PostgreSQL's default
  pglz, for this model's transaction only, when the server was built with lz4 (else nothing changes). NDVI
  pixels are float32 that pglz cannot shrink: it spent most of its time trying and gave up, keeping the values
  as they were. Measured on 36 Mpx (one area of 14,000 districts): stg_ndvi_tiles 3.5 -> 1.2 s, the same size;
  district_tile_masks -0.7 s; reading the tiles back 1.0 -> 0.85 s. ingestion/load/postgis.py does the same
  for raw.ndvi_composites.
-#}
{% macro lz4_toast_compression() -%}
    select set_config('default_toast_compression', 'lz4', true)
    from pg_settings
    where name = 'default_toast_compression' and 'lz4' = any(enumvals)
{%- endmacro %}

{#-
  For district_tile_masks: let PostgreSQL rasterise the districts in parallel workers, for this model's
  transaction only. With the planner's defaults (starting a worker costs 1,000, a row passed back 0.1) ST_Clip
  and ST_Tile look nearly free, and the plan stayed serial: one core rasterised 14,000 districts in 7.1 s while
  the other waited. With these the workers do it in 3.9 s, the same rows (max_parallel_workers_per_gather,
  2 by default, still caps the workers). extra_float_digits >= 1 makes float8 text exact (the model passes
  the tile grids to the workers as jsonb).
-#}
{% macro parallel_rasterisation() -%}
    select
        set_config('parallel_setup_cost', '0', true),
        set_config('parallel_tuple_cost', '0', true),
        set_config('min_parallel_table_scan_size', '0', true),
        set_config('extra_float_digits', '1', true)
{%- endmacro %}
