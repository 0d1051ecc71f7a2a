{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='year',
    on_schema_change='fail',
    post_hook=[
      "create index if not exists {{ this.name }}_hull_gix on {{ this }} using gist (st_convexhull(rast))",
      "create index if not exists {{ this.name }}_year_idx on {{ this }} (year)",
      "analyze {{ this }}"
    ]
  )
}}

{%- set tile_size = zonal_tile_size() | trim %}

-- Composite rasters cut into small tiles so each district touches only the tiles it overlaps
-- (the GIST index on the tile hull makes that a fast index join). One run processes one year
-- (var `year`) or every year in raw.ndvi_composites.
with composites_of_run as (

    select year, rid, rast
    from {{ source('raw', 'ndvi_composites') }}
    {{ year_filter('year') }}

),

tiles as (

    select
        composites_of_run.year,
        composites_of_run.rid,
        tile.n as tile_number,
        tile.rast
    from composites_of_run
    cross join lateral st_tile(
        composites_of_run.rast, {{ tile_size }}, {{ tile_size }}
    ) with ordinality as tile(rast, n)

)

select
    year,
    (rid::bigint * 1000000 + tile_number)::bigint as tile_id,
    rast
from tiles
