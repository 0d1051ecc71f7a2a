{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook=[
      "{% if is_incremental() %}delete from {{ this }} as built where not exists (select from {{ ref('stg_districts') }} as d where d.area_code = built.area_code and d.districts_version = built.districts_version){% endif %}"
    ],
    post_hook=[
      "create index if not exists {{ this.name }}_district_order_idx on {{ this }} (area_code, district_code, st_xmin(cell), st_ymax(cell))",
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
-- Every pixel counts for exactly one district (where districts do not overlap): a mask is rasterised from the
-- polygonal part of district ∩ tile only. Why: ST_Clip rasterises whatever the intersection with the tile is,
-- and where a district only touches a tile (its edge on the tile's left or top edge, or a corner) that is a
-- line or a point, which GDAL burns as a full column or row of pixels belonging to the neighbour; a district
-- that overlaps a tile and also runs along one of its edges gives a polygon plus such a line (measured on
-- PostGIS 3.3.2: 22 pixels instead of 16 on an 8 x 8 tile). With the polygons alone, ST_Clip's pixel-centre
-- rule holds, and a district that only touches a tile gets no mask for it.
--
-- Incremental: rows carry the area's `districts_version` they were built for; a pre-hook deletes an area's
-- rows when its districts change, and each run adds only tile cells of an area not seen yet (a new year on
-- the same grid adds nothing).
with districts as (

    select area_code, district_code, geometry, districts_version
    from {{ ref('stg_districts') }}

),

tile_cells as (

    select distinct on (tiles.area_code, st_envelope(tiles.rast))
        tiles.area_code,
        st_envelope(tiles.rast) as cell,
        st_addband(st_makeemptyraster(tiles.rast), '8BUI'::text, 1, 0) as cell_grid
    from {{ ref('stg_ndvi_tiles') }} as tiles
    {% if is_incremental() %}
    where not exists (
        select from {{ this }} as built
        where built.area_code = tiles.area_code and built.cell = st_envelope(tiles.rast)
    )
    {% endif %}
    order by tiles.area_code, st_envelope(tiles.rast)

),

district_cells as (

    select
        districts.area_code,
        districts.district_code,
        districts.districts_version,
        tile_cells.cell,
        tile_cells.cell_grid,
        districts.geometry,
        st_covers(districts.geometry, tile_cells.cell) as covers_cell
    from tile_cells
    inner join districts
        on districts.area_code = tile_cells.area_code
        and st_intersects(tile_cells.cell, districts.geometry)

),

district_cell_interiors as (

    -- the district's area within the tile: lines and points where it only touches the tile are dropped
    -- (ST_Intersection returns them beside the polygons); empty when the district only touches the tile
    select
        area_code,
        district_code,
        districts_version,
        cell,
        cell_grid,
        covers_cell,
        case
            when not covers_cell then st_collectionextract(st_intersection(geometry, cell), 3)
        end as inside_area
    from district_cells

),

district_cell_grids as (

    -- 1 where the pixel centre lies in the district's area, nodata elsewhere (ST_Clip's own rule)
    select
        area_code,
        district_code,
        districts_version,
        cell,
        covers_cell,
        case when not covers_cell then st_clip(cell_grid, inside_area, false) end as inside_grid
    from district_cell_interiors
    -- ST_Clip of an empty geometry fails (and would give no pixel anyway)
    where covers_cell or not st_isempty(inside_area)

),

masks as (

    select
        area_code,
        district_code,
        districts_version,
        cell,
        covers_cell,
        case when not covers_cell then st_dumpvalues(inside_grid, 1) end as pixel_mask,
        case when covers_cell then 1 else st_count(inside_grid, 1, true) end as inside_pixels
    from district_cell_grids

)

select
    area_code::text as area_code,
    district_code::text as district_code,
    cell::geometry as cell,
    covers_cell::boolean as covers_cell,
    pixel_mask::double precision[] as pixel_mask,
    districts_version::text as districts_version
from masks
where inside_pixels > 0
