{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['area_code', 'year'],
    on_schema_change='append_new_columns',
    pre_hook=lz4_toast_compression(),
    post_hook=[
      "create index if not exists {{ this.name }}_hull_gix on {{ this }} using gist (st_convexhull(rast))",
      "create index if not exists {{ this.name }}_area_year_idx on {{ this }} (area_code, year)",
      "create index if not exists {{ this.name }}_cell_idx on {{ this }} (area_code, year, st_xmin(st_envelope(rast)), st_ymax(st_envelope(rast)))",
      "analyze {{ this }} (area_code, year, tile_id, rast, composite_loaded_at, tile_size)"
    ]
  )
}}

-- Composite rasters cut into small tiles so each district touches only the tiles it overlaps (the GIST
-- index on the tile hull makes that a fast index join; ndvi_stats_yearly finds a mask's tile by the btree
-- `cell_idx` on the tile's corner, cheaper per lookup than the GiST `~=`). A run tiles every area-year whose
-- composite was loaded since it was last tiled (`loaded_at`), or that was tiled at another size than its area's
-- now, so neither Dagster nor a plain `dbt build` passes the area or the year: no `--vars`, hence no full
-- re-parse of the project per partition.
--
-- ANALYZE names the columns, which leaves out the indexes' expressions over the raster (PostgreSQL analyzes
-- index expressions only without a column list): it would detoast every sampled tile to evaluate them, 0.4 s
-- of the 36 Mpx national area's 35,000 tiles against 0.01 s for the columns, and no query filters on their
-- values (the corner lookups are by equality with a mask's cell). Autovacuum may still sample them later.
{#- tables built before `tile_size` was stored get the column from on_schema_change; until then, treat their
    tiles' size as unknown, so that they are tiled once more -#}
{%- set tiled_size = 'tile_size' if is_incremental()
    and 'tile_size' in (adapter.get_columns_in_relation(this) | map(attribute='name') | list) else 'null::integer' %}
with composites as (

    select area_code, year, rid, rast, loaded_at
    from {{ source('raw', 'ndvi_composites') }}

),

composite_loads as (

    select area_code, year, max(loaded_at) as loaded_at
    from composites
    group by area_code, year

),

area_tile_sizes as (

    -- one tile size per area, for all its years, from that area's districts only (macro zonal_tile_sizes)
    {{ zonal_tile_sizes() | indent(4) }}

),

loads_to_tile as (

    -- the area-years loaded since they were last tiled, and those tiled at another size than their area's now
    -- (`tile_size: auto` chooses anew after a re-districting): every year of an area is tiled at one size, the
    -- size district_tile_masks finds its masks at (its pre-hook deletes the masks of another)
    select composite_loads.area_code, composite_loads.year, composite_loads.loaded_at
    from composite_loads
    {% if is_incremental() %}
    inner join area_tile_sizes
        on area_tile_sizes.area_code = composite_loads.area_code
    left join (
        select area_code, year, max(composite_loaded_at) as loaded_at, max({{ tiled_size }}) as tile_size
        from {{ this }}
        group by area_code, year
    ) as tiled
        on tiled.area_code = composite_loads.area_code and tiled.year = composite_loads.year
    where tiled.loaded_at is distinct from composite_loads.loaded_at
        or tiled.tile_size is distinct from area_tile_sizes.tile_size
    {% endif %}

),

tiles as (

    select
        composites.area_code,
        composites.year,
        composites.rid,
        loads_to_tile.loaded_at,
        area_tile_sizes.tile_size,
        tile.n as tile_number,
        tile.rast
    from composites
    inner join loads_to_tile
        on loads_to_tile.area_code = composites.area_code and loads_to_tile.year = composites.year
    inner join area_tile_sizes
        on area_tile_sizes.area_code = composites.area_code
    cross join lateral st_tile(
        composites.rast, area_tile_sizes.tile_size, area_tile_sizes.tile_size
    ) with ordinality as tile(rast, n)

)

select
    area_code::text as area_code,
    year::integer as year,
    (rid::bigint * 1000000 + tile_number)::bigint as tile_id,
    rast,
    loaded_at::timestamptz as composite_loaded_at,
    tile_size::integer as tile_size
from tiles
