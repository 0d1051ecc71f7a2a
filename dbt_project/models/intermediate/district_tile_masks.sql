{{
  config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='fail',
    pre_hook=[
      lz4_toast_compression(),
      parallel_rasterisation(),
      "{% if is_incremental() %}delete from {{ this }} as built where not exists (select from {{ ref('stg_districts') }} as d where d.area_code = built.area_code and d.districts_version = built.districts_version){% endif %}",
      "{% if is_incremental() %}{{ delete_masks_of_another_tile_size() }}{% endif %}"
    ],
    post_hook=[
      "create index if not exists {{ this.name }}_district_order_idx on {{ this }} (area_code, district_code, st_xmin(cell), st_ymax(cell))",
      "create index if not exists {{ this.name }}_cell_idx on {{ this }} using gist (cell)",
      "alter table {{ this }} alter column pixel_mask set statistics 0",
      "analyze {{ this }}"
    ]
  )
}}

-- Which pixels of each tile belong to each district, computed once per districts version and tile cell and
-- reused by every year (the years of an area share their grid), so the yearly model never touches a district
-- polygon: ndvi_stats_yearly applies the mask with ST_SetValues (a plain loop, ~free), or takes a tile whole
-- where every pixel centre lies in the district.
--
-- Every pixel counts for exactly one district (where districts do not overlap), by the pixel-centre rule:
-- each district is rasterised ONCE per grid, as a polygon, on the span of whole tiles it overlaps (ST_Clip of a
-- one-band raster of that span: GDAL's pixel-centre rasterisation, the rule numpy/rasterio use), and each tile's
-- mask is a slice of that array. Why:
--   * rasterising the polygon itself, never its intersection with a tile, leaves no line or point to burn:
--     ST_Clip(tile, district) rasterised whatever district ∩ tile was, and where a district only touches a tile
--     (its edge on the tile's edge) that is a line, which GDAL burns as a full row of the neighbour's pixels
--     (issue 21: 11,242 pixels counted twice in a province). A district touching a tile gets no pixel of it.
--   * one GEOS intersection and one GDAL rasterisation per district instead of per district-tile pair, and no
--     polygon per pair at all: candidate tiles come from the district's bounding box on the area's regular
--     tile grid (arithmetic, not a spatial join), a tile's mask is an array slice, and its pixel count is
--     counted from the slice. Time proportional to the district-tile pairs (issue 21: 14,000 districts,
--     100,000 pairs).
--
-- The masks themselves get no statistics (`set statistics 0`): no query filters on them, and ANALYZE of the
-- arrays took 0.5 s of the national area's 0.6 s.
--
-- Incremental: rows carry the area's `districts_version` they were built for; pre-hooks delete an area's
-- rows when its districts change or its tiles were cut at another size (stg_ndvi_tiles cuts every year of an
-- area at one size), and each run adds only tile cells of an area not seen yet (a new year on the same grid
-- adds nothing).
with districts as (

    select area_code, district_code, geometry, districts_version
    from {{ ref('stg_districts') }}

),

tiles as (

    -- every tile's cell (its envelope) and corners, metres in the area's CRS
    select
        area_code,
        year,
        st_envelope(rast) as cell,
        st_xmin(st_envelope(rast)) as cell_xmin,
        st_ymax(st_envelope(rast)) as cell_ymax,
        st_xmax(st_envelope(rast)) as cell_xmax,
        st_ymin(st_envelope(rast)) as cell_ymin,
        st_width(rast) as cell_width,
        st_height(rast) as cell_height,
        st_scalex(rast) as scale_x,
        st_scaley(rast) as scale_y,
        st_srid(rast) as srid
    from {{ ref('stg_ndvi_tiles') }}

),

year_grids as (

    -- the tile grid of each area-year: its upper-left corner and extent, the tile step (the largest tile: edge
    -- tiles may be smaller) and the pixel size. The years of an area share one grid unless its AOI moved (a
    -- re-districting: the composites made since then lie on a grid of another origin or extent, the earlier
    -- ones keep theirs), so grids are numbered per area, and a cell is masked on its own grid
    select
        area_code,
        year,
        min(cell_xmin) as grid_xmin,
        max(cell_ymax) as grid_ymax,
        max(cell_xmax) as grid_xmax,
        min(cell_ymin) as grid_ymin,
        max(cell_width) as tile_width,
        max(cell_height) as tile_height,
        max(cell_width) * min(scale_x) as step_x,
        max(cell_height) * min(abs(scale_y)) as step_y,
        min(scale_x) as scale_x,
        min(scale_y) as scale_y,
        min(srid) as srid,
        dense_rank() over (
            partition by area_code
            order by min(cell_xmin), max(cell_ymax), max(cell_xmax), min(cell_ymin), max(cell_width),
                max(cell_height)
        ) as grid_number
    from tiles
    group by area_code, year

),

tile_cells as (

    -- every tile cell of an area (one per position, whatever the years), on the first grid that has it (a
    -- cell's mask depends on the cell alone), with its column and row on that grid
    select distinct on (tiles.area_code, tiles.cell)
        tiles.area_code,
        tiles.cell,
        tiles.cell_width,
        tiles.cell_height,
        year_grids.grid_number,
        round((tiles.cell_xmin - year_grids.grid_xmin) / year_grids.step_x)::int as tile_column,
        round((year_grids.grid_ymax - tiles.cell_ymax) / year_grids.step_y)::int as tile_row
    from tiles
    inner join year_grids
        on year_grids.area_code = tiles.area_code and year_grids.year = tiles.year
    order by tiles.area_code, tiles.cell, year_grids.grid_number

),

new_cells as (

    -- the tile cells not masked yet
    select tile_cells.*
    from tile_cells
    {% if is_incremental() %}
    where not exists (
        select from {{ this }} as built
        where built.area_code = tile_cells.area_code and built.cell = tile_cells.cell
    )
    {% endif %}

),

grids_with_new_cells as (

    -- the grids of the new cells, one row per area and grid number, as rows a parallel worker can read. The
    -- districts are rasterised in parallel workers (pre-hook parallel_rasterisation), which cannot read a CTE's
    -- rows: joined to a CTE, the rasterisation ran in the leader alone. So the grids travel as one jsonb value,
    -- made once before the workers start, and each worker expands it. Floats go through jsonb exactly
    -- (extra_float_digits >= 1, set by the pre-hook: the shortest text that reads back as the same double).
    select grids.*
    from jsonb_to_recordset((
        select jsonb_agg(year_grids)
        from (
            select distinct on (area_code, grid_number) *
            from year_grids
            order by area_code, grid_number
        ) as year_grids
        where exists (
            select from new_cells
            where new_cells.area_code = year_grids.area_code and new_cells.grid_number = year_grids.grid_number
        )
    )) as grids (
        area_code text,
        grid_number bigint,
        grid_xmin double precision,
        grid_ymax double precision,
        grid_xmax double precision,
        grid_ymin double precision,
        tile_width integer,
        tile_height integer,
        step_x double precision,
        step_y double precision,
        scale_x double precision,
        scale_y double precision,
        srid integer
    )

),

district_tile_ranges as (

    -- per district and grid of its area with new cells: the columns and rows of the grid's tiles that the
    -- district's bounding box overlaps
    select
        districts.area_code,
        districts.district_code,
        districts.districts_version,
        districts.geometry,
        grids.grid_number,
        grids.grid_xmin,
        grids.grid_ymax,
        grids.grid_xmax,
        grids.grid_ymin,
        grids.tile_width,
        grids.tile_height,
        grids.step_x,
        grids.step_y,
        grids.scale_x,
        grids.scale_y,
        grids.srid,
        greatest(floor((st_xmin(districts.geometry) - grids.grid_xmin) / grids.step_x), 0)::int
            as first_column,
        floor((st_xmax(districts.geometry) - grids.grid_xmin) / grids.step_x)::int as last_column,
        greatest(floor((grids.grid_ymax - st_ymax(districts.geometry)) / grids.step_y), 0)::int
            as first_row,
        floor((grids.grid_ymax - st_ymin(districts.geometry)) / grids.step_y)::int as last_row
    from districts
    inner join grids_with_new_cells as grids
        on grids.area_code = districts.area_code

),

district_span_tiles as (

    -- the district rasterised once per grid, as a polygon, on the span of its candidate tiles (clipped to the
    -- grid's extent, so that its edge tiles are as narrow as the grid's): 1 where the pixel centre lies in the
    -- polygon, 0 (nodata) elsewhere; then cut into the grid's tiles (the span starts on a tile corner). ST_Tile is called
    -- in the select list, not in a LATERAL: a LATERAL subquery's reference to its outer row is a parameter that
    -- keeps the plan in the leader, and the rasterisation is what the workers are for
    select
        spans.area_code,
        spans.district_code,
        spans.districts_version,
        spans.grid_number,
        spans.grid_xmin,
        spans.grid_ymax,
        spans.step_x,
        spans.step_y,
        st_tile(
            st_clip(
                st_addband(
                    st_makeemptyraster(
                        round((least(spans.grid_xmax, spans.grid_xmin + (spans.last_column + 1) * spans.step_x)
                               - (spans.grid_xmin + spans.first_column * spans.step_x)) / spans.scale_x)::int,
                        round(((spans.grid_ymax - spans.first_row * spans.step_y)
                               - greatest(spans.grid_ymin, spans.grid_ymax - (spans.last_row + 1) * spans.step_y))
                              / abs(spans.scale_y))::int,
                        spans.grid_xmin + spans.first_column * spans.step_x,
                        spans.grid_ymax - spans.first_row * spans.step_y,
                        spans.scale_x, spans.scale_y, 0, 0, spans.srid
                    ),
                    '8BUI'::text, 1, 0
                ),
                spans.geometry, false
            ),
            spans.tile_width, spans.tile_height
        ) as tile
    from district_tile_ranges as spans
    where spans.last_column >= spans.first_column and spans.last_row >= spans.first_row

),

counted_span_tiles as (

    -- each tile of the span with the count of pixel centres inside (ST_Count of the non-nodata pixels: a C loop;
    -- counting the dumped array's elements in SQL and dumping every tile, needed or not, took 8 of the 18 s of
    -- 14,000 districts), counted once: OFFSET 0 keeps the planner from evaluating ST_Count three times (the
    -- filter, covers_cell and the mask's CASE; 2.6 of 11.8 s at 14,000 districts)
    select span_tiles.*, st_count(span_tiles.tile, 1, true) as inside_pixels
    from district_span_tiles as span_tiles
    offset 0

),

district_cell_slices as (

    -- each new tile cell of the district: the span's tile at its position on the cell's grid
    select
        span_tiles.area_code,
        span_tiles.district_code,
        span_tiles.districts_version,
        new_cells.cell,
        new_cells.cell_width * new_cells.cell_height as cell_pixels,
        span_tiles.tile,
        span_tiles.inside_pixels
    from counted_span_tiles as span_tiles
    inner join new_cells
        on new_cells.area_code = span_tiles.area_code
        and new_cells.grid_number = span_tiles.grid_number
        and new_cells.tile_column
            = round((st_upperleftx(span_tiles.tile) - span_tiles.grid_xmin) / span_tiles.step_x)::int
        and new_cells.tile_row
            = round((span_tiles.grid_ymax - st_upperlefty(span_tiles.tile)) / span_tiles.step_y)::int

)

select
    area_code::text as area_code,
    district_code::text as district_code,
    cell::geometry as cell,
    (inside_pixels = cell_pixels)::boolean as covers_cell,
    -- a tile whose every pixel centre is inside is taken whole: no mask; else the tile as an array, 1 inside and
    -- null outside (ST_DumpValues turns the nodata 0 into null itself), dumped only here
    (case
        when inside_pixels < cell_pixels then st_dumpvalues(tile, 1, true)
    end)::double precision[] as pixel_mask,
    districts_version::text as districts_version
from district_cell_slices
where inside_pixels > 0
