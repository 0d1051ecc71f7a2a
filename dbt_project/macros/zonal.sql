{#-
  Helpers for the zonal statistics (stg_ndvi_tiles, district_tile_masks).
-#}

{#-
  Tile size in pixels for stg_ndvi_tiles, per area: a query of (area_code, tile_size) for every area that has
  a composite. Var `tile_size` when it is a number (every area), otherwise ('auto', the default) chosen from
  the area's own district sizes, so adding or re-districting one area never changes another area's tiling.
  A tile that straddles k districts is masked and summarised k times, so small districts want small tiles,
  while every tile row costs a fixed overhead (detoast, two aggregate calls), so large districts want large
  ones. Measured best (2 cores): 32 px for 2,000 districts of ~12,500 px (L case), 64 px for Enschede's 10
  districts of ~200,000 px. Rule: a power of two near a third of the side of the area's median district in
  pixels, clamped to 32..256; 256 for an area with no published districts yet.
-#}
{% macro zonal_tile_sizes() -%}
    {%- set configured = var('tile_size', 'auto') | string | trim -%}
    {%- if configured.isdigit() -%}
        {#- the loader stores each composite in 1,024 px squares (ingestion/load/postgis.py DEFAULT_LOAD_TILE),
            and ST_Tile cuts each square on its own: only a size that divides 1,024 gives one regular grid -#}
        {%- if configured | int < 1 or 1024 % (configured | int) != 0 -%}
            {{ exceptions.raise_compiler_error("var 'tile_size' must divide 1024, the size of the squares the loader stores a composite in (a power of two up to 1024: 32, 64, 128, 256, ...), or be 'auto'; got '" ~ configured ~ "': its tiles would not form one grid across those squares") }}
        {%- endif -%}
        select distinct area_code, {{ configured | int }} as tile_size
        from {{ source('raw', 'ndvi_composites') }}
    {%- elif configured != 'auto' -%}
        {{ exceptions.raise_compiler_error("var 'tile_size' must be a number of pixels or 'auto', got '" ~ configured ~ "'") }}
    {%- else -%}
        with area_pixel_areas as (
            select distinct on (area_code)
                area_code,
                abs(st_scalex(rast) * st_scaley(rast)) as pixel_area
            from {{ source('raw', 'ndvi_composites') }}
            order by area_code
        ),

        area_median_sides as (
            select
                area_pixel_areas.area_code,
                sqrt(
                    percentile_cont(0.5) within group (order by st_area(districts.geometry))
                    / area_pixel_areas.pixel_area
                ) / 3 as third_of_median_side
            from area_pixel_areas
            inner join {{ source('raw', 'districts') }} as districts
                on districts.area_code = area_pixel_areas.area_code
            where area_pixel_areas.pixel_area > 0
            group by area_pixel_areas.area_code, area_pixel_areas.pixel_area
        )

        select
            area_pixel_areas.area_code,
            case
                when area_median_sides.third_of_median_side is null then 256
                when area_median_sides.third_of_median_side >= 256 then 256
                when area_median_sides.third_of_median_side >= 128 then 128
                when area_median_sides.third_of_median_side >= 64 then 64
                else 32
            end as tile_size
        from area_pixel_areas
        left join area_median_sides
            on area_median_sides.area_code = area_pixel_areas.area_code
    {%- endif -%}
{%- endmacro %}

{#-
  Pre-hook of district_tile_masks: delete the masks of every area whose tiles were cut at another size since
  they were built (stg_ndvi_tiles tiles every year of an area at the area's one size, and tiles them all again
  when it changes). Their cells are no tile's any more: left, they would only take space, never a pixel
  (ndvi_stats_yearly matches a mask's cell to a tile by all four corners). The run then masks the new cells.
  Compared in pixels: the widest and highest mask cell against the area's tile size.
-#}
{% macro delete_masks_of_another_tile_size() -%}
    delete from {{ this }} as built
    using (
        select tiles.area_code
        from (
            select
                area_code,
                max(st_width(rast)) as tile_width,
                max(st_height(rast)) as tile_height,
                min(st_scalex(rast)) as scale_x,
                min(abs(st_scaley(rast))) as scale_y
            from {{ ref('stg_ndvi_tiles') }}
            group by area_code
        ) as tiles
        inner join (
            select
                area_code,
                max(st_xmax(cell) - st_xmin(cell)) as cell_width,
                max(st_ymax(cell) - st_ymin(cell)) as cell_height
            from {{ this }}
            group by area_code
        ) as masks
            on masks.area_code = tiles.area_code
        where round(masks.cell_width / tiles.scale_x) <> tiles.tile_width
            or round(masks.cell_height / tiles.scale_y) <> tiles.tile_height
    ) as retiled
    where built.area_code = retiled.area_code
{%- endmacro %}
