{#-
  Helpers for the zonal statistics (stg_ndvi_tiles).
-#}

{#-
  Tile size in pixels for stg_ndvi_tiles: var `tile_size` when it is a number, otherwise ('auto', the default)
  chosen from the district sizes. A tile that straddles k districts is masked and summarised k times, so small
  districts want small tiles, while every tile row costs a fixed overhead (detoast, two aggregate calls), so
  large districts want large ones. Measured best (2 cores): 32 px for 2,000 districts of ~12,500 px (L case),
  64 px for Enschede's 10 districts of ~200,000 px. Rule: a power of two near a third of the side of the median
  district in pixels, clamped to 32..256.
-#}
{% macro zonal_tile_size() -%}
    {%- set configured = var('tile_size', 'auto') | string | trim -%}
    {%- if configured.isdigit() -%}
        {{ configured | int }}
    {%- elif configured != 'auto' -%}
        {{ exceptions.raise_compiler_error("var 'tile_size' must be a number of pixels or 'auto', got '" ~ configured ~ "'") }}
    {%- elif not execute -%}
        256
    {%- else -%}
        {%- set query -%}
            with pixel as (
                select abs(st_scalex(rast) * st_scaley(rast)) as area
                from {{ source('raw', 'ndvi_composites') }}
                limit 1
            )
            select (
                sqrt(percentile_cont(0.5) within group (order by st_area(districts.geometry)) / pixel.area) / 3
            )::double precision as third_of_median_side
            from {{ source('raw', 'districts') }} as districts
            cross join pixel
            where pixel.area > 0
            group by pixel.area
        {%- endset -%}
        {%- set rows = run_query(query).rows -%}
        {%- if rows | length == 0 or rows[0][0] is none -%}
            256
        {%- else -%}
            {%- set side = rows[0][0] | float -%}
            {%- set ns = namespace(size=32) -%}
            {%- for candidate in [64, 128, 256] -%}
                {%- if candidate <= side -%}{%- set ns.size = candidate -%}{%- endif -%}
            {%- endfor -%}
            {{ ns.size }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
