{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook=[
      "{% if is_incremental() %}delete from {{ this }} where districts_fingerprint <> {{ districts_fingerprint(source('raw', 'districts')) }}{% endif %}"
    ],
    post_hook=[
      "create index if not exists {{ this.name }}_district_idx on {{ this }} (district_code)",
      "create index if not exists {{ this.name }}_cell_idx on {{ this }} using gist (cell)",
      "analyze {{ this }}"
    ]
  )
}}

-- Which pixels of each tile belong to each district, computed once per districts version and reused by
-- every year (the grid is the same for all years of an area), so the yearly model never touches a district
-- polygon. Why: ST_Clip(tile, district) costs, per call, a GEOS intersection of the whole district with the
-- tile and a GDAL rasterisation, and then ~100 ns per pixel and band in PostGIS's generic raster iterator;
-- on real boundaries (Enschede: 2,308 vertices) and many small districts (L: 2,000) it was 60-80 % of the
-- model's time. Here each (tile cell, district) pair gets the same pixel-centre rasterisation ST_Clip does
-- (it is made by ST_Clip, on a one-band raster of the tile's grid), stored as a mask array that
-- ndvi_stats_yearly applies with ST_SetValues (a plain loop: masking became ~free, measured). Tiles lying
-- wholly inside a district need no mask at all.
--
-- Incremental: rows carry the fingerprint of the districts they were built from; a pre-hook deletes them
-- when the districts change, and each run adds only tile cells not seen yet (a new year on the same grid
-- adds nothing).
with districts as (

    select district_code, geometry
    from {{ source('raw', 'districts') }}

),

tile_cells as (

    select distinct on (st_envelope(rast))
        st_envelope(rast) as cell,
        st_addband(st_makeemptyraster(rast), '8BUI'::text, 1, 0) as cell_grid
    from {{ ref('stg_ndvi_tiles') }}
    {% if is_incremental() %}
    where not exists (
        select 1 from {{ this }} as built where built.cell = st_envelope(rast)
    )
    {% endif %}
    order by st_envelope(rast)

),

district_cells as (

    select
        districts.district_code,
        tile_cells.cell,
        tile_cells.cell_grid,
        districts.geometry,
        st_covers(districts.geometry, tile_cells.cell) as covers_cell
    from tile_cells
    inner join districts
        on st_intersects(tile_cells.cell, districts.geometry)

),

district_cell_grids as (

    -- 1 where the pixel centre lies in the district, nodata elsewhere (ST_Clip's own rule)
    select
        district_code,
        cell,
        covers_cell,
        case when not covers_cell then st_clip(cell_grid, geometry, false) end as inside_grid
    from district_cells

),

masks as (

    select
        district_code,
        cell,
        covers_cell,
        case when not covers_cell then st_dumpvalues(inside_grid, 1) end as pixel_mask,
        case when covers_cell then 1 else st_count(inside_grid, 1, true) end as inside_pixels
    from district_cell_grids

)

select
    district_code::text as district_code,
    cell::geometry as cell,
    covers_cell::boolean as covers_cell,
    pixel_mask::double precision[] as pixel_mask,
    {{ districts_fingerprint(source('raw', 'districts')) }}::text as districts_fingerprint
from masks
where inside_pixels > 0
