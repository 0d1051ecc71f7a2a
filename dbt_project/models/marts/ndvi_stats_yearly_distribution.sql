{{
  config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['area_code', 'year'],
    on_schema_change='append_new_columns',
    pre_hook=zonal_session_settings(),
    post_hook=["create unique index if not exists {{ this.name }}_uq on {{ this }} (area_code, district_code, year)",
               "analyze {{ this }}"]
  )
}}

-- Analyzed after each build: the exports read it right away, before autovacuum has sampled the new rows (at
-- 14,000 districts a plan made without statistics cost the yearly export 20 s instead of 1 s).

-- Per area, district and year, beside ndvi_stats_yearly (same grain, same pixels: valid pixels whose centre
-- lies in the district): the percentiles p10/p25/p50/p75/p90 of NDVI, exactly as numpy's
-- `np.percentile(values, q)` (linear interpolation), and per green-share class of the area the number of
-- valid pixels with NDVI >= its threshold (exact comparison). See macros/distribution.sql for how: the
-- district's masked tiles become one raster, which ST_Quantile sorts and _ST_Histogram counts, all in C.
--
-- A run computes every area-year that is new, re-loaded, computed for an older districts version, or for
-- other green-share thresholds than the area's current ones (so a config change applies at the next run).
with districts as (

    select area_code, district_code, districts_version
    from {{ ref('stg_districts') }}

),

current_versions as (

    select area_code, min(districts_version) as districts_version
    from districts
    group by area_code

),

area_thresholds as (

    -- the raw table, not stg_green_share_thresholds: the yearly job builds this model without the per-area
    -- views, and the loader creates the table before any year loads
    select
        area_code::text as area_code,
        array_agg(threshold_name::text order by ndvi_threshold) as threshold_names,
        array_agg(ndvi_threshold::double precision order by ndvi_threshold) as ndvi_thresholds
    from {{ source('raw', 'green_share_thresholds') }}
    group by area_code

),

tiled_years as (

    select area_code, year, max(composite_loaded_at) as composite_loaded_at
    from {{ ref('stg_ndvi_tiles') }}
    group by area_code, year

),

area_years_of_run as (

    select tiled_years.area_code, tiled_years.year, tiled_years.composite_loaded_at
    from tiled_years
    {% if is_incremental() %}
    left join (
        select area_code, year, max(composite_loaded_at) as composite_loaded_at,
               max(districts_version) as districts_version,
               -- every row of an area-year is computed with the same thresholds
               max(green_threshold_names::text) as threshold_names,
               max(green_ndvi_thresholds::text) as ndvi_thresholds
        from {{ this }}
        group by area_code, year
    ) as stored
        on stored.area_code = tiled_years.area_code and stored.year = tiled_years.year
    left join current_versions
        on current_versions.area_code = tiled_years.area_code
    left join area_thresholds
        on area_thresholds.area_code = tiled_years.area_code
    where stored.year is null
        or stored.composite_loaded_at is distinct from tiled_years.composite_loaded_at
        or stored.districts_version is distinct from current_versions.districts_version
        or stored.threshold_names is distinct from coalesce(area_thresholds.threshold_names, '{}')::text
        or stored.ndvi_thresholds is distinct from coalesce(area_thresholds.ndvi_thresholds, '{}')::text
    {% endif %}

),

district_pixel_bytes as (

    -- Per district and area-year, the band-1 bytes of the district's tiles masked exactly as in
    -- ndvi_stats_yearly (ST_SetValues with the district_tile_masks mask; whole tiles inside the district as
    -- they are), concatenated. LATERAL with OFFSET 0 streams district by district (see ndvi_stats_yearly).
    -- The thresholds are joined here, before the LATERAL, so that no later join can put this (expensive)
    -- subquery on the inner side of a nested loop and run it again per outer row.
    select
        districts.area_code,
        districts.district_code,
        districts.districts_version,
        area_years_of_run.year,
        area_years_of_run.composite_loaded_at,
        coalesce(area_thresholds.threshold_names, '{}') as threshold_names,
        coalesce(area_thresholds.ndvi_thresholds, '{}') as ndvi_thresholds,
        masked_pixels.pixel_bytes
    from districts
    inner join area_years_of_run
        on area_years_of_run.area_code = districts.area_code
    left join area_thresholds
        on area_thresholds.area_code = districts.area_code
    cross join lateral (
        select string_agg({{ ndvi_pixel_bytes('masked_tiles.rast') }}, ''::bytea) as pixel_bytes
        from (
            select
                case
                    when masks.covers_cell then st_band(tiles.rast, 1)
                    else st_setvalues(st_band(tiles.rast, 1), 1, 1, 1, masks.pixel_mask, 1::double precision)
                end as rast
            from {{ ref('district_tile_masks') }} as masks
            inner join {{ ref('stg_ndvi_tiles') }} as tiles
                on st_xmin(st_envelope(tiles.rast)) = st_xmin(masks.cell)
                and st_ymax(st_envelope(tiles.rast)) = st_ymax(masks.cell)
                and st_xmax(st_envelope(tiles.rast)) = st_xmax(masks.cell)
                and st_ymin(st_envelope(tiles.rast)) = st_ymin(masks.cell)
            where masks.area_code = districts.area_code
                and masks.district_code = districts.district_code
                and tiles.area_code = districts.area_code
                and tiles.year = area_years_of_run.year
            offset 0
        ) as masked_tiles
        offset 0
    ) as masked_pixels

),

district_rasters as (

    select
        area_code,
        district_code,
        districts_version,
        year,
        composite_loaded_at,
        threshold_names,
        ndvi_thresholds,
        case when pixel_bytes is not null then {{ ndvi_pixels_raster('pixel_bytes') }} end as rast
    from district_pixel_bytes
    -- built once per row: without the fence the planner may inline the raster expression into each use
    offset 0

),

district_distributions as (

    select
        district_rasters.area_code,
        district_rasters.district_code,
        district_rasters.districts_version,
        district_rasters.year,
        district_rasters.composite_loaded_at,
        district_rasters.threshold_names,
        district_rasters.ndvi_thresholds,
        bins.bin_counts,
        case when bins.bin_counts is not null then array(
            select quantile.value
            from st_quantile(district_rasters.rast, 1, true, array[0.1, 0.25, 0.5, 0.75, 0.9]) as quantile
            order by quantile.quantile
        ) end as percentiles
    from district_rasters
    cross join lateral (
        select {{ threshold_bin_counts('district_rasters.rast', 'district_rasters.ndvi_thresholds') }} as bin_counts
        offset 0  -- one histogram pass per row (the CASE below reads bin_counts too)
    ) as bins
    -- the arrays are computed once per row, not once per column that reads them below
    offset 0

),

district_counts as (

    select
        *,
        coalesce((select sum(bin.count) from unnest(bin_counts) as bin(count)), 0) as pixel_count,
        array(
            select coalesce((select sum(bin.count) from unnest(bin_counts[threshold.rank + 1:]) as bin(count)), 0)
            from generate_subscripts(ndvi_thresholds, 1) as threshold(rank)
            order by threshold.rank
        ) as green_pixel_counts
    from district_distributions

)

-- percentiles stay NULL (not 0) when a district had no valid pixel that year
select
    area_code::text as area_code,
    district_code::text as district_code,
    year::integer as year,
    pixel_count::bigint as pixel_count,
    percentiles[1]::double precision as p10_ndvi,
    percentiles[2]::double precision as p25_ndvi,
    percentiles[3]::double precision as median_ndvi,
    percentiles[4]::double precision as p75_ndvi,
    percentiles[5]::double precision as p90_ndvi,
    threshold_names::text[] as green_threshold_names,
    ndvi_thresholds::double precision[] as green_ndvi_thresholds,
    green_pixel_counts::bigint[] as green_pixel_counts,
    districts_version::text as districts_version,
    composite_loaded_at::timestamptz as composite_loaded_at
from district_counts
